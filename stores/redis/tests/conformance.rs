//! The conformance suite against a real Redis server.
//!
//! The server's URL comes from `ACTIX_DEVICE_REDIS_URL` (`.ci/with-redis` starts one and
//! sets it). Without it the test prints why and returns: skipped, never passed silently.

mod support;

use std::sync::Mutex;

use actix_device_redis::RedisStore;
use actix_device_store::testkit::{self, Harness};
use actix_device_store::{async_trait, ManualClock};
use support::{redis_url, run_prefix};

struct Redis {
    url: String,
    run: String,
    /// Every prefix handed out, to clear them at the end.
    prefixes: Mutex<Vec<String>>,
}

impl Redis {
    async fn connect(&self, prefix: &str, clock: ManualClock) -> RedisStore {
        RedisStore::builder(&self.url)
            .key_prefix(prefix)
            .clock(clock)
            .connect()
            .await
            .expect("redis connects")
    }
}

#[async_trait]
impl Harness for Redis {
    type Store = RedisStore;

    /// Each store gets a prefix of its own: a fresh, empty namespace on the shared server.
    async fn open(&self, clock: ManualClock) -> RedisStore {
        let prefix = {
            let mut all = self.prefixes.lock().unwrap();
            let prefix = format!("{}{}:", self.run, all.len());
            all.push(prefix.clone());
            prefix
        };
        self.connect(&prefix, clock).await
    }

    /// Redis keeps the data, not the client: a new connection with the same prefix must
    /// see every write and its expiry.
    async fn reopen(&self, store: RedisStore, clock: ManualClock) -> Option<RedisStore> {
        let prefix = String::from_utf8(store.key_prefix().to_vec()).unwrap();
        drop(store);
        Some(self.connect(&prefix, clock).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_passes_the_conformance_suite() {
    let Some(url) = redis_url() else { return };
    let harness = Redis {
        url,
        run: run_prefix("conformance"),
        prefixes: Mutex::new(Vec::new()),
    };
    testkit::run_suite(&harness).await;
    // Leave the server as we found it.
    let prefixes = harness.prefixes.lock().unwrap().clone();
    for prefix in prefixes {
        let store = harness.connect(&prefix, ManualClock::starting_now()).await;
        store.clear().await.unwrap();
    }
}
