//! The read cache in front of `SledStore::get`, on real sled directories: the shared
//! checks of `stores/core/tests/shared/read_cache_checks.rs`. A reopen sees what was
//! flushed (sled's durability point).

mod lock_release;

use actix_device_sled::SledStore;
use actix_device_store::{ManualClock, ReadCacheConfig, Store};

type Cached = SledStore;

fn open(dir: &tempfile::TempDir, clock: &ManualClock) -> Cached {
    SledStore::builder(dir.path().join("cached"))
        .clock(clock.clone())
        .open()
        .expect("sled opens")
}

fn open_with(dir: &tempfile::TempDir, name: &str, cache: ReadCacheConfig) -> Cached {
    SledStore::builder(dir.path().join(name))
        .read_cache(cache)
        .open()
        .expect("sled opens")
}

/// sled is durable after a flush (see the crate docs); its directory lock is released by
/// a background thread a moment after the drop.
async fn reopen(dir: &tempfile::TempDir, clock: &ManualClock, store: Cached) -> Cached {
    store.flush().await.unwrap();
    drop(store);
    lock_release::open_after_drop(|| {
        SledStore::builder(dir.path().join("cached")).clock(clock.clone())
    })
    .await
}

#[path = "../../core/tests/shared/read_cache_checks.rs"]
mod checks;
