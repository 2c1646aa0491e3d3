//! Whole-request overhead: server variants on loopback driven by `wrk`, side by side.
//!
//! ```sh
//! bash benches/http.sh          # installs wrk, then: cargo bench --bench http --all-features
//! ```
//!
//! Each variant is an actix-web server with one worker on core 0; `wrk` runs on core 1
//! (when the machine has two). Every run of a variant sits between two runs of the bare
//! server, and its ratios (throughput, p99) are to the mean of those two, so the machine's
//! drift (bare itself moves by half between minutes on a shared VM) hits both sides alike;
//! the sweep is repeated `ROUNDS` times (default 3) and the table shows medians, with the
//! lowest and highest per-run throughput ratio beside each (`x bare range`). A run
//! whose two bare runs differ by more than 10% saw the machine change speed under it (the
//! project's VM flips between two states about 2x apart); its ratios are left out of the
//! medians when the variant has steady runs, and the `steady` column counts those.
//! `DURATION` (seconds per run, default 5) and `CONNECTIONS` (default 32) tune it;
//! `VARIANTS=signed-in,identity` runs bare and the variants whose names contain a word.
//!
//! `floor (two extensions)` is not ours: the least any middleware can do to hand handlers a
//! `web::ReqData<DeviceId>` and a context beside it, reading no cookie (`VARIANTS=floor`).
//! It is the floor under the returning-browser rows.
//!
//! Signed-in variants (a `CurrentSession` handler: the session check on every request,
//! sessions on moka and on redb) run against actix-identity on actix-session's cookie store,
//! what actix users pick for sign-in (it cannot revoke a session on the server). Their
//! browsers log in once before the runs; they are left out of the first-visit table.
//!
//! A third table sends one variant of each kind (ours signed, actix-session signed, ours
//! signed-in on moka, actix-identity) the returning browser's cookies behind twenty
//! analytics cookies, about 740 bytes in front: the header of a site with the usual
//! trackers, where every reader must find its cookie among the others.

mod support;

use support::{behind_analytics, env_num, median};

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use actix_device::devices::Devices;
use actix_device::{
    ApiError, CurrentSession, DeviceId, DeviceTracking, Key, Keyring, Mode, ServiceContext,
    Sessions,
};
use actix_identity::{Identity, IdentityMiddleware};
use actix_session::storage::CookieSessionStore;
use actix_session::{config::CookieContentSecurity, Session, SessionMiddleware};
use actix_web::cookie::Key as CookieKey;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer};

struct Variant {
    name: &'static str,
    port: u16,
    handle: ServerHandle,
    /// A browser of this variant logs in (`POST /login`) before the runs.
    signed_in: bool,
}

async fn signed_in(session: CurrentSession) -> HttpResponse {
    HttpResponse::Ok().body(format!("hello {}", session.device_id()))
}

async fn login(req: HttpRequest, sessions: web::Data<Sessions>) -> Result<HttpResponse, ApiError> {
    sessions.login(&req, "alice").await?;
    Ok(HttpResponse::Ok().finish())
}

async fn identity_user(id: Identity) -> HttpResponse {
    HttpResponse::Ok().body(format!("hello {}", id.id().unwrap_or_default()))
}

async fn identity_login(req: HttpRequest) -> HttpResponse {
    match Identity::login(
        &req.extensions(),
        "alice-0123456789-0123456789-012345".into(),
    ) {
        Ok(_) => HttpResponse::Ok().finish(),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// The same response as the device handlers (a formatted 36-character id), without
/// the middleware.
async fn bare() -> HttpResponse {
    const ID: DeviceId = DeviceId::from_bytes([0x42; 16]);
    HttpResponse::Ok().body(format!("hello {ID}"))
}

/// The least a middleware can do to serve `web::ReqData<DeviceId>` and a context beside
/// it: put a fixed id and a context in the extensions and call the app, reading no cookie.
/// The floor under the returning-browser rows.
fn floor() -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap_fn(|req, srv| {
            use actix_web::dev::Service as _;
            support::put_floor(&req, false);
            srv.call(req)
        })
        .route("/", web::get().to(device))
}

async fn device(id: DeviceId) -> HttpResponse {
    HttpResponse::Ok().body(format!("hello {id}"))
}

/// What actix-session users write to get a per-browser id: read it, mint one if absent.
async fn session_id(session: Session) -> HttpResponse {
    let id = match session.get::<String>("id") {
        Ok(Some(id)) => id,
        _ => {
            let id = DeviceId::new_v7().to_string();
            let _ = session.insert("id", &id);
            id
        }
    };
    HttpResponse::Ok().body(format!("hello {id}"))
}

macro_rules! serve {
    ($name:expr, $app:expr) => {{
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new($app)
                    .workers(1)
                    .backlog(1024)
                    .bind(("127.0.0.1", 0))
                    .expect("bind");
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).expect("send");
                let _ = server.await;
            })
        });
        let (port, handle) = rx.recv().expect("server started");
        Variant {
            name: $name,
            port,
            handle,
            signed_in: false,
        }
    }};
}

