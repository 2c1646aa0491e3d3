//! Device registry, sessions and the management routes, over real HTTP
//! (`actix_web::test`), on every store backend (`support::backends`).
#![cfg(all(feature = "moka", feature = "redb"))]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_device::devices::{
    DeviceEvents, DeviceRecord, Devices, DevicesBuilder, EvictionPolicy, HookError, Permissions,
    Revocation, SessionEvent,
};
use actix_device::stores::Store;
use actix_device::{
    CurrentSession, DeviceId, DeviceTracking, Key, Keyring, ManualClock, RequestInfo,
    ServiceContext, Sessions, TrustedDevice,
};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{ACCEPT_LANGUAGE, COOKIE, SET_COOKIE, USER_AGENT};
use actix_web::http::{Method, StatusCode};
use actix_web::{test, web, App, HttpRequest, HttpResponse};
use async_trait::async_trait;
use serde_json::Value;

const START: u64 = 1_800_000_000_000;

/// Every event the hooks heard, as text; `fail` makes every hook return an error.
#[derive(Default, Clone)]
struct Recorded {
    events: Arc<Mutex<Vec<String>>>,
    fail: bool,
}

impl Recorded {
    fn count(&self, prefix: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
    fn push(&self, e: String) -> Result<(), HookError> {
        self.events.lock().unwrap().push(e);
        if self.fail {
            Err("hook failed on purpose".into())
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl DeviceEvents for Recorded {
    async fn new_device(&self, d: &DeviceRecord) -> Result<(), HookError> {
        self.push(format!("new {}", d.id))
    }
    async fn device_bound(&self, d: &DeviceRecord, user: &str) -> Result<(), HookError> {
        self.push(format!("bound {} {user}", d.id))
    }
    async fn device_revoked(&self, d: &DeviceRecord, r: &Revocation) -> Result<(), HookError> {
        self.push(format!("revoked {} {:?}", d.id, r.reason))
    }
    async fn device_evicted(
        &self,
        d: &DeviceRecord,
        _user: &str,
        policy: EvictionPolicy,
    ) -> Result<(), HookError> {
        self.push(format!("evicted {} {policy:?}", d.id))
    }
    async fn suspicious_session(&self, e: &SessionEvent) -> Result<(), HookError> {
        self.push(format!("suspicious {}", e.user_id))
    }
    async fn session_hijack(&self, e: &SessionEvent) -> Result<(), HookError> {
        self.push(format!("hijack {} by {}", e.session_device, e.presented_by))
    }
}

struct Env {
    clock: ManualClock,
    devices: Devices,
    sessions: Sessions,
    tracking: DeviceTracking,
    events: Recorded,
    store: Arc<dyn Store>,
}

fn env_with(
    store: Arc<dyn Store>,
    events: Recorded,
    configure: impl FnOnce(DevicesBuilder) -> DevicesBuilder,
    deny_on_fingerprint_change: bool,
) -> Env {
    let clock = ManualClock::new(START);
    let context = ServiceContext::new(store.clone())
        .clock(clock.clone())
        .events(events.clone());
    let devices = configure(Devices::builder(&context)).build();
    let sessions = Sessions::builder(&devices)
        .idle_timeout(Duration::from_secs(600))
        .absolute_timeout(Duration::from_secs(3600))
        .deny_on_fingerprint_change(deny_on_fingerprint_change)
        .build()
        .unwrap();
    let tracking = DeviceTracking::builder(Keyring::new(Key::from_secret(&[3; 32]).unwrap()))
        .clock(clock.clone())
        .registry(devices.clone())
        .build()
        .unwrap();
    Env {
        clock,
        devices,
        sessions,
        tracking,
        events,
        store,
    }
}

fn env(store: Arc<dyn Store>) -> Env {
    env_with(store, Recorded::default(), |b| b, false)
}

async fn login(
    sessions: web::Data<Sessions>,
    req: HttpRequest,
    user: web::Path<String>,
) -> Result<HttpResponse, actix_device::ApiError> {
    let session = sessions.login(&req, &user).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "user": session.user_id() })))
}

/// Reads the session, revokes its user, reads it again: what each read said.
async fn revoke_midway(
    sessions: web::Data<Sessions>,
    req: HttpRequest,
) -> Result<HttpResponse, actix_device::ApiError> {
    let before = sessions.current(&req).await?;
    sessions.revoke_user(before.user_id()).await?;
    let after = sessions.current(&req).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "after": after.is_ok() })))
}

