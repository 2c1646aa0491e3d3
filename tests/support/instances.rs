//! What the multi-instance tests of every shared store (Redis, PostgreSQL) have in
//! common: an app instance on a given store, a browser, and the checks that two instances
//! share every kind of state. Included by `tests/redis.rs` and `tests/postgres.rs`.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_device::carts::Carts;
use actix_device::devices::{Devices, Permissions};
use actix_device::flags::{FlagDefinition, Flags};
use actix_device::limits::{Limit, Quota};
use actix_device::stores::Store;
use actix_device::{
    ApiError, Cart, CurrentSession, DeviceApi, DeviceContext, DeviceTracking, Key, Keyring,
    RateLimit, ServiceContext, Sessions,
};
use actix_web::dev::ServerHandle;
use actix_web::http::header::{COOKIE, SET_COOKIE};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

pub fn keyring() -> Keyring {
    Keyring::new(Key::from_secret(&[42; 32]).expect("32-byte key"))
}

// --- the app every instance runs -------------------------------------------------------

pub const FLAG: &str = "banner";

async fn me(device: DeviceContext, flags: web::Data<Flags>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "device_id": device.id,
        "new": device.is_new,
        "variant": flags.evaluate(FLAG, &device.id),
    }))
}

async fn cart_get(cart: Cart) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(cart.get().await?))
}

async fn cart_add(cart: Cart, sku: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(cart.add(&sku, 1, None).await?))
}

async fn login(
    sessions: web::Data<Sessions>,
    req: HttpRequest,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = sessions.login(&req, &user).await?;
    Ok(HttpResponse::Ok().json(json!({ "user": session.user_id() })))
}

async fn whoami(session: CurrentSession) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "user": session.user_id(), "device": session.device_id() }))
}

/// One app instance: its own store client, registry, sessions, carts, flags and rate
/// limiter, all on the shared store; bound to a free loopback port.
pub struct Instance {
    pub base: String,
    pub handle: ServerHandle,
}

impl Instance {
    pub async fn start(store: Arc<dyn Store>) -> Instance {
        let context = ServiceContext::new(store.clone());
        let devices = Devices::builder(&context)
            .default_permissions(Permissions::ALL)
            .build();
        let carts = Carts::new(&context);
        let sessions = Sessions::builder(&devices)
            .cookie_secure(false)
            .carts(&carts)
            .build()
            .expect("sessions config");
        let flags = Flags::builder(&context)
            .refresh(Duration::from_secs(1))
            .build();
        flags.reload().await.expect("flags load");
        let tracking = DeviceTracking::builder(keyring())
            .cookie_secure(false)
            .registry(sessions.clone())
            .build()
            .expect("tracking config");
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(sessions.clone()))
                .app_data(web::Data::new(carts.clone()))
                .app_data(web::Data::new(flags.clone()))
                .route("/me", web::get().to(me))
                .route("/cart", web::get().to(cart_get))
                .route("/cart/{sku}", web::post().to(cart_add))
                .route("/login/{user}", web::post().to(login))
                .route("/whoami", web::get().to(whoami))
                .service(DeviceApi::for_sessions(&sessions).scope("/devices"))
                .service(
                    web::scope("/limited")
                        .wrap(RateLimit::new(
                            "limited",
                            Limit::Shared(Quota::new(4, Duration::from_secs(600)), context.clone()),
                        ))
                        .route("", web::get().to(HttpResponse::Ok)),
                )
                .wrap(tracking.clone())
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Instance {
            base: format!("http://127.0.0.1:{port}"),
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A browser: a cookie jar and an HTTP client.
pub struct Browser {
    client: awc::Client,
    jar: Vec<(String, String)>,
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            client: awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish(),
            jar: Vec::new(),
        }
    }

    pub async fn send(&mut self, method: Method, url: &str) -> (StatusCode, Value) {
        let mut req = self.client.request(method, url);
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.insert_header((COOKIE, cookies.join("; ")));
        }
        let mut res = req.send().await.expect("the server answers");
        for v in res.headers().get_all(SET_COOKIE) {
            let c = actix_web::cookie::Cookie::parse(v.to_str().expect("ascii").to_owned())
                .expect("a valid Set-Cookie");
            self.jar.retain(|(k, _)| k != c.name());
            if !c.value().is_empty() {
                self.jar.push((c.name().to_owned(), c.value().to_owned()));
            }
        }
        let body = res.body().await.expect("a body");
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (res.status(), json)
    }

    pub async fn get(&mut self, url: &str) -> (StatusCode, Value) {
        self.send(Method::GET, url).await
    }

    pub async fn post(&mut self, url: &str) -> (StatusCode, Value) {
        self.send(Method::POST, url).await
    }
}

