//! Instructions per request, in-process, for each middleware variant: a figure that does
//! not move with a noisy machine. Run through `benches/instructions.sh`, which runs this
//! binary under `valgrind --tool=callgrind` once per variant and prints the table.
//!
//! `instructions VARIANT N` sends N requests through VARIANT (after 200 warm-up requests
//! that are not toggled on); callgrind starts collecting at `collect_on` via
//! `--toggle-collect`.
//!
//! A variant name may end in `-new` (first visits), `-crowded` or `-stuffed` (what else the
//! `Cookie` header carries) and, after those, `-exported` (a Prometheus recorder installed
//! first, so every `metrics` counter reports to a real exporter).
//!
//! `floor` and `floor-one` are not ours: the least any middleware can do to hand handlers
//! a `web::ReqData<DeviceId>` and a context beside it (two extension entries; `floor-one`
//! the id alone), reading no cookie. They are the floor under the returning-browser rows.

mod support;

use std::sync::OnceLock;

use actix_device::{DeviceId, DeviceTracking, Key, Keyring, Mode};
use actix_identity::{Identity, IdentityMiddleware};
use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::http::header::COOKIE;
use actix_web::{test, web, App, HttpResponse};

async fn bare() -> HttpResponse {
    const ID: DeviceId = DeviceId::from_bytes([0x42; 16]);
    HttpResponse::Ok().body(format!("hello {ID}"))
}

async fn device(id: DeviceId) -> HttpResponse {
    HttpResponse::Ok().body(format!("hello {id}"))
}

/// The least a middleware can do to serve `web::ReqData<DeviceId>` and a context: put a
/// fixed id (and, unless `one`, a context) in the extensions and call the app. No cookie
/// is read; this is the floor under `DeviceTracking`'s returning-browser rows.
macro_rules! floor {
    ($one:expr) => {
        App::new()
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service as _;
                support::put_floor(&req, $one);
                srv.call(req)
            })
            .route("/", web::get().to(device))
    };
}

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

fn tracking(mode: Mode) -> DeviceTracking {
    DeviceTracking::builder(Keyring::new(Key::from_secret(&[7; 32]).unwrap()))
        .mode(mode)
        .build()
        .unwrap()
}

/// The measured section: callgrind collects only inside this function.
#[inline(never)]
fn collect_on<S, B>(rt: &actix_web::rt::SystemRunner, app: &S, cookie: Option<&str>, n: usize)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    let started = std::time::Instant::now();
    for _ in 0..n {
        let mut req = test::TestRequest::get().uri("/");
        if let Some(c) = cookie {
            req = req.insert_header((COOKIE, c.to_owned()));
        }
        let res = rt.block_on(test::call_service(app, req.to_request()));
        std::hint::black_box(res);
    }
    // Wall-clock time per request, for in-process timing (`benches/instructions.sh` reads
    // only callgrind's counts).
    eprintln!(
        "ns/request {}",
        started.elapsed().as_nanos() / n.max(1) as u128
    );
}

/// A signed-in handler: the session check on every request.
#[cfg(all(feature = "moka", feature = "redb"))]
async fn signed_in(session: actix_device::CurrentSession) -> HttpResponse {
    HttpResponse::Ok().body(format!("hello {}", session.device_id()))
}

#[cfg(all(feature = "moka", feature = "redb"))]
async fn login(
    req: actix_web::HttpRequest,
    sessions: web::Data<actix_device::Sessions>,
) -> Result<HttpResponse, actix_device::ApiError> {
    sessions.login(&req, "alice").await?;
    Ok(HttpResponse::Ok().finish())
}

async fn identity_user(id: Identity) -> HttpResponse {
    HttpResponse::Ok().body(format!("hello {}", id.id().unwrap_or_default()))
}