async fn me(session: CurrentSession) -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({ "user": session.user_id(), "device": session.device_id() }))
}

async fn trusted_only(t: TrustedDevice) -> HttpResponse {
    HttpResponse::Ok().body(t.device.id.to_string())
}

macro_rules! app {
    ($env:expr) => {
        test::init_service(
            App::new()
                .wrap($env.tracking.clone())
                .app_data(web::Data::new($env.sessions.clone()))
                .route("/login/{user}", web::post().to(login))
                .route("/me", web::get().to(me))
                .route("/trusted", web::get().to(trusted_only))
                .route("/revoke-midway", web::post().to(revoke_midway))
                .route("/", web::get().to(|| async { HttpResponse::Ok().finish() }))
                .service(actix_device::DeviceApi::for_sessions(&$env.sessions).scope("/devices")),
        )
        .await
    };
}

/// A browser: keeps the cookies it is given, sends them back, has a User-Agent.
#[derive(Clone, Debug)]
struct Browser {
    jar: HashMap<String, String>,
    user_agent: String,
    language: String,
}

impl Browser {
    fn new(user_agent: &str) -> Self {
        Self {
            jar: HashMap::new(),
            user_agent: user_agent.to_owned(),
            language: "en".to_owned(),
        }
    }

    /// The device id inside this browser's signed device cookie.
    fn device(&self) -> String {
        use base64::Engine as _;
        let token = self.jar.get("__Host-device_id").expect("a device cookie");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .expect("base64url");
        DeviceId::from_bytes(raw[5..21].try_into().expect("16 id bytes")).to_string()
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
        let mut req = test::TestRequest::default()
            .method(method)
            .uri(path)
            .insert_header((USER_AGENT, self.user_agent.clone()))
            .insert_header((ACCEPT_LANGUAGE, self.language.clone()));
        if !self.jar.is_empty() {
            let header: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.insert_header((COOKIE, header.join("; ")));
        }
        if let Some(b) = body {
            req = req
                .set_payload(b.to_string())
                .insert_header(("content-type", "application/json"));
        }
        let res = test::call_service(app, req.to_request()).await;
        for v in res.headers().get_all(SET_COOKIE) {
            let c = actix_web::cookie::Cookie::parse(v.to_str().unwrap().to_owned()).unwrap();
            if c.value().is_empty() {
                self.jar.remove(c.name());
            } else {
                self.jar.insert(c.name().to_owned(), c.value().to_owned());
            }
        }
        let status = res.status();
        let bytes = test::read_body(res).await;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
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

/// A browser that has visited once (so it holds a device cookie) and logged in as `user`.
async fn signed_in<S, B>(app: &S, user: &str, ua: &str) -> Browser
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let mut b = Browser::new(ua);
    b.get(app, "/").await;
    let (status, body) = b.post(app, &format!("/login/{user}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    b
}

/// A few signed-in requests, each answered: the session's check has passed and, on a
/// store that can, it is hot.
async fn warm<S, B>(app: &S, b: &mut Browser)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    for _ in 0..4 {
        let (status, body) = b.get(app, "/me").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

backend_tests! {
    async fn login_then_current_session(store) {
        let env = env(store);
        let app = app!(env);
        let mut b = Browser::new("ua-1");
        assert_eq!(code(&b.get(&app, "/me").await.1), "not_signed_in");
        b.get(&app, "/").await;
        b.post(&app, "/login/alice").await;
        assert!(b.jar.contains_key("__Host-session"));
        let (status, body) = b.get(&app, "/me").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["user"], "alice");
        assert_eq!(body["device"], b.device());
        assert_eq!(b.get(&app, "/trusted").await.0, StatusCode::OK);
        assert_eq!(env.events.count("bound"), 1);
    }

    async fn a_remembered_session_token_vouches_for_no_other_bytes(store) {
        let env = env(store);
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "ua").await;
        assert_eq!(b.get(&app, "/me").await.0, StatusCode::OK);
        let token = b.jar["__Host-session"].clone();
        for at in 0..token.len() {
            let mut near = token.clone().into_bytes();
            near[at] = if near[at] == b'A' { b'B' } else { b'A' };
            let mut other = b.clone();
            other.jar.insert("__Host-session".into(), String::from_utf8(near).unwrap());
            let (status, body) = other.get(&app, "/me").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "char {at} changed: {body}");
        }
        assert_eq!(b.get(&app, "/me").await.0, StatusCode::OK);
    }

    async fn a_hot_session_still_obeys_every_rule(store) {
        // Each case warms the session first (several checks in a row, so a store that
        // answers from memory has it in its read cache and the check has remembered the
        // outcome), then changes one thing the outcome depends on.
        // The user's other device revokes this one.
        let env = env(store.clone());
        let app = app!(env);
        // The first device of a user may revoke the others.
        let mut other = signed_in(&app, "alice", "ub").await;
        let mut b = signed_in(&app, "alice", "ua").await;
        warm(&app, &mut b).await;
        let path = format!("/devices/{}", b.device());
        let (status, body) = other.send(&app, Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = b.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"), "revoked device");

        // Every session of the user ends (a password reset).
        let mut c = signed_in(&app, "carol", "ua").await;
        warm(&app, &mut c).await;
        assert_eq!(env.sessions.revoke_user("carol").await.unwrap(), 1);
        assert_eq!(c.get(&app, "/me").await.0, StatusCode::UNAUTHORIZED, "user revoked");

        // The browser logs out; a copy of its cookies replays the token.
        let mut d = signed_in(&app, "dave", "ua").await;
        warm(&app, &mut d).await;
        let replay = d.clone();
        assert_eq!(d.post(&app, "/devices/logout").await.0, StatusCode::OK);
        let (status, body) = replay.clone().get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"), "logged out");

        // Another device presents the token: a hijack, the session ends.
        let mut e = signed_in(&app, "erin", "ua").await;
        warm(&app, &mut e).await;
        let mut thief = Browser::new("ua");
        thief.get(&app, "/").await;
        thief.jar.insert("__Host-session".into(), e.jar["__Host-session"].clone());
        let (status, body) = thief.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_device_mismatch"));
        assert_eq!(e.get(&app, "/me").await.0, StatusCode::UNAUTHORIZED, "hijacked");

        // The session idles out.
        let mut f = signed_in(&app, "frank", "ua").await;
        warm(&app, &mut f).await;
        env.clock.advance(Duration::from_secs(601));
        let (status, body) = f.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_expired"), "idle");

        // The device stops trusting the user with the session left as it was (a revocation
        // whose later steps failed).
        let mut u = signed_in(&app, "ursula", "ua").await;
        warm(&app, &mut u).await;
        let id: DeviceId = u.device().parse().unwrap();
        let key = [&b"dev/"[..], id.as_bytes()].concat();
        let records = actix_device::record::Records::new(env.store.clone());
        records
            .update::<DeviceRecord, _>(&key, None, |r| {
                let mut r = r.expect("the device record");
                r.trusted = false;
                Ok(actix_device::record::Change::Write(r))
            })
            .await
            .unwrap();
        let (status, body) = u.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"), "untrusted");

        // A due last-seen is written: the session touch (every 60 s) is due before the
        // device's (every 300 s); 651 s after login and 590 s after the touch, it lives.
        let mut g = signed_in(&app, "grace", "ua").await;
        warm(&app, &mut g).await;
        env.clock.advance(Duration::from_secs(61));
        assert_eq!(g.get(&app, "/me").await.0, StatusCode::OK);
        env.clock.advance(Duration::from_secs(590));
        assert_eq!(g.get(&app, "/me").await.0, StatusCode::OK, "touched while hot");

        // The absolute timeout (3600 s) falls between two touches.
        let mut k = signed_in(&app, "kim", "ua").await;
        for _ in 0..7 {
            env.clock.advance(Duration::from_secs(500));
            warm(&app, &mut k).await;
        }
        env.clock.advance(Duration::from_secs(90));
        warm(&app, &mut k).await;
        env.clock.advance(Duration::from_secs(20));
        let (status, body) = k.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_expired"), "absolute");

        // The fingerprint changes, with a policy that denies it.
        let env = env_with(store.clone(), Recorded::default(), |b| b, true);
        let app = app!(env);
        let mut h = signed_in(&app, "heidi", "Firefox/140").await;
        warm(&app, &mut h).await;
        h.user_agent = "curl/8".into();
        let (status, body) = h.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_suspicious"));
        h.user_agent = "Firefox/140".into();
        warm(&app, &mut h).await;
        h.language = "fr".into();
        let (status, body) = h.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_suspicious"));
        assert_eq!(env.events.count("suspicious"), 1, "reported once per session");
    }

    async fn login_rotates_the_token(store) {
        let env = env(store);
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "ua").await;
        let old = b.jar["__Host-session"].clone();
        b.post(&app, "/login/alice").await;
        let new = b.jar["__Host-session"].clone();
        assert_ne!(old, new);
        assert_eq!(b.get(&app, "/me").await.0, StatusCode::OK);
        let mut replay = b.clone();
        replay.jar.insert("__Host-session".into(), old);
        let (status, body) = replay.get(&app, "/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(code(&body), "session_revoked");
    }

    async fn logout_then_replay_is_401(store) {
        let env = env(store);
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "ua").await;
        let token = b.jar["__Host-session"].clone();
        let (status, body) = b.post(&app, "/devices/logout").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(!b.jar.contains_key("__Host-session"), "removal cookie sent");
        b.jar.insert("__Host-session".into(), token);
        let (status, body) = b.get(&app, "/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(code(&body), "session_revoked");
    }

    async fn idle_and_absolute_timeouts_hit_the_first_late_request(store) {
        let env = env(store);
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "ua").await;
        // Idle: 600 s.
        env.clock.advance(Duration::from_secs(599));
        assert_eq!(b.get(&app, "/me").await.0, StatusCode::OK);
        env.clock.advance(Duration::from_secs(600));
        let (status, body) = b.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_expired"));
        // Absolute: 3600 s, however active.
        b.post(&app, "/login/alice").await;
        for _ in 0..7 {
            env.clock.advance(Duration::from_secs(500));
            assert_eq!(b.get(&app, "/me").await.0, StatusCode::OK);
        }
        env.clock.advance(Duration::from_secs(100));
        let (status, body) = b.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_expired"));
    }

    async fn token_on_another_device_is_revoked_and_raises_hijack(store) {
        let env = env(store);
        let app = app!(env);
        let mut victim = signed_in(&app, "alice", "ua").await;
        let mut thief = Browser::new("ua");
        thief.get(&app, "/").await;
        thief.jar.insert("__Host-session".into(), victim.jar["__Host-session"].clone());
        let (status, body) = thief.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_device_mismatch"));
        assert_eq!(env.events.count("hijack"), 1);
        // The session is dead for its owner too.
        let (status, body) = victim.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"));
    }

    async fn fingerprint_change_raises_an_event(store) {
        let env = env(store);
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "Firefox/140").await;
        b.user_agent = "curl/8".into();
        assert_eq!(b.get(&app, "/me").await.0, StatusCode::OK);
        assert_eq!(env.events.count("suspicious alice"), 1);
    }

