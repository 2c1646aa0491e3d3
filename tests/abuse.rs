//! The open web's attacks, over HTTP, on every store backend: cookie-less clients and
//! rotated cookies against rate limits, cross-site posts, crowded and tossed cookies,
//! revocations that must hold, data that must stay whole.
#![cfg(all(feature = "moka", feature = "redb", feature = "sled"))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use actix_device::carts::{CartOwner, Carts};
use actix_device::devices::{DataRights, Devices, Permissions};
use actix_device::flags::{FlagDefinition, Flags};
use actix_device::limits::{Limit, Quota};
use actix_device::stores::Store;
use actix_device::{
    ApiError, Cart, CurrentSession, DeviceContext, DeviceControl, DeviceFlags, DeviceId,
    DeviceTracking, Key, Keyring, RateLimit, ServiceContext, Sessions, TrustedProxies,
};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{COOKIE, SET_COOKIE};
use actix_web::http::{Method, StatusCode};
use actix_web::{test, web, App, HttpRequest, HttpResponse};
use serde_json::{json, Value};

/// Limits in these tests refill once every few minutes at the fastest, so a slow machine
/// cannot turn an exact count into an off-by-one.
const HOUR: Duration = Duration::from_secs(3600);

fn keyring() -> Keyring {
    Keyring::new(Key::from_secret(&[11; 32]).unwrap())
}

/// A limit name no other test uses (in-memory limits of one name share one table).
fn unique(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "abuse-{name}-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A client: a cookie jar (in the order the cookies were set), extra headers, an address.
#[derive(Clone, Default)]
struct Client {
    jar: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    peer: Option<String>,
}

impl Client {
    fn at(ip: &str) -> Self {
        Self {
            peer: Some(format!("{ip}:4000")),
            ..Self::default()
        }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.jar
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    async fn send<S, B>(
        &mut self,
        app: &S,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value)
    where
        S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: actix_web::body::MessageBody,
    {
        let mut req = test::TestRequest::default().method(method).uri(path);
        if let Some(peer) = &self.peer {
            req = req.peer_addr(peer.parse().unwrap());
        }
        if !self.jar.is_empty() {
            let header: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.insert_header((COOKIE, header.join("; ")));
        }
        for (k, v) in &self.headers {
            req = req.insert_header((k.as_str(), v.as_str()));
        }
        if let Some(b) = body {
            req = req
                .set_payload(b.to_string())
                .insert_header(("content-type", "application/json"));
        }
        let res = test::call_service(app, req.to_request()).await;
        for v in res.headers().get_all(SET_COOKIE) {
            let c = actix_web::cookie::Cookie::parse(v.to_str().unwrap().to_owned()).unwrap();
            self.jar.retain(|(k, _)| k != c.name());
            if !c.value().is_empty() {
                self.jar.push((c.name().to_owned(), c.value().to_owned()));
            }
        }
        let status = res.status();
        let bytes = test::read_body(res).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get<S, B>(&mut self, app: &S, path: &str) -> (StatusCode, Value)
    where
        S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: actix_web::body::MessageBody,
    {
        self.send(app, Method::GET, path, None).await
    }

    async fn post<S, B>(&mut self, app: &S, path: &str) -> (StatusCode, Value)
    where
        S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: actix_web::body::MessageBody,
    {
        self.send(app, Method::POST, path, None).await
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

const DEVICE: &str = "device_id";
const SESSION: &str = "session";

/// Everything an app of these tests holds.
struct Env {
    devices: Devices,
    sessions: Sessions,
    carts: Carts,
    flags: Flags,
    tracking: DeviceTracking,
}

fn env(store: Arc<dyn Store>) -> Env {
    let context = ServiceContext::new(store.clone());
    let devices = Devices::builder(&context)
        .touch_interval(Duration::ZERO)
        .build();
    let carts = Carts::new(&context);
    let sessions = Sessions::builder(&devices)
        .cookie_secure(false)
        .carts(&carts)
        .build()
        .unwrap();
    let tracking = DeviceTracking::builder(keyring())
        .cookie_secure(false)
        .trusted_proxies(TrustedProxies::hops(1))
        .registry(sessions.clone())
        .build()
        .unwrap();
    Env {
        devices,
        sessions,
        carts,
        flags: Flags::new(&context),
        tracking,
    }
}

async fn login(
    s: web::Data<Sessions>,
    req: HttpRequest,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = s.login(&req, &user).await?;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "user": session.user_id(), "device": session.device_id() })),
    )
}

async fn me(session: CurrentSession) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "user": session.user_id(), "device": session.device_id() }))
}