fn tracking(mode: Mode) -> DeviceTracking {
    DeviceTracking::builder(Keyring::new(Key::from_secret(&[7; 32]).unwrap()))
        .mode(mode)
        .cookie_secure(false)
        .build()
        .unwrap()
}

fn variants(data: &std::path::Path) -> Vec<Variant> {
    let _ = data;
    let mut out = vec![
        serve!("bare", || App::new().route("/", web::get().to(bare))),
        serve!("floor (two extensions)", floor),
    ];
    for (name, mode) in [
        ("device plain", Mode::Plain),
        ("device signed", Mode::Signed),
        ("device sealed", Mode::Sealed),
    ] {
        let t = tracking(mode);
        out.push(serve!(name, move || App::new()
            .wrap(t.clone())
            .route("/", web::get().to(device))));
    }
    #[cfg(feature = "redb")]
    {
        let store: Arc<dyn actix_device::stores::Store> = Arc::new(
            actix_device::stores::RedbStore::open(data.join("bench.redb")).expect("redb opens"),
        );
        let devices =
            actix_device::devices::Devices::new(&actix_device::ServiceContext::new(store));
        let t = DeviceTracking::builder(Keyring::new(Key::from_secret(&[7; 32]).unwrap()))
            .cookie_secure(false)
            .registry(devices)
            .build()
            .unwrap();
        out.push(serve!("signed + registry (redb)", move || App::new()
            .wrap(t.clone())
            .route("/", web::get().to(device))));
    }
    let key = CookieKey::from(&[9u8; 64]);
    for (name, security) in [
        ("actix-session signed", CookieContentSecurity::Signed),
        ("actix-session private", CookieContentSecurity::Private),
    ] {
        let key = key.clone();
        out.push(serve!(name, move || App::new()
            .wrap(
                SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                    .cookie_content_security(security)
                    .cookie_secure(false)
                    .build()
            )
            .route("/", web::get().to(session_id))));
    }
    signed_in_variants(data, &mut out);
    let key = CookieKey::from(&[9u8; 64]);
    let mut identity = serve!("actix-identity (cookie)", move || App::new()
        .wrap(IdentityMiddleware::default())
        .wrap(
            SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                .cookie_secure(false)
                .build()
        )
        .route("/", web::get().to(identity_user))
        .route("/login", web::post().to(identity_login)));
    identity.signed_in = true;
    out.push(identity);
    out
}

/// Our sessions on moka and on redb: `DeviceTracking` + `Sessions`, a `CurrentSession`
/// handler.
fn signed_in_variants(data: &std::path::Path, out: &mut Vec<Variant>) {
    let moka: Arc<dyn actix_device::stores::Store> =
        Arc::new(actix_device::stores::MokaStore::builder().build());
    let redb: Arc<dyn actix_device::stores::Store> = Arc::new(
        actix_device::stores::RedbStore::open(data.join("sessions.redb")).expect("redb opens"),
    );
    for (name, store) in [("signed-in (moka)", moka), ("signed-in (redb)", redb)] {
        let devices = Devices::new(&ServiceContext::new(store));
        let sessions = Sessions::builder(&devices)
            .cookie_secure(false)
            .build()
            .expect("sessions");
        let t = DeviceTracking::builder(Keyring::new(Key::from_secret(&[7; 32]).unwrap()))
            .cookie_secure(false)
            .registry(sessions.clone())
            .build()
            .unwrap();
        let mut v = serve!(name, move || App::new()
            .wrap(t.clone())
            .app_data(web::Data::new(sessions.clone()))
            .route("/", web::get().to(signed_in))
            .route("/login", web::post().to(login)));
        v.signed_in = true;
        out.push(v);
    }
}

