//! Several app instances on one Redis, and Redis going away, over real HTTP.
//!
//! - `two_instances_share_every_kind_of_state`: two actix servers, each with its own
//!   `DeviceTracking` and its own Redis connection, one keyring, one Redis: a browser's
//!   device id, cart, flag variant, session and rate-limit budget are the same whichever
//!   instance answers, and a revoke on one is enforced by the other.
//! - `redis_stopped_mid_test_fails_closed_and_recovers`: a Redis server of the test's
//!   own is killed and restarted under a running app.
//!
//! Needs a real server: `ACTIX_DEVICE_REDIS_URL` for the first test, the
//! `ACTIX_DEVICE_REDIS_SERVER` binary for the second (`.ci/with-redis` sets both).
//! Without them each test prints why it is skipped and returns.
#![cfg(feature = "redis")]

#[path = "../stores/redis/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_device::stores::{RedisStore, Store};
use actix_web::http::{Method, StatusCode};
use serde_json::json;
use shared::{
    captured_logs, cart_skus, logs_contain, seed_flag, share_every_kind_of_state, Browser, Instance,
};
use support::{redis_url, run_prefix, OwnRedis};

#[path = "support/instances.rs"]
mod shared;

/// A connection to the Redis at `url`, under `prefix`.
async fn store(url: &str, prefix: &str) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::builder(url)
            .key_prefix(prefix)
            .response_timeout(Duration::from_millis(500))
            .connect()
            .await
            .expect("redis connects"),
    )
}

async fn clear(url: &str, prefix: &str) {
    if let Ok(store) = RedisStore::builder(url).key_prefix(prefix).connect().await {
        store.clear().await.expect("clear");
    }
}

#[actix_web::test]
async fn two_instances_share_every_kind_of_state() {
    let Some(url) = redis_url() else { return };
    let prefix = run_prefix("two-instances");
    seed_flag(store(&url, &prefix).await).await;
    let a = Instance::start(store(&url, &prefix).await).await;
    let b = Instance::start(store(&url, &prefix).await).await;

    share_every_kind_of_state(&a, &b).await;

    a.handle.stop(true).await;
    b.handle.stop(true).await;
    clear(&url, &prefix).await;
}

// --- Redis stopped under a running app ---------------------------------------------------

#[actix_web::test]
async fn redis_stopped_mid_test_fails_closed_and_recovers() {
    let Some(mut redis) = OwnRedis::start() else {
        return;
    };
    captured_logs();
    let prefix = run_prefix("fault");
    seed_flag(store(&redis.url(), &prefix).await).await;
    let app = Instance::start(store(&redis.url(), &prefix).await).await;

    let mut x = Browser::new();
    let (status, me) = x.get(&app.url("/me")).await;
    assert_eq!(status, StatusCode::OK);
    let device = me["device_id"].clone();
    assert_eq!(x.post(&app.url("/cart/tea")).await.0, StatusCode::OK);
    assert_eq!(x.post(&app.url("/login/alice")).await.0, StatusCode::OK);
    assert_eq!(x.get(&app.url("/whoami")).await.0, StatusCode::OK);

    redis.kill();

    // The device cookie needs no store: the same id, and a new browser still gets one.
    let (status, me) = x.get(&app.url("/me")).await;
    assert_eq!((status, &me["device_id"]), (StatusCode::OK, &device));
    let mut fresh = Browser::new();
    let (status, me) = fresh.get(&app.url("/me")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(me["device_id"].is_string() && me["device_id"] != device);

    // Everything that needs the store fails closed, with an opaque body.
    let needs_store = [
        (Method::GET, "/cart"),
        (Method::POST, "/cart/mug"),
        (Method::GET, "/whoami"),
        (Method::POST, "/login/bob"),
        (Method::GET, "/devices"),
    ];
    for (method, path) in needs_store.clone() {
        let (status, body) = x.send(method.clone(), &app.url(path)).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {path}: {body}"
        );
        assert_eq!(
            body,
            json!({ "error": { "code": "internal", "message": "internal error" } }),
            "{method} {path}: nothing about the store reaches the client"
        );
    }
    // ... and the cause is in the log.
    assert!(
        logs_contain("device layer failure"),
        "the failure is logged"
    );
    assert!(logs_contain("redis error"), "the log names the store");

    // Redis comes back (empty: it keeps nothing on disk). The app recovers by itself.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = x.get(&app.url("/cart")).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not recover: {status}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    for (method, path) in needs_store {
        let (status, body) = x.send(method.clone(), &app.url(path)).await;
        let expected = match path {
            // alice's session died with the server's memory (bob signs in just after).
            "/whoami" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::OK,
        };
        assert_eq!(status, expected, "{method} {path} after recovery: {body}");
    }
    let (status, cart) = x.get(&app.url("/cart")).await;
    assert_eq!(
        (status, cart_skus(&cart)),
        (StatusCode::OK, vec!["mug".to_owned()])
    );
    let (status, who) = x.get(&app.url("/whoami")).await;
    assert_eq!((status, &who["user"]), (StatusCode::OK, &json!("bob")));
    let (_, me) = x.get(&app.url("/me")).await;
    assert_eq!(me["device_id"], device, "the same device throughout");

    app.handle.stop(true).await;
}