async fn whoami(ctx: DeviceContext) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "device": ctx.id, "new": ctx.is_new, "ip": ctx.client_ip }))
}

async fn renew(control: DeviceControl) -> HttpResponse {
    control.renew();
    HttpResponse::Ok().finish()
}

/// Signs in and renews the device id in one request: the session cookie the login queues
/// and the renewed device cookie must both go out.
async fn login_and_renew(
    s: web::Data<Sessions>,
    req: HttpRequest,
    control: DeviceControl,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    s.login(&req, &user).await?;
    control.renew();
    Ok(HttpResponse::Ok().finish())
}

async fn cart_add(cart: Cart, sku: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(cart.add(&sku, 1, None).await?))
}

async fn variant(flags: DeviceFlags) -> HttpResponse {
    let all: Vec<Option<String>> = (0..16)
        .map(|i| flags.variant(&format!("exp-{i}")))
        .collect();
    HttpResponse::Ok().json(all)
}

macro_rules! app {
    ($env:expr) => {
        test::init_service(
            App::new()
                .wrap($env.tracking.clone())
                .app_data(web::Data::new($env.sessions.clone()))
                .app_data(web::Data::new($env.carts.clone()))
                .app_data(web::Data::new($env.flags.clone()))
                .route("/", web::get().to(whoami))
                .route("/login/{user}", web::post().to(login))
                .route("/me", web::get().to(me))
                .route("/renew", web::post().to(renew))
                .route("/login-renew/{user}", web::post().to(login_and_renew))
                .route("/cart/{sku}", web::post().to(cart_add))
                .route("/variants", web::get().to(variant))
                .service(actix_device::DeviceApi::for_sessions(&$env.sessions).scope("/devices")),
        )
        .await
    };
}

async fn signed_in<S, B>(app: &S, user: &str, ip: &str) -> Client
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let mut c = Client::at(ip);
    c.get(app, "/").await;
    let (status, body) = c.post(app, &format!("/login/{user}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    c
}

async fn keys(store: &Arc<dyn Store>, prefix: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store
            .scan_prefix(prefix, after.as_deref(), 500)
            .await
            .unwrap();
        out.extend(page.entries.into_iter().map(|(k, _)| k));
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. Budgets that cannot be multiplied.

#[actix_web::test]
async fn cookieless_clients_share_their_address_budget_and_write_nothing_per_device() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let limit = Limit::Shared(Quota::new(5, HOUR), ServiceContext::new(store.clone()));
        let app = test::init_service(
            App::new()
                .service(
                    web::scope("/api")
                        .wrap(RateLimit::new(unique("cookieless"), limit))
                        .route("", web::get().to(HttpResponse::Ok)),
                )
                .wrap(
                    DeviceTracking::builder(keyring())
                        .cookie_secure(false)
                        .build()
                        .unwrap(),
                ),
        )
        .await;
        let mut refused = 0;
        for _ in 0..20 {
            // A client that keeps no cookies: a new id on every request.
            let (status, _) = Client::at("198.51.100.7").get(&app, "/api").await;
            refused += usize::from(status == StatusCode::TOO_MANY_REQUESTS);
        }
        assert_eq!(
            refused, 15,
            "5 a minute for the address, however many ids it gets"
        );
        assert!(
            keys(&store, b"dev/").await.is_empty(),
            "nothing stored per minted device"
        );
        assert_eq!(
            Client::at("198.51.100.8").get(&app, "/api").await.0,
            StatusCode::OK
        );
    }
}

#[actix_web::test]
async fn rotating_valid_devices_from_one_address_gains_nothing() {
    let app = test::init_service(
        App::new()
            .route("/", web::get().to(HttpResponse::Ok))
            .service(
                web::scope("/api")
                    .wrap(
                        RateLimit::builder(
                            unique("rotate"),
                            Limit::InMemory(Quota::per_minute(100)),
                        )
                        .per_address(Quota::new(6, HOUR))
                        .build(),
                    )
                    .route("", web::get().to(HttpResponse::Ok)),
            )
            .wrap(
                DeviceTracking::builder(keyring())
                    .cookie_secure(false)
                    .build()
                    .unwrap(),
            ),
    )
    .await;
    // Ten browsers with valid cookies, all from one address.
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut c = Client::at("203.0.113.9");
        c.get(&app, "/").await;
        clients.push(c);
    }
    let mut ok = 0;
    for c in &mut clients {
        ok += usize::from(c.get(&app, "/api").await.0 == StatusCode::OK);
    }
    assert_eq!(ok, 6, "the address ceiling holds across devices");
    assert_eq!(
        Client::at("203.0.113.10").get(&app, "/api").await.0,
        StatusCode::OK
    );
}

