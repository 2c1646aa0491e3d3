//! The conformance suite on real sled directories in a temp dir: with the read cache (the
//! default) and without it.

mod lock_release;

use actix_device_sled::SledStore;
use actix_device_store::testkit::{self, Harness};
use actix_device_store::{async_trait, ManualClock, ReadCacheConfig};

struct Sled {
    dir: tempfile::TempDir,
    next: std::sync::atomic::AtomicUsize,
    flush_every_write: bool,
}

#[async_trait]
impl Harness for Sled {
    type Store = SledStore;

    async fn open(&self, clock: ManualClock) -> SledStore {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        SledStore::builder(self.dir.path().join(n.to_string()))
            .clock(clock)
            .flush_every_write(self.flush_every_write)
            .open()
            .expect("sled opens")
    }

    async fn reopen(&self, store: SledStore, clock: ManualClock) -> Option<SledStore> {
        let path = store.path().to_owned();
        drop(store);
        Some(lock_release::open_after_drop(|| SledStore::builder(&path).clock(clock.clone())).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_passes_the_conformance_suite() {
    testkit::run_suite(&Sled {
        dir: tempfile::tempdir().unwrap(),
        next: 0.into(),
        flush_every_write: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_flush_every_write_passes_too() {
    testkit::run_suite(&Sled {
        dir: tempfile::tempdir().unwrap(),
        next: 0.into(),
        flush_every_write: true,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_without_read_cache_passes_too() {
    struct Uncached(tempfile::TempDir, std::sync::atomic::AtomicUsize);
    #[async_trait]
    impl Harness for Uncached {
        type Store = SledStore;
        async fn open(&self, clock: ManualClock) -> SledStore {
            let n = self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            SledStore::builder(self.0.path().join(n.to_string()))
                .clock(clock)
                .read_cache(ReadCacheConfig::disabled())
                .open()
                .unwrap()
        }
        async fn reopen(&self, store: SledStore, clock: ManualClock) -> Option<SledStore> {
            let path = store.path().to_owned();
            drop(store);
            Some(
                lock_release::open_after_drop(|| {
                    SledStore::builder(&path)
                        .clock(clock.clone())
                        .read_cache(ReadCacheConfig::disabled())
                })
                .await,
            )
        }
    }
    testkit::run_suite(&Uncached(tempfile::tempdir().unwrap(), 0.into())).await;
}