    async fn fingerprint_change_can_deny(store) {
        let env = env_with(store, Recorded::default(), |b| b, true);
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "Firefox/140").await;
        b.language = "fr".into();
        let (status, body) = b.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_suspicious"));
        assert_eq!(env.events.count("suspicious"), 1);
    }

    async fn max_devices_refuse(store) {
        let env = env_with(store, Recorded::default(), |b| b.max_devices_per_user(2, EvictionPolicy::Refuse), false);
        let app = app!(env);
        signed_in(&app, "alice", "a").await;
        signed_in(&app, "alice", "b").await;
        let mut third = Browser::new("c");
        third.get(&app, "/").await;
        let (status, body) = third.post(&app, "/login/alice").await;
        assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "too_many_devices"));
        assert_eq!(env.devices.list("alice").await.unwrap().len(), 2);
    }

    async fn max_devices_evicts_least_recently_seen(store) {
        let env = env_with(store, Recorded::default(), |b| b.max_devices_per_user(2, EvictionPolicy::LeastRecentlySeen).touch_interval(Duration::from_secs(1)), false);
        let app = app!(env);
        let mut a = signed_in(&app, "alice", "a").await;
        env.clock.advance(Duration::from_secs(10));
        let mut b = signed_in(&app, "alice", "b").await;
        env.clock.advance(Duration::from_secs(10));
        // `a` was bound first but is seen now, so `b` is the least recently seen.
        a.get(&app, "/").await;
        env.clock.advance(Duration::from_secs(10));
        let c = signed_in(&app, "alice", "c").await;
        let ids: Vec<String> = env.devices.list("alice").await.unwrap().iter().map(|d| d.id.to_string()).collect();
        assert_eq!(ids, vec![a.device(), c.device()]);
        assert_eq!(env.events.count("evicted"), 1);
        assert_eq!(b.get(&app, "/me").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(a.get(&app, "/me").await.0, StatusCode::OK);
    }

    async fn max_devices_evicts_the_oldest(store) {
        let env = env_with(store, Recorded::default(), |b| b.max_devices_per_user(2, EvictionPolicy::Oldest).touch_interval(Duration::from_secs(1)), false);
        let app = app!(env);
        let mut a = signed_in(&app, "alice", "a").await;
        env.clock.advance(Duration::from_secs(10));
        let b = signed_in(&app, "alice", "b").await;
        env.clock.advance(Duration::from_secs(10));
        a.get(&app, "/").await;
        let c = signed_in(&app, "alice", "c").await;
        let ids: Vec<String> = env.devices.list("alice").await.unwrap().iter().map(|d| d.id.to_string()).collect();
        assert_eq!(ids, vec![b.device(), c.device()]);
        let record = env.devices.get(&a.device().parse().unwrap()).await.unwrap().unwrap();
        assert!(record.revoked.is_some(), "eviction is recorded, not deleted");
    }

    async fn concurrent_logins_never_exceed_the_limit(store) {
        for policy in [EvictionPolicy::Refuse, EvictionPolicy::LeastRecentlySeen, EvictionPolicy::Oldest] {
            let env = env_with(store.clone(), Recorded::default(), |b| b.max_devices_per_user(3, policy), false);
            let user = format!("racer-{policy:?}");
            let tasks: Vec<_> = (0..12)
                .map(|i| {
                    let devices = env.devices.clone();
                    let user = user.clone();
                    tokio::spawn(async move {
                        let info = RequestInfo { ip: None, user_agent: Some(format!("ua-{i}")) };
                        devices.bind(DeviceId::new_v7(), &user, &info).await
                    })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                if t.await.unwrap().is_ok() {
                    ok += 1;
                }
            }
            let listed = env.devices.list(&user).await.unwrap();
            assert_eq!(listed.len(), 3, "{policy:?}");
            if policy == EvictionPolicy::Refuse {
                assert_eq!(ok, 3);
            } else {
                assert!(ok >= 3, "{policy:?}: {ok}");
            }
            // The list is the authority and the records agree with it.
            for d in &listed {
                assert!(env.devices.is_trusted(&user, &d.id).await.unwrap().is_some());
            }
        }
    }

    async fn management_routes_and_their_errors(store) {
        let env = env(store);
        let app = app!(env);
        let mut first = signed_in(&app, "alice", "a").await; // first device: every permission
        let mut second = signed_in(&app, "alice", "b").await; // later devices: none
        let mut stranger = Browser::new("x");
        stranger.get(&app, "/").await;

        // 401 not signed in
        let (status, body) = stranger.get(&app, "/devices").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "not_signed_in"));

        // GET / lists with `current`
        let (status, body) = second.get(&app, "/devices").await;
        assert_eq!(status, StatusCode::OK);
        let list = body["devices"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        let current: Vec<_> = list.iter().filter(|d| d["current"] == true).collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["id"], second.device());

        // PATCH: rename own (200), rename other without permission (403), bad body (422),
        // unknown device (404)
        let own = format!("/devices/{}", second.device());
        let other = format!("/devices/{}", first.device());
        let (status, body) = second.send(&app, Method::PATCH, &own, Some(serde_json::json!({"name": "Laptop"}))).await;
        assert_eq!((status, body["name"].as_str()), (StatusCode::OK, Some("Laptop")));
        let (status, body) = second.send(&app, Method::PATCH, &other, Some(serde_json::json!({"name": "Mine"}))).await;
        assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
        for bad in [serde_json::json!({}), serde_json::json!({"name": ""}), serde_json::json!({"nme": "x"}), serde_json::json!({"name": "x".repeat(65)})] {
            let (status, body) = second.send(&app, Method::PATCH, &own, Some(bad.clone())).await;
            assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"), "{bad}");
        }
        let unknown = format!("/devices/{}", DeviceId::new_v7());
        let (status, body) = second.send(&app, Method::PATCH, &unknown, Some(serde_json::json!({"name": "x"}))).await;
        assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "device_not_found"));
        let (status, _) = second.send(&app, Method::DELETE, "/devices/not-an-id", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // DELETE: without permission 403; own device 409; with permission 200
        let (status, body) = second.send(&app, Method::DELETE, &other, None).await;
        assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
        let (status, body) = first.send(&app, Method::DELETE, &other, None).await;
        assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
        let (status, body) = first.send(&app, Method::DELETE, &own, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["revoked"]["reason"], "Revoked");
        assert_eq!(body["revoked"]["by"], first.device());
        // Revoking a device revokes its sessions, and keeps the record.
        let (status, body) = second.get(&app, "/me").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"));
        let record = env.devices.get(&second.device().parse().unwrap()).await.unwrap().unwrap();
        assert!(record.revoked.is_some() && !record.trusted);
        assert_eq!(env.events.count("revoked"), 1);
        let (status, body) = first.send(&app, Method::DELETE, &own, None).await;
        assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "device_not_found"));
    }

    async fn self_escalation_is_refused(store) {
        let env = env(store);
        let app = app!(env);
        let _first = signed_in(&app, "alice", "a").await;
        let mut second = signed_in(&app, "alice", "b").await;
        let own = format!("/devices/{}", second.device());
        for perms in [
            serde_json::json!({"rename_others": true, "revoke_others": false}),
            serde_json::json!({"rename_others": false, "revoke_others": true}),
            serde_json::json!({"rename_others": true, "revoke_others": true}),
        ] {
            let body = serde_json::json!({"name": "sneaky", "permissions": perms});
            let (status, resp) = second.send(&app, Method::PATCH, &own, Some(body)).await;
            assert_eq!((status, code(&resp)), (StatusCode::FORBIDDEN, "forbidden"), "{perms}");
        }
        let record = env.devices.get(&second.device().parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(record.permissions, Permissions::NONE);
        assert_eq!(record.name, None, "a refused patch changes nothing");
    }

    async fn granting_is_limited_to_what_the_granter_holds(store) {
        let env = env(store);
        let app = app!(env);
        let mut first = signed_in(&app, "alice", "a").await;
        let mut second = signed_in(&app, "alice", "b").await;
        let first_path = format!("/devices/{}", first.device());
        let second_path = format!("/devices/{}", second.device());
        // The first device (all permissions) grants rename only.
        let grant = serde_json::json!({"permissions": {"rename_others": true, "revoke_others": false}});
        assert_eq!(first.send(&app, Method::PATCH, &second_path, Some(grant)).await.0, StatusCode::OK);
        // The second may now rename the first, but not touch its permissions.
        assert_eq!(second.send(&app, Method::PATCH, &first_path, Some(serde_json::json!({"name": "Desk"}))).await.0, StatusCode::OK);
        let strip = serde_json::json!({"permissions": {"rename_others": false, "revoke_others": false}});
        assert_eq!(second.send(&app, Method::PATCH, &first_path, Some(strip.clone())).await.0, StatusCode::FORBIDDEN);
        // It may drop its own.
        assert_eq!(second.send(&app, Method::PATCH, &second_path, Some(strip)).await.0, StatusCode::OK);
    }

    async fn revoke_all_obeys_the_revoke_permission(store) {
        let env = env(store);
        let app = app!(env);
        let mut first = signed_in(&app, "alice", "a").await;
        let mut second = signed_in(&app, "alice", "b").await;
        let mut third = signed_in(&app, "alice", "c").await;
        let (status, body) = second.post(&app, "/devices/revoke-all").await;
        assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
        assert_eq!(env.devices.list("alice").await.unwrap().len(), 3);
        let (status, body) = first.post(&app, "/devices/revoke-all").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["revoked"].as_array().unwrap().len(), 2);
        assert_eq!(second.get(&app, "/me").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(third.get(&app, "/me").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(first.get(&app, "/me").await.0, StatusCode::OK);
        let ids: Vec<String> = env.devices.list("alice").await.unwrap().iter().map(|d| d.id.to_string()).collect();
        assert_eq!(ids, vec![first.device()]);
    }

    async fn touch_is_throttled_to_one_write_per_interval(store) {
        let env = env(store); // interval: 5 minutes
        let app = app!(env);
        let mut b = Browser::new("ua");
        b.get(&app, "/").await; // new id: no record yet
        assert_eq!(env.devices.touch_writes(), 0);
        for _ in 0..50 {
            b.get(&app, "/").await;
        }
        assert_eq!(env.devices.touch_writes(), 1);
        env.clock.advance(Duration::from_secs(300));
        for _ in 0..50 {
            b.get(&app, "/").await;
        }
        assert_eq!(env.devices.touch_writes(), 2);
        let record = env.devices.get(&b.device().parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(record.visits, 51, "visits counted in memory between writes");
        assert_eq!(record.user_agent.as_deref(), Some("ua"));
        assert_eq!(env.events.count("new"), 1);
    }

    async fn cookieless_bots_create_no_records(store) {
        let env = env(store);
        let app = app!(env);
        for _ in 0..100 {
            Browser::new("bot").get(&app, "/").await;
        }
        let page = env.store.scan_prefix(b"dev/", None, 10).await.unwrap();
        assert!(page.entries.is_empty());
        assert_eq!(env.devices.touch_writes(), 0);
    }

    async fn failing_hooks_never_break_requests(store) {
        let events = Recorded { fail: true, ..Recorded::default() };
        let env = env_with(store, events, |b| b, false);
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "ua").await;
        assert_eq!(b.get(&app, "/me").await.0, StatusCode::OK);
        assert!(env.events.count("bound") == 1 && env.events.count("new") == 1);
    }

    async fn a_revoked_device_is_not_trusted_until_it_logs_in_again(store) {
        let env = env(store);
        let app = app!(env);
        let mut first = signed_in(&app, "alice", "a").await;
        let mut second = signed_in(&app, "alice", "b").await;
        first.send(&app, Method::DELETE, &format!("/devices/{}", second.device()), None).await;
        assert_eq!(second.get(&app, "/trusted").await.0, StatusCode::UNAUTHORIZED);
        second.post(&app, "/login/alice").await;
        assert_eq!(second.get(&app, "/trusted").await.0, StatusCode::OK);
        let record = env.devices.get(&second.device().parse().unwrap()).await.unwrap().unwrap();
        assert!(record.revoked.is_none());
        assert_eq!(record.history.len(), 1, "the revocation stays in the history");
    }
}

#[actix_web::test]
async fn sweep_purges_ended_sessions_from_the_store() {
    let clock = ManualClock::new(START);
    for (backend, store, _dir) in support::backends_with_clock(clock.clone()) {
        eprintln!("-- on {backend}");
        let context = ServiceContext::new(store.clone()).clock(clock.clone());
        let devices = Devices::new(&context);
        let sessions = Sessions::builder(&devices)
            .absolute_timeout(Duration::from_secs(3600))
            .build()
            .unwrap();
        let tracking = DeviceTracking::builder(Keyring::new(Key::from_secret(&[3; 32]).unwrap()))
            .clock(clock.clone())
            .registry(devices.clone())
            .build()
            .unwrap();
        let env = Env {
            clock: clock.clone(),
            devices,
            sessions,
            tracking,
            events: Recorded::default(),
            store: store.clone(),
        };
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "ua").await;
        b.post(&app, "/devices/logout").await;
        let before = store
            .scan_prefix(b"sess/", None, 10)
            .await
            .unwrap()
            .entries
            .len();
        assert_eq!(before, 1, "the revoked session is kept for a while (audit)");
        clock.advance(Duration::from_secs(2 * 24 * 3600));
        assert!(env.sessions.sweep().await.unwrap() >= 1);
        assert!(store
            .scan_prefix(b"sess/", None, 10)
            .await
            .unwrap()
            .entries
            .is_empty());
    }
}

