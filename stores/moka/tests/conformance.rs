//! The conformance suite on the in-memory store, and its eviction under a byte budget.

use actix_device_moka::MokaStore;
use actix_device_store::testkit::{self, Harness};
use actix_device_store::{async_trait, ManualClock, Store};

struct Moka;

#[async_trait]
impl Harness for Moka {
    type Store = MokaStore;

    async fn open(&self, clock: ManualClock) -> MokaStore {
        MokaStore::builder().clock(clock).build()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moka_passes_the_conformance_suite() {
    testkit::run_suite(&Moka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moka_evicts_under_its_byte_capacity() {
    let store = MokaStore::builder().max_bytes(64 * 1024).build();
    for i in 0..1_000u32 {
        store
            .put(&i.to_be_bytes(), &[0u8; 1024], None)
            .await
            .unwrap();
    }
    store.run_pending_tasks().await;
    let mut live = 0;
    for i in 0..1_000u32 {
        if store.get(&i.to_be_bytes()).await.unwrap().is_some() {
            live += 1;
        }
    }
    assert!(live > 0, "some entries stay");
    assert!(
        live <= 64,
        "at most capacity / entry weight stay, got {live}"
    );
}

/// Every read of a moka store is in memory: `peek` always answers, and the answer follows
/// the writes (the conformance suite checks it is never stale).
#[tokio::test]
async fn every_key_peeks() {
    use actix_device_store::{Peek, Store};
    let store = actix_device_moka::MokaStore::new();
    assert_eq!(store.peek(b"k"), Peek::Absent);
    store.put(b"k", b"v", None).await.unwrap();
    assert_eq!(
        store.peek(b"k"),
        Peek::Value(std::sync::Arc::from(&b"v"[..]))
    );
    assert!(store.delete(b"k").await.unwrap());
    assert_eq!(store.peek(b"k"), Peek::Absent);
}