/// A limiter built inside the `HttpServer::new` factory, two workers, real connections:
/// the limit holds across both workers.
#[actix_web::test]
async fn a_limit_built_in_the_factory_holds_across_workers() {
    let name = unique("workers");
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .wrap(RateLimit::new(
                name.clone(),
                Limit::InMemory(Quota::new(20, HOUR)),
            ))
            .route("/", web::get().to(HttpResponse::Ok))
    })
    .workers(2)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let mut ok = 0;
    for _ in 0..40 {
        // A connection of its own each time, so the workers share the load.
        let client = awc::Client::builder().disable_redirects().finish();
        let res = client
            .get(format!("http://127.0.0.1:{port}/"))
            .insert_header(("connection", "close"))
            .send()
            .await
            .unwrap();
        ok += usize::from(res.status() == StatusCode::OK);
    }
    handle.stop(true).await;
    assert_eq!(ok, 20, "one table for both workers");
}

// ---------------------------------------------------------------------------------------
// 2. Cross-site protection.

#[actix_web::test]
async fn cross_site_login_logout_and_revoke_are_refused() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let env = env(store);
        let app = app!(env);
        let mut victim = signed_in(&app, "victim", "192.0.2.1").await;
        for (name, value) in [
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://evil.example"),
        ] {
            let mut forged = victim.clone();
            forged.headers.push((name.into(), value.into()));
            let (status, body) = forged.post(&app, "/login/attacker").await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::FORBIDDEN, "cross_origin_request"),
                "{name}"
            );
            let (status, body) = forged.post(&app, "/devices/revoke-all").await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::FORBIDDEN, "cross_origin_request")
            );
            let (status, _) = forged.post(&app, "/devices/logout").await;
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        // Still the victim's own session; the attacker's account has no device.
        assert_eq!(victim.get(&app, "/me").await.1["user"], "victim");
        assert!(env.devices.list("attacker").await.unwrap().is_empty());
        // Same-origin requests, and clients that send neither header, pass.
        victim
            .headers
            .push(("sec-fetch-site".into(), "same-origin".into()));
        assert_eq!(
            victim.post(&app, "/devices/revoke-all").await.0,
            StatusCode::OK
        );
    }
}