/// A real store that counts the writes of session records (`sess/...`), every read
/// (`get`, `peek`, `peek_watched`) and the `get`s alone, and hands out the watches of the
/// store it wraps unless made `peek_only`.
struct CountingStore {
    inner: Arc<dyn Store>,
    watches: bool,
    session_writes: std::sync::atomic::AtomicUsize,
    reads: std::sync::atomic::AtomicUsize,
    gets: std::sync::atomic::AtomicUsize,
}

impl CountingStore {
    fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            watches: true,
            session_writes: std::sync::atomic::AtomicUsize::new(0),
            reads: std::sync::atomic::AtomicUsize::new(0),
            gets: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// A store that answers `peek` but keeps no watches (`peek_watched` is `None`), as a
    /// store without them would.
    fn peek_only(inner: Arc<dyn Store>) -> Self {
        Self {
            watches: false,
            ..Self::new(inner)
        }
    }

    fn count(&self, key: &[u8]) {
        if key.starts_with(b"sess/") {
            self.session_writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn read(&self) {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn gets(&self) -> usize {
        self.gets.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, actix_device::stores::StoreError> {
        self.read();
        self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(key).await
    }
    fn peek(&self, key: &[u8]) -> actix_device::stores::Peek {
        self.read();
        self.inner.peek(key)
    }
    fn peek_watched(&self, key: &[u8]) -> Option<(Arc<[u8]>, actix_device::stores::Watch)> {
        self.read();
        self.watches.then(|| self.inner.peek_watched(key)).flatten()
    }
    async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), actix_device::stores::StoreError> {
        self.count(key);
        self.inner.put(key, value, ttl).await
    }
    async fn delete(&self, key: &[u8]) -> Result<bool, actix_device::stores::StoreError> {
        self.inner.delete(key).await
    }
    async fn insert_if_absent(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, actix_device::stores::StoreError> {
        self.count(key);
        self.inner.insert_if_absent(key, value, ttl).await
    }
    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<actix_device::stores::CasOutcome, actix_device::stores::StoreError> {
        self.count(key);
        self.inner.compare_and_swap(key, expected, new, ttl).await
    }
    async fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<actix_device::stores::ScanPage, actix_device::stores::StoreError> {
        self.inner.scan_prefix(prefix, after, limit).await
    }
    async fn batch(
        &self,
        ops: Vec<actix_device::stores::BatchOp>,
    ) -> Result<(), actix_device::stores::StoreError> {
        for op in &ops {
            self.count(op.key());
        }
        self.inner.batch(ops).await
    }
    async fn purge_expired(&self) -> Result<u64, actix_device::stores::StoreError> {
        self.inner.purge_expired().await
    }
    async fn flush(&self) -> Result<(), actix_device::stores::StoreError> {
        self.inner.flush().await
    }
}

backend_tests! {
    async fn parallel_requests_of_a_due_session_write_last_seen_once(store) {
        let counting = Arc::new(CountingStore::new(store));
        let env = env(counting.clone());
        let app = app!(env);
        let b = signed_in(&app, "alice", "ua").await;
        env.clock.advance(Duration::from_secs(61));
        let before = counting.session_writes.load(std::sync::atomic::Ordering::SeqCst);
        let page: Vec<_> = (0..16)
            .map(|_| {
                let mut b = b.clone();
                let app = &app;
                async move { b.get(app, "/me").await.0 }
            })
            .collect();
        for status in futures_util::future::join_all(page).await {
            assert_eq!(status, StatusCode::OK);
        }
        let writes = counting.session_writes.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(writes, 1, "16 parallel requests of a due session wrote last-seen {writes} times");
    }

    async fn a_revocation_during_a_request_holds_for_the_rest_of_it(store) {
        // A hot session is answered again on each call, its watches rechecked, so a
        // revocation made by the handler itself holds for the calls after it.
        let env = env(store);
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "ua").await;
        warm(&app, &mut b).await;
        let (status, body) = b.post(&app, "/revoke-midway").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["after"], false, "the second read still saw the session");
        assert_eq!(b.get(&app, "/me").await.0, StatusCode::UNAUTHORIZED);
    }

    async fn a_warm_session_on_a_store_without_watches_is_checked_by_peeks(store) {
        // A store that answers peeks but keeps no watches: the hot check compares the
        // allocations its peeks hand back, so a warm session costs peeks and no get, and a
        // change (a new allocation) sends the next request to the full check.
        let counting = Arc::new(CountingStore::peek_only(store));
        let env = env(counting.clone());
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "ua").await;
        warm(&app, &mut b).await;
        let (reads, gets) = (counting.reads(), counting.gets());
        for _ in 0..10 {
            assert_eq!(b.get(&app, "/me").await.0, StatusCode::OK);
        }
        assert_eq!(counting.gets() - gets, 0, "a warm session read through get");
        assert!(counting.reads() > reads, "the hot check peeked");
        env.sessions.revoke_user("alice").await.unwrap();
        assert_eq!(b.get(&app, "/me").await.0, StatusCode::UNAUTHORIZED);
    }

    async fn a_warm_session_is_checked_without_reading_the_store(store) {
        // What the hot check is for: on a store that watches its cached answers, a
        // session whose full check passed is answered again with no read at all, until
        // something it depends on changes.
        let counting = Arc::new(CountingStore::new(store));
        let env = env(counting.clone());
        let app = app!(env);
        let mut b = signed_in(&app, "alice", "ua").await;
        warm(&app, &mut b).await;
        let before = counting.reads();
        for _ in 0..10 {
            assert_eq!(b.get(&app, "/me").await.0, StatusCode::OK);
        }
        assert_eq!(counting.reads() - before, 0, "a warm session read the store");
        // A change sends the next request to the full check, which reads.
        env.sessions.revoke_user("alice").await.unwrap();
        assert_eq!(b.get(&app, "/me").await.0, StatusCode::UNAUTHORIZED);
        assert!(counting.reads() > before);
    }
}
