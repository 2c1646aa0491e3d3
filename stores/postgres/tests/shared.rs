//! What the conformance suite (one store, one pool) cannot show: several pools and
//! tasks on one table, applications side by side in their own tables, the table's
//! creation and layout check, connection errors, and a server that stops answering or
//! goes away.

mod support;

use std::sync::Arc;
use std::time::Duration;

use actix_device_postgres::PostgresStore;
use actix_device_store::{BatchOp, CasOutcome, ManualClock, Store, StoreError};
use support::{free_port, postgres_url, run_table, OwnPostgres};

/// A generous call timeout for the tests that are not about timeouts: a burst of new
/// connections (SCRAM authentication each) on a loaded test machine takes a while.
const PATIENT: Duration = Duration::from_secs(30);

async fn connect(url: &str, table: &str) -> PostgresStore {
    PostgresStore::builder(url)
        .table(table)
        .timeout(PATIENT)
        .connect()
        .await
        .expect("postgres connects")
}

/// How many live entries under `dev/` the store lists.
async fn devices(store: &PostgresStore) -> usize {
    store
        .scan_prefix(b"dev/", None, 10)
        .await
        .unwrap()
        .entries
        .len()
}

/// Adds one to the big-endian counter under `key` with a CAS loop; returns how many
/// conflicts it retried.
async fn increment(store: &PostgresStore, key: &[u8]) -> u64 {
    let mut conflicts = 0;
    let mut current = store.get(key).await.unwrap();
    loop {
        let n = current
            .as_deref()
            .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
        let next = (n + 1).to_be_bytes();
        match store
            .compare_and_swap(key, current.as_deref(), Some(&next), None)
            .await
            .unwrap()
        {
            CasOutcome::Swapped => return conflicts,
            CasOutcome::Conflict { current: seen } => {
                conflicts += 1;
                current = seen;
            }
        }
    }
}

/// Three stores (three pools, as three app instances would have), each shared by four
/// tasks, so the increments run over many connections at once: none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_counter_across_pools_and_connections_loses_no_update() {
    let Some(url) = postgres_url() else { return };
    let table = run_table("cas");
    let mut stores = Vec::new();
    for _ in 0..3 {
        let store = PostgresStore::builder(&url)
            .table(&table)
            .pool_size(4)
            .timeout(PATIENT)
            .connect()
            .await
            .expect("postgres connects");
        stores.push(store);
    }
    const PER_TASK: u64 = 60;
    let tasks: Vec<_> = stores
        .iter()
        .flat_map(|s| std::iter::repeat_n(s.clone(), 4))
        .map(|store| {
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..PER_TASK {
                    conflicts += increment(&store, b"counter").await;
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let total = stores[0].get(b"counter").await.unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(total.try_into().unwrap()), 12 * PER_TASK);
    eprintln!("{conflicts} conflicts retried");
    stores.pop().unwrap().drop_table().await.unwrap();
}

/// Sixteen stores race to insert one key (over an expired row, the harder case): exactly
/// one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn insert_race_across_pools_has_one_winner() {
    let Some(url) = postgres_url() else { return };
    let table = run_table("insert");
    let clock = ManualClock::starting_now();
    let mut stores = Vec::new();
    for _ in 0..16 {
        let store = PostgresStore::builder(&url)
            .table(&table)
            .clock(clock.clone())
            .timeout(PATIENT)
            .connect()
            .await
            .expect("postgres connects");
        stores.push(store);
    }
    stores[0]
        .put(b"race", b"old", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let start = Arc::new(tokio::sync::Barrier::new(stores.len()));
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (s, start) = (s.clone(), Arc::clone(&start));
            let i = u8::try_from(i).unwrap();
            tokio::spawn(async move {
                start.wait().await;
                (i, s.insert_if_absent(b"race", &[i], None).await.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        stores[3].get(b"race").await.unwrap(),
        Some(vec![winners[0]])
    );
    stores.pop().unwrap().drop_table().await.unwrap();
}

/// Two applications in one database, each in its own table, never see each other, and
/// clearing one leaves the other whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_keep_applications_apart() {
    let Some(url) = postgres_url() else { return };
    let shop = connect(&url, &run_table("shop")).await;
    let blog = connect(&url, &run_table("blog")).await;
    shop.put(b"dev/1", b"shop", None).await.unwrap();
    blog.put(b"dev/1", b"blog", None).await.unwrap();
    blog.batch(vec![
        BatchOp::Put {
            key: b"dev/2".to_vec(),
            value: b"blog".to_vec(),
            ttl: Some(Duration::from_secs(60)),
        },
        BatchOp::Delete {
            key: b"dev/9".to_vec(),
        },
    ])
    .await
    .unwrap();
    let value = |v: Option<Vec<u8>>| v.map(|v| String::from_utf8(v).unwrap());
    assert_eq!(
        value(shop.get(b"dev/1").await.unwrap()).as_deref(),
        Some("shop")
    );
    assert_eq!(
        value(blog.get(b"dev/1").await.unwrap()).as_deref(),
        Some("blog")
    );
    assert_eq!(devices(&shop).await, 1);
    assert_eq!(devices(&blog).await, 2);
    assert!(
        !shop.delete(b"dev/2").await.unwrap(),
        "blog's key is not shop's"
    );

    assert_eq!(shop.clear().await.unwrap(), 1);
    assert_eq!(shop.get(b"dev/1").await.unwrap(), None);
    assert_eq!(devices(&blog).await, 2);
    shop.drop_table().await.unwrap();
    assert_eq!(
        value(blog.get(b"dev/1").await.unwrap()).as_deref(),
        Some("blog")
    );
    blog.drop_table().await.unwrap();
}

/// Instances starting together all create (or find) the table; none fails on the race.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_share_one_new_table() {
    let Some(url) = postgres_url() else { return };
    let table = run_table("race");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (url, table) = (url.clone(), table.clone());
            tokio::spawn(async move {
                let config = PostgresStore::builder(url).table(table).timeout(PATIENT);
                config.connect().await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.unwrap().expect("every instance connects"));
    }
    stores[0].put(b"k", b"v", None).await.unwrap();
    assert_eq!(
        stores[7].get(b"k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    stores.pop().unwrap().drop_table().await.unwrap();
}

/// A table recorded with a newer layout than this crate knows is refused at connect,
/// not misread; a bad table name is refused before any connection.
#[tokio::test]
async fn newer_layouts_and_bad_table_names_are_refused() {
    let Some(url) = postgres_url() else { return };
    let table = run_table("layout");
    let store = connect(&url, &table).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("a plain client connects");
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE actix_device_schema SET version = 2 WHERE store_table = $1",
            &[&table],
        )
        .await
        .unwrap();
    let err = PostgresStore::builder(&url)
        .table(&table)
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("layout version 2"), "{err}");
    store.drop_table().await.unwrap();

    for bad in ["", "Shop", "shop; DROP TABLE users", "a\"b", "2fa"] {
        let err = PostgresStore::builder(&url)
            .table(bad)
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidArgument(_)),
            "{bad}: {err}"
        );
    }
}

