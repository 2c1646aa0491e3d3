//! The checks every store that answers `get` from a [`ReadCache`] runs, on real files in
//! a temp dir: hot reads skip the blocking pool, writes of every kind are seen at once,
//! expiry is honoured through the cache, concurrent readers never go back in time, a
//! reopen sees what was made durable, a disabled cache reads through, a small one evicts.
//!
//! Included by the redb and sled crates' `tests/read_cache.rs` with `#[path]`; the
//! including file provides `Cached` (the store type), `open`, `open_with` and `reopen`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::{BatchOp, ManualClock, ReadCacheConfig, Store};

use super::{open, open_with, reopen, Cached};

fn counter(v: Option<Vec<u8>>) -> u64 {
    v.map_or(0, |v| {
        u64::from_be_bytes(v.try_into().expect("8-byte counter"))
    })
}

#[test]
fn a_hot_get_needs_no_blocking_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, &ManualClock::new(1_000));
    // One blocking thread, which the test then occupies: a get that hopped to the
    // blocking pool would wait for it forever (the timeout turns that hang into a failure).
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        store.put(b"sess/hot", b"alive", None).await.unwrap();
        assert_eq!(
            store.get(b"sess/hot").await.unwrap().as_deref(),
            Some(&b"alive"[..])
        );
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || wait.recv());
        let hot = tokio::time::timeout(Duration::from_secs(60), store.get(b"sess/hot")).await;
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let hot = hot.expect("a hot get waited for the blocking pool");
        assert_eq!(hot.unwrap().as_deref(), Some(&b"alive"[..]));
    });
    assert!(store.read_cache_stats().hits >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_write_is_seen_by_the_next_get() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, &ManualClock::new(1_000));
    // Each check reads twice: a miss that fills the cache, then a hit that must agree.
    let get = |k: &'static [u8]| {
        let s = s.clone();
        async move {
            let first = s.get(k).await.unwrap();
            assert_eq!(s.get(k).await.unwrap(), first, "cached answer differs");
            first
        }
    };
    // Absent keys are cached as absent; each write below follows a cached read.
    assert_eq!(get(b"k").await, None);
    s.put(b"k", b"1", None).await.unwrap();
    assert_eq!(get(b"k").await.as_deref(), Some(&b"1"[..]));
    assert!(s
        .compare_and_swap(b"k", Some(b"1"), Some(b"2"), None)
        .await
        .unwrap()
        .is_swapped());
    assert_eq!(get(b"k").await.as_deref(), Some(&b"2"[..]));
    assert!(s.delete(b"k").await.unwrap());
    assert_eq!(get(b"k").await, None);
    assert!(s.insert_if_absent(b"k", b"3", None).await.unwrap());
    assert_eq!(get(b"k").await.as_deref(), Some(&b"3"[..]));
    let ops = vec![
        BatchOp::Put {
            key: b"k".to_vec(),
            value: b"4".to_vec(),
            ttl: None,
        },
        BatchOp::Delete {
            key: b"other".to_vec(),
        },
    ];
    s.batch(ops).await.unwrap();
    assert_eq!(get(b"k").await.as_deref(), Some(&b"4"[..]));
    assert!(s
        .compare_and_swap(b"k", Some(b"4"), None, None)
        .await
        .unwrap()
        .is_swapped());
    assert_eq!(get(b"k").await, None);
    let stats = s.read_cache_stats();
    assert!(
        stats.hits >= 3,
        "reads were answered from the cache: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_honoured_through_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_900_000_000_000);
    let s = open(&dir, &clock);
    s.put(b"short", b"s", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    s.put(b"long", b"l", None).await.unwrap();
    for _ in 0..2 {
        assert_eq!(s.get(b"short").await.unwrap().as_deref(), Some(&b"s"[..]));
    }
    let hits = s.read_cache_stats().hits;
    assert!(hits >= 1);
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(s.get(b"short").await.unwrap().as_deref(), Some(&b"s"[..]));
    assert_eq!(
        s.read_cache_stats().hits,
        hits + 1,
        "still live, still cached"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(s.get(b"short").await.unwrap(), None, "expired in the cache");
    assert_eq!(s.get(b"short").await.unwrap(), None);
    assert_eq!(s.get(b"long").await.unwrap().as_deref(), Some(&b"l"[..]));
    assert_eq!(s.purge_expired().await.unwrap(), 1);
    assert_eq!(s.get(b"short").await.unwrap(), None);
    // A rewrite after expiry replaces the cached absence.
    s.put(b"short", b"again", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(
        s.get(b"short").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopen_sees_what_was_made_durable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let s = open(&dir, &clock);
    s.put(b"dev/1", b"first", None).await.unwrap();
    assert_eq!(
        s.get(b"dev/1").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    s.put(b"dev/1", b"second", None).await.unwrap();
    assert_eq!(s.get(b"dev/2").await.unwrap(), None);
    s.put(b"dev/2", b"two", None).await.unwrap();
    let s = reopen(&dir, &clock, s).await;
    assert_eq!(
        s.read_cache_stats().entries,
        0,
        "a new process, a cold cache"
    );
    assert_eq!(
        s.get(b"dev/1").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(s.get(b"dev/2").await.unwrap().as_deref(), Some(&b"two"[..]));
}

/// The highest value under each key whose write has returned.
struct Floors(Vec<AtomicU64>);

impl Floors {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self((0..n).map(|_| AtomicU64::new(0)).collect()))
    }
    fn raise(&self, i: usize, v: u64) {
        self.0[i].fetch_max(v, Ordering::SeqCst);
    }
    fn get(&self, i: usize) -> u64 {
        self.0[i].load(Ordering::SeqCst)
    }
}

const KEYS: usize = 4;
const CAS_TASKS: usize = 8;
const INCREMENTS: u64 = 40;
const PUTS: u64 = 60;

fn cas_key(i: usize) -> Vec<u8> {
    format!("c/{i}").into_bytes()
}

fn put_key(i: usize) -> Vec<u8> {
    format!("p/{i}").into_bytes()
}

/// CAS increments, starting from what `get` (so, the cache) says.
async fn increment(s: &Cached, key: &[u8]) -> u64 {
    let mut current = s.get(key).await.unwrap();
    loop {
        let next = counter(current.clone()) + 1;
        let outcome = s
            .compare_and_swap(key, current.as_deref(), Some(&next.to_be_bytes()), None)
            .await
            .unwrap();
        match outcome {
            actix_device_store::CasOutcome::Swapped => return next,
            actix_device_store::CasOutcome::Conflict { current: seen } => current = seen,
        }
    }
}

fn spawn_writers(
    s: &Cached,
    cas_floors: &Arc<Floors>,
    put_floors: &Arc<Floors>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for t in 0..CAS_TASKS {
        let (s, floors) = (s.clone(), Arc::clone(cas_floors));
        tasks.push(tokio::spawn(async move {
            for n in 0..INCREMENTS as usize {
                let i = (t + n) % KEYS;
                let v = increment(&s, &cas_key(i)).await;
                floors.raise(i, v);
            }
        }));
    }
    // One writer per put key, so its values only grow.
    for i in 0..KEYS {
        let (s, floors) = (s.clone(), Arc::clone(put_floors));
        tasks.push(tokio::spawn(async move {
            for v in 1..=PUTS {
                s.put(&put_key(i), &v.to_be_bytes(), None).await.unwrap();
                floors.raise(i, v);
            }
        }));
    }
    tasks
}

fn spawn_readers(
    s: &Cached,
    cas_floors: &Arc<Floors>,
    put_floors: &Arc<Floors>,
    done: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..4)
        .map(|r| {
            let (s, cf, pf, done) = (
                s.clone(),
                Arc::clone(cas_floors),
                Arc::clone(put_floors),
                Arc::clone(done),
            );
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !done.load(Ordering::SeqCst) {
                    let i = (r + reads as usize) % KEYS;
                    for (key, floors) in [(cas_key(i), &cf), (put_key(i), &pf)] {
                        let floor = floors.get(i);
                        let seen = counter(s.get(&key).await.unwrap());
                        assert!(
                            seen >= floor,
                            "{} read {seen} after a write of {floor} had returned",
                            String::from_utf8_lossy(&key)
                        );
                    }
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_never_see_a_value_older_than_a_returned_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, &ManualClock::new(1_000));
    let (cas_floors, put_floors) = (Floors::new(KEYS), Floors::new(KEYS));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers = spawn_readers(&s, &cas_floors, &put_floors, &done);
    for w in spawn_writers(&s, &cas_floors, &put_floors) {
        w.await.expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let mut reads = 0;
    for r in readers {
        reads += r.await.expect("reader");
    }
    assert!(reads > 0);
    let per_key = CAS_TASKS as u64 * INCREMENTS / KEYS as u64;
    for i in 0..KEYS {
        assert_eq!(counter(s.get(&cas_key(i)).await.unwrap()), per_key);
        assert_eq!(counter(s.get(&put_key(i)).await.unwrap()), PUTS);
    }
    let stats = s.read_cache_stats();
    assert!(stats.hits > 0, "the cache took part: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_cache_reads_the_database_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with(&dir, "uncached", ReadCacheConfig::disabled());
    s.put(b"k", b"v", None).await.unwrap();
    for _ in 0..3 {
        assert_eq!(s.get(b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }
    let stats = s.read_cache_stats();
    assert_eq!((stats.hits, stats.entries), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_cache_evicts_and_still_answers_right() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with(
        &dir,
        "small",
        ReadCacheConfig::default().max_entries(8).shards(2),
    );
    let ops = (0..64u32)
        .map(|i| BatchOp::Put {
            key: format!("k/{i}").into_bytes(),
            value: i.to_be_bytes().to_vec(),
            ttl: None,
        })
        .collect();
    s.batch(ops).await.unwrap();
    for round in 0..3 {
        for i in 0..64u32 {
            let v = s.get(format!("k/{i}").as_bytes()).await.unwrap();
            assert_eq!(v, Some(i.to_be_bytes().to_vec()), "round {round}");
        }
    }
    let stats = s.read_cache_stats();
    assert!(stats.entries <= 8, "{stats:?}");
    assert!(stats.evictions > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_key_peeks_without_a_read_and_a_write_makes_it_unknown() {
    use actix_device_store::Peek;
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, &ManualClock::new(1_000));
    assert_eq!(s.peek(b"sess/p"), Peek::Unknown, "nothing read yet");
    assert_eq!(s.get(b"sess/p").await.unwrap(), None);
    assert_eq!(s.peek(b"sess/p"), Peek::Absent, "a known-absent key");
    s.put(b"sess/p", b"one", None).await.unwrap();
    assert_eq!(
        s.peek(b"sess/p"),
        Peek::Unknown,
        "a write makes the key a miss"
    );
    assert_eq!(
        s.get(b"sess/p").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    match s.peek(b"sess/p") {
        Peek::Value(v) => assert_eq!(&*v, b"one"),
        other => panic!("a hot key peeks as its value, not {other:?}"),
    }
    let misses = s.read_cache_stats().misses;
    let _ = s.peek(b"sess/never-read");
    assert_eq!(
        s.read_cache_stats().misses,
        misses,
        "a peek miss counts no miss"
    );
    let disabled = tempfile::tempdir().unwrap();
    let off = open_with(&disabled, "peek-off", ReadCacheConfig::disabled());
    off.put(b"sess/p", b"one", None).await.unwrap();
    let _ = off.get(b"sess/p").await.unwrap();
    assert_eq!(
        off.peek(b"sess/p"),
        Peek::Unknown,
        "a disabled cache knows nothing"
    );
}
