//! The `DeviceTracking` middleware through real HTTP requests (`actix_web::test`).

use std::collections::HashSet;
use std::time::Duration;

use actix_device::token::{TokenCodec, TokenContext};
use actix_device::{
    DeviceContext, DeviceControl, DeviceId, DeviceTracking, Key, Keyring, ManualClock, Mode,
    Reissue, RejectPolicy, Rejected, SameSite,
};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{COOKIE, SET_COOKIE};
use actix_web::http::StatusCode;
use actix_web::{test, web, App, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

const START: u64 = 1_800_000_000_000;

async fn whoami(ctx: DeviceContext) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "device_id": ctx.id, "new": ctx.is_new }))
}

async fn failing(_id: DeviceId) -> Result<HttpResponse, actix_web::Error> {
    Err(actix_web::error::ErrorInternalServerError("handler failed"))
}

async fn forget(control: DeviceControl) -> HttpResponse {
    control.forget();
    HttpResponse::Ok().finish()
}

async fn renew(control: DeviceControl) -> HttpResponse {
    control.renew();
    HttpResponse::Ok().finish()
}

async fn maybe(id: Option<DeviceId>) -> HttpResponse {
    HttpResponse::Ok().body(id.map(|i| i.to_string()).unwrap_or_default())
}

async fn req_data(id: web::ReqData<DeviceId>) -> HttpResponse {
    HttpResponse::Ok().body(id.to_string())
}

macro_rules! app {
    ($tracking:expr) => {
        test::init_service(
            App::new()
                .wrap($tracking)
                .route("/", web::get().to(whoami))
                .route("/fail", web::get().to(failing))
                .route("/forget", web::get().to(forget))
                .route("/renew", web::get().to(renew))
                .route("/maybe", web::get().to(maybe))
                .route("/reqdata", web::get().to(req_data)),
        )
        .await
    };
}

fn keyring() -> Keyring {
    Keyring::new(Key::from_secret(&[1; 32]).unwrap())
}

fn tracking() -> DeviceTracking {
    DeviceTracking::builder(keyring())
        .clock(ManualClock::new(START))
        .build()
        .unwrap()
}

/// Every `Set-Cookie` header, as sent.
fn set_cookies<B>(res: &ServiceResponse<B>) -> Vec<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value of the one `device_id` cookie set by the response.
fn issued_value<B>(res: &ServiceResponse<B>, name: &str) -> String {
    let all = set_cookies(res);
    assert_eq!(all.len(), 1, "exactly one Set-Cookie: {all:?}");
    let cookie = actix_web::cookie::Cookie::parse(all[0].clone()).unwrap();
    assert_eq!(cookie.name(), name);
    cookie.value().to_owned()
}

async fn get<S, B>(app: &S, path: &str, cookie: Option<&str>) -> ServiceResponse<B>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let mut req = test::TestRequest::get().uri(path);
    if let Some(c) = cookie {
        req = req.insert_header((COOKIE, c.to_owned()));
    }
    test::call_service(app, req.to_request()).await
}

async fn body_json<B: actix_web::body::MessageBody>(res: ServiceResponse<B>) -> Value {
    test::read_body_json(res).await
}