#[actix_web::test]
async fn json_routes_refuse_other_content_types() {
    let store = support::backends().remove(0).1;
    let env = env(store);
    let app = app!(env);
    let mut c = signed_in(&app, "alice", "192.0.2.1").await;
    let device = env.devices.list("alice").await.unwrap()[0].id;
    let req = test::TestRequest::patch()
        .uri(&format!("/devices/{device}"))
        .insert_header((
            COOKIE,
            c.jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        ))
        .insert_header(("content-type", "text/plain"))
        .set_payload(r#"{"name":"pwned"}"#)
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = c
        .send(
            &app,
            Method::PATCH,
            &format!("/devices/{device}"),
            Some(json!({"name": "phone"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// 3. Cookies that survive crowding and tossing.

#[actix_web::test]
async fn crowded_cookies_keep_the_identity_and_an_unreadable_header_mints_nothing() {
    let store = support::backends().remove(0).1;
    let env = env(store);
    let app = app!(env);
    let mut browser = Client::at("192.0.2.1");
    let (_, first) = browser.get(&app, "/").await;
    let token = browser.cookie(DEVICE).unwrap();
    // 90 analytics cookies in front of ours.
    let mut crowded = Client::at("192.0.2.1");
    crowded.jar = (0..90)
        .map(|i| (format!("_ga{i}"), "GA1.2.3456789.1234567890".to_owned()))
        .collect();
    crowded.jar.push((DEVICE.into(), token.clone()));
    let (_, body) = crowded.get(&app, "/").await;
    assert_eq!(body["device"], first["device"], "same id behind 90 cookies");
    assert_eq!(
        crowded.cookie(DEVICE),
        Some(token.clone()),
        "no Set-Cookie overwrote it"
    );
    // A header past the byte bound with our cookie beyond it: no id minted, nothing set.
    let mut huge = Client::at("192.0.2.1");
    huge.jar = (0..400)
        .map(|i| (format!("pad{i}"), "x".repeat(60)))
        .collect();
    huge.jar.push((DEVICE.into(), token.clone()));
    let (status, body) = huge.get(&app, "/").await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "cookie_header_too_large"
        )
    );
    assert_eq!(
        huge.cookie(DEVICE),
        Some(token),
        "the real cookie is not overwritten"
    );
}

#[actix_web::test]
async fn a_tossed_cookie_neither_logs_the_victim_out_nor_binds_anything() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let env = env(store);
        let app = app!(env);
        let mut victim = signed_in(&app, "victim", "192.0.2.1").await;
        let mut attacker = Client::at("192.0.2.66");
        attacker.get(&app, "/").await;
        let tossed = attacker.cookie(DEVICE).unwrap();
        // The attacker's valid token in front of the victim's (a sibling subdomain with a
        // longer Path can do that).
        let mut tossed_jar = vec![(DEVICE.to_owned(), tossed.clone())];
        tossed_jar.extend(victim.jar.clone());
        let mut hit = Client {
            jar: tossed_jar,
            ..Client::at("192.0.2.1")
        };
        let (status, body) = hit.get(&app, "/me").await;
        assert_eq!(
            (status, &body["user"]),
            (StatusCode::OK, &json!("victim")),
            "honoured as the session's device: {body}"
        );
        assert_eq!(
            victim.get(&app, "/me").await.0,
            StatusCode::OK,
            "not revoked"
        );
        // Two foreign tokens and the victim's session cookie, but not its device token:
        // ambiguous, refused, nothing revoked.
        let mut other = Client::at("192.0.2.67");
        other.get(&app, "/").await;
        let session = victim.cookie(SESSION).unwrap();
        let mut ambiguous = Client {
            jar: vec![
                (DEVICE.into(), tossed.clone()),
                (DEVICE.into(), other.cookie(DEVICE).unwrap()),
                (SESSION.into(), session),
            ],
            ..Client::at("192.0.2.1")
        };
        let (status, body) = ambiguous.get(&app, "/me").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "ambiguous_device")
        );
        assert_eq!(
            victim.get(&app, "/me").await.0,
            StatusCode::OK,
            "still not revoked"
        );
        // Login on an ambiguous identity binds nothing.
        let mut two = Client {
            jar: vec![
                (DEVICE.into(), tossed),
                (DEVICE.into(), other.cookie(DEVICE).unwrap()),
            ],
            ..Client::at("192.0.2.1")
        };
        let (status, body) = two.post(&app, "/login/mallory").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "ambiguous_device")
        );
        assert!(env.devices.list("mallory").await.unwrap().is_empty());
    }
}

/// The `/me` app of `$env` with `$rewrite` (a `wrap_fn` body) between the device
/// middleware and the handler.
macro_rules! rewriting_app {
    ($env:expr, $rewrite:expr) => {
        test::init_service(
            App::new()
                .wrap_fn($rewrite)
                .wrap($env.tracking.clone())
                .app_data(web::Data::new($env.sessions.clone()))
                .route("/me", web::get().to(me)),
        )
        .await
    };
}

