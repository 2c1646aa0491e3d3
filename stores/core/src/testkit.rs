//! The conformance suite: the definition of a correct [`Store`].
//!
//! A store crate (ours or yours) implements [`Harness`] — how to open a fresh store on a
//! given clock, and for persistent stores how to reopen it — and runs [`run_suite`] from a
//! multi-threaded tokio test:
//!
//! ```ignore
//! use actix_device_store::{testkit, ManualClock};
//!
//! struct MyHarness { dir: tempfile::TempDir }
//!
//! #[actix_device_store::async_trait]
//! impl testkit::Harness for MyHarness {
//!     type Store = MyStore;
//!     async fn open(&self, clock: ManualClock) -> MyStore {
//!         MyStore::open_fresh(self.dir.path(), clock)
//!     }
//!     async fn reopen(&self, old: MyStore, clock: ManualClock) -> Option<MyStore> {
//!         let path = old.path().to_owned();
//!         drop(old);
//!         Some(MyStore::open(path, clock))
//!     }
//! }
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn conformance() {
//!     testkit::run_suite(&MyHarness { dir: tempfile::tempdir().unwrap() }).await;
//! }
//! ```
//!
//! Every check is also public on its own, so a failure names the rule that broke. The
//! concurrency checks spawn tokio tasks: run the suite on a multi-threaded runtime so
//! they really race.

use std::any::Any;
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;

use crate::{
    BatchOp, CasOutcome, ManualClock, Store, StoreError, MAX_KEY_LEN, MAX_SCAN_LIMIT, MAX_VALUE_LEN,
};

/// How the suite gets stores to test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The store under test.
    type Store: Store;

    /// A fresh, empty store that measures expiry by `clock`.
    async fn open(&self, clock: ManualClock) -> Self::Store;

    /// For persistent stores: close `store` (after its `flush`) and open the same data
    /// again on `clock`. The default, `None`, marks a store that keeps nothing across
    /// restarts; the persistence check is then skipped with a printed note.
    async fn reopen(&self, store: Self::Store, clock: ManualClock) -> Option<Self::Store> {
        drop((store, clock));
        None
    }
}

/// A clock far from the epoch and from the wall clock, so stores cannot lean on either.
fn clock() -> ManualClock {
    ManualClock::new(1_900_000_000_000)
}

/// Runs every check in turn, printing each name as it starts. A failing check panics
/// with its name and the broken assertion: `conformance check `scan_...` failed: ...`.
pub async fn run_suite<H: Harness>(h: &H) {
    macro_rules! check {
        ($($name:ident),* $(,)?) => {
            $(
                eprintln!("conformance: {}", stringify!($name));
                if let Err(panic) = AssertUnwindSafe($name(h)).catch_unwind().await {
                    panic!(
                        "conformance check `{}` failed: {}",
                        stringify!($name),
                        panic_message(panic.as_ref())
                    );
                }
            )*
        };
    }
    check!(
        round_trips,
        binary_keys_and_values,
        large_values,
        limits_are_errors,
        ttl_hides_expired_entries_everywhere,
        put_without_ttl_clears_the_old_ttl,
        purge_removes_expired_entries,
        insert_if_absent_race_has_one_winner,
        compare_and_swap_combinations,
        compare_and_swap_counter_loses_no_update,
        scan_is_ordered_and_bounded_by_prefix,
        scan_pages_neither_skip_nor_repeat_under_inserts,
        batch_is_all_or_nothing_for_readers,
        failed_batch_leaves_nothing,
        flushed_writes_survive_reopen,
    );
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(a panic without a message)"
    }
}

