//! The shop: every part of actix-device in one app on an embedded redb store.
//! `main.rs` runs it; the browser tests start it in-process from this file.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_device::carts::Carts;
use actix_device::devices::{Devices, EvictionPolicy, Permissions};
use actix_device::flags::{admin_routes, FlagDefinition, Flags};
use actix_device::limits::{Limit, Quota};
use actix_device::stores::{RedbStore, Store};
use actix_device::{
    require_json, ApiError, Cart, CrossSiteGuard, CurrentSession, DeviceApi, DeviceContext,
    DeviceFlags, DeviceTracking, Key, Keyring, RateLimit, ServiceContext, Sessions,
};
use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::header::ContentType;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::json;

/// The demo accounts (README lists them). Only their argon2 hashes are kept in memory.
pub const DEMO_USERS: [(&str, &str); 3] = [
    ("alice", "wonderland"),
    ("bob", "builder"),
    ("carol", "singer"),
];
/// The demo user allowed to use the flag admin API (a demo guard, not real authorization).
pub const DEMO_ADMIN: &str = "alice";
/// Products on the page.
pub const PRODUCTS: [(&str, &str); 3] = [
    ("tea", "Green tea"),
    ("mug", "Blue mug"),
    ("kettle", "Kettle"),
];

const PAGE: &str = include_str!("page.html");

/// Everything the shop holds, shared by every worker.
#[derive(Clone)]
pub struct Shop {
    tracking: DeviceTracking,
    sessions: Sessions,
    carts: Carts,
    flags: Flags,
    users: Arc<HashMap<String, String>>,
    login_per_account: RateLimit,
    store: std::sync::Weak<dyn Store>,
}

/// Opens (or creates) the shop's data under `data_dir`: the device key file and the redb
/// database. `secure_cookies` sets the `Secure` attribute (false for plain http).
pub async fn open(data_dir: &Path, secure_cookies: bool) -> io::Result<Shop> {
    prometheus();
    std::fs::create_dir_all(data_dir)?;
    let key = Key::load_or_create(data_dir.join("device.key")).map_err(io::Error::other)?;
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(data_dir.join("shop.redb")).map_err(io::Error::other)?);
    let context = ServiceContext::new(store.clone());
    let devices = Devices::builder(&context)
        .max_devices_per_user(5, EvictionPolicy::LeastRecentlySeen)
        // Like most consumer sites: any signed-in device may rename and sign out the
        // user's other devices. (The library's default gives later devices nothing.)
        .default_permissions(Permissions::ALL)
        .touch_interval(Duration::from_secs(60))
        .build();
    let carts = Carts::new(&context);
    // Over plain http (the demo) the cookies cannot be Secure, and so carry no __Host-
    // prefix; behind TLS both are on by default.
    let sessions = Sessions::builder(&devices)
        .cookie_secure(secure_cookies)
        .carts(&carts)
        .build()
        .map_err(io::Error::other)?;
    let tracking = DeviceTracking::builder(Keyring::new(key))
        .cookie_secure(secure_cookies)
        .registry(sessions.clone())
        .build()
        .map_err(io::Error::other)?;
    let flags = Flags::new(&context);
    seed_flags(&flags).await.map_err(io::Error::other)?;
    let users = DEMO_USERS
        .iter()
        .map(|(name, password)| {
            let salt = SaltString::generate(&mut OsRng);
            let hash = Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map_err(|e| io::Error::other(e.to_string()))?
                .to_string();
            Ok(((*name).to_owned(), hash))
        })
        .collect::<io::Result<HashMap<_, _>>>()?;
    Ok(Shop {
        tracking,
        sessions,
        carts,
        flags,
        users: Arc::new(users),
        login_per_account: RateLimit::new(
            "shop-login-account",
            Limit::InMemory(Quota::per_minute(10)),
        ),
        store: Arc::downgrade(&store),
    })
}

