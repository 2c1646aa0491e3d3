//! Batches: atomic for concurrent readers, all-or-nothing when one write is invalid.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{clock, Harness};
use crate::{BatchOp, ManualClock, Store, StoreError, MAX_VALUE_LEN};

/// Keys in the batches of [`batch_is_all_or_nothing_for_readers`].
const KEYS: usize = 64;
/// Batches its writer applies while the readers run.
const GENERATIONS: u32 = 150;

/// Concurrent readers see all of a batch or none of it: a scan never mixes two batches,
/// and a reader that has seen a batch's write under one key never sees an older value
/// under another. Batch deletes and batch TTLs work like their single-key forms.
pub async fn batch_is_all_or_nothing_for_readers<H: Harness>(h: &H) {
    let c = clock();
    let s = Arc::new(h.open(c.clone()).await);
    let keys: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| format!("b/{i:03}").into_bytes())
        .collect();
    s.batch(batch_of(&keys, 0)).await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    // The writer starts once all three readers are running.
    let started = Arc::new(tokio::sync::Barrier::new(4));
    let mut readers: Vec<_> = (0..2)
        .map(|_| spawn_scanner(Arc::clone(&s), Arc::clone(&done), Arc::clone(&started)))
        .collect();
    readers.push(spawn_getter(
        Arc::clone(&s),
        Arc::clone(&done),
        Arc::clone(&started),
        [keys[0].clone(), keys[KEYS - 1].clone()],
    ));
    started.wait().await;
    for generation in 1..=GENERATIONS {
        s.batch(batch_of(&keys, generation)).await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.expect("reader");
    }
    let page = s.scan_prefix(b"b/", None, 100).await.unwrap();
    assert_eq!(page.entries.len(), KEYS);
    assert!(page
        .entries
        .iter()
        .all(|(_, v)| generation_of(v) == GENERATIONS));

    batch_deletes_apply(&*s, &keys).await;
    batch_ttls_apply(&*s, &c).await;
}

/// One batch that writes `generation` under every key.
fn batch_of(keys: &[Vec<u8>], generation: u32) -> Vec<BatchOp> {
    keys.iter()
        .map(|k| BatchOp::Put {
            key: k.clone(),
            value: generation.to_be_bytes().to_vec(),
            ttl: None,
        })
        .collect()
}

fn generation_of(v: &[u8]) -> u32 {
    u32::from_be_bytes(v.try_into().expect("4-byte generation"))
}

/// A reader that scans every batched key until `done`: each scan sees every key, all
/// from one batch, and never an older batch than the scan before.
fn spawn_scanner<S: Store>(
    s: Arc<S>,
    done: Arc<AtomicBool>,
    started: Arc<tokio::sync::Barrier>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        started.wait().await;
        let mut last = 0u32;
        while !done.load(Ordering::SeqCst) {
            let page = s.scan_prefix(b"b/", None, 100).await.unwrap();
            assert_eq!(page.entries.len(), KEYS, "a scan lost keys of a batch");
            let seen: BTreeSet<u32> = page.entries.iter().map(|(_, v)| generation_of(v)).collect();
            assert_eq!(seen.len(), 1, "a scan saw two batches mixed: {seen:?}");
            let now = seen.into_iter().next().unwrap_or_default();
            assert!(now >= last, "a scan went back from batch {last} to {now}");
            last = now;
            tokio::task::yield_now().await;
        }
    })
}

/// A reader that gets the batch's first and last key in turn until `done`.
fn spawn_getter<S: Store>(
    s: Arc<S>,
    done: Arc<AtomicBool>,
    started: Arc<tokio::sync::Barrier>,
    ends: [Vec<u8>; 2],
) -> JoinHandle<()> {
    tokio::spawn(async move {
        started.wait().await;
        // Reads alternate between the batch's first and last key. Every batch writes
        // both, with increasing generations, so an atomic store's answers never
        // decrease, whichever order it applies a batch in.
        let mut last = 0u32;
        while !done.load(Ordering::SeqCst) {
            for key in &ends {
                let v = s.get(key).await.unwrap().expect("batched key present");
                let now = generation_of(&v);
                assert!(
                    now >= last,
                    "after batch {last} was seen, {:?} still held batch {now}",
                    String::from_utf8_lossy(key)
                );
                last = now;
            }
            tokio::task::yield_now().await;
        }
    })
}

/// Deletes in a batch remove every key.
async fn batch_deletes_apply<S: Store>(s: &S, keys: &[Vec<u8>]) {
    let ops = keys
        .iter()
        .map(|k| BatchOp::Delete { key: k.clone() })
        .collect();
    s.batch(ops).await.unwrap();
    assert!(s
        .scan_prefix(b"b/", None, 100)
        .await
        .unwrap()
        .entries
        .is_empty());
}

/// TTLs in a batch expire their entries, and only theirs.
async fn batch_ttls_apply<S: Store>(s: &S, c: &ManualClock) {
    let ops = vec![
        BatchOp::Put {
            key: b"bt/short".to_vec(),
            value: b"s".to_vec(),
            ttl: Some(Duration::from_secs(5)),
        },
        BatchOp::Put {
            key: b"bt/long".to_vec(),
            value: b"l".to_vec(),
            ttl: None,
        },
    ];
    s.batch(ops).await.unwrap();
    c.advance(Duration::from_secs(5));
    assert_eq!(s.get(b"bt/short").await.unwrap(), None, "batch TTL applies");
    assert_eq!(s.get(b"bt/long").await.unwrap().as_deref(), Some(&b"l"[..]));
    assert_eq!(s.purge_expired().await.unwrap(), 1);
}

/// A batch with one invalid write fails and writes nothing.
pub async fn failed_batch_leaves_nothing<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    s.put(b"keep", b"old", None).await.unwrap();
    let ops = vec![
        BatchOp::Put {
            key: b"f/1".to_vec(),
            value: b"a".to_vec(),
            ttl: None,
        },
        BatchOp::Delete {
            key: b"keep".to_vec(),
        },
        BatchOp::Put {
            key: b"f/2".to_vec(),
            value: vec![0; MAX_VALUE_LEN + 1],
            ttl: None,
        },
    ];
    assert!(matches!(
        s.batch(ops).await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert_eq!(s.get(b"f/1").await.unwrap(), None);
    assert_eq!(s.get(b"keep").await.unwrap().as_deref(), Some(&b"old"[..]));
    let ops = vec![
        BatchOp::Put {
            key: b"f/3".to_vec(),
            value: b"a".to_vec(),
            ttl: None,
        },
        BatchOp::Delete { key: Vec::new() },
    ];
    assert!(matches!(s.batch(ops).await, Err(StoreError::EmptyKey)));
    assert_eq!(s.get(b"f/3").await.unwrap(), None);
    s.batch(Vec::new()).await.unwrap();
}
