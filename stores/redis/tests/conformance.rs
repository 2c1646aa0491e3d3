//! The conformance suite against a real Redis server.
//!
//! The server's URL comes from `ACTIX_DEVICE_REDIS_URL` (`.ci/redis` starts one and sets
//! it). Without it the test prints why and returns: it is skipped, not passed silently.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_device_redis::RedisStore;
use actix_device_store::testkit::{self, Harness};
use actix_device_store::{async_trait, Clock, ManualClock, SystemClock};

/// The Redis URL, or `None` (with the reason printed) when the tests must skip.
fn redis_url() -> Option<String> {
    match std::env::var("ACTIX_DEVICE_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "SKIPPED: ACTIX_DEVICE_REDIS_URL is not set; start a server with \
                 `source .ci/redis` (or point it at one) to run the Redis tests"
            );
            None
        }
    }
}

struct Redis {
    url: String,
    /// A prefix of this run's own, so runs sharing a server never meet.
    run: String,
    next: AtomicUsize,
}

impl Redis {
    fn prefix(&self, n: usize) -> String {
        format!("{}:{n}:", self.run)
    }
}

#[async_trait]
impl Harness for Redis {
    type Store = RedisStore;

    async fn open(&self, clock: ManualClock) -> RedisStore {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        RedisStore::builder(&self.url)
            .key_prefix(self.prefix(n))
            .clock(clock)
            .connect()
            .await
            .expect("redis connects")
    }

    /// Redis keeps the data, not the client: a new connection with the same prefix must
    /// see every write and its expiry.
    async fn reopen(&self, store: RedisStore, clock: ManualClock) -> Option<RedisStore> {
        let prefix = store.key_prefix().to_vec();
        drop(store);
        Some(
            RedisStore::builder(&self.url)
                .key_prefix(prefix)
                .clock(clock)
                .connect()
                .await
                .expect("redis reconnects"),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_passes_the_conformance_suite() {
    let Some(url) = redis_url() else { return };
    let run = format!(
        "conformance-{}-{}",
        std::process::id(),
        SystemClock.now_millis()
    );
    let harness = Redis {
        url: url.clone(),
        run: run.clone(),
        next: 0.into(),
    };
    testkit::run_suite(&harness).await;
    // Leave the server as we found it.
    let cleaner = RedisStore::builder(&url)
        .key_prefix(format!("{run}:"))
        .connect()
        .await
        .unwrap();
    assert!(cleaner.clear().await.unwrap() > 0);
}
