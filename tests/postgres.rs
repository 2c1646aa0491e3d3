//! Several app instances on one PostgreSQL database, and PostgreSQL going away, over
//! real HTTP.
//!
//! - `two_instances_share_every_kind_of_state`: two actix servers, each with its own
//!   `DeviceTracking` and its own connection pool, one keyring, one table: a browser's
//!   device id, cart, flag variant, session and rate-limit budget are the same whichever
//!   instance answers, and a revoke on one is enforced by the other.
//! - `postgres_stopped_mid_test_fails_closed_and_recovers`: a PostgreSQL server of the
//!   test's own is shut down and started again under a running app.
//!
//! Needs a real server: `ACTIX_DEVICE_POSTGRES_URL` for the first test,
//! `ACTIX_DEVICE_POSTGRES_BIN` (and, as root, `ACTIX_DEVICE_POSTGRES_OS_USER`) for the
//! second (`.ci/with-postgres` sets them). Without them each test prints why it is
//! skipped and returns.
#![cfg(feature = "postgres")]

#[path = "../stores/postgres/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_device::stores::{PostgresStore, Store};
use actix_web::http::{Method, StatusCode};
use serde_json::json;
use shared::{
    captured_logs, cart_skus, logs_contain, seed_flag, share_every_kind_of_state, Browser, Instance,
};
use support::{postgres_url, run_table, OwnPostgres};

#[path = "support/instances.rs"]
mod shared;

/// A pool on the PostgreSQL at `url`, on `table`.
async fn store(url: &str, table: &str) -> Arc<dyn Store> {
    Arc::new(
        PostgresStore::builder(url)
            .table(table)
            // Room for opening connections (SCRAM each) on a loaded test machine; a
            // stopped server refuses connections at once, so failures stay prompt.
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("postgres connects"),
    )
}

async fn drop_table(url: &str, table: &str) {
    if let Ok(store) = PostgresStore::builder(url).table(table).connect().await {
        store.drop_table().await.expect("drop table");
    }
}

#[actix_web::test]
async fn two_instances_share_every_kind_of_state() {
    let Some(url) = postgres_url() else { return };
    let table = run_table("two");
    seed_flag(store(&url, &table).await).await;
    let a = Instance::start(store(&url, &table).await).await;
    let b = Instance::start(store(&url, &table).await).await;

    share_every_kind_of_state(&a, &b).await;

    a.handle.stop(true).await;
    b.handle.stop(true).await;
    drop_table(&url, &table).await;
}

// --- PostgreSQL stopped under a running app -----------------------------------------------

#[actix_web::test]
async fn postgres_stopped_mid_test_fails_closed_and_recovers() {
    let Some(mut pg) = OwnPostgres::start() else {
        return;
    };
    captured_logs();
    let table = run_table("fault");
    seed_flag(store(&pg.url(), &table).await).await;
    let app = Instance::start(store(&pg.url(), &table).await).await;

    let mut x = Browser::new();
    let (status, me) = x.get(&app.url("/me")).await;
    assert_eq!(status, StatusCode::OK);
    let device = me["device_id"].clone();
    assert_eq!(x.post(&app.url("/cart/tea")).await.0, StatusCode::OK);
    assert_eq!(x.post(&app.url("/login/alice")).await.0, StatusCode::OK);
    assert_eq!(x.get(&app.url("/whoami")).await.0, StatusCode::OK);

    pg.kill();

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
    assert!(logs_contain("postgres error"), "the log names the store");

    // PostgreSQL comes back, with everything committed before it went. The app recovers
    // by itself: the pool replaces its dead connections.
    pg.restart();
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
        // alice's session was committed, so it is still there (bob signs in after).
        assert_eq!(
            status,
            StatusCode::OK,
            "{method} {path} after recovery: {body}"
        );
    }
    let (status, who) = x.get(&app.url("/whoami")).await;
    assert_eq!((status, &who["user"]), (StatusCode::OK, &json!("bob")));
    // alice's cart holds the tea added before the outage and the mug added after it
    // (while she was still signed in); signing in again brings it back to this browser.
    assert_eq!(x.post(&app.url("/login/alice")).await.0, StatusCode::OK);
    let (status, cart) = x.get(&app.url("/cart")).await;
    assert_eq!(
        (status, cart_skus(&cart)),
        (StatusCode::OK, vec!["tea".to_owned(), "mug".to_owned()])
    );
    let (_, me) = x.get(&app.url("/me")).await;
    assert_eq!(me["device_id"], device, "the same device throughout");

    app.handle.stop(true).await;
}