/// The cookies a response to `curl` sets, as `name=value` pairs.
fn curl_cookies(port: u16, method: &str, path: &str, cookie: &str) -> Vec<String> {
    let mut cmd = Command::new("curl");
    // No User-Agent, like wrk: the session's fingerprint then matches the runs'.
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-X",
        method,
        "-H",
        "User-Agent:",
    ]);
    if !cookie.is_empty() {
        cmd.args(["-H", &format!("Cookie: {cookie}")]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().split(';').next().unwrap_or("").to_owned())
        })
        .collect()
}

/// The `Cookie` header a returning browser sends to this variant (empty for bare); for a
/// signed-in variant, after logging in.
fn returning_cookie(v: &Variant) -> String {
    let mut jar = curl_cookies(v.port, "GET", "/", "");
    if v.signed_in {
        for set in curl_cookies(v.port, "POST", "/login", &jar.join("; ")) {
            let name = set.split('=').next().unwrap_or_default().to_owned();
            jar.retain(|c| c.split('=').next() != Some(name.as_str()));
            jar.push(set);
        }
    }
    jar.join("; ")
}

/// The tables the benchmark prints, each a sweep of the variants it includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    /// Returning browsers: the variant's own cookies.
    Returning,
    /// No cookie; the signed-in variants are left out (a first visit is not signed in).
    FirstVisit,
    /// The returning browser's cookies behind twenty analytics cookies, for one variant of
    /// each kind: the `Cookie` header of a site with the usual trackers.
    Crowded,
}

impl Table {
    const CROWDED: [&'static str; 4] = [
        "device signed",
        "actix-session signed",
        "signed-in (moka)",
        "actix-identity (cookie)",
    ];

    fn includes(self, v: &Variant) -> bool {
        match self {
            Table::Returning => true,
            Table::FirstVisit => !v.signed_in,
            Table::Crowded => Self::CROWDED.contains(&v.name),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk(port: u16, cookie: Option<&str>, secs: u64, connections: u32, pin: bool) -> Run {
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "1", "wrk"]);
        c
    } else {
        Command::new("wrk")
    };
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    if let Some(c) = cookie {
        cmd.args(["-H", &format!("Cookie: {c}")]);
    }
    cmd.arg(format!("http://127.0.0.1:{port}/"));
    let out = cmd
        .output()
        .expect("wrk runs (install it: apt-get install -y wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut run = Run::default();
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            run.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            run.p50_ms = parse_latency(v.trim());
        } else if let Some(v) = t.strip_prefix("99%") {
            run.p99_ms = parse_latency(v.trim());
        }
    }
    if text.contains("Non-2xx") {
        eprintln!("warning: non-2xx responses on port {port}:\n{text}");
    }
    run
}