/// get / put / delete round trips, overwrite, delete of a missing key.
pub async fn round_trips<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    assert_eq!(s.get(b"k").await.unwrap(), None);
    s.put(b"k", b"v1", None).await.unwrap();
    assert_eq!(s.get(b"k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    s.put(b"k", b"v2", None).await.unwrap();
    assert_eq!(s.get(b"k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert!(s.delete(b"k").await.unwrap(), "delete reports a live entry");
    assert!(
        !s.delete(b"k").await.unwrap(),
        "delete of a missing key is false"
    );
    assert_eq!(s.get(b"k").await.unwrap(), None);
}

/// Keys and values are arbitrary bytes; empty values are values.
pub async fn binary_keys_and_values<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    let keys: [&[u8]; 4] = [b"\x00", b"\xff\xfe\x00\x01", b"a\x00b", &[0x80; 64]];
    for (i, k) in keys.iter().enumerate() {
        let v: Vec<u8> = (0..=255u8).cycle().skip(i).take(300).collect();
        s.put(k, &v, None).await.unwrap();
        assert_eq!(s.get(k).await.unwrap(), Some(v));
    }
    s.put(b"empty", b"", None).await.unwrap();
    assert_eq!(s.get(b"empty").await.unwrap(), Some(Vec::new()));
    assert!(
        s.delete(b"empty").await.unwrap(),
        "an empty value is a live entry"
    );
}

/// 1 MiB values round-trip.
pub async fn large_values<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    let v: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    s.put(b"big", &v, None).await.unwrap();
    assert_eq!(s.get(b"big").await.unwrap(), Some(v.clone()));
    let edge = vec![1u8; MAX_VALUE_LEN];
    s.put(b"edge", &edge, None).await.unwrap();
    assert_eq!(
        s.get(b"edge").await.unwrap().map(|v| v.len()),
        Some(MAX_VALUE_LEN)
    );
}

/// Keys and values over the limits, empty keys and a zero scan limit are errors, never
/// panics, and write nothing.
pub async fn limits_are_errors<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    let long_key = vec![b'k'; MAX_KEY_LEN + 1];
    let long_value = vec![0u8; MAX_VALUE_LEN + 1];
    assert!(matches!(
        s.put(&long_key, b"v", None).await,
        Err(StoreError::KeyTooLarge { .. })
    ));
    assert!(matches!(
        s.put(b"", b"v", None).await,
        Err(StoreError::EmptyKey)
    ));
    assert!(matches!(s.get(b"").await, Err(StoreError::EmptyKey)));
    assert!(matches!(
        s.get(&long_key).await,
        Err(StoreError::KeyTooLarge { .. })
    ));
    assert!(matches!(
        s.put(b"k", &long_value, None).await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        s.insert_if_absent(b"k", &long_value, None).await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        s.compare_and_swap(b"k", None, Some(&long_value), None)
            .await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        s.delete(&long_key).await,
        Err(StoreError::KeyTooLarge { .. })
    ));
    assert!(matches!(
        s.scan_prefix(b"", None, 0).await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        s.scan_prefix(b"", None, MAX_SCAN_LIMIT + 1).await,
        Err(StoreError::InvalidArgument(_))
    ));
    let err = s.put(b"k", &long_value, None).await.unwrap_err();
    assert!(
        err.to_string().contains("\"k\""),
        "the error names the key: {err}"
    );
    assert_eq!(s.get(b"k").await.unwrap(), None, "nothing was written");
    let key_max = vec![b'm'; MAX_KEY_LEN];
    s.put(&key_max, b"ok", None).await.unwrap();
    assert_eq!(s.get(&key_max).await.unwrap().as_deref(), Some(&b"ok"[..]));
}