/// The demo flags, created on first start only (admin changes are kept).
async fn seed_flags(flags: &Flags) -> Result<(), ApiError> {
    flags.reload().await?;
    if flags.get("banner").is_none() {
        let mut banner = FlagDefinition::new("banner");
        banner.variants = vec![("green".into(), 1), ("blue".into(), 1)];
        flags.upsert(banner).await?;
    }
    if flags.get("free-shipping").is_none() {
        let mut shipping = FlagDefinition::new("free-shipping");
        shipping.rollout_bp = 5_000;
        flags.upsert(shipping).await?;
    }
    Ok(())
}

/// The process's Prometheus recorder: every `actix_device_*` metric lands there. Installed
/// once per process (a second shop in the same process shares it).
fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// `GET /metrics`: the counters and histograms in Prometheus text format. (A real
/// deployment serves them on an internal port or behind its own authentication.)
async fn metrics_page() -> HttpResponse {
    match prometheus() {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(handle.render()),
        None => HttpResponse::NotFound().finish(),
    }
}

impl Shop {
    /// Registers every route on an app.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.clone()))
            .app_data(web::Data::new(self.sessions.clone()))
            .app_data(web::Data::new(self.carts.clone()))
            .app_data(web::Data::new(self.flags.clone()))
            .route("/", web::get().to(page))
            .route("/metrics", web::get().to(metrics_page))
            .service(
                web::scope("/api")
                    // Unsafe requests from other sites are refused before any handler.
                    .wrap(CrossSiteGuard::new())
                    // 600 a minute per returning browser; a client without a valid cookie
                    // is charged to its address, and no address gets more than 1,200.
                    .wrap(
                        RateLimit::builder("shop-api", Limit::InMemory(Quota::per_minute(600)))
                            .per_address(Quota::per_minute(1_200))
                            .build(),
                    )
                    .route("/me", web::get().to(me))
                    .route("/products", web::get().to(products))
                    .route("/cart", web::get().to(cart_get))
                    .route("/cart/items", web::post().to(cart_add))
                    .route("/cart/items/{sku}", web::delete().to(cart_remove))
                    .service(
                        // Password guessing: 10 attempts a minute per address (whatever
                        // cookies it sends), and 10 per account in the handler.
                        web::resource("/login")
                            .wrap(
                                RateLimit::builder(
                                    "shop-login",
                                    Limit::InMemory(Quota::per_minute(10)),
                                )
                                .per_address(Quota::per_minute(10))
                                .build(),
                            )
                            .route(web::post().to(login)),
                    )
                    .route("/logout", web::post().to(logout))
                    .service(DeviceApi::for_sessions(&self.sessions).scope("/devices"))
                    .service(
                        admin_routes(&self.flags, "/admin/flags").wrap(from_fn(demo_admin_only)),
                    ),
            );
    }

    /// The device-tracking middleware to wrap the app in.
    #[must_use]
    pub fn tracking(&self) -> DeviceTracking {
        self.tracking.clone()
    }
}

/// Demo guard: only the demo admin, signed in, may use the flag admin API. A real
/// application puts its own authorization here.
async fn demo_admin_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let admin = match req.app_data::<web::Data<Sessions>>() {
        Some(sessions) => sessions
            .current(req.request())
            .await
            .is_ok_and(|s| s.user_id() == DEMO_ADMIN),
        None => false,
    };
    if !admin {
        let res = HttpResponse::Forbidden().json(json!({
            "error": { "code": "forbidden", "message": "the flag admin API is for the demo admin" }
        }));
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(PAGE)
}

async fn me(
    device: DeviceContext,
    flags: DeviceFlags,
    sessions: web::Data<Sessions>,
    shop: web::Data<Shop>,
    req: HttpRequest,
) -> HttpResponse {
    let user = sessions
        .current(&req)
        .await
        .ok()
        .map(|s| s.user_id().to_owned());
    let all: HashMap<String, Option<String>> = shop
        .flags
        .list()
        .into_iter()
        .map(|d| {
            let v = flags.variant(&d.key);
            (d.key, v)
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "device_id": device.id,
        "new": device.is_new,
        "user": user,
        "flags": all,
    }))
}