/// The status and JSON body `app` answers `req` with.
async fn answer<S, B>(app: &S, req: actix_http::Request) -> (StatusCode, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let res = test::call_service(app, req).await;
    let status = res.status();
    let body = test::read_body(res).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The session cookie is the first well-formed one of the header the handler sees: a
/// stray value in front is passed over, and a header an inner middleware rewrote is read
/// as rewritten, not as the device middleware saw it. (A reader that remembered where the
/// session cookie stood in the header the middleware read would take Alice's here.)
#[actix_web::test]
async fn the_session_cookie_read_is_the_first_well_formed_of_the_header_the_handler_sees() {
    let store = support::backends().remove(0).1;
    let env = env(store);
    let app = app!(env);
    let mut alice = signed_in(&app, "alice", "192.0.2.1").await;
    let (device, session) = (
        alice.cookie(DEVICE).unwrap(),
        alice.cookie(SESSION).unwrap(),
    );
    let request = |headers: &[String]| {
        let mut req = test::TestRequest::get()
            .uri("/me")
            .insert_header(("x-forwarded-for", "192.0.2.1"));
        for header in headers {
            req = req.append_header((COOKIE, header.clone()));
        }
        req.to_request()
    };
    // A malformed session value in front of the real one: passed over.
    let header = format!("{DEVICE}={device}; {SESSION}=not-a-token; {SESSION}={session}");
    assert_eq!(answer(&app, request(&[header])).await.0, StatusCode::OK);

    // Bob's session cookie stands where a padding cookie of the same length stood when the
    // device middleware read the header, in front of Alice's: the rewritten header's first
    // session cookie is Bob's, so the request is not Alice's.
    let bob = signed_in(&app, "bob", "192.0.2.2").await;
    let bobs = format!("{SESSION}={}", bob.cookie(SESSION).unwrap());
    let padding = format!("pad={}", "x".repeat(bobs.len() - "pad=".len()));
    let padded = [format!("{padding}; {DEVICE}={device}; {SESSION}={session}")];
    let rewritten = rewriting_app!(env, {
        let (padding, bobs) = (padding.clone(), bobs.clone());
        move |mut req, srv| {
            let header = req.headers().get(COOKIE).unwrap().to_str().unwrap();
            let header = header.replacen(&padding, &bobs, 1);
            req.headers_mut().insert(COOKIE, header.parse().unwrap());
            srv.call(req)
        }
    });
    let (status, body) = answer(&rewritten, request(&padded)).await;
    assert_ne!(body["user"], json!("alice"), "{status} {body}");

    // Two Cookie headers, and the inner middleware rewrites only the first (HTTP/2 sends
    // cookies as separate header fields): Bob's session cookie now stands in front.
    let first_rewritten = rewriting_app!(env, {
        let bobs = bobs.clone();
        move |mut req, srv| {
            if let Some(first) = req.headers_mut().get_mut(COOKIE) {
                *first = bobs.parse().unwrap();
            }
            srv.call(req)
        }
    });
    let two_headers = [
        "theme=dark".to_owned(),
        format!("{DEVICE}={device}; {SESSION}={session}"),
    ];
    let (status, body) = answer(&first_rewritten, request(&two_headers)).await;
    assert_ne!(body["user"], json!("alice"), "{status} {body}");
    let (_, body) = answer(&app, request(&two_headers)).await;
    assert_eq!(body["user"], json!("alice"), "two headers, not rewritten");
    // And without the rewrite, the padded header is Alice's.
    assert_eq!(answer(&app, request(&padded)).await.0, StatusCode::OK);
    assert_eq!(alice.get(&app, "/me").await.0, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// 4. Revocation that always holds.

#[actix_web::test]
async fn a_session_dies_with_its_device_even_when_the_revocation_did_not_finish() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let env = env(store.clone());
        let app = app!(env);
        let mut phone = signed_in(&app, "alice", "192.0.2.1").await;
        let mut laptop = signed_in(&app, "alice", "192.0.2.2").await;
        let laptop_id: DeviceId = laptop.get(&app, "/me").await.1["device"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // Keep the laptop's session record as it was, revoke the laptop, then put the
        // record back: as if the revocation's last step had failed or raced a login.
        let sessions_before: Vec<(Vec<u8>, Vec<u8>)> = store
            .scan_prefix(b"sess/", None, 100)
            .await
            .unwrap()
            .entries;
        assert_eq!(
            phone
                .send(&app, Method::DELETE, &format!("/devices/{laptop_id}"), None)
                .await
                .0,
            StatusCode::OK
        );
        for (k, v) in &sessions_before {
            store
                .put(k, v, Some(Duration::from_secs(3600)))
                .await
                .unwrap();
        }
        let (status, body) = laptop.get(&app, "/me").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "session_revoked")
        );
        assert_eq!(phone.get(&app, "/me").await.0, StatusCode::OK);
    }
}

