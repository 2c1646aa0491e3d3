//! The conformance suite on real redb files in a temp dir: with the read cache (the
//! default), durable or not, and without it.

use actix_device_redb::RedbStore;
use actix_device_store::testkit::{self, Harness};
use actix_device_store::{async_trait, ManualClock, ReadCacheConfig};

struct Redb {
    dir: tempfile::TempDir,
    next: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Harness for Redb {
    type Store = RedbStore;

    async fn open(&self, clock: ManualClock) -> RedbStore {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        RedbStore::builder(self.dir.path().join(format!("{n}.redb")))
            .clock(clock)
            .open()
            .expect("redb opens")
    }

    async fn reopen(&self, store: RedbStore, clock: ManualClock) -> Option<RedbStore> {
        let path = store.path().to_owned();
        drop(store);
        Some(
            RedbStore::builder(path)
                .clock(clock)
                .open()
                .expect("redb reopens"),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_passes_the_conformance_suite() {
    let harness = Redb {
        dir: tempfile::tempdir().unwrap(),
        next: 0.into(),
    };
    testkit::run_suite(&harness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_non_durable_mode_passes_too() {
    struct Fast(tempfile::TempDir, std::sync::atomic::AtomicUsize);
    #[async_trait]
    impl Harness for Fast {
        type Store = RedbStore;
        async fn open(&self, clock: ManualClock) -> RedbStore {
            let n = self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            RedbStore::builder(self.0.path().join(format!("{n}.redb")))
                .clock(clock)
                .durable(false)
                .open()
                .unwrap()
        }
        async fn reopen(&self, store: RedbStore, clock: ManualClock) -> Option<RedbStore> {
            let path = store.path().to_owned();
            drop(store);
            Some(
                RedbStore::builder(path)
                    .clock(clock)
                    .durable(false)
                    .open()
                    .unwrap(),
            )
        }
    }
    testkit::run_suite(&Fast(tempfile::tempdir().unwrap(), 0.into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_without_read_cache_passes_too() {
    struct Uncached(tempfile::TempDir, std::sync::atomic::AtomicUsize);
    #[async_trait]
    impl Harness for Uncached {
        type Store = RedbStore;
        async fn open(&self, clock: ManualClock) -> RedbStore {
            let n = self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            RedbStore::builder(self.0.path().join(format!("{n}.redb")))
                .clock(clock)
                .read_cache(ReadCacheConfig::disabled())
                .open()
                .unwrap()
        }
        async fn reopen(&self, store: RedbStore, clock: ManualClock) -> Option<RedbStore> {
            let path = store.path().to_owned();
            drop(store);
            Some(
                RedbStore::builder(path)
                    .clock(clock)
                    .read_cache(ReadCacheConfig::disabled())
                    .open()
                    .unwrap(),
            )
        }
    }
    testkit::run_suite(&Uncached(tempfile::tempdir().unwrap(), 0.into())).await;
}
