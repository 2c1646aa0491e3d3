//! Carts, flags, rate limits and data rights over real HTTP (`actix_web::test`), on every
//! store backend (`support::backends`).
#![cfg(all(feature = "moka", feature = "redb"))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use actix_device::carts::{CartOwner, Carts};
use actix_device::devices::{DataRights, Devices};
use actix_device::flags::{FlagDefinition, Flags, Override};
use actix_device::limits::{Limit, Quota};
use actix_device::stores::Store;
use actix_device::{
    Cart, DeviceControl, DeviceFlags, DeviceId, DeviceTracking, Key, Keyring, ManualClock,
    RateLimit, ServiceContext, Sessions,
};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{COOKIE, SET_COOKIE};
use actix_web::http::StatusCode;
use actix_web::{test, web, App, HttpRequest, HttpResponse};
use serde_json::{json, Value};

const START: u64 = 1_800_000_000_000;

/// A limit name no other test uses: in-memory limits of one name share one table in the
/// process, and tests run side by side.
fn unique(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{name}-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

fn keyring() -> Keyring {
    Keyring::new(Key::from_secret(&[5; 32]).unwrap())
}

/// Sends a request with `cookies` and returns status, headers and JSON body, updating
/// `cookies` from `Set-Cookie`.
async fn call<S, B>(
    app: &S,
    req: test::TestRequest,
    cookies: &mut Vec<(String, String)>,
) -> (StatusCode, actix_web::http::header::HeaderMap, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let mut req = req;
    if !cookies.is_empty() {
        let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        req = req.insert_header((COOKIE, header.join("; ")));
    }
    let res = test::call_service(app, req.to_request()).await;
    for v in res.headers().get_all(SET_COOKIE) {
        let c = actix_web::cookie::Cookie::parse(v.to_str().unwrap().to_owned()).unwrap();
        cookies.retain(|(k, _)| k != c.name());
        if !c.value().is_empty() {
            cookies.push((c.name().to_owned(), c.value().to_owned()));
        }
    }
    let status = res.status();
    let headers = res.headers().clone();
    let body = test::read_body(res).await;
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn cart_add(
    cart: Cart,
    body: web::Json<Value>,
) -> Result<HttpResponse, actix_device::ApiError> {
    let sku = body["sku"].as_str().unwrap_or_default();
    let qty = u32::try_from(body["quantity"].as_u64().unwrap_or(1)).unwrap_or(u32::MAX);
    let record = cart.add(sku, qty, body.get("attributes")).await?;
    Ok(HttpResponse::Ok().json(record))
}

async fn cart_get(cart: Cart) -> Result<HttpResponse, actix_device::ApiError> {
    Ok(HttpResponse::Ok().json(cart.get().await?))
}

async fn login(
    sessions: web::Data<Sessions>,
    req: HttpRequest,
    user: web::Path<String>,
) -> Result<HttpResponse, actix_device::ApiError> {
    sessions.login(&req, &user).await?;
    Ok(HttpResponse::Ok().finish())
}

backend_tests! {
    async fn concurrent_cart_adds_are_never_lost(store) {
        let carts = Carts::new(&ServiceContext::new(store.clone()));
        let owner = CartOwner::Device(DeviceId::new_v7());
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let carts = carts.clone();
                let owner = owner.clone();
                tokio::spawn(async move { carts.add(&owner, "sku-1", 3, None).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let cart = carts.get(&owner).await.unwrap();
        assert_eq!(cart.lines.len(), 1);
        assert_eq!(cart.lines[0].quantity, 48);
    }

    async fn cart_merges_into_the_user_at_login_and_follows_them(store) {
        let context = ServiceContext::new(store.clone());
        let devices = Devices::new(&context);
        let carts = Carts::new(&context);
        let sessions = Sessions::builder(&devices).carts(&carts).cookie_secure(false).build().unwrap();
        let app = test::init_service(
            App::new()
                .wrap(DeviceTracking::builder(keyring()).cookie_secure(false).registry(devices).build().unwrap())
                .app_data(web::Data::new(carts.clone()))
                .app_data(web::Data::new(sessions))
                .route("/cart", web::post().to(cart_add))
                .route("/cart", web::get().to(cart_get))
                .route("/login/{user}", web::post().to(login)),
        )
        .await;
        let add = |sku: &str, q: u32| test::TestRequest::post().uri("/cart").set_json(json!({"sku": sku, "quantity": q}));
        let mut phone = Vec::new();
        call(&app, add("a", 1), &mut phone).await;
        call(&app, add("b", 2), &mut phone).await;
        let mut laptop = Vec::new();
        call(&app, add("a", 4), &mut laptop).await;
        call(&app, test::TestRequest::post().uri("/login/alice"), &mut phone).await;
        call(&app, test::TestRequest::post().uri("/login/alice"), &mut laptop).await;
        for jar in [&mut phone, &mut laptop] {
            let (_, _, body) = call(&app, test::TestRequest::get().uri("/cart"), jar).await;
            let lines: Vec<(String, u64)> = body["lines"].as_array().unwrap().iter()
                .map(|l| (l["sku"].as_str().unwrap().to_owned(), l["quantity"].as_u64().unwrap())).collect();
            assert_eq!(lines, vec![("a".to_owned(), 5), ("b".to_owned(), 2)]);
        }
    }

    async fn flags_bucket_stably_and_rollouts_are_monotonic(store) {
        let flags = Flags::new(&ServiceContext::new(store.clone()));
        let mut def = FlagDefinition::new("new-checkout");
        def.rollout_bp = 1_000;
        flags.upsert(def.clone()).await.unwrap();
        let ids: Vec<DeviceId> = (0..20_000).map(|_| DeviceId::new_v7()).collect();
        let at_10: Vec<bool> = ids.iter().map(|id| flags.evaluate("new-checkout", id).is_some()).collect();
        let share = at_10.iter().filter(|x| **x).count() as f64 / ids.len() as f64;
        assert!((share - 0.10).abs() < 0.01, "{share}");
        // An unrelated flag changes nothing.
        flags.upsert(FlagDefinition::new("other")).await.unwrap();
        let again: Vec<bool> = ids.iter().map(|id| flags.evaluate("new-checkout", id).is_some()).collect();
        assert_eq!(at_10, again);
        // 10% -> 20% keeps everyone who was in.
        def.rollout_bp = 2_000;
        flags.upsert(def.clone()).await.unwrap();
        for (id, was_in) in ids.iter().zip(&at_10) {
            if *was_in {
                assert!(flags.evaluate("new-checkout", id).is_some());
            }
        }
        // A fresh Flags on the same store (a restart) assigns the same.
        let restarted = Flags::new(&ServiceContext::new(store.clone()));
        restarted.reload().await.unwrap();
        for id in ids.iter().take(2_000) {
            assert_eq!(restarted.evaluate("new-checkout", id), flags.evaluate("new-checkout", id));
        }
    }

    async fn flag_overrides_lists_and_the_admin_api(store) {
        let flags = Flags::builder(&ServiceContext::new(store.clone())).refresh(Duration::from_secs(3600)).build();
        let app = test::init_service(
            App::new()
                .wrap(DeviceTracking::new(keyring()))
                .app_data(web::Data::new(flags.clone()))
                .service(actix_device::flags::admin_routes(&flags, "/admin/flags"))
                .route("/variant", web::get().to(|f: DeviceFlags| async move {
                    HttpResponse::Ok().json(json!({ "variant": f.variant("exp") }))
                })),
        )
        .await;
        let mut jar = Vec::new();
        let (_, _, body) = call(&app, test::TestRequest::get().uri("/variant"), &mut jar).await;
        assert_eq!(body["variant"], Value::Null, "unknown flag is off");
        let def = json!({"key": "exp", "enabled": true, "rollout_bp": 0, "variants": [["a", 1], ["b", 1]]});
        let (status, _, body) = call(&app, test::TestRequest::put().uri("/admin/flags/exp").set_json(def), &mut jar).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Admin changes are seen at once in this process (the cache is refreshed on write).
        let (_, _, body) = call(&app, test::TestRequest::get().uri("/variant"), &mut jar).await;
        assert_eq!(body["variant"], Value::Null, "0% rollout");
        let device: String = base64_id(&jar);
        let (status, _, _) = call(&app, test::TestRequest::put().uri(&format!("/admin/flags/exp/overrides/{device}")).set_json(json!({"variant": "b"})), &mut jar).await;
        assert_eq!(status, StatusCode::OK);
        let (_, _, body) = call(&app, test::TestRequest::get().uri("/variant"), &mut jar).await;
        assert_eq!(body["variant"], "b");
        let (status, _, body) = call(&app, test::TestRequest::put().uri(&format!("/admin/flags/exp/overrides/{device}")).set_json(json!({"variant": "zzz"})), &mut jar).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")));
        let (status, _, _) = call(&app, test::TestRequest::delete().uri(&format!("/admin/flags/exp/overrides/{device}")), &mut jar).await;
        assert_eq!(status, StatusCode::OK);
        let (_, _, body) = call(&app, test::TestRequest::get().uri("/variant"), &mut jar).await;
        assert_eq!(body["variant"], Value::Null);
        let (status, _, body) = call(&app, test::TestRequest::get().uri("/admin/flags"), &mut jar).await;
        assert_eq!((status, body["flags"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
        let (status, _, _) = call(&app, test::TestRequest::delete().uri("/admin/flags/exp"), &mut jar).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, body) = call(&app, test::TestRequest::delete().uri("/admin/flags/exp"), &mut jar).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("flag_not_found")));

        // allow and deny lists
        let id: DeviceId = device.parse().unwrap();
        let mut def = FlagDefinition::new("listed");
        def.rollout_bp = 0;
        def.allow.push(id);
        flags.upsert(def.clone()).await.unwrap();
        assert!(flags.evaluate("listed", &id).is_some());
        def.rollout_bp = 10_000;
        def.allow.clear();
        def.deny.push(id);
        flags.upsert(def).await.unwrap();
        assert!(flags.evaluate("listed", &id).is_none());
    }

    async fn flag_cache_picks_up_other_instances_within_the_refresh_interval(store) {
        let clock = ManualClock::new(START);
        let reader = Flags::new(&ServiceContext::new(store.clone()).clock(clock.clone()));
        let writer = Flags::new(&ServiceContext::new(store.clone()));
        let id = DeviceId::new_v7();
        reader.refresh_if_stale().await.unwrap();
        writer.upsert(FlagDefinition::new("late")).await.unwrap();
        reader.refresh_if_stale().await.unwrap();
        assert!(reader.evaluate("late", &id).is_none(), "still within the interval");
        clock.advance(Duration::from_secs(10));
        reader.refresh_if_stale().await.unwrap();
        assert!(reader.evaluate("late", &id).is_some());
    }

    async fn rate_limit_burst_then_429_then_recovery(store) {
        for shared in [false, true] {
            let clock = ManualClock::new(START);
            let name = unique("api");
            let quota = Quota::new(3, Duration::from_secs(3));
            let limit = if shared {
                RateLimit::new(name, Limit::Shared(quota, ServiceContext::new(store.clone()).clock(clock.clone())))
            } else {
                RateLimit::builder(name, Limit::InMemory(quota)).clock(clock.clone()).build()
            };
            let app = test::init_service(
                App::new()
                    .service(web::scope("/api").wrap(limit).route("", web::get().to(HttpResponse::Ok)))
                    .service(web::scope("/other").wrap(RateLimit::builder(unique("other"), Limit::InMemory(Quota::per_second(100))).clock(clock.clone()).build()).route("", web::get().to(HttpResponse::Ok)))
                    .wrap(DeviceTracking::builder(keyring()).clock(clock.clone()).build().unwrap()),
            )
            .await;
            let mut jar = Vec::new();
            let get = |p: &str| test::TestRequest::get().uri(p);
            // A first visit has no budget of its own (it is charged to its address): the
            // browser's own budget starts once it comes back with its cookie.
            call(&app, get("/other"), &mut jar).await;
            for expected in [2, 1, 0] {
                let (status, headers, _) = call(&app, get("/api"), &mut jar).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(hv(&headers, "ratelimit-limit"), "3");
                assert_eq!(hv(&headers, "ratelimit-remaining"), expected.to_string());
            }
            let (status, headers, body) = call(&app, get("/api"), &mut jar).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(hv(&headers, "retry-after"), "1");
            assert_eq!(hv(&headers, "ratelimit-remaining"), "0");
            assert_eq!(body["error"]["code"], "rate_limited");
            // Another route has its own quota.
            assert_eq!(call(&app, get("/other"), &mut jar).await.0, StatusCode::OK);
            // Another device has its own budget.
            assert_eq!(call(&app, get("/api"), &mut Vec::new()).await.0, StatusCode::OK);
            clock.advance(Duration::from_secs(1));
            assert_eq!(call(&app, get("/api"), &mut jar).await.0, StatusCode::OK);
            assert_eq!(call(&app, get("/api"), &mut jar).await.0, StatusCode::TOO_MANY_REQUESTS);
            clock.advance(Duration::from_secs(3));
            let (status, headers, _) = call(&app, get("/api"), &mut jar).await;
            assert_eq!((status, hv(&headers, "ratelimit-remaining").as_str()), (StatusCode::OK, "2"));
        }
    }

    async fn shared_rate_limit_spans_two_app_instances(store) {
        let clock = ManualClock::new(START);
        let name = unique("api");
        let make = || {
            App::new()
                .route("/", web::get().to(HttpResponse::Ok))
                .service(web::scope("/api")
                    .wrap(RateLimit::new(name.clone(), Limit::Shared(Quota::new(4, Duration::from_secs(60)), ServiceContext::new(store.clone()).clock(clock.clone()))))
                    .route("", web::get().to(HttpResponse::Ok)))
                .wrap(DeviceTracking::builder(keyring()).clock(clock.clone()).build().unwrap())
        };
        let one = test::init_service(make()).await;
        let two = test::init_service(make()).await;
        let mut jar = Vec::new();
        call(&one, test::TestRequest::get().uri("/"), &mut jar).await;
        let get = || test::TestRequest::get().uri("/api");
        assert_eq!(call(&one, get(), &mut jar).await.0, StatusCode::OK);
        assert_eq!(call(&two, get(), &mut jar).await.0, StatusCode::OK);
        assert_eq!(call(&one, get(), &mut jar).await.0, StatusCode::OK);
        assert_eq!(call(&two, get(), &mut jar).await.0, StatusCode::OK);
        assert_eq!(call(&one, get(), &mut jar).await.0, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(call(&two, get(), &mut jar).await.0, StatusCode::TOO_MANY_REQUESTS);
    }

    async fn daily_usage_quota_persists_in_the_store(store) {
        let clock = ManualClock::new(START);
        let app = test::init_service(
            App::new()
                .route("/", web::get().to(HttpResponse::Ok))
                .service(web::scope("/api").wrap(RateLimit::new(unique("free-tier"), Limit::Daily(2, ServiceContext::new(store.clone()).clock(clock.clone())))).route("", web::get().to(HttpResponse::Ok)))
                .wrap(DeviceTracking::builder(keyring()).clock(clock.clone()).build().unwrap()),
        )
        .await;
        let mut jar = Vec::new();
        call(&app, test::TestRequest::get().uri("/"), &mut jar).await;
        let get = || test::TestRequest::get().uri("/api");
        assert_eq!(call(&app, get(), &mut jar).await.0, StatusCode::OK);
        assert_eq!(call(&app, get(), &mut jar).await.0, StatusCode::OK);
        let (status, headers, _) = call(&app, get(), &mut jar).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(hv(&headers, "retry-after").parse::<u64>().unwrap() <= 86_400);
        clock.advance(Duration::from_secs(86_400));
        assert_eq!(call(&app, get(), &mut jar).await.0, StatusCode::OK);
    }

    async fn export_and_erase_leave_no_key_mentioning_the_device(store) {
        let clock = ManualClock::new(START);
        let context = ServiceContext::new(store.clone()).clock(clock.clone());
        let devices = Devices::new(&context);
        let carts = Carts::new(&context);
        let flags = Flags::new(&context);
        let sessions = Sessions::builder(&devices).carts(&carts).cookie_secure(false).build().unwrap();
        let rights = DataRights::new(&devices).with_flags(flags.clone());
        let app = test::init_service(
            App::new()
                .service(web::scope("/api")
                    .wrap(RateLimit::new(unique("api"), Limit::Shared(Quota::per_minute(100), context.clone())))
                    .wrap(RateLimit::new(unique("daily"), Limit::Daily(100, context.clone())))
                    .route("", web::get().to(HttpResponse::Ok)))
                .app_data(web::Data::new(carts.clone()))
                .app_data(web::Data::new(sessions))
                .app_data(web::Data::new(rights.clone()))
                .route("/cart", web::post().to(cart_add))
                .route("/login/{user}", web::post().to(login))
                .route("/export", web::get().to(|r: web::Data<DataRights>, id: DeviceId| async move {
                    Ok::<_, actix_device::ApiError>(HttpResponse::Ok().json(r.export(id).await?))
                }))
                .route("/erase", web::post().to(|r: web::Data<DataRights>, id: DeviceId, control: DeviceControl| async move {
                    let n = r.erase(id).await?;
                    control.forget();
                    Ok::<_, actix_device::ApiError>(HttpResponse::Ok().json(json!({ "deleted": n })))
                }))
                .wrap(DeviceTracking::builder(keyring()).cookie_secure(false).clock(clock.clone()).registry(devices.clone()).build().unwrap()),
        )
        .await;
        let mut jar = Vec::new();
        call(&app, test::TestRequest::get().uri("/api"), &mut jar).await;
        call(&app, test::TestRequest::get().uri("/api"), &mut jar).await; // returning: registry record
        call(&app, test::TestRequest::post().uri("/cart").set_json(json!({"sku": "x"})), &mut jar).await;
        let (_, _, export) = call(&app, test::TestRequest::get().uri("/export"), &mut jar).await;
        let id: DeviceId = export["device_id"].as_str().unwrap().parse().unwrap();
        flags.upsert(FlagDefinition::new("f")).await.unwrap();
        flags.set_override("f", id, Some(Override::Off)).await.unwrap();
        call(&app, test::TestRequest::post().uri("/login/alice"), &mut jar).await;
        call(&app, test::TestRequest::post().uri("/cart").set_json(json!({"sku": "y"})), &mut jar).await;
        let (status, _, export) = call(&app, test::TestRequest::get().uri("/export"), &mut jar).await;
        assert_eq!(status, StatusCode::OK, "{export}");
        assert_eq!(export["device"]["id"], id.to_string());
        assert_eq!(export["device"]["owner"], "alice");
        assert_eq!(export["sessions"].as_array().unwrap().len(), 1);
        assert!(export["counters"].as_object().unwrap().len() >= 2, "{export}");
        assert_eq!(export["flags"]["overrides"][0]["flag"], "f");
        assert!(export["flags"]["assignments"]["f"].is_null());

        let keys_before = all_keys(&store).await;
        assert!(keys_before.iter().any(|k| mentions(k, &id)));
        let (status, headers, body) = call(&app, test::TestRequest::post().uri("/erase"), &mut jar).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body["deleted"].as_u64().unwrap() >= 4, "{body}");
        let removal = headers.get_all(SET_COOKIE).map(|v| v.to_str().unwrap().to_owned()).find(|c| c.starts_with("device_id="));
        assert!(removal.is_some_and(|c| c.contains("Max-Age=0")), "the device cookie is cleared");
        for key in all_keys(&store).await {
            assert!(!mentions(&key, &id), "key {:?} still mentions the device", String::from_utf8_lossy(&key));
        }
        assert!(devices.list("alice").await.unwrap().is_empty());
        assert!(flags.get("f").unwrap().overrides.is_empty());
    }
}

fn hv(headers: &actix_web::http::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn base64_id(jar: &[(String, String)]) -> String {
    use base64::Engine as _;
    let value = &jar
        .iter()
        .find(|(k, _)| k.ends_with("device_id"))
        .unwrap()
        .1;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .unwrap();
    DeviceId::from_bytes(raw[5..21].try_into().unwrap()).to_string()
}

fn mentions(key: &[u8], id: &DeviceId) -> bool {
    key.windows(16).any(|w| w == id.as_bytes())
        || key.windows(36).any(|w| w == id.to_string().as_bytes())
}

async fn all_keys(store: &Arc<dyn Store>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    // Keys are namespaced under printable prefixes: scan each first byte.
    for first in 0u8..=255 {
        after = None;
        loop {
            let page = store
                .scan_prefix(&[first], after.as_deref(), 1000)
                .await
                .unwrap();
            out.extend(page.entries.into_iter().map(|(k, _)| k));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    let _ = after;
    out
}

#[actix_web::test]
async fn cart_limits_ttl_and_http() {
    let clock = ManualClock::new(START);
    for (backend, store, _dir) in support::backends_with_clock(clock.clone()) {
        eprintln!("-- on {backend}");
        let carts = Carts::builder(&ServiceContext::new(store.clone()).clock(clock.clone()))
            .max_lines(2)
            .max_quantity(5)
            .idle_ttl(Duration::from_secs(3600))
            .build();
        let tracking = DeviceTracking::builder(keyring())
            .clock(clock.clone())
            .build()
            .unwrap();
        let app = test::init_service(
            App::new()
                .wrap(tracking)
                .app_data(web::Data::new(carts.clone()))
                .route("/cart", web::post().to(cart_add))
                .route("/cart", web::get().to(cart_get)),
        )
        .await;
        let mut jar = Vec::new();
        let add = |body: Value| test::TestRequest::post().uri("/cart").set_json(body);
        let (status, _, body) = call(
            &app,
            add(json!({"sku": "a", "quantity": 2, "attributes": {"size": "M"}})),
            &mut jar,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, body) = call(&app, add(json!({"sku": "a", "quantity": 3})), &mut jar).await;
        assert_eq!(
            (status, body["lines"][0]["quantity"].as_u64()),
            (StatusCode::OK, Some(5))
        );
        let (status, _, body) = call(&app, add(json!({"sku": "a", "quantity": 1})), &mut jar).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("cart_limit"))
        );
        call(&app, add(json!({"sku": "b"})), &mut jar).await;
        let (status, _, body) = call(&app, add(json!({"sku": "c"})), &mut jar).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("cart_limit"))
        );
        let (status, _, body) = call(&app, add(json!({"sku": ""})), &mut jar).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"))
        );
        let (_, _, body) = call(&app, test::TestRequest::get().uri("/cart"), &mut jar).await;
        assert_eq!(body["lines"].as_array().unwrap().len(), 2);
        assert_eq!(body["lines"][0]["attributes"], "{\"size\":\"M\"}");
        // An idle cart expires.
        clock.advance(Duration::from_secs(3601));
        let (_, _, body) = call(&app, test::TestRequest::get().uri("/cart"), &mut jar).await;
        assert!(body["lines"].as_array().unwrap().is_empty());
    }
}

#[actix_web::test]
async fn requests_without_a_device_are_limited_by_client_address() {
    let clock = ManualClock::new(START);
    // No DeviceTracking here: the limiter falls back to the peer address.
    let app = test::init_service(
        App::new()
            .wrap(
                RateLimit::builder(
                    unique("ip"),
                    Limit::InMemory(Quota::new(2, Duration::from_secs(60))),
                )
                .clock(clock.clone())
                .build(),
            )
            .route("/", web::get().to(HttpResponse::Ok)),
    )
    .await;
    let from = |ip: &str| {
        test::TestRequest::get()
            .uri("/")
            .peer_addr(format!("{ip}:4000").parse().unwrap())
    };
    let mut jar = Vec::new();
    assert_eq!(
        call(&app, from("10.0.0.1"), &mut jar).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, from("10.0.0.1"), &mut jar).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, from("10.0.0.1"), &mut jar).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(&app, from("10.0.0.2"), &mut jar).await.0,
        StatusCode::OK,
        "another address has its own budget"
    );
}
