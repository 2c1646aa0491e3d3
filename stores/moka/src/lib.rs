//! In-memory store for [actix-device](https://docs.rs/actix-device) on
//! [moka](https://docs.rs/moka).
//!
//! **It keeps nothing across restarts**, and under memory pressure (more than its byte
//! capacity) it **evicts** entries, least recently used first: a device record, a cart or
//! a session may disappear. Use it for development, tests, caches, and data you can lose;
//! use the redb or sled store for anything that must last.
//!
//! ```
//! use actix_device_moka::MokaStore;
//! let store = MokaStore::builder().max_bytes(64 * 1024 * 1024).build();
//! ```
//!
//! # How it meets the `Store` contract
//!
//! - Expiry: each entry carries its absolute expiry, checked against the store's
//!   [`Clock`] on every read; moka's per-entry expiry policy also drops it from memory
//!   once its time has passed on the wall clock.
//! - Compare-and-swap and insert-if-absent run inside moka's
//!   `entry().and_compute_with`, atomic per key (moka ≥ 0.12.14).
//! - Batches are atomic with respect to every other call: single-key operations share a
//!   read lock, a batch holds the write lock while it applies, so no reader sees half of
//!   one.
//! - Every call is a synchronous in-memory operation on moka's `sync::Cache` (no I/O, no
//!   lock held across an `await`), so [`Store::peek`] answers every read: the session
//!   check reads a moka store with no future at all.
//! - Prefix scans walk the whole cache and sort the matches: O(entries) per page. Fine
//!   for the sizes an in-memory store holds; the embedded stores keep ordered indexes.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_device_store::{
    async_trait, check_key, check_scan_limit, check_value, BatchOp, CasOutcome, Clock, Peek,
    ScanPage, Store, StoreError, SystemClock, Watch, WatchSource,
};
use moka::ops::compute::Op;
use moka::sync::Cache;
use moka::Expiry;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

#[derive(Clone, Debug)]
struct Entry {
    value: Arc<[u8]>,
    expires_at: Option<u64>,
    /// Ended by whatever replaces or removes this entry, before that write returns.
    source: WatchSource,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// Expires entries from memory once their TTL has passed on the wall clock.
struct EntryExpiry {
    clock: Arc<dyn Clock>,
}

impl EntryExpiry {
    fn remaining(&self, entry: &Entry) -> Option<Duration> {
        entry
            .expires_at
            .map(|at| Duration::from_millis(at.saturating_sub(self.clock.now_millis())))
    }
}

impl Expiry<Vec<u8>, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &Vec<u8>, v: &Entry, _: Instant) -> Option<Duration> {
        self.remaining(v)
    }
    fn expire_after_update(
        &self,
        _: &Vec<u8>,
        v: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.remaining(v)
    }
}

/// Configuration of a [`MokaStore`].
#[must_use]
pub struct MokaConfig {
    max_bytes: u64,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MokaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaConfig")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl MokaConfig {
    /// The capacity in bytes of keys and values (default 256 MiB). Past it, entries are
    /// evicted.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The clock expiry is measured by (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The store.
    pub fn build(self) -> MokaStore {
        let cache = Cache::builder()
            .max_capacity(self.max_bytes)
            .weigher(|k: &Vec<u8>, v: &Entry| {
                u32::try_from(k.len() + v.value.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(EntryExpiry {
                clock: Arc::clone(&self.clock),
            })
            // Evicted or expired by moka: the value has left memory (the writes end the
            // entries they replace or remove themselves).
            .eviction_listener(|_, entry: Entry, _| entry.source.end())
            .build();
        MokaStore {
            cache,
            clock: self.clock,
            batches: Arc::new(RwLock::new(())),
        }
    }
}

/// An in-memory [`Store`]. Clones share the same data.
#[derive(Clone)]
pub struct MokaStore {
    cache: Cache<Vec<u8>, Entry>,
    clock: Arc<dyn Clock>,
    batches: Arc<RwLock<()>>,
}

impl fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaStore")
            .field("entries", &self.cache.entry_count())
            .field("weighted_bytes", &self.cache.weighted_size())
            .finish_non_exhaustive()
    }
}

impl Default for MokaStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MokaStore {
    /// A store with the defaults (256 MiB, system clock).
    #[must_use]
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A configuration.
    pub fn builder() -> MokaConfig {
        MokaConfig {
            max_bytes: 256 * 1024 * 1024,
            clock: Arc::new(SystemClock),
        }
    }

    fn entry(&self, value: &[u8], ttl: Option<Duration>) -> Entry {
        Entry {
            value: Arc::from(value),
            expires_at: ttl.map(|t| self.clock.expiry_for(t)),
            source: WatchSource::new(),
        }
    }

    /// Writes `entry` under `key`, ending the entry it replaces.
    fn replace(&self, key: &[u8], entry: Entry) {
        self.cache.entry(key.to_vec()).and_compute_with(|current| {
            if let Some(old) = current {
                old.value().source.end();
            }
            Op::Put(entry)
        });
    }

