//! The shop example in a real browser: headless Chromium driven over WebDriver
//! (chromedriver + fantoccini), on loopback.
//!
//! Needs `chromium` and `chromium-driver` (Debian); `.ci/run` installs them. Without
//! them the test prints why it is skipped and returns.

#![cfg(feature = "redb")]

#[path = "../examples/shop/app.rs"]
#[allow(dead_code)]
mod app;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_driver() -> Option<Driver> {
    let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Driver { child, port });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1100,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::rustls()
        .expect("rustls client")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("chromium starts under chromedriver")
}

/// Waits until the element's text satisfies `ok`, and returns it.
async fn text_when(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            if let Ok(t) = el.text().await {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = match c.find(Locator::Css("#message")).await {
        Ok(el) => el.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    panic!("{css} never showed the expected text; last {last:?}; page message {message:?}");
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    for _ in 0..100 {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            return el;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never appeared");
}

async fn device_id_shown(c: &Client, url: &str) -> String {
    c.goto(url).await.unwrap();
    text_when(c, "#device-id", |t| t.len() == 36).await
}

async fn login(c: &Client, user: &str, password: &str) {
    c.find(Locator::Css("#username"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Css("#login-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(c, "#user", |t| t == user).await;
}

fn start_shop(
    port: u16,
    data: &Path,
) -> (
    u16,
    actix_web::dev::ServerHandle,
    std::thread::JoinHandle<()>,
) {
    // A server that was just stopped may hold its port and its redb file for a moment
    // while its worker threads wind down: retry for a few seconds.
    let mut last = None;
    for _ in 0..100 {
        match app::start(port, data.to_path_buf(), false) {
            Ok(started) => return started,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the shop did not start: {last:?}");
}

async fn stop_shop(handle: actix_web::dev::ServerHandle, thread: std::thread::JoinHandle<()>) {
    handle.stop(true).await;
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_in_a_real_browser() {
    let Some(driver) = start_driver() else {
        eprintln!("skipped: chromedriver not found (apt-get install chromium chromium-driver)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let profile_a = work.path().join("profile-a");
    let profile_b = work.path().join("profile-b");
    let (port, handle, thread) = start_shop(0, &data);
    let url = format!("http://127.0.0.1:{port}/");

    // 1. The page shows a device id, and the same one after the browser restarts.
    let a = browser(&driver, &profile_a).await;
    let id = device_id_shown(&a, &url).await;
    // The cookie as the browser stores it: HttpOnly, SameSite=Lax, Secure as configured
    // (off: plain http on loopback), and page scripts cannot read it.
    let cookies = a.get_all_cookies().await.unwrap();
    let cookie = cookies
        .iter()
        .find(|c| c.name() == "device_id")
        .expect("device cookie stored");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(false));
    assert_eq!(
        cookie.same_site().map(|s| format!("{s:?}")),
        Some("Lax".to_owned())
    );
    let visible = a.execute("return document.cookie", vec![]).await.unwrap();
    assert!(
        !visible.as_str().unwrap_or_default().contains("device_id"),
        "{visible}"
    );
    a.close().await.unwrap();
    let a = browser(&driver, &profile_a).await;
    assert_eq!(
        device_id_shown(&a, &url).await,
        id,
        "same id after a browser restart"
    );

    // 2. The same id after a server restart (key file and redb kept).
    stop_shop(handle, thread).await;
    let (_, handle, thread) = start_shop(port, &data);
    assert_eq!(
        device_id_shown(&a, &url).await,
        id,
        "same id after a server restart"
    );

    // 3. The cart survives a reload.
    a.find(Locator::Css("button.add[data-sku='mug']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(&a, "#cart-lines", |t| t.contains("mug × 1")).await;
    a.refresh().await.unwrap();
    text_when(&a, "#cart-lines", |t| t.contains("mug × 1")).await;

    // 4. Log in on A, then on B; B revokes A; A is logged out on its next action.
    login(&a, "alice", "wonderland").await;
    let b = browser(&driver, &profile_b).await;
    let id_b = device_id_shown(&b, &url).await;
    assert_ne!(id_b, id);
    login(&b, "alice", "wonderland").await;
    let revoke_a = format!("button.revoke[data-id='{id}']");
    let button = wait_for(&b, &revoke_a).await;
    button.click().await.unwrap();
    for _ in 0..100 {
        if b.find(Locator::Css(&revoke_a)).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        b.find(Locator::Css(&revoke_a)).await.is_err(),
        "A left B's device list"
    );
    a.find(Locator::Css("button.add[data-sku='tea']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(&a, "#login-button", |t| t == "Log in").await;
    let signed_out = a.find(Locator::Css("#signed-out")).await.unwrap();
    assert!(
        signed_out.is_displayed().await.unwrap(),
        "A is signed out after the revoke"
    );

    // B's page lists the security events, the revocation of A among them.
    b.refresh().await.unwrap();
    text_when(&b, "#events", |t| {
        t.contains("revoked") && t.contains("sign in")
    })
    .await;

    // A screenshot of B's page for the README.
    let png = b.screenshot().await.unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shop.png");
    std::fs::write(&out, png).unwrap();
    eprintln!("screenshot: {}", out.display());

    // What an operator scrapes after that traffic: the shop's /metrics.
    b.goto(&format!("{url}metrics")).await.unwrap();
    let text = b
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for metric in [
        "actix_device_tokens_issued_total",
        "actix_device_tokens_accepted_total",
        "actix_device_sessions_started_total",
        "actix_device_sessions_ended_total{reason=\"device_revoked\"}",
        "actix_device_limiter_decisions_total{limit=\"shop-api\",outcome=\"allowed\"}",
        "actix_device_store_operations_total{backend=\"redb\",op=\"get\"}",
        "actix_device_store_operation_seconds",
    ] {
        assert!(text.contains(metric), "/metrics lacks {metric}:\n{text}");
    }

    a.close().await.unwrap();
    b.close().await.unwrap();
    stop_shop(handle, thread).await;
}