/// A bad URL, an unreachable server or a wrong password is an `Open` error naming the
/// server, never the password, and comes back promptly.
#[tokio::test]
async fn connect_errors_name_the_server_not_the_password() {
    let port = free_port();
    let url = format!("postgres://app:hunter2-secret@127.0.0.1:{port}/shop");
    let config = PostgresStore::builder(&url).connect_timeout(Duration::from_millis(300));
    assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
    let err = tokio::time::timeout(Duration::from_secs(30), config.connect())
        .await
        .expect("connect gives up")
        .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}/shop")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the cause is kept"
    );

    let err = PostgresStore::connect("postgres://app:hunter2@[::1:5432/x")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    // A real server refusing the password says so, without repeating it.
    let Some(real) = postgres_url() else { return };
    let (_, rest) = real.split_once('@').expect("the URL has credentials");
    let wrong = format!("postgres://actix_device:hunter2-wrong@{rest}");
    let err = PostgresStore::connect(wrong).await.unwrap_err();
    let text = format!("{err} / {:?}", std::error::Error::source(&err));
    assert!(matches!(err, StoreError::Open { .. }), "{text}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

/// A server that stops answering (every process SIGSTOPped) makes calls fail after the
/// store's timeout instead of hanging; once it answers again, so does the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_times_out_and_the_store_recovers() {
    let Some(pg) = OwnPostgres::start() else {
        return;
    };
    let store = PostgresStore::builder(pg.url())
        .timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    store.put(b"k", b"v", None).await.unwrap();

    pg.freeze();
    for call in 0..3 {
        let outcome = tokio::time::timeout(Duration::from_secs(30), store.get(b"k"))
            .await
            .expect("the store's own timeout fires first");
        let err = outcome.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Backend {
                    backend: "postgres",
                    ..
                }
            ),
            "{call}: {err}"
        );
    }
    let err = tokio::time::timeout(Duration::from_secs(30), store.put(b"k", b"w", None))
        .await
        .expect("writes time out too")
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err}");
    let connecting = PostgresStore::builder(pg.url())
        .timeout(Duration::from_millis(300))
        .connect();
    let err = tokio::time::timeout(Duration::from_secs(30), connecting)
        .await
        .expect("connecting times out too")
        .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");

    pg.thaw();
    let v = eventually(|| store.get(b"k")).await.expect("k is there");
    // The timed-out put may or may not have been applied: either value is right.
    assert!(v == b"v" || v == b"w", "{v:?}");
    store.put(b"k", b"x", None).await.unwrap();
    assert_eq!(store.get(b"k").await.unwrap().as_deref(), Some(&b"x"[..]));
}

/// A server shut down under the store (every connection cut) makes calls fail; once it
/// is back the pool replaces the dead connections by itself, and every acknowledged
/// write is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_keeps_acknowledged_writes_and_the_store_reconnects() {
    let Some(mut pg) = OwnPostgres::start() else {
        return;
    };
    let store = PostgresStore::builder(pg.url())
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    for i in 0..20u8 {
        store.put(&[b'k', i], &[i], None).await.unwrap();
    }
    pg.kill();
    let err = store.get(b"k\x00").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Backend {
                backend: "postgres",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        store.flush().await.is_err(),
        "flush reports the server gone"
    );

    pg.restart();
    eventually(|| store.flush()).await;
    let page = store.scan_prefix(b"k", None, 100).await.unwrap();
    assert_eq!(page.entries.len(), 20, "every acknowledged write survived");
    store.put(b"after", b"restart", None).await.unwrap();
}

/// Retries `call` until it succeeds (the store is back), for at most 20 seconds.
async fn eventually<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "the store did not recover: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
