//! The read cache in front of `RedbStore::get`, on real redb files: the shared checks of
//! `stores/core/tests/shared/read_cache_checks.rs`. A reopen sees what was committed.

use actix_device_redb::RedbStore;
use actix_device_store::{ManualClock, ReadCacheConfig};

type Cached = RedbStore;

fn open(dir: &tempfile::TempDir, clock: &ManualClock) -> Cached {
    RedbStore::builder(dir.path().join("cached.redb"))
        .clock(clock.clone())
        .open()
        .expect("redb opens")
}

fn open_with(dir: &tempfile::TempDir, name: &str, cache: ReadCacheConfig) -> Cached {
    RedbStore::builder(dir.path().join(format!("{name}.redb")))
        .read_cache(cache)
        .open()
        .expect("redb opens")
}

/// redb commits durably on every write: drop and open again.
async fn reopen(dir: &tempfile::TempDir, clock: &ManualClock, store: Cached) -> Cached {
    drop(store);
    open(dir, clock)
}

#[path = "../../core/tests/shared/read_cache_checks.rs"]
mod checks;