async fn identity_login(req: actix_web::HttpRequest) -> HttpResponse {
    use actix_web::HttpMessage as _;
    match Identity::login(
        &req.extensions(),
        "alice-0123456789-0123456789-012345".into(),
    ) {
        Ok(_) => HttpResponse::Ok().finish(),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// Adds the cookies `res` sets to `jar` (`name=value; ...`), replacing same-named ones.
fn absorb<B>(jar: &mut Vec<String>, res: &actix_web::dev::ServiceResponse<B>) {
    for c in res.response().cookies() {
        jar.retain(|j| j.split('=').next() != Some(c.name()));
        jar.push(format!("{}={}", c.name(), c.value()));
    }
}

/// What else the browser's `Cookie` header carries (the variant's suffix).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Crowd {
    /// Only the app's cookies.
    None,
    /// `-crowded`: twenty analytics cookies in front of ours, about 740 bytes.
    Analytics,
    /// `-stuffed`: ours first, then tiny pairs (`a=1;`) up to the reader's 16 KiB bound:
    /// a client making every request as costly to read as it can.
    Stuffed,
}

/// The variant's crowd, set once in `main` (the `measure!` macro reads it).
static CROWD: OnceLock<Crowd> = OnceLock::new();

/// `cookie` with the crowd the variant asks for.
fn crowd(cookie: String) -> String {
    match CROWD.get().copied().unwrap_or(Crowd::None) {
        Crowd::None => cookie,
        Crowd::Analytics => support::behind_analytics(&cookie),
        Crowd::Stuffed => {
            let mut header = cookie + "; ";
            let bound = actix_device::HeaderLimits::default().max_bytes;
            while header.len() + 4 <= bound {
                header.push_str("a=1;");
            }
            header
        }
    }
}

macro_rules! measure {
    ($rt:expr, $app:expr, $returning:expr, $n:expr) => {
        measure!($rt, $app, $returning, $n, false)
    };
    ($rt:expr, $app:expr, $returning:expr, $n:expr, $login:expr) => {{
        let app = $rt.block_on(test::init_service($app));
        let first = $rt.block_on(test::call_service(
            &app,
            test::TestRequest::get().uri("/").to_request(),
        ));
        let mut jar = Vec::new();
        absorb(&mut jar, &first);
        if $login {
            let req = test::TestRequest::post()
                .uri("/login")
                .insert_header((COOKIE, jar.join("; ")));
            let res = $rt.block_on(test::call_service(&app, req.to_request()));
            assert!(res.status().is_success(), "login: {}", res.status());
            absorb(&mut jar, &res);
        }
        let cookie = if jar.is_empty() {
            Some(format!("device_id={}", "A".repeat(62)))
        } else {
            Some(jar.join("; "))
        };
        let cookie = if $returning { cookie.map(crowd) } else { None };
        // Warm-up (not collected).
        for _ in 0..200 {
            let mut req = test::TestRequest::get().uri("/");
            if let Some(c) = &cookie {
                req = req.insert_header((COOKIE, c.clone()));
            }
            std::hint::black_box($rt.block_on(test::call_service(&app, req.to_request())));
        }
        collect_on(&$rt, &app, cookie.as_deref(), $n);
    }};
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench" || a == "--list") && args.len() < 3 {
        eprintln!("run benches/instructions.sh (callgrind); nothing to do under cargo bench");
        return;
    }
    let variant = args.get(1).map(String::as_str).unwrap_or("bare");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2_000);
    // `-exported`: with a Prometheus recorder installed, as an operator would run it.
    let variant = match variant.strip_suffix("-exported") {
        Some(v) => {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("a recorder installs");
            v
        }
        None => variant,
    };
    let returning = !variant.ends_with("-new");
    let (variant, crowd) = match (
        variant.strip_suffix("-crowded"),
        variant.strip_suffix("-stuffed"),
    ) {
        (Some(v), _) => (v, Crowd::Analytics),
        (_, Some(v)) => (v, Crowd::Stuffed),
        _ => (variant, Crowd::None),
    };
    let _ = CROWD.set(crowd);
    let rt = actix_web::rt::System::new();
    let key = actix_web::cookie::Key::from(&[9u8; 64]);
    match variant.trim_end_matches("-new") {
        "bare" => measure!(rt, App::new().route("/", web::get().to(bare)), returning, n),
        "floor" => measure!(rt, floor!(false), returning, n),
        "floor-one" => measure!(rt, floor!(true), returning, n),
        "plain" => measure!(
            rt,
            App::new()
                .wrap(tracking(Mode::Plain))
                .route("/", web::get().to(device)),
            returning,
            n
        ),
        "signed" => measure!(
            rt,
            App::new()
                .wrap(tracking(Mode::Signed))
                .route("/", web::get().to(device)),
            returning,
            n
        ),
        "sealed" => measure!(
            rt,
            App::new()
                .wrap(tracking(Mode::Sealed))
                .route("/", web::get().to(device)),
            returning,
            n
        ),
        "session-signed" => measure!(
            rt,
            App::new()
                .wrap(
                    SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                        .cookie_content_security(CookieContentSecurity::Signed)
                        .build()
                )
                .route("/", web::get().to(session_id)),
            returning,
            n
        ),
        "session-private" => measure!(
            rt,
            App::new()
                .wrap(
                    SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                        .cookie_content_security(CookieContentSecurity::Private)
                        .build()
                )
                .route("/", web::get().to(session_id)),
            returning,
            n
        ),
        "identity" => measure!(
            rt,
            App::new()
                .wrap(IdentityMiddleware::default())
                .wrap(SessionMiddleware::new(
                    CookieSessionStore::default(),
                    key.clone()
                ))
                .route("/", web::get().to(identity_user))
                .route("/login", web::post().to(identity_login)),
            returning,
            n,
            true
        ),
        #[cfg(all(feature = "moka", feature = "redb"))]
        store @ ("signed-in-moka" | "signed-in-redb") => {
            let dir = tempfile::tempdir().expect("temp dir");
            let store: std::sync::Arc<dyn actix_device::stores::Store> = if store.ends_with("moka")
            {
                std::sync::Arc::new(actix_device::stores::MokaStore::builder().build())
            } else {
                std::sync::Arc::new(
                    actix_device::stores::RedbStore::open(dir.path().join("s.redb"))
                        .expect("redb opens"),
                )
            };
            let devices =
                actix_device::devices::Devices::new(&actix_device::ServiceContext::new(store));
            let sessions = actix_device::Sessions::new(&devices);
            let t = DeviceTracking::builder(Keyring::new(Key::from_secret(&[7; 32]).unwrap()))
                .registry(sessions.clone())
                .build()
                .unwrap();
            measure!(
                rt,
                App::new()
                    .wrap(t)
                    .app_data(web::Data::new(sessions))
                    .route("/", web::get().to(signed_in))
                    .route("/login", web::post().to(login)),
                returning,
                n,
                true
            )
        }
        other => {
            eprintln!("unknown variant {other}");
            std::process::exit(2);
        }
    }
}