/// The cart's SKUs, in the order they were first added.
pub fn cart_skus(cart: &Value) -> Vec<String> {
    cart["lines"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|line| line["sku"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes the test flag (two variants) through a Flags handle of its own.
/// Writes the flag both instances evaluate.
pub async fn seed_flag(store: Arc<dyn Store>) {
    let flags = Flags::new(&ServiceContext::new(store));
    let mut banner = FlagDefinition::new(FLAG);
    banner.variants = vec![("green".into(), 1), ("blue".into(), 1)];
    flags.upsert(banner).await.expect("flag written");
}

/// Two instances on one store share device id, flag variant, cart, rate-limit budget,
/// session and device list, and a revoke on one is enforced by the other.
pub async fn share_every_kind_of_state(a: &Instance, b: &Instance) {
    // Device id: minted by A, read by B (same keyring, stateless cookie).
    let mut x = Browser::new();
    let (status, on_a) = x.get(&a.url("/me")).await;
    assert_eq!((status, &on_a["new"]), (StatusCode::OK, &json!(true)));
    let (status, on_b) = x.get(&b.url("/me")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(on_b["device_id"], on_a["device_id"], "same device on both");
    assert_eq!(on_b["new"], json!(false));
    // Flag variant: same definition from Redis, same bucket.
    assert!(on_a["variant"].is_string(), "{on_a}");
    assert_eq!(on_b["variant"], on_a["variant"]);
    let device_x = on_a["device_id"].as_str().expect("id").to_owned();

    // Cart: added on A, seen on B, added to on B, seen on A.
    assert_eq!(x.post(&a.url("/cart/tea")).await.0, StatusCode::OK);
    let (status, cart) = x.get(&b.url("/cart")).await;
    assert_eq!(
        (status, cart_skus(&cart)),
        (StatusCode::OK, vec!["tea".to_owned()])
    );
    assert_eq!(x.post(&b.url("/cart/mug")).await.0, StatusCode::OK);
    let (_, cart) = x.get(&a.url("/cart")).await;
    assert_eq!(cart_skus(&cart), ["tea", "mug"]);

    // Rate-limit budget: 4 requests in all, whichever instance answers.
    for instance in [&a, &b, &a, &b] {
        assert_eq!(x.get(&instance.url("/limited")).await.0, StatusCode::OK);
    }
    assert_eq!(
        x.get(&a.url("/limited")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        x.get(&b.url("/limited")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Session: signed in on A, recognised on B.
    assert_eq!(x.post(&a.url("/login/alice")).await.0, StatusCode::OK);
    let (status, who) = x.get(&b.url("/whoami")).await;
    assert_eq!((status, &who["user"]), (StatusCode::OK, &json!("alice")));
    assert_eq!(who["device"], json!(device_x));

    // A second browser signs in on B; both devices are listed on either instance.
    let mut y = Browser::new();
    assert_eq!(y.post(&b.url("/login/alice")).await.0, StatusCode::OK);
    let (status, list) = y.get(&a.url("/devices")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["devices"].as_array().map(Vec::len), Some(2), "{list}");

    // Revoke on B; A enforces it on x's next request.
    let (status, body) = y
        .send(Method::DELETE, &b.url(&format!("/devices/{device_x}")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = x.get(&a.url("/whoami")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "session_revoked", "{body}");
    // y is untouched, on either instance.
    assert_eq!(y.get(&a.url("/whoami")).await.0, StatusCode::OK);
    assert_eq!(y.get(&b.url("/whoami")).await.0, StatusCode::OK);
}

/// Everything logged by this test binary (the fault test checks store errors are logged).
pub fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct Capture;
        impl Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if let Some(logs) = LOGS.get() {
                    logs.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .extend_from_slice(buf);
                }
                std::io::stderr().write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                std::io::stderr().flush()
            }
        }
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| Capture)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        Mutex::new(Vec::new())
    })
}

pub fn logs_contain(needle: &str) -> bool {
    let logs = captured_logs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    String::from_utf8_lossy(&logs).contains(needle)
}