/// An expired entry is absent for get, scan, compare-and-swap, insert-if-absent and
/// delete's answer.
pub async fn ttl_hides_expired_entries_everywhere<H: Harness>(h: &H) {
    let c = clock();
    let s = h.open(c.clone()).await;
    let ttl = Some(Duration::from_secs(10));
    for k in [&b"t/get"[..], b"t/scan", b"t/cas", b"t/ins", b"t/del"] {
        s.put(k, b"v", ttl).await.unwrap();
    }
    s.put(b"t/forever", b"f", None).await.unwrap();
    c.advance(Duration::from_millis(9_999));
    assert_eq!(
        s.get(b"t/get").await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "alive before its time"
    );
    c.advance(Duration::from_millis(1));
    assert_eq!(s.get(b"t/get").await.unwrap(), None, "expired at its time");
    let page = s.scan_prefix(b"t/", None, 100).await.unwrap();
    assert_eq!(page.entries, vec![(b"t/forever".to_vec(), b"f".to_vec())]);
    assert_eq!(page.next, None);
    // "t/get", "t/ins" and "t/scan" sort after "t/forever" but are expired: no next page.
    let page = s.scan_prefix(b"t/", None, 1).await.unwrap();
    assert_eq!(page.entries, vec![(b"t/forever".to_vec(), b"f".to_vec())]);
    assert_eq!(page.next, None, "only expired entries follow: no cursor");
    assert_eq!(
        s.compare_and_swap(b"t/cas", Some(b"v"), Some(b"w"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict { current: None },
        "CAS sees an expired entry as absent"
    );
    assert!(s
        .compare_and_swap(b"t/cas", None, Some(b"w"), None)
        .await
        .unwrap()
        .is_swapped());
    assert_eq!(s.get(b"t/cas").await.unwrap().as_deref(), Some(&b"w"[..]));
    assert!(
        s.insert_if_absent(b"t/ins", b"new", None).await.unwrap(),
        "expired counts as absent"
    );
    assert_eq!(s.get(b"t/ins").await.unwrap().as_deref(), Some(&b"new"[..]));
    assert!(
        !s.delete(b"t/del").await.unwrap(),
        "deleting an expired entry finds nothing live"
    );
}

/// A put without a TTL replaces the entry's old expiry.
pub async fn put_without_ttl_clears_the_old_ttl<H: Harness>(h: &H) {
    let c = clock();
    let s = h.open(c.clone()).await;
    s.put(b"k", b"short", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    s.put(b"k", b"long", None).await.unwrap();
    c.advance(Duration::from_secs(3600));
    assert_eq!(s.get(b"k").await.unwrap().as_deref(), Some(&b"long"[..]));
    s.put(b"k", b"again", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    c.advance(Duration::from_secs(5));
    assert_eq!(s.get(b"k").await.unwrap(), None);
    assert_eq!(
        s.purge_expired().await.unwrap(),
        1,
        "only the current expiry counts"
    );
}

/// Purge removes exactly the expired entries and reports how many.
pub async fn purge_removes_expired_entries<H: Harness>(h: &H) {
    let c = clock();
    let s = h.open(c.clone()).await;
    for i in 0..20u8 {
        let ttl = (i % 2 == 0).then(|| Duration::from_secs(u64::from(i) + 1));
        s.put(&[b'p', i], &[i], ttl).await.unwrap();
    }
    assert_eq!(s.purge_expired().await.unwrap(), 0);
    c.advance(Duration::from_secs(10));
    // Even i in 0..=8 had ttl i+1 <= 9 < 10 s; i = 10.. still live.
    assert_eq!(s.purge_expired().await.unwrap(), 5);
    assert_eq!(s.purge_expired().await.unwrap(), 0, "purge is idempotent");
    let live = s.scan_prefix(b"p", None, 100).await.unwrap().entries.len();
    assert_eq!(live, 15);
    c.advance(Duration::from_secs(100));
    assert_eq!(s.purge_expired().await.unwrap(), 5);
}

/// 16 tasks race to insert one key: exactly one wins, and its value stays.
pub async fn insert_if_absent_race_has_one_winner<H: Harness>(h: &H) {
    let s = Arc::new(h.open(clock()).await);
    // All 16 start together, so they really race.
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let s = Arc::clone(&s);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                (i, s.insert_if_absent(b"race", &[i], None).await.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.expect("task");
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one insert wins: {winners:?}");
    assert_eq!(s.get(b"race").await.unwrap(), Some(vec![winners[0]]));
}

/// Every expected/new combination of compare-and-swap.
pub async fn compare_and_swap_combinations<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    // absent -> value
    assert!(s
        .compare_and_swap(b"c", None, Some(b"1"), None)
        .await
        .unwrap()
        .is_swapped());
    // absent expected, but present: conflict reports the value
    assert_eq!(
        s.compare_and_swap(b"c", None, Some(b"x"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict {
            current: Some(b"1".to_vec())
        }
    );
    // value -> value
    assert!(s
        .compare_and_swap(b"c", Some(b"1"), Some(b"2"), None)
        .await
        .unwrap()
        .is_swapped());
    // wrong value: conflict, unchanged
    assert_eq!(
        s.compare_and_swap(b"c", Some(b"1"), Some(b"3"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict {
            current: Some(b"2".to_vec())
        }
    );
    assert_eq!(s.get(b"c").await.unwrap().as_deref(), Some(&b"2"[..]));
    // value -> delete
    assert!(s
        .compare_and_swap(b"c", Some(b"2"), None, None)
        .await
        .unwrap()
        .is_swapped());
    assert_eq!(s.get(b"c").await.unwrap(), None);
    // absent -> delete (a no-op that succeeds)
    assert!(s
        .compare_and_swap(b"c", None, None, None)
        .await
        .unwrap()
        .is_swapped());
    assert_eq!(s.get(b"c").await.unwrap(), None);
    // value expected, but absent
    assert_eq!(
        s.compare_and_swap(b"c", Some(b"2"), None, None)
            .await
            .unwrap(),
        CasOutcome::Conflict { current: None }
    );
    // empty value is a value, distinct from absence
    assert!(s
        .compare_and_swap(b"c", None, Some(b""), None)
        .await
        .unwrap()
        .is_swapped());
    assert_eq!(
        s.compare_and_swap(b"c", None, Some(b"x"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict {
            current: Some(Vec::new())
        }
    );
    assert!(s
        .compare_and_swap(b"c", Some(b""), Some(b"e"), None)
        .await
        .unwrap()
        .is_swapped());
    // a swap with a TTL sets it
    let c = clock();
    let t = h.open(c.clone()).await;
    assert!(t
        .compare_and_swap(b"ttl", None, Some(b"v"), Some(Duration::from_secs(1)))
        .await
        .unwrap()
        .is_swapped());
    c.advance(Duration::from_secs(1));
    assert_eq!(t.get(b"ttl").await.unwrap(), None);
}

/// 8 tasks × 250 increments of one counter through a CAS loop end at exactly 2,000.
pub async fn compare_and_swap_counter_loses_no_update<H: Harness>(h: &H) {
    let s = Arc::new(h.open(clock()).await);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                for _ in 0..250 {
                    let mut current = s.get(b"counter").await.unwrap();
                    loop {
                        let n = current
                            .as_deref()
                            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
                            .unwrap_or(0);
                        let next = (n + 1).to_be_bytes();
                        match s
                            .compare_and_swap(b"counter", current.as_deref(), Some(&next), None)
                            .await
                            .unwrap()
                        {
                            CasOutcome::Swapped => break,
                            CasOutcome::Conflict { current: now } => current = now,
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let raw = s.get(b"counter").await.unwrap().expect("counter");
    assert_eq!(u64::from_be_bytes(raw.try_into().expect("8 bytes")), 2_000);
}

/// Keys come back in byte order, only under the prefix, with `next` set exactly when more
/// follow.
pub async fn scan_is_ordered_and_bounded_by_prefix<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    let keys: Vec<&[u8]> = vec![
        b"a\xff",
        b"a\xff\x00",
        b"a\xff\xff",
        b"a\xff\xff\x01",
        b"b",
        b"a\xfe\xff",
        b"a\x00",
    ];
    for k in &keys {
        s.put(k, k, None).await.unwrap();
    }
    let page = s.scan_prefix(b"a\xff", None, 100).await.unwrap();
    let got: Vec<Vec<u8>> = page.entries.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        got,
        vec![
            b"a\xff".to_vec(),
            b"a\xff\x00".to_vec(),
            b"a\xff\xff".to_vec(),
            b"a\xff\xff\x01".to_vec()
        ]
    );
    assert!(page.entries.iter().all(|(k, v)| k == v));
    assert_eq!(page.next, None);
    let all = s.scan_prefix(b"a", None, 100).await.unwrap();
    let got: Vec<Vec<u8>> = all.entries.iter().map(|(k, _)| k.clone()).collect();
    let mut want: Vec<Vec<u8>> = keys
        .iter()
        .filter(|k| k.starts_with(b"a"))
        .map(|k| k.to_vec())
        .collect();
    want.sort();
    assert_eq!(got, want, "byte order");
    // limit honoured, next exact
    let first = s.scan_prefix(b"a", None, 2).await.unwrap();
    assert_eq!(first.entries.len(), 2);
    assert_eq!(first.next.as_deref(), Some(want[1].as_slice()));
    let rest = s
        .scan_prefix(b"a", first.next.as_deref(), 100)
        .await
        .unwrap();
    assert_eq!(rest.entries.len(), want.len() - 2);
    assert_eq!(rest.next, None);
    let exact = s.scan_prefix(b"a", None, want.len()).await.unwrap();
    assert_eq!(exact.next, None, "a full last page has no next");
    // the empty prefix scans everything
    assert_eq!(
        s.scan_prefix(b"", None, 100).await.unwrap().entries.len(),
        keys.len()
    );
    assert!(s
        .scan_prefix(b"zzz", None, 10)
        .await
        .unwrap()
        .entries
        .is_empty());
}

/// Paging with the cursor while other tasks insert: every key present from the start is
/// seen exactly once, in order.
pub async fn scan_pages_neither_skip_nor_repeat_under_inserts<H: Harness>(h: &H) {
    let s = Arc::new(h.open(clock()).await);
    let mut original = BTreeSet::new();
    for i in 0..300u32 {
        let k = format!("page/{:05}", i * 2).into_bytes();
        s.put(&k, b"o", None).await.unwrap();
        original.insert(k);
    }
    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            for i in 0..300u32 {
                let k = format!("page/{:05}", i * 2 + 1).into_bytes();
                s.put(&k, b"n", None).await.unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = s.scan_prefix(b"page/", after.as_deref(), 7).await.unwrap();
        assert!(page.entries.len() <= 7);
        seen.extend(page.entries.into_iter().map(|(k, _)| k));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    writer.await.expect("writer");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "ordered, no repeats");
    for k in &original {
        assert!(
            seen.binary_search(k).is_ok(),
            "skipped {:?}",
            String::from_utf8_lossy(k)
        );
    }
}

/// Concurrent readers see all of a batch or none of it: a scan never mixes two batches,
/// and a reader that has seen a batch's write under one key never sees an older value
/// under another. Batch deletes and batch TTLs work like their single-key forms.
pub async fn batch_is_all_or_nothing_for_readers<H: Harness>(h: &H) {
    const KEYS: usize = 64;
    const GENERATIONS: u32 = 150;
    let c = clock();
    let s = Arc::new(h.open(c.clone()).await);
    let keys: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| format!("b/{i:03}").into_bytes())
        .collect();
    let batch_of = |generation: u32| -> Vec<BatchOp> {
        keys.iter()
            .map(|k| BatchOp::Put {
                key: k.clone(),
                value: generation.to_be_bytes().to_vec(),
                ttl: None,
            })
            .collect()
    };
    let generation_of = |v: &[u8]| u32::from_be_bytes(v.try_into().expect("4-byte generation"));
    s.batch(batch_of(0)).await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    // The writer starts once all three readers are running.
    let started = Arc::new(tokio::sync::Barrier::new(4));
    let scanners: Vec<_> = (0..2)
        .map(|_| {
            let (s, done, started) = (Arc::clone(&s), Arc::clone(&done), Arc::clone(&started));
            tokio::spawn(async move {
                started.wait().await;
                let mut last = 0u32;
                while !done.load(Ordering::SeqCst) {
                    let page = s.scan_prefix(b"b/", None, 100).await.unwrap();
                    assert_eq!(page.entries.len(), KEYS, "a scan lost keys of a batch");
                    let seen: BTreeSet<u32> =
                        page.entries.iter().map(|(_, v)| generation_of(v)).collect();
                    assert_eq!(seen.len(), 1, "a scan saw two batches mixed: {seen:?}");
                    let now = seen.into_iter().next().unwrap_or_default();
                    assert!(now >= last, "a scan went back from batch {last} to {now}");
                    last = now;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let getter = {
        let (s, done, started) = (Arc::clone(&s), Arc::clone(&done), Arc::clone(&started));
        let (first, last_key) = (keys[0].clone(), keys[KEYS - 1].clone());
        tokio::spawn(async move {
            started.wait().await;
            // Reads alternate between the batch's first and last key. Every batch writes
            // both, with increasing generations, so an atomic store's answers never
            // decrease, whichever order it applies a batch in.
            let mut last = 0u32;
            while !done.load(Ordering::SeqCst) {
                for key in [&first, &last_key] {
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
    };
    started.wait().await;
    for generation in 1..=GENERATIONS {
        s.batch(batch_of(generation)).await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for reader in scanners.into_iter().chain([getter]) {
        reader.await.expect("reader");
    }
    let page = s.scan_prefix(b"b/", None, 100).await.unwrap();
    assert_eq!(page.entries.len(), KEYS);
    assert!(page
        .entries
        .iter()
        .all(|(_, v)| generation_of(v) == GENERATIONS));

    // deletes in a batch
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

    // TTLs in a batch
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

/// After `flush` and a reopen, every acknowledged write is there, expiry included.
pub async fn flushed_writes_survive_reopen<H: Harness>(h: &H) {
    let c = clock();
    let s = h.open(c.clone()).await;
    for i in 0..100u32 {
        s.put(&i.to_be_bytes(), &[i as u8; 10], None).await.unwrap();
    }
    s.put(b"short", b"s", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    s.put(b"gone", b"g", None).await.unwrap();
    assert!(s.delete(b"gone").await.unwrap());
    s.flush().await.unwrap();
    let Some(s) = h.reopen(s, c.clone()).await else {
        eprintln!("conformance: persistence skipped (the store keeps nothing across restarts)");
        return;
    };
    for i in 0..100u32 {
        assert_eq!(
            s.get(&i.to_be_bytes()).await.unwrap(),
            Some(vec![i as u8; 10])
        );
    }
    assert_eq!(s.get(b"gone").await.unwrap(), None);
    assert_eq!(s.get(b"short").await.unwrap().as_deref(), Some(&b"s"[..]));
    c.advance(Duration::from_secs(5));
    assert_eq!(
        s.get(b"short").await.unwrap(),
        None,
        "the expiry survived the reopen"
    );
    assert_eq!(s.purge_expired().await.unwrap(), 1);
}

/// The crash test for persistent stores: a child process writes records in a loop and
/// prints each one once it is acknowledged; the parent kills it with `SIGKILL` at a random
/// moment, reopens the store and checks that every acknowledged record is there.
///
/// Use it from a test target with `harness = false` whose `main` is one call:
///
/// ```ignore
/// fn main() {
///     actix_device_store::testkit::crash::main(|path| MyStore::open(path), false);
/// }
/// ```
///
/// `ack_after_flush`: whether a write counts as acknowledged only once a `flush` that
/// followed it has returned (stores that are durable only after a flush), or as soon as
/// its `put` returned. 20 cycles by default; the `CRASH_CYCLES` environment variable sets
/// more.
pub mod crash {
    use std::io::{BufRead, BufReader, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use crate::{Store, StoreError};

    const WRITERS: usize = 4;
    const CHILD_ENV: &str = "ACTIX_DEVICE_CRASH_CHILD_DB";

    fn value_for(key: &str) -> Vec<u8> {
        key.bytes().rev().collect()
    }

    /// Runs the child side when started as the child, the parent side otherwise.
    pub fn main<S, F>(open: F, ack_after_flush: bool)
    where
        S: Store,
        F: Fn(&Path) -> Result<S, StoreError>,
    {
        if let Ok(path) = std::env::var(CHILD_ENV) {
            child(&open, PathBuf::from(path), ack_after_flush);
            return;
        }
        if std::env::args().any(|a| a == "--list") {
            return;
        }
        parent(&open);
    }

    fn ack(key: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ack {key}");
        let _ = out.flush();
    }

    /// Writes until killed, printing `ack KEY` for every acknowledged record.
    fn child<S: Store>(
        open: &dyn Fn(&Path) -> Result<S, StoreError>,
        path: PathBuf,
        ack_after_flush: bool,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let store = Arc::new(open(&path).expect("the child opens the store"));
        rt.block_on(async move {
            let run = std::process::id();
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        for i in 0u64.. {
                            let batch: Vec<String> =
                                (0..8).map(|j| format!("r{run}/w{w}/{i:08}/{j}")).collect();
                            for key in &batch {
                                store
                                    .put(key.as_bytes(), &value_for(key), None)
                                    .await
                                    .expect("put");
                                if !ack_after_flush {
                                    ack(key);
                                }
                            }
                            if ack_after_flush {
                                store.flush().await.expect("flush");
                                batch.iter().for_each(|k| ack(k));
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        });
    }

    fn parent<S: Store>(open: &dyn Fn(&Path) -> Result<S, StoreError>) {
        let cycles: u32 = std::env::var("CRASH_CYCLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20);
        let dir = std::env::temp_dir().join(format!("actix-device-crash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("crash.db");
        let exe = std::env::current_exe().expect("own path");
        let mut seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64)
            | 1;
        let mut total = 0usize;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for cycle in 1..=cycles {
            let mut child = Command::new(&exe)
                .env(CHILD_ENV, &path)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the child starts");
            let stdout = child.stdout.take().expect("child stdout");
            let reader = std::thread::spawn(move || {
                BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|l| l.strip_prefix("ack ").map(str::to_owned))
                    .collect::<Vec<String>>()
            });
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let wait = 150 + seed % 450;
            std::thread::sleep(Duration::from_millis(wait));
            child.kill().expect("SIGKILL");
            let _ = child.wait();
            let acked = reader.join().expect("reader");
            let store = open(&path).expect("the store reopens after the crash");
            rt.block_on(async {
                for key in &acked {
                    let got = store.get(key.as_bytes()).await.expect("get");
                    assert_eq!(
                        got,
                        Some(value_for(key)),
                        "cycle {cycle}: acknowledged record {key} lost"
                    );
                }
            });
            drop(store);
            println!(
                "crash cycle {cycle}: killed after {wait} ms, {} acknowledged records all present",
                acked.len()
            );
            total += acked.len();
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            total > 0,
            "the children acknowledged nothing: the test proved nothing"
        );
        println!("crash: {cycles} cycles, {total} acknowledged records checked, none lost");
    }
}