#[actix_web::test]
async fn revoke_user_ends_every_session_and_the_next_first_device_gets_no_extra_rights() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let env = env(store);
        let app = app!(env);
        let mut phone = signed_in(&app, "alice", "192.0.2.1").await;
        let mut laptop = signed_in(&app, "alice", "192.0.2.2").await;
        assert_eq!(env.sessions.revoke_user("alice").await.unwrap(), 2);
        assert_eq!(
            env.sessions.revoke_user("alice").await.unwrap(),
            0,
            "safe to retry"
        );
        for c in [&mut phone, &mut laptop] {
            let (status, body) = c.get(&app, "/me").await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNAUTHORIZED, "session_revoked")
            );
        }
        // The list is empty now; a new device is still not the user's first.
        let mut stranger = signed_in(&app, "alice", "192.0.2.3").await;
        let (_, list) = stranger.get(&app, "/devices").await;
        let mine = list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["current"] == json!(true))
            .unwrap()
            .clone();
        assert_eq!(mine["permissions"], json!(Permissions::NONE));
    }
}

#[actix_web::test]
async fn renew_carries_the_session_over_to_the_new_id() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let env = env(store);
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "192.0.2.1").await;
        let before = b.get(&app, "/me").await.1["device"].clone();
        assert_eq!(b.post(&app, "/renew").await.0, StatusCode::OK);
        let (status, after) = b.get(&app, "/me").await;
        assert_eq!(status, StatusCode::OK, "{after}");
        assert_ne!(after["device"], before, "a new id");
        let (_, list) = b.get(&app, "/devices").await;
        let devices = list["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(
            (&devices[0]["id"], &devices[0]["current"]),
            (&after["device"], &json!(true))
        );
    }
}

#[actix_web::test]
async fn a_login_and_a_renewal_in_one_request_send_both_cookies() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let env = env(store);
        let app = app!(env);
        let mut b = Client::at("192.0.2.1");
        let before = b.get(&app, "/").await.1["device"].clone();
        let (status, body) = b.post(&app, "/login-renew/alice").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Signed in (the session cookie went out) on the new id (so did the device cookie).
        let (status, me) = b.get(&app, "/me").await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["user"], "alice");
        assert_ne!(me["device"], before, "a new id");
    }
}

// ---------------------------------------------------------------------------------------
// 5. Data that stays whole.

#[actix_web::test]
async fn cart_lines_added_during_login_are_never_lost() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let env = env(store);
        let app = app!(env);
        let mut b = Client::at("192.0.2.1");
        b.get(&app, "/").await;
        let device: DeviceId = b.get(&app, "/").await.1["device"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let carts = env.carts.clone();
        let adder = actix_web::rt::spawn(async move {
            for i in 0..30 {
                carts
                    .add(&CartOwner::Device(device), &format!("sku-{i}"), 1, None)
                    .await
                    .unwrap();
                actix_web::rt::task::yield_now().await;
            }
        });
        let (status, _) = b.post(&app, "/login/alice").await;
        assert_eq!(status, StatusCode::OK);
        adder.await.unwrap();
        // A cart request of the signed-in browser merges whatever arrived after the login.
        b.post(&app, "/cart/last").await;
        let user = env
            .carts
            .get(&CartOwner::User("alice".into()))
            .await
            .unwrap();
        let device_left = env.carts.get(&CartOwner::Device(device)).await.unwrap();
        assert_eq!(
            user.lines.len() + device_left.lines.len(),
            31,
            "30 lines and the last one, none lost"
        );
        assert!(device_left.lines.is_empty());
    }
}