async fn products() -> HttpResponse {
    let list: Vec<_> = PRODUCTS
        .iter()
        .map(|(sku, name)| json!({ "sku": sku, "name": name }))
        .collect();
    HttpResponse::Ok().json(list)
}

async fn cart_get(cart: Cart) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(cart.get().await?))
}

#[derive(Deserialize)]
struct AddItem {
    sku: String,
    qty: u32,
}

async fn cart_add(
    cart: Cart,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let item: AddItem =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    if !PRODUCTS.iter().any(|(sku, _)| *sku == item.sku) {
        return Err(ApiError::InvalidBody(format!("no product {}", item.sku)));
    }
    Ok(HttpResponse::Ok().json(cart.add(&item.sku, item.qty, None).await?))
}

async fn cart_remove(cart: Cart, sku: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(cart.remove(&sku).await?))
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(
    shop: web::Data<Shop>,
    sessions: web::Data<Sessions>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let form: LoginForm =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    shop.login_per_account.charge_key(&form.username).await?;
    let verified = shop.users.get(&form.username).is_some_and(|hash| {
        PasswordHash::new(hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(form.password.as_bytes(), &parsed)
                .is_ok()
        })
    });
    if !verified {
        return Ok(HttpResponse::Unauthorized().json(json!({
            "error": { "code": "bad_credentials", "message": "unknown user or wrong password" }
        })));
    }
    let session = sessions.login(&req, &form.username).await?;
    Ok(HttpResponse::Ok().json(json!({ "user": session.user_id() })))
}

async fn logout(
    sessions: web::Data<Sessions>,
    _session: CurrentSession,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    sessions.logout(&req).await?;
    Ok(HttpResponse::Ok().json(json!({ "logged_out": true })))
}

/// Runs the shop until stopped.
pub async fn run(bind: &str, data_dir: PathBuf, secure_cookies: bool) -> io::Result<()> {
    let shop = open(&data_dir, secure_cookies).await?;
    tracing::info!(%bind, data = %data_dir.display(), "shop listening");
    HttpServer::new(move || {
        App::new()
            .configure(|cfg| shop.configure(cfg))
            .wrap(shop.tracking())
    })
    .bind(bind)?
    .run()
    .await
}

// Used by the browser test (tests/browser.rs), not by main.rs.
#[allow(dead_code)]
/// Starts the shop on `127.0.0.1:port` (0: any free port) in a thread of its own; returns
/// the port and a handle that stops it. The store is closed when the thread ends.
pub fn start(
    port: u16,
    data_dir: PathBuf,
    secure_cookies: bool,
) -> io::Result<(u16, ServerHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let store = std::cell::RefCell::new(
            std::sync::Weak::<RedbStore>::new() as std::sync::Weak<dyn Store>
        );
        actix_web::rt::System::new().block_on(async {
            let shop = match open(&data_dir, secure_cookies).await {
                Ok(s) => {
                    *store.borrow_mut() = s.store.clone();
                    s
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let server = match HttpServer::new(move || {
                App::new()
                    .configure(|cfg| shop.configure(cfg))
                    .wrap(shop.tracking())
            })
            .workers(1)
            .bind(("127.0.0.1", port))
            {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let port = server.addrs()[0].port();
            let server = server.run();
            let _ = tx.send(Ok((port, server.handle())));
            let _ = server.await;
        });
        // Worker threads drop their copies of the app a moment after the server stops;
        // wait for the last one so the database file is closed when this thread ends.
        for _ in 0..500 {
            if store.borrow().strong_count() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let (port, handle) = rx
        .recv()
        .map_err(|_| io::Error::other("shop thread ended before starting"))??;
    Ok((port, handle, thread))
}