#[actix_web::test]
async fn first_request_sets_exactly_the_configured_attributes() {
    let app = app!(tracking());
    let res = get(&app, "/", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookies = set_cookies(&res);
    assert_eq!(cookies.len(), 1);
    let mut parts: Vec<&str> = cookies[0].split("; ").collect();
    let first = parts.remove(0);
    assert!(first.starts_with("__Host-device_id="));
    parts.sort_unstable();
    assert_eq!(
        parts,
        [
            "HttpOnly",
            "Max-Age=31536000",
            "Path=/",
            "SameSite=Lax",
            "Secure"
        ]
    );
    let body = body_json(res).await;
    assert_eq!(body["new"], true);
    let value = first.trim_start_matches("__Host-device_id=");
    // Signed tokens are base64url of 46 bytes.
    assert_eq!(URL_SAFE_NO_PAD.decode(value).unwrap().len(), 46);
}

#[actix_web::test]
async fn custom_attributes_are_all_written() {
    let app = app!(DeviceTracking::builder(keyring())
        .cookie_name("did")
        .cookie_max_age(Duration::from_secs(3600))
        .cookie_path("/app")
        .cookie_domain(Some("example.com".into()))
        .cookie_http_only(false)
        .cookie_same_site(SameSite::Strict)
        .build()
        .unwrap());
    let res = get(&app, "/", None).await;
    let cookie = set_cookies(&res).remove(0);
    let mut parts: Vec<&str> = cookie.split("; ").skip(1).collect();
    parts.sort_unstable();
    assert_eq!(
        parts,
        [
            "Domain=example.com",
            "Max-Age=3600",
            "Path=/app",
            "SameSite=Strict",
            "Secure"
        ]
    );
}

#[actix_web::test]
async fn returning_browser_keeps_its_id_and_gets_no_new_cookie() {
    let tracking = tracking();
    let app = app!(tracking.clone());
    let first = get(&app, "/", None).await;
    let value = issued_value(&first, "__Host-device_id");
    let id = body_json(first).await["device_id"].clone();
    for _ in 0..3 {
        let res = get(&app, "/", Some(&format!("__Host-device_id={value}"))).await;
        assert!(set_cookies(&res).is_empty());
        let body = body_json(res).await;
        assert_eq!(body["device_id"], id);
        assert_eq!(body["new"], false);
    }
    let m = tracking.metrics();
    assert_eq!((m.issued, m.accepted, m.rejected_total()), (1, 3, 0));
}

/// The exporter's value of the sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The middleware and `RateLimit` take their `metrics` handles when they are built: a
/// request reports through them, to the recorder that was in place then, with no
/// registry lookup. Here that recorder is a real Prometheus one set only while they are
/// built; every request runs after, with no recorder in scope.
#[actix_web::test]
async fn counters_report_to_the_recorder_in_place_when_built() {
    use actix_device::limits::{Limit, Quota};
    use actix_device::RateLimit;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let (tracking, limit) = metrics::with_local_recorder(&recorder, || {
        let limit = RateLimit::builder(
            "metrics-test",
            Limit::InMemory(Quota::new(2, Duration::from_secs(3600))),
        )
        .clock(ManualClock::new(START))
        .build();
        (tracking(), limit)
    });
    let app = test::init_service(
        App::new()
            .service(
                web::scope("/limited")
                    .wrap(limit)
                    .route("", web::get().to(whoami)),
            )
            .wrap(tracking.clone())
            .route("/", web::get().to(whoami)),
    )
    .await;
    let value = issued_value(&get(&app, "/", None).await, "__Host-device_id");
    let cookie = format!("__Host-device_id={value}");
    for _ in 0..3 {
        get(&app, "/limited", Some(&cookie)).await;
    }
    get(&app, "/", Some("__Host-device_id=tampered")).await;
    let text = handle.render();
    let m = tracking.metrics();
    assert_eq!((m.issued, m.accepted, m.rejected_total()), (2, 3, 1));
    for (series, expected) in [
        ("actix_device_tokens_issued_total", 2),
        ("actix_device_tokens_accepted_total", 3),
        (
            "actix_device_tokens_rejected_total{reason=\"unknown_version\"}",
            1,
        ),
        (
            "actix_device_limiter_decisions_total{limit=\"metrics-test\",outcome=\"allowed\"}",
            2,
        ),
        (
            "actix_device_limiter_decisions_total{limit=\"metrics-test\",outcome=\"refused\"}",
            1,
        ),
    ] {
        assert_eq!(
            sample(&text, series),
            Some(expected),
            "{series} in:\n{text}"
        );
    }
}

/// Cookie values that must each be rejected by the default signed middleware, with the
/// reason the counters should record.
fn bad_values(valid: &str) -> Vec<(&'static str, String, Rejected)> {
    let raw = URL_SAFE_NO_PAD.decode(valid).unwrap();
    let mut tampered = raw.clone();
    tampered[10] ^= 0x01;
    let mut extended = raw.clone();
    extended.push(0);
    let other_key = TokenCodec::new(
        &Keyring::new(Key::from_secret(&[2; 32]).unwrap()),
        Mode::Signed,
        &TokenContext::new("__Host-device_id", "device"),
    );
    let other_name = TokenCodec::new(
        &keyring(),
        Mode::Signed,
        &TokenContext::new("other", "device"),
    );
    let other_purpose = TokenCodec::new(
        &keyring(),
        Mode::Signed,
        &TokenContext::new("__Host-device_id", "session"),
    );
    let sealed = TokenCodec::new(
        &keyring(),
        Mode::Sealed,
        &TokenContext::new("__Host-device_id", "device"),
    );
    let id = DeviceId::new_v7();
    let now = START / 1000;
    vec![
        (
            "tampered",
            URL_SAFE_NO_PAD.encode(&tampered),
            Rejected::BadTag,
        ),
        (
            "truncated",
            valid[..valid.len() - 2].to_owned(),
            Rejected::Malformed,
        ),
        (
            "extended",
            URL_SAFE_NO_PAD.encode(&extended),
            Rejected::Malformed,
        ),
        ("wrong key", other_key.encode(id, now), Rejected::UnknownKey),
        (
            "other cookie name",
            other_name.encode(id, now),
            Rejected::BadTag,
        ),
        (
            "other purpose",
            other_purpose.encode(id, now),
            Rejected::BadTag,
        ),
        ("plain in signed mode", id.to_string(), Rejected::WrongMode),
        (
            "sealed in signed mode",
            sealed.encode(id, now),
            Rejected::WrongMode,
        ),
        ("garbage", "%%%".to_owned(), Rejected::Malformed),
        ("too long", "A".repeat(300), Rejected::TooLong),
    ]
}

#[actix_web::test]
async fn bad_cookies_get_a_new_id_and_are_counted() {
    let tracking = tracking();
    let app = app!(tracking.clone());
    let valid = issued_value(&get(&app, "/", None).await, "__Host-device_id");
    for (what, value, reason) in bad_values(&valid) {
        let before = tracking.metrics().rejected_for(reason);
        let res = get(&app, "/", Some(&format!("__Host-device_id={value}"))).await;
        assert_eq!(res.status(), StatusCode::OK, "{what}");
        let fresh = issued_value(&res, "__Host-device_id");
        assert_ne!(fresh, value, "{what}");
        assert_eq!(body_json(res).await["new"], true, "{what}");
        assert_eq!(
            tracking.metrics().rejected_for(reason),
            before + 1,
            "{what}: {reason:?}"
        );
    }
}

/// Verified tokens are remembered by their bytes: once the valid token has been accepted
/// (and cached), every near miss of it is still verified in full and rejected, for every
/// mode that signs or seals.
#[actix_web::test]
async fn a_cached_token_vouches_for_no_other_bytes() {
    for mode in [Mode::Signed, Mode::Sealed] {
        let tracking = DeviceTracking::builder(keyring())
            .clock(ManualClock::new(START))
            .mode(mode)
            .build()
            .unwrap();
        let app = app!(tracking.clone());
        let valid = issued_value(&get(&app, "/", None).await, "__Host-device_id");
        let cookie = format!("__Host-device_id={valid}");
        let id = body_json(get(&app, "/", Some(&cookie)).await).await["device_id"].clone();
        let raw = URL_SAFE_NO_PAD.decode(&valid).unwrap();
        for at in 0..raw.len() {
            let mut flipped = raw.clone();
            flipped[at] ^= 0x20;
            let bad = format!("__Host-device_id={}", URL_SAFE_NO_PAD.encode(&flipped));
            let body = body_json(get(&app, "/", Some(&bad)).await).await;
            assert_eq!(
                body["new"], true,
                "{mode:?}: byte {at} flipped was accepted"
            );
            assert_ne!(body["device_id"], id, "{mode:?}: byte {at}");
        }
        let body = body_json(get(&app, "/", Some(&cookie)).await).await;
        assert_eq!(
            (body["new"].clone(), body["device_id"].clone()),
            (false.into(), id)
        );
        let m = tracking.metrics();
        assert_eq!(
            (m.accepted, m.rejected_total()),
            (2, raw.len() as u64),
            "{mode:?}"
        );
    }
}

#[actix_web::test]
async fn bad_cookies_get_401_under_the_refuse_policy() {
    let app = app!(DeviceTracking::builder(keyring())
        .clock(ManualClock::new(START))
        .on_rejected(RejectPolicy::Refuse)
        .build()
        .unwrap());
    let valid = issued_value(&get(&app, "/", None).await, "__Host-device_id");
    for (what, value, reason) in bad_values(&valid) {
        let res = get(&app, "/", Some(&format!("__Host-device_id={value}"))).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(set_cookies(&res).is_empty(), "{what}");
        let body = body_json(res).await;
        assert_eq!(body["error"]["code"], "device_rejected", "{what}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(reason.code()));
    }
    // A browser without a cookie is still welcome.
    assert_eq!(get(&app, "/", None).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn expired_tokens_are_rejected() {
    let clock = ManualClock::new(START);
    let app = app!(DeviceTracking::builder(keyring())
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(3600))
        .refresh_age(Duration::from_secs(600))
        .build()
        .unwrap());
    let value = issued_value(&get(&app, "/", None).await, "__Host-device_id");
    clock.advance(Duration::from_secs(3599));
    let res = get(&app, "/", Some(&format!("__Host-device_id={value}"))).await;
    assert_eq!(body_json(res).await["new"], false);
    clock.advance(Duration::from_secs(1));
    let res = get(&app, "/", Some(&format!("__Host-device_id={value}"))).await;
    assert_eq!(body_json(res).await["new"], true);
}

#[actix_web::test]
async fn retired_key_token_keeps_its_id_and_is_reissued() {
    let old = Key::from_secret(&[7; 32]).unwrap();
    let new = Key::from_secret(&[8; 32]).unwrap();
    let before = app!(DeviceTracking::builder(Keyring::new(old.clone()))
        .build()
        .unwrap());
    let res = get(&before, "/", None).await;
    let old_value = issued_value(&res, "__Host-device_id");
    let id = body_json(res).await["device_id"].clone();

    let rotated = DeviceTracking::builder(Keyring::new(new.clone()).with_retired(old))
        .build()
        .unwrap();
    let after = app!(rotated.clone());
    let res = get(&after, "/", Some(&format!("__Host-device_id={old_value}"))).await;
    let new_value = issued_value(&res, "__Host-device_id");
    assert_ne!(new_value, old_value);
    assert_eq!(body_json(res).await["device_id"], id);
    assert_eq!(rotated.metrics().reissued, 1);
    assert_eq!(rotated.metrics().reissued_retired_key, 1);
    // The re-issued token is under the new key and needs no further re-issue.
    let res = get(&after, "/", Some(&format!("__Host-device_id={new_value}"))).await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(body_json(res).await["device_id"], id);
    // Once the old key is removed, its tokens no longer verify.
    let removed = app!(DeviceTracking::new(Keyring::new(new)));
    let res = get(
        &removed,
        "/",
        Some(&format!("__Host-device_id={old_value}")),
    )
    .await;
    assert_eq!(body_json(res).await["new"], true);
}

#[actix_web::test]
async fn token_is_refreshed_after_the_refresh_age() {
    let clock = ManualClock::new(START);
    let tracking = DeviceTracking::builder(keyring())
        .clock(clock.clone())
        .cookie_max_age(Duration::from_secs(1000))
        .build()
        .unwrap();
    let app = app!(tracking.clone());
    let res = get(&app, "/", None).await;
    let value = issued_value(&res, "__Host-device_id");
    let id = body_json(res).await["device_id"].clone();
    clock.advance(Duration::from_secs(499));
    assert!(
        set_cookies(&get(&app, "/", Some(&format!("__Host-device_id={value}"))).await).is_empty()
    );
    clock.advance(Duration::from_secs(1));
    let res = get(&app, "/", Some(&format!("__Host-device_id={value}"))).await;
    let refreshed = issued_value(&res, "__Host-device_id");
    assert_ne!(refreshed, value);
    let m = tracking.metrics();
    assert_eq!(
        (m.reissued_refresh, m.reissued_retired_key),
        (1, 0),
        "a routine refresh is not a retired key"
    );
    assert_eq!(body_json(res).await["device_id"], id);
}

#[actix_web::test]
async fn percent_encoded_host_prefix_does_not_pass_as_the_real_one() {
    let tracking = DeviceTracking::builder(keyring())
        .host_prefix(true)
        .build()
        .unwrap();
    let app = app!(tracking.clone());
    let res = get(&app, "/", None).await;
    let value = issued_value(&res, "__Host-device_id");
    let id = body_json(res).await["device_id"].clone();
    // A sibling subdomain can set `%5F%5FHost-device_id`; it must not be read.
    let res = get(&app, "/", Some(&format!("%5F%5FHost-device_id={value}"))).await;
    assert_eq!(body_json(res).await["new"], true);
    let res = get(&app, "/", Some(&format!("__Host-device_id={value}"))).await;
    assert_eq!(body_json(res).await["device_id"], id);
}

#[actix_web::test]
async fn duplicate_cookies_first_verifying_value_wins() {
    let app = app!(tracking());
    let a = issued_value(&get(&app, "/", None).await, "__Host-device_id");
    let b = issued_value(&get(&app, "/", None).await, "__Host-device_id");
    let id_of = |v: &str| {
        let raw = URL_SAFE_NO_PAD.decode(v).unwrap();
        DeviceId::from_bytes(raw[5..21].try_into().unwrap()).to_string()
    };
    let res = get(
        &app,
        "/",
        Some(&format!(
            "__Host-device_id=forged; __Host-device_id={a}; __Host-device_id={b}"
        )),
    )
    .await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(body_json(res).await["device_id"], id_of(&a));
    let res = get(
        &app,
        "/",
        Some(&format!("__Host-device_id={b}; __Host-device_id={a}")),
    )
    .await;
    assert_eq!(body_json(res).await["device_id"], id_of(&b));
    // Across several Cookie headers too.
    let req = test::TestRequest::get()
        .uri("/")
        .append_header((COOKIE, "__Host-device_id=junk"))
        .append_header((COOKIE, format!("__Host-device_id={a}")))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(body_json(res).await["device_id"], id_of(&a));
}

#[actix_web::test]
async fn plain_mode_accepts_only_canonical_ids() {
    let tracking = DeviceTracking::builder(keyring())
        .mode(Mode::Plain)
        .build()
        .unwrap();
    let app = app!(tracking.clone());
    let id = DeviceId::new_v7().to_string();
    let res = get(&app, "/", Some(&format!("__Host-device_id={id}"))).await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(body_json(res).await["device_id"], id.as_str());
    for bad in [
        id.to_uppercase(),
        id.replace('-', ""),
        format!("{{{id}}}"),
        "device_1234".to_owned(),
        String::new(),
    ] {
        let res = get(&app, "/", Some(&format!("__Host-device_id={bad}"))).await;
        let body = body_json(res).await;
        assert_eq!(body["new"], true, "{bad}");
        assert_ne!(body["device_id"], bad.as_str());
    }
    let value = issued_value(&get(&app, "/", None).await, "__Host-device_id");
    assert!(value.parse::<DeviceId>().is_ok());
}

#[actix_web::test]
async fn custom_generator_makes_the_ids() {
    let counter = std::sync::atomic::AtomicU64::new(41);
    let app = app!(DeviceTracking::builder(keyring())
        .generator(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let mut bytes = [0u8; 16];
            bytes[8..].copy_from_slice(&n.to_be_bytes());
            DeviceId::from_bytes(bytes)
        })
        .build()
        .unwrap());
    let body = body_json(get(&app, "/", None).await).await;
    assert_eq!(body["device_id"], "00000000-0000-0000-0000-00000000002a");
}

#[actix_web::test]
async fn consent_gates_tracking() {
    let app = app!(DeviceTracking::builder(keyring())
        .consent(|req| req.headers().contains_key("x-consent"))
        .build()
        .unwrap());
    let res = get(&app, "/maybe", None).await;
    assert!(set_cookies(&res).is_empty());
    assert!(test::read_body(res).await.is_empty());
    let res = get(&app, "/", None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(
        body_json(res).await["error"]["code"],
        "device_consent_required"
    );
    let req = test::TestRequest::get()
        .uri("/maybe")
        .insert_header(("x-consent", "yes"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(set_cookies(&res).len(), 1);
    assert_eq!(test::read_body(res).await.len(), 36);
}

#[actix_web::test]
async fn cookie_is_set_on_a_500_response() {
    let app = app!(tracking());
    let res = get(&app, "/fail", None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    issued_value(&res, "__Host-device_id");
}

#[actix_web::test]
async fn missing_middleware_is_a_500_naming_the_fix() {
    let app = test::init_service(
        App::new()
            .route("/", web::get().to(whoami))
            .route(
                "/id",
                web::get().to(|id: DeviceId| async move { id.to_string() }),
            )
            .route("/reqdata", web::get().to(req_data))
            .route("/maybe", web::get().to(maybe)),
    )
    .await;
    for path in ["/", "/id"] {
        let res = get(&app, path, None).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(res).await;
        assert_eq!(body["error"]["code"], "device_tracking_missing");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(".wrap(DeviceTracking"));
    }
    let res = get(&app, "/reqdata", None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let res = get(&app, "/maybe", None).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[actix_web::test]
async fn req_data_and_option_extractors_see_the_id() {
    let app = app!(tracking());
    let res = get(&app, "/", None).await;
    let value = issued_value(&res, "__Host-device_id");
    let id = body_json(res).await["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in ["/reqdata", "/maybe"] {
        let res = get(&app, path, Some(&format!("__Host-device_id={value}"))).await;
        assert_eq!(test::read_body(res).await, id.as_bytes());
    }
}

#[actix_web::test]
async fn forget_sends_a_removal_cookie_with_every_attribute() {
    let tracking = DeviceTracking::builder(keyring())
        .cookie_domain(Some("example.com".into()))
        .cookie_path("/")
        .cookie_same_site(SameSite::Strict)
        .build()
        .unwrap();
    let app = app!(tracking.clone());
    let value = issued_value(&get(&app, "/", None).await, "device_id");
    let res = get(&app, "/forget", Some(&format!("device_id={value}"))).await;
    let cookies = set_cookies(&res);
    assert_eq!(cookies.len(), 1);
    let removal = actix_web::cookie::Cookie::parse(cookies[0].clone()).unwrap();
    assert_eq!(removal.value(), "");
    assert_eq!(
        removal.max_age(),
        Some(actix_web::cookie::time::Duration::ZERO)
    );
    assert_eq!(removal.domain(), Some("example.com"));
    assert_eq!(removal.path(), Some("/"));
    assert_eq!(removal.secure(), Some(true));
    assert_eq!(removal.http_only(), Some(true));
    assert_eq!(removal.same_site(), Some(SameSite::Strict));
    assert_eq!(tracking.metrics().forgotten, 1);
}

#[actix_web::test]
async fn renew_gives_a_fresh_id() {
    let app = app!(tracking());
    let res = get(&app, "/", None).await;
    let value = issued_value(&res, "__Host-device_id");
    let id = body_json(res).await["device_id"].clone();
    let res = get(&app, "/renew", Some(&format!("__Host-device_id={value}"))).await;
    let renewed = issued_value(&res, "__Host-device_id");
    let res = get(&app, "/", Some(&format!("__Host-device_id={renewed}"))).await;
    let body = body_json(res).await;
    assert_eq!(body["new"], false);
    assert_ne!(body["device_id"], id);
}

#[actix_web::test]
async fn device_context_says_why() {
    let app = test::init_service(App::new().wrap(tracking()).route(
        "/",
        web::get().to(|ctx: DeviceContext| async move { format!("{:?}", ctx.reissue) }),
    ))
    .await;
    let res = get(&app, "/", None).await;
    assert_eq!(
        test::read_body(res).await,
        format!("{:?}", Some(Reissue::New))
    );
    let res = get(&app, "/", Some("__Host-device_id=AAAA")).await;
    assert_eq!(
        test::read_body(res).await,
        format!("{:?}", Some(Reissue::Rejected(Rejected::UnknownVersion)))
    );
}

#[actix_web::test]
async fn ids_are_unique_across_10000_requests() {
    let app = app!(DeviceTracking::new(keyring()));
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        let res = get(&app, "/reqdata", None).await;
        let id = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
        assert!(seen.insert(id));
    }
    assert_eq!(seen.len(), 10_000);
}

#[actix_web::test]
async fn sealed_mode_round_trips_over_http() {
    let app = app!(DeviceTracking::builder(keyring())
        .mode(Mode::Sealed)
        .build()
        .unwrap());
    let res = get(&app, "/", None).await;
    let value = issued_value(&res, "__Host-device_id");
    let id = body_json(res).await["device_id"].clone();
    let res = get(&app, "/", Some(&format!("__Host-device_id={value}"))).await;
    assert_eq!(body_json(res).await["device_id"], id);
}

/// A response that sets a cookie is private to its browser: a CDN must never hand it to
/// another. `no-store` can be asked for; a handler's own choice is kept; `Partitioned` can
/// be set for embedded (third-party) use.
#[actix_web::test]
async fn cookie_responses_are_private_to_their_browser() {
    use actix_device::CacheControl;
    use actix_web::http::header::CACHE_CONTROL;
    let cache = |res: &ServiceResponse<_>| {
        res.headers()
            .get(CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let app = app!(tracking());
    let first = get(&app, "/", None).await;
    assert_eq!(cache(&first).as_deref(), Some("private"));
    let value = issued_value(&first, "__Host-device_id");
    let again = get(&app, "/", Some(&format!("__Host-device_id={value}"))).await;
    assert!(set_cookies(&again).is_empty());
    assert_eq!(cache(&again), None, "no cookie, no opinion");

    let no_store = DeviceTracking::builder(keyring())
        .cache_control(CacheControl::NoStore)
        .cookie_partitioned(true)
        .cookie_same_site(SameSite::None)
        .build()
        .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(no_store)
            .route("/", web::get().to(whoami))
            .route(
                "/own",
                web::get().to(|_id: DeviceId| async {
                    HttpResponse::Ok()
                        .insert_header((CACHE_CONTROL, "private, max-age=60"))
                        .finish()
                }),
            ),
    )
    .await;
    let res = get(&app, "/", None).await;
    assert_eq!(cache(&res).as_deref(), Some("no-store"));
    let cookie = &set_cookies(&res)[0];
    assert!(
        cookie.ends_with("; Partitioned") && cookie.contains("SameSite=None"),
        "{cookie}"
    );
    let res = get(&app, "/own", None).await;
    assert_eq!(cache(&res).as_deref(), Some("private, max-age=60"));
}

/// `web::ReqData<DeviceId>` is actix's own extractor: without the middleware, or without
/// consent, it answers actix's generic 500, as the README says (the `DeviceId` extractor
/// is the one that names the fix).
#[actix_web::test]
async fn req_data_without_an_id_is_actix_generic_500() {
    let refused = DeviceTracking::builder(keyring())
        .consent(|_| false)
        .build()
        .unwrap();
    let app = app!(refused);
    let res = get(&app, "/reqdata", None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = test::read_body(res).await;
    assert!(!String::from_utf8_lossy(&body).contains("device_consent_required"));
}