#[actix_web::test]
async fn erase_takes_ended_sessions_too_and_a_late_request_cannot_recreate_the_record() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let env = env(store.clone());
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "192.0.2.1").await;
        let device: DeviceId = b.get(&app, "/me").await.1["device"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(b.post(&app, "/devices/logout").await.0, StatusCode::OK);
        assert_eq!(
            keys(&store, b"sess/").await.len(),
            1,
            "the ended session is kept a while"
        );
        let rights = DataRights::new(&env.devices);
        rights.erase(device).await.unwrap();
        assert!(
            keys(&store, b"sess/").await.is_empty(),
            "the ended session went too"
        );
        // The browser comes back with its old cookie (a touch is due on every request here).
        b.get(&app, "/").await;
        assert!(
            env.devices.get(&device).await.unwrap().is_none(),
            "not recreated"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. Flags and addresses.

#[actix_web::test]
async fn a_signed_in_user_sees_one_variant_on_every_device_and_cannot_reroll() {
    let store = support::backends().remove(0).1;
    let env = env(store);
    for i in 0..16 {
        let mut def = FlagDefinition::new(format!("exp-{i}"));
        def.variants = vec![("a".into(), 1), ("b".into(), 1)];
        env.flags.upsert(def).await.unwrap();
    }
    let app = app!(env);
    let mut phone = signed_in(&app, "alice", "192.0.2.1").await;
    let mut laptop = signed_in(&app, "alice", "192.0.2.2").await;
    let on_phone = phone.get(&app, "/variants").await.1;
    assert_eq!(laptop.get(&app, "/variants").await.1, on_phone);
    // Drop the device cookie and sign in again: the same buckets.
    let mut fresh = signed_in(&app, "alice", "192.0.2.3").await;
    assert_eq!(fresh.get(&app, "/variants").await.1, on_phone);
    // Anonymous visitors are bucketed per device: 16 coin flips rarely all agree.
    let mut anonymous = Vec::new();
    for _ in 0..4 {
        let mut c = Client::at("192.0.2.9");
        c.get(&app, "/").await;
        anonymous.push(c.get(&app, "/variants").await.1);
    }
    assert!(anonymous.iter().any(|v| *v != anonymous[0]));
}

#[actix_web::test]
async fn forwarding_is_read_from_the_configured_header_from_the_right() {
    let store = support::backends().remove(0).1;
    let env = env(store);
    let app = app!(env);
    let mut c = Client::at("10.0.0.1");
    c.headers.push(("forwarded".into(), "for=6.6.6.6".into()));
    let chain = vec!["9.9.9.9"; 80].join(", ") + ", 198.51.100.20";
    c.headers.push(("x-forwarded-for".into(), chain));
    let (_, body) = c.get(&app, "/").await;
    assert_eq!(
        body["ip"], "198.51.100.20",
        "the proxy's entry, not the client's Forwarded nor the left end"
    );
}

/// A flood of distinct clients fills the in-memory table: the stalest entries go, and a
/// client that spent its budget stays limited.
#[actix_web::test]
async fn a_flood_of_distinct_clients_does_not_reset_an_honest_clients_budget() {
    let app = test::init_service(
        App::new()
            // Five an hour: the flood below takes seconds, far less than one refill.
            .wrap(RateLimit::new(
                unique("flood"),
                Limit::InMemory(Quota::new(5, HOUR)),
            ))
            .route("/", web::get().to(HttpResponse::Ok)),
    )
    .await;
    let mut honest = Client::at("192.0.2.200");
    for _ in 0..5 {
        assert_eq!(honest.get(&app, "/").await.0, StatusCode::OK);
    }
    assert_eq!(honest.get(&app, "/").await.0, StatusCode::TOO_MANY_REQUESTS);
    for i in 0..101_000u32 {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff);
        let req = test::TestRequest::get()
            .uri("/")
            .peer_addr(format!("{ip}:1").parse().unwrap());
        test::call_service(&app, req.to_request()).await;
    }
    assert_eq!(
        honest.get(&app, "/").await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "its spent budget survived"
    );
}

/// A device list that names a device whose record belongs to someone else (a list left
/// behind by a failed step) shows nothing of it and gives no power over it.
#[actix_web::test]
async fn records_reached_through_a_list_must_name_the_user() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let env = env(store.clone());
        let app = app!(env);
        let mut alice = signed_in(&app, "alice", "192.0.2.1").await;
        let mut shared = signed_in(&app, "alice", "192.0.2.2").await;
        let shared_id = shared.get(&app, "/me").await.1["device"]
            .as_str()
            .unwrap()
            .to_owned();
        let stale_list = store.get(b"udev/alice").await.unwrap().unwrap();
        // The shared device signs in as bob; alice's list is then put back as it was.
        assert_eq!(shared.post(&app, "/login/bob").await.0, StatusCode::OK);
        store.put(b"udev/alice", &stale_list, None).await.unwrap();
        let (_, list) = alice.get(&app, "/devices").await;
        let ids: Vec<&str> = list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert!(
            !ids.contains(&shared_id.as_str()),
            "bob's device is not shown to alice: {ids:?}"
        );
        let (status, body) = alice
            .send(&app, Method::DELETE, &format!("/devices/{shared_id}"), None)
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "device_not_found")
        );
        assert_eq!(
            shared.get(&app, "/me").await.1["user"],
            "bob",
            "bob's session untouched"
        );
    }
}