    /// Removes `key`, ending its entry; the removed entry, if any.
    fn take(&self, key: &[u8]) -> Option<Entry> {
        let removed = self.cache.remove(key);
        if let Some(old) = &removed {
            old.source.end();
        }
        removed
    }

    /// Runs moka's pending maintenance (evictions, expirations) now. For tests.
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    /// The shared side of the batch lock. Nothing panics while it is held, so a poisoned
    /// lock is still consistent.
    fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.batches.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live value under `key` at `now`, shared.
    fn live(&self, key: &[u8], now: u64) -> Option<Arc<[u8]>> {
        let _shared = self.shared();
        self.cache.get(key).filter(|e| e.live(now)).map(|e| e.value)
    }
}

#[async_trait]
impl Store for MokaStore {
    fn backend(&self) -> &'static str {
        "moka"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        Ok(self.live(key, self.clock.now_millis()).map(|v| v.to_vec()))
    }

    fn peek(&self, key: &[u8]) -> Peek {
        if check_key(key).is_err() {
            return Peek::Unknown;
        }
        let now = self.clock.recent_millis();
        self.live(key, now).map_or(Peek::Absent, Peek::Value)
    }

    fn peek_watched(&self, key: &[u8]) -> Option<(Arc<[u8]>, Watch)> {
        check_key(key).ok()?;
        let _shared = self.shared();
        let now = self.clock.recent_millis();
        let entry = self.cache.get(key).filter(|e| e.live(now))?;
        let expiry = entry.expires_at.map(|at| (at, Arc::clone(&self.clock)));
        Some((entry.value, entry.source.watch(expiry)))
    }

    async fn put(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        check_key(key)?;
        check_value(key, value)?;
        let _shared = self.shared();
        self.replace(key, self.entry(value, ttl));
        Ok(())
    }

    async fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let _shared = self.shared();
        let now = self.clock.now_millis();
        Ok(self.take(key).is_some_and(|e| e.live(now)))
    }

    async fn insert_if_absent(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        check_key(key)?;
        check_value(key, value)?;
        let _shared = self.shared();
        let now = self.clock.now_millis();
        let new = self.entry(value, ttl);
        let mut inserted = false;
        self.cache.entry(key.to_vec()).and_compute_with(|current| {
            let op = match current {
                Some(e) if e.value().live(now) => Op::Nop,
                expired => {
                    if let Some(old) = expired {
                        old.value().source.end();
                    }
                    inserted = true;
                    Op::Put(new)
                }
            };
            op
        });
        Ok(inserted)
    }

    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, StoreError> {
        check_key(key)?;
        if let Some(v) = new {
            check_value(key, v)?;
        }
        let _shared = self.shared();
        let now = self.clock.now_millis();
        let replacement = new.map(|v| self.entry(v, ttl));
        let mut outcome = CasOutcome::Swapped;
        self.cache.entry(key.to_vec()).and_compute_with(|current| {
            let live = current
                .as_ref()
                .map(|e| e.value())
                .filter(|e| e.live(now))
                .map(|e| e.value.to_vec());
            let op = if live.as_deref() == expected {
                if let Some(old) = &current {
                    old.value().source.end();
                }
                match replacement {
                    Some(entry) => Op::Put(entry),
                    None if current.is_some() => Op::Remove,
                    None => Op::Nop,
                }
            } else {
                outcome = CasOutcome::Conflict { current: live };
                Op::Nop
            };
            op
        });
        Ok(outcome)
    }

    async fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        check_scan_limit(limit)?;
        let _shared = self.shared();
        let now = self.clock.now_millis();
        let mut matches: Vec<(Vec<u8>, Vec<u8>)> = self
            .cache
            .iter()
            .filter(|(k, e)| {
                k.starts_with(prefix) && after.is_none_or(|a| k.as_slice() > a) && e.live(now)
            })
            .map(|(k, e)| ((*k).clone(), e.value.to_vec()))
            .collect();
        matches.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let more = matches.len() > limit;
        matches.truncate(limit);
        let next = if more {
            matches.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(ScanPage {
            entries: matches,
            next,
        })
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        for op in &ops {
            op.check()?;
        }
        let _exclusive = self.batches.write().unwrap_or_else(PoisonError::into_inner);
        for op in ops {
            match op {
                BatchOp::Put { key, value, ttl } => {
                    let entry = self.entry(&value, ttl);
                    self.replace(&key, entry);
                }
                BatchOp::Delete { key } => {
                    self.take(&key);
                }
            }
        }
        Ok(())
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let _shared = self.shared();
        let now = self.clock.now_millis();
        let expired: Vec<Vec<u8>> = self
            .cache
            .iter()
            .filter(|(_, e)| !e.live(now))
            .map(|(k, _)| (*k).clone())
            .collect();
        let mut removed = 0;
        for key in expired {
            // Only if it is still the expired entry: a concurrent put may have replaced it.
            let result = self
                .cache
                .entry(key)
                .and_compute_with(|current| match current {
                    Some(e) if !e.value().live(now) => {
                        e.value().source.end();
                        Op::Remove
                    }
                    _ => Op::Nop,
                });
            if matches!(result, moka::ops::compute::CompResult::Removed(_)) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