fn parse_latency(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

/// How far apart (as a share of their mean) the bare runs around a variant's run may be
/// for that run to count as steady.
const STEADY: f64 = 0.10;

/// One run of a variant against the bare runs around it.
#[derive(Debug, Clone, Copy)]
struct Ratio {
    rps: f64,
    p99: f64,
    steady: bool,
}

/// The lowest and highest of per-run ratios, `0.918-0.957`: how far one run can be from
/// the median.
fn range(v: Vec<f64>) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.3}-{hi:.3}")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed: run `bash benches/http.sh` (it installs it)");
        std::process::exit(2);
    }
    let rounds = env_num("ROUNDS", 3).max(1);
    let secs = env_num("DURATION", 5).max(1);
    let connections = u32::try_from(env_num("CONNECTIONS", 32)).unwrap_or(32);
    let pin = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if pin {
        // Servers (this process's threads) on core 0, wrk on core 1.
        let _ = Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
            .output();
    }
    let data = tempfile::tempdir().expect("temp dir");
    let mut variants = variants(data.path());
    // VARIANTS=signed-in,identity keeps bare and the variants whose names contain one of
    // the words (for profiling one of them).
    if let Ok(filter) = std::env::var("VARIANTS") {
        let words: Vec<&str> = filter.split(',').collect();
        variants.retain(|v| v.name == "bare" || words.iter().any(|w| v.name.contains(w)));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut cookies: Vec<String> = variants.iter().map(returning_cookie).collect();
    // Bare sets no cookie; a returning browser still sends one, and parsing that header is
    // part of every real request, so bare gets the signed variant's (which it ignores).
    cookies[0] = variants
        .iter()
        .position(|v| v.name == "device signed")
        .map(|i| cookies[i].clone())
        .unwrap_or_default();

    // The floor reads no cookie, but gets bare's header: the same bytes to parse.
    for (i, v) in variants.iter().enumerate() {
        if v.name.starts_with("floor") {
            cookies[i] = cookies[0].clone();
        }
    }
    let crowded: Vec<String> = cookies.iter().map(|c| behind_analytics(c)).collect();

    for (label, table) in [
        ("returning browsers (valid cookie)", Table::Returning),
        ("first-time visitors (no cookie)", Table::FirstVisit),
        (
            "returning browsers behind twenty analytics cookies (a 740-byte header in front)",
            Table::Crowded,
        ),
    ] {
        let cookie_of = |i: usize| match table {
            Table::Returning if !cookies[i].is_empty() => Some(cookies[i].as_str()),
            Table::Crowded => Some(crowded[i].as_str()),
            _ => None,
        };
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); variants.len()];
        // Per-round ratios: each variant against the mean of the bare runs just before and
        // just after it, so a machine that speeds up or slows down between runs moves both.
        // A run whose two bare runs differ by more than STEADY saw the machine change speed
        // (this one flips between two states about 2x apart): its ratio compares a variant
        // with a bare server in another state, and is left out of the medians whenever the
        // variant has steady runs.
        let mut ratios: Vec<Vec<Ratio>> = vec![Vec::new(); variants.len()];
        for round in 0..rounds {
            let mut bare_before = wrk(variants[0].port, cookie_of(0), secs, connections, pin);
            runs[0].push(bare_before);
            for (i, v) in variants.iter().enumerate().skip(1) {
                if !table.includes(v) {
                    continue;
                }
                let r = wrk(v.port, cookie_of(i), secs, connections, pin);
                let bare_after = wrk(variants[0].port, cookie_of(0), secs, connections, pin);
                let bare_rps = (bare_before.rps + bare_after.rps) / 2.0;
                let bare_p99 = (bare_before.p99_ms + bare_after.p99_ms) / 2.0;
                eprintln!(
                    "round {} {:<28} {:>10.0} req/s  x bare {:.3}  (bare {:.0} / {:.0})",
                    round + 1,
                    v.name,
                    r.rps,
                    r.rps / bare_rps,
                    bare_before.rps,
                    bare_after.rps
                );
                ratios[i].push(Ratio {
                    rps: r.rps / bare_rps,
                    p99: r.p99_ms / bare_p99,
                    steady: (bare_before.rps - bare_after.rps).abs() <= STEADY * bare_rps,
                });
                runs[i].push(r);
                runs[0].push(bare_after);
                bare_before = bare_after;
            }
        }
        ratios[0] = vec![Ratio {
            rps: 1.0,
            p99: 1.0,
            steady: true,
        }];
        println!(
            "\n{label}: {rounds} rounds x {secs}s, {connections} connections; req/s and latencies \
             are medians over runs, ratios medians of per-run ratios to the bare runs around each, \
             over the steady runs (bare before and after within {:.0}%; `steady` counts them)",
            STEADY * 100.0
        );
        println!(
            "{:<28} {:>11} {:>9} {:>9} {:>9} {:>13} {:>9} {:>7}",
            "variant", "req/s", "p50 ms", "p99 ms", "x bare", "x bare range", "p99/bare", "steady"
        );
        for ((v, r), q) in variants.iter().zip(&runs).zip(&ratios) {
            if r.is_empty() {
                continue;
            }
            let steady: Vec<&Ratio> = q.iter().filter(|x| x.steady).collect();
            let used = if steady.is_empty() {
                q.iter().collect()
            } else {
                steady.clone()
            };
            println!(
                "{:<28} {:>11.0} {:>9.3} {:>9.3} {:>9.3} {:>13} {:>9.2} {:>7}",
                v.name,
                median(r.iter().map(|x| x.rps).collect()),
                median(r.iter().map(|x| x.p50_ms).collect()),
                median(r.iter().map(|x| x.p99_ms).collect()),
                median(used.iter().map(|x| x.rps).collect()),
                range(used.iter().map(|x| x.rps).collect()),
                median(used.iter().map(|x| x.p99).collect()),
                format!("{}/{}", steady.len(), q.len())
            );
        }
    }
    for v in variants {
        drop(v.handle.stop(false));
    }
}
