//! A coherent in-process read cache for stores that own their data alone.
//!
//! # When this is correct
//!
//! Only for a store that is the **only writer** of its data: an embedded engine that locks
//! its files (redb, sled) or an in-memory map. Then every write passes through this process,
//! and a cache that this process invalidates on its own writes can never disagree with the
//! engine. A store shared by several processes (Redis, PostgreSQL) must not use it: a write
//! made by another instance would never reach this cache.
//!
//! # Using it in a store
//!
//! Reads go through [`ReadCache::lookup`]; on a [`Lookup::Miss`] read the engine (after the
//! lookup, never before) and hand the answer to [`ReadCache::fill`] with the miss's ticket:
//!
//! ```
//! use actix_device_store::{Lookup, ReadCache, ReadCacheConfig};
//! # fn engine_get(_: &[u8]) -> Option<(Vec<u8>, Option<u64>)> { None }
//! let cache = ReadCache::new(ReadCacheConfig::default());
//! let now = 1_000; // the store's clock, in epoch milliseconds
//! let value = match cache.lookup(b"sess/1", now) {
//!     Lookup::Hit(value) => value,
//!     Lookup::Miss(ticket) => {
//!         let found = engine_get(b"sess/1"); // value and absolute expiry, if live
//!         let (value, expires_at) = found.map_or((None, None), |(v, at)| (Some(v), at));
//!         cache.fill(ticket, b"sess/1", value.as_deref(), expires_at);
//!         value
//!     }
//! };
//! # assert_eq!(value, None);
//! ```
//!
//! Writes take a [`WriteGuard`] from [`ReadCache::begin_write`], [`cover`](WriteGuard::cover)
//! every key they will change **before** committing, and drop the guard only **after** the
//! commit is visible to readers of the engine:
//!
//! ```
//! # use actix_device_store::{ReadCache, ReadCacheConfig};
//! # let cache = ReadCache::new(ReadCacheConfig::default());
//! let mut guard = cache.begin_write();
//! guard.cover(b"cart/1");
//! guard.cover(b"cart/2");
//! // ... commit the engine transaction that writes both keys ...
//! drop(guard); // now readers may cache the new values
//! ```
//!
//! While a key is covered, its cached entry is gone and nothing read from the engine is
//! cached under it, so every reader goes to the engine and sees the commit all at once (a
//! batch stays atomic for readers). Each shard has a generation counter that a guard bumps
//! when it ends; a fill whose ticket predates that bump is refused, so a value read before a
//! write can never be cached after it. Keep the guard where it cannot be cancelled halfway
//! (a blocking thread, a writer thread, a synchronous call): a guard dropped by a cancelled
//! future while its commit is still in flight would let a stale value in.
//!
//! # What it holds
//!
//! Live values with their absolute expiry (an entry past its expiry by the clock the caller
//! passes to `lookup` is a miss), and known-absent keys (so a hot check of a key that does
//! not exist costs no engine read either). Both count against the same bounds: a number of
//! entries and a number of bytes (keys, values and a fixed per-entry overhead), split
//! evenly across shards. A full shard evicts with the CLOCK policy (an entry read since the
//! hand last passed gets a second chance); it never clears itself wholesale. Scans are
//! not cached: stores read them through.
//!
//! # Limitations
//!
//! - An entry larger than a shard's share of the byte bound (`max_bytes / shards`) is
//!   never cached; it is read from the engine every time.
//! - Reads of many distinct keys (a scan of every device, or a flood of requests naming
//!   keys that do not exist) fill the cache with entries read once, known-absent keys
//!   included. A new entry starts without its second chance, so it goes before an entry
//!   that was read again since the hand last passed: hot keys survive a flood as long as
//!   they are read more often than the hand goes round.
//! - A write makes its keys misses; the next read of each pays one engine read and caches
//!   the answer again. The cache is not updated with the written value, because the order
//!   in which concurrent writers' guards end is not their commit order.
//!
//! Locks are plain mutexes held for a hash-map lookup or update, never across an `await`;
//! values are shared (`Arc<[u8]>`) and copied for the caller after the lock is released
//! ([`ReadCache::peek`] hands out the shared value itself, for `Store::peek`).

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{Clock, Peek};

/// Bytes counted for each entry on top of its key and value (map slot, ring slot, `Arc`
/// headers), so that a flood of tiny entries still respects the byte bound.
const ENTRY_OVERHEAD: usize = 96;

/// Sizing of a [`ReadCache`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ReadCacheConfig {
    max_entries: usize,
    max_bytes: usize,
    shards: usize,
}

impl Default for ReadCacheConfig {
    /// 100 000 entries, 64 MiB, 64 shards.
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_bytes: 64 * 1024 * 1024,
            shards: 64,
        }
    }
}

impl ReadCacheConfig {
    /// A cache that holds nothing: every lookup is a miss, every fill is refused.
    pub fn disabled() -> Self {
        Self {
            max_entries: 0,
            ..Self::default()
        }
    }

    /// The most entries (values and known-absent keys) held at once (default 100 000; `0`
    /// disables the cache).
    #[doc(alias = "capacity")]
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// The most bytes held at once, counting keys, values and 96 bytes of bookkeeping per
    /// entry (default 64 MiB; `0` disables the cache). An entry larger than
    /// `max_bytes / shards` is never cached.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How many independently locked shards (default 64; at least 1). More shards, less
    /// contention between threads; each holds an even share of the bounds.
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n.max(1);
        self
    }

    /// Whether a cache built from this holds anything.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }
}

/// What [`ReadCache::lookup`] found.
#[derive(Debug)]
#[must_use]
pub enum Lookup {
    /// The cached answer: `Some(value)` if live, `None` if the key is known absent.
    Hit(Option<Vec<u8>>),
    /// Not cached: read the engine, then give its answer to [`ReadCache::fill`].
    Miss(ReadTicket),
}

/// Proof of when a miss was seen, to hand to [`ReadCache::fill`] with what the engine
/// returned. A fill is refused if any write to the key's shard ended since the ticket.
#[derive(Debug)]
#[must_use = "hand the ticket to ReadCache::fill with the engine's answer"]
pub struct ReadTicket {
    shard: usize,
    generation: u64,
}

/// Counters of a [`ReadCache`], summed over its shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadCacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to read the engine.
    pub misses: u64,
    /// Fills that cached an answer.
    pub fills: u64,
    /// Fills refused because a write to the shard ended, or a write to the key was in
    /// flight, since the miss.
    pub refused_fills: u64,
    /// Entries evicted to respect the bounds.
    pub evictions: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now (as counted against [`ReadCacheConfig::max_bytes`]).
    pub bytes: u64,
}

/// A sharded, bounded, write-coherent cache of a single-writer store's reads.
///
/// See the [module documentation](self) for the protocol a store follows.
pub struct ReadCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
    max_entries: usize,
    max_bytes: usize,
}

impl fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadCache")
            .field("shards", &self.shards.len())
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

struct Slot {
    key: Arc<[u8]>,
    value: Option<Arc<[u8]>>,
    expires_at: Option<u64>,
    /// Ended when the entry leaves the cache.
    source: WatchSource,
}

/// What a watched value shares with its watches: whether it is still the store's answer,
/// and a read mark (the read cache's CLOCK counts a watched read as a read).
#[derive(Debug)]
struct WatchState {
    current: AtomicBool,
    referenced: AtomicBool,
}

/// The store's side of the [`Watch`]es on one value it holds in memory: make one with
/// each value, hand out [`watch`](Self::watch)es from it, and [`end`](Self::end) it when
/// the value stops being the answer (a write replaces or removes it, or it leaves
/// memory), before that write returns. Ending is final and ends every watch made from it.
#[derive(Debug, Clone)]
pub struct WatchSource(Arc<WatchState>);

impl Default for WatchSource {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchSource {
    /// A source whose watches hold until it is ended.
    #[must_use]
    pub fn new() -> Self {
        Self(Arc::new(WatchState {
            current: AtomicBool::new(true),
            referenced: AtomicBool::new(false),
        }))
    }

    /// A watch on the value; with `expiry`, it also stops holding once `clock` reaches
    /// that time (epoch milliseconds, read with [`Clock::recent_millis`]).
    #[must_use]
    pub fn watch(&self, expiry: Option<(u64, Arc<dyn Clock>)>) -> Watch {
        self.0.referenced.store(true, Ordering::Relaxed);
        Watch {
            state: Arc::clone(&self.0),
            expiry,
        }
    }

    /// Ends every watch made from this source, for good.
    pub fn end(&self) {
        self.0.current.store(false, Ordering::Release);
    }

    /// Whether a read marked the value since the mark was last taken (and takes it).
    fn take_mark(&self) -> bool {
        self.0.referenced.swap(false, Ordering::Relaxed)
    }

    fn mark(&self) {
        self.0.referenced.store(true, Ordering::Relaxed);
    }
}

/// Tells, with one atomic load and no lookup, whether a value a store answered from memory
/// ([`Store::peek_watched`](crate::Store::peek_watched)) is still its answer.
///
/// It stops holding, for good, the moment the store ends its [`WatchSource`]: a write
/// replaces or removes the value (before the write commits or returns), or the value
/// leaves memory (evicted, cleared). It also stops holding once the value's expiry passes
/// on the store's clock (read with [`Clock::recent_millis`]). A watch that holds therefore
/// vouches that the value is what `get` would return now, as
/// [`Store::peek`](crate::Store::peek) does; a value that leaves memory for another reason
/// than a write (eviction) only makes it stop holding sooner than needed.
#[derive(Clone)]
pub struct Watch {
    state: Arc<WatchState>,
    /// The expiry and the clock it is measured by, for a value that expires.
    expiry: Option<(u64, Arc<dyn Clock>)>,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("current", &self.state.current.load(Ordering::Relaxed))
            .field("expires_at", &self.expiry.as_ref().map(|(at, _)| *at))
            .finish()
    }
}

impl Watch {
    /// Whether the watched value is still the store's answer for its key.
    #[must_use]
    pub fn holds(&self) -> bool {
        Self::all_hold([self])
    }

    /// Whether every one of `watches` still [`holds`](Self::holds), the clock read once
    /// for all the watches that share it (a store's watches all do).
    #[must_use]
    pub fn all_hold<'w>(watches: impl IntoIterator<Item = &'w Watch>) -> bool {
        let mut reading: Option<(&Arc<dyn Clock>, u64)> = None;
        for watch in watches {
            if let Some((at, clock)) = &watch.expiry {
                let now = match reading {
                    Some((read, now)) if Arc::ptr_eq(read, clock) => now,
                    _ => {
                        let now = clock.recent_millis();
                        reading = Some((clock, now));
                        now
                    }
                };
                if now >= *at {
                    return false;
                }
            }
            if !watch.current() {
                return false;
            }
        }
        true
    }

    /// Whether the store has not ended this watch (and a read mark, if so).
    fn current(&self) -> bool {
        if !self.state.current.load(Ordering::Acquire) {
            return false;
        }
        // A read mark; a plain load first keeps a hot value's line shared.
        if !self.state.referenced.load(Ordering::Relaxed) {
            self.state.referenced.store(true, Ordering::Relaxed);
        }
        true
    }
}

impl Slot {
    fn bytes(&self) -> usize {
        entry_bytes(&self.key, self.value.as_deref())
    }
}

fn entry_bytes(key: &[u8], value: Option<&[u8]>) -> usize {
    key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD
}

#[derive(Default)]
struct Shard {
    /// Bumped each time a write guard covering a key of this shard ends.
    generation: u64,
    index: HashMap<Arc<[u8]>, usize>,
    /// The CLOCK ring; `None` slots are free and listed in `free`.
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
    /// Keys with a write in flight, and how many.
    pending: HashMap<Box<[u8]>, u32>,
    stats: ReadCacheStats,
}

impl Shard {
    fn remove(&mut self, key: &[u8]) {
        if let Some(at) = self.index.remove(key) {
            self.free_slot(at);
        }
    }

    fn free_slot(&mut self, at: usize) {
        if let Some(slot) = self.slots.get_mut(at).and_then(Option::take) {
            slot.source.end();
            self.bytes -= slot.bytes();
            self.free.push(at);
        }
    }

    /// Evicts one entry by CLOCK; `false` if the shard is empty.
    fn evict_one(&mut self) -> bool {
        if self.index.is_empty() {
            return false;
        }
        // Two turns of the hand always find a victim: the first clears every mark.
        for _ in 0..=2 * self.slots.len() {
            self.hand = (self.hand + 1) % self.slots.len();
            match &mut self.slots[self.hand] {
                None => {}
                Some(slot) if slot.source.take_mark() => {}
                Some(slot) => {
                    let key = Arc::clone(&slot.key);
                    self.index.remove(&key[..]);
                    self.free_slot(self.hand);
                    self.stats.evictions += 1;
                    return true;
                }
            }
        }
        false
    }

    fn insert(&mut self, slot: Slot, max_entries: usize, max_bytes: usize) {
        self.remove(&slot.key);
        let need = slot.bytes();
        while self.index.len() >= max_entries || self.bytes + need > max_bytes {
            if !self.evict_one() {
                return;
            }
        }
        self.bytes += need;
        let key = Arc::clone(&slot.key);
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at] = Some(slot);
                at
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.index.insert(key, at);
        self.stats.fills += 1;
    }
}

impl ReadCache {
    /// A cache sized by `config`.
    #[must_use]
    pub fn new(config: ReadCacheConfig) -> Self {
        let shards = if config.is_enabled() {
            config.shards
        } else {
            0
        };
        Self {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            max_entries: config.max_entries.div_ceil(shards.max(1)),
            max_bytes: config.max_bytes.div_ceil(shards.max(1)),
        }
    }

    /// Whether this cache holds anything (see [`ReadCacheConfig::disabled`]).
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        !self.shards.is_empty()
    }

    fn shard_of(&self, key: &[u8]) -> usize {
        // The shard count is not a power of two in general: reduce by multiply-shift. A
        // fast seeded hash is enough here: keys crowded into one shard cost contention, not
        // time per lookup (each shard's index is a SipHash map).
        let h = self.hasher.hash_one(key);
        ((u128::from(h) * self.shards.len() as u128) >> 64) as usize
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        // Nothing panics while a shard is locked, and a shard's fields stay consistent
        // between statements, so a poisoned lock is still usable.
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached answer for `key` at `now` (epoch milliseconds, from the store's clock), or
    /// a ticket to fill it after reading the engine. An entry expired at `now` is a miss.
    pub fn lookup(&self, key: &[u8], now: u64) -> Lookup {
        if !self.is_enabled() {
            return Lookup::Miss(ReadTicket {
                shard: 0,
                generation: 0,
            });
        }
        let shard = self.shard_of(key);
        match self.probe(shard, key, now, true) {
            Ok(value) => Lookup::Hit(value.map(|v| v.to_vec())),
            Err(generation) => Lookup::Miss(ReadTicket { shard, generation }),
        }
    }

    /// The cached answer for `key` at `now`, shared rather than copied: what a store's
    /// [`Store::peek`](crate::Store::peek) answers. A key not cached is
    /// [`Peek::Unknown`] (then read through [`lookup`](Self::lookup), which counts the
    /// miss); so is an invalid key, since only answers the engine gave are ever cached.
    pub fn peek(&self, key: &[u8], now: u64) -> Peek {
        if !self.is_enabled() {
            return Peek::Unknown;
        }
        match self.probe(self.shard_of(key), key, now, false) {
            Ok(Some(value)) => Peek::Value(value),
            Ok(None) => Peek::Absent,
            Err(_) => Peek::Unknown,
        }
    }

    /// [`peek`](Self::peek) of a cached value, with a [`Watch`] on it: what a store's
    /// [`Store::peek_watched`](crate::Store::peek_watched) answers. Expiry is judged on
    /// `clock`'s [`recent_millis`](Clock::recent_millis), now and by the watch later.
    /// `None` for anything but a live cached value (a known-absent key included: there is
    /// nothing to watch).
    pub fn peek_watched(&self, key: &[u8], clock: &Arc<dyn Clock>) -> Option<(Arc<[u8]>, Watch)> {
        if !self.is_enabled() {
            return None;
        }
        let now = clock.recent_millis();
        let s = self.lock(self.shard_of(key));
        let slot = s.slots[*s.index.get(key)?].as_ref()?;
        if slot.expires_at.is_some_and(|t| t <= now) {
            return None;
        }
        let watch = slot
            .source
            .watch(slot.expires_at.map(|at| (at, Arc::clone(clock))));
        Some((slot.value.clone()?, watch))
    }

    /// A hit's value, or the shard's generation on a miss (an expired entry is dropped).
    fn probe(
        &self,
        shard: usize,
        key: &[u8],
        now: u64,
        count_miss: bool,
    ) -> Result<Option<Arc<[u8]>>, u64> {
        let mut s = self.lock(shard);
        let found = s.index.get(key).copied();
        let live = found.and_then(|at| match &mut s.slots[at] {
            Some(slot) if slot.expires_at.is_none_or(|t| t > now) => {
                slot.source.mark();
                Some(slot.value.clone())
            }
            _ => None,
        });
        match (found, live) {
            (_, Some(value)) => {
                s.stats.hits += 1;
                Ok(value)
            }
            (expired, None) => {
                if let Some(at) = expired {
                    s.index.remove(key);
                    s.free_slot(at);
                }
                if count_miss {
                    s.stats.misses += 1;
                }
                Err(s.generation)
            }
        }
    }

    /// Caches what the engine answered for `key` after the miss that gave `ticket`:
    /// `value` (`None`: absent or expired) and its absolute expiry. Refused, returning
    /// `false`, if a write covering the key is in flight or any write to the key's shard
    /// ended since the ticket, or if the entry alone exceeds a shard's byte share.
    pub fn fill(
        &self,
        ticket: ReadTicket,
        key: &[u8],
        value: Option<&[u8]>,
        expires_at: Option<u64>,
    ) -> bool {
        if !self.is_enabled() || self.shard_of(key) != ticket.shard {
            return false;
        }
        if entry_bytes(key, value) > self.max_bytes {
            return false;
        }
        // Copies made before locking keep the critical section short.
        let slot = Slot {
            key: Arc::from(key),
            value: value.map(Arc::from),
            expires_at,
            source: WatchSource::new(),
        };
        let mut s = self.lock(ticket.shard);
        if s.generation != ticket.generation || s.pending.contains_key(key) {
            s.stats.refused_fills += 1;
            return false;
        }
        s.insert(slot, self.max_entries, self.max_bytes);
        true
    }

    /// Starts a write: cover every key it changes before committing, drop the guard after.
    pub fn begin_write(&self) -> WriteGuard<'_> {
        WriteGuard {
            cache: self,
            covered: Vec::new(),
        }
    }

    /// Forgets every entry and refuses every fill begun before now. For a store's own
    /// "remove everything" operation; eviction never does this.
    pub fn clear(&self) {
        for shard in 0..self.shards.len() {
            let mut s = self.lock(shard);
            s.generation += 1;
            s.index.clear();
            for slot in s.slots.drain(..).flatten() {
                slot.source.end();
            }
            s.free.clear();
            s.hand = 0;
            s.bytes = 0;
        }
    }

    /// The counters, summed over the shards.
    #[must_use]
    pub fn stats(&self) -> ReadCacheStats {
        let mut total = ReadCacheStats::default();
        for shard in 0..self.shards.len() {
            let s = self.lock(shard);
            total.hits += s.stats.hits;
            total.misses += s.stats.misses;
            total.fills += s.stats.fills;
            total.refused_fills += s.stats.refused_fills;
            total.evictions += s.stats.evictions;
            total.entries += s.index.len() as u64;
            total.bytes += s.bytes as u64;
        }
        total
    }
}

/// A write in progress; see [`ReadCache::begin_write`]. Dropping it ends the write: the
/// covered keys may be cached again, from reads that begin after this point.
#[must_use = "the write ends when the guard is dropped: keep it until the commit is visible"]
pub struct WriteGuard<'a> {
    cache: &'a ReadCache,
    covered: Vec<(usize, Box<[u8]>)>,
}

impl fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGuard")
            .field("covered", &self.covered.len())
            .finish_non_exhaustive()
    }
}

impl WriteGuard<'_> {
    /// Declares that this write changes `key`: its cached entry is removed now, and nothing
    /// is cached under it until the guard is dropped. Call before the commit.
    pub fn cover(&mut self, key: &[u8]) {
        if !self.cache.is_enabled() {
            return;
        }
        let shard = self.cache.shard_of(key);
        {
            let mut s = self.cache.lock(shard);
            s.remove(key);
            *s.pending.entry(Box::from(key)).or_insert(0) += 1;
        }
        self.covered.push((shard, Box::from(key)));
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        for (shard, key) in self.covered.drain(..) {
            let mut s = self.cache.lock(shard);
            if let Some(n) = s.pending.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    s.pending.remove(&key);
                }
            }
            // Refuses every fill whose engine read may predate the commit.
            s.generation += 1;
            s.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> ReadCache {
        ReadCache::new(ReadCacheConfig::default().shards(4))
    }

    fn miss(c: &ReadCache, key: &[u8], now: u64) -> ReadTicket {
        match c.lookup(key, now) {
            Lookup::Miss(t) => t,
            Lookup::Hit(v) => panic!("expected a miss for {key:?}, got {v:?}"),
        }
    }

    fn hit(c: &ReadCache, key: &[u8], now: u64) -> Option<Vec<u8>> {
        match c.lookup(key, now) {
            Lookup::Hit(v) => v,
            Lookup::Miss(_) => panic!("expected a hit for {key:?}"),
        }
    }

    #[test]
    fn a_filled_value_is_a_hit_until_a_write_covers_it() {
        let c = cache();
        let t = miss(&c, b"k", 0);
        assert!(c.fill(t, b"k", Some(b"v1"), None));
        assert_eq!(hit(&c, b"k", 0).as_deref(), Some(&b"v1"[..]));
        let mut w = c.begin_write();
        w.cover(b"k");
        let _ = miss(&c, b"k", 0);
        drop(w);
        let t = miss(&c, b"k", 0);
        assert!(c.fill(t, b"k", Some(b"v2"), None));
        assert_eq!(hit(&c, b"k", 0).as_deref(), Some(&b"v2"[..]));
    }

    #[test]
    fn absent_keys_are_cached_as_absent() {
        let c = cache();
        let t = miss(&c, b"nobody", 0);
        assert!(c.fill(t, b"nobody", None, None));
        assert_eq!(hit(&c, b"nobody", 0), None);
        assert_eq!(c.stats().entries, 1);
    }

    /// Reader misses, reads the old value; a write covers, commits and ends; the reader's
    /// fill arrives last and must be refused.
    #[test]
    fn a_read_from_before_a_write_is_never_cached_after_it() {
        let c = cache();
        let ticket = miss(&c, b"k", 0);
        let old = b"old";
        let mut w = c.begin_write();
        w.cover(b"k");
        drop(w); // committed "new"
        assert!(!c.fill(ticket, b"k", Some(old), None));
        let _ = miss(&c, b"k", 0);
        assert_eq!(c.stats().refused_fills, 1);
    }

    /// The fill arrives while the write is still in flight (covered, not yet committed):
    /// refused, though the generation has not moved yet.
    #[test]
    fn nothing_is_cached_while_a_write_is_in_flight() {
        let c = cache();
        let ticket = miss(&c, b"k", 0);
        let mut w = c.begin_write();
        w.cover(b"k");
        assert!(!c.fill(ticket, b"k", Some(b"old"), None));
        // A miss that begins during the write is refused after it ends too.
        let during = miss(&c, b"k", 0);
        drop(w);
        assert!(!c.fill(during, b"k", Some(b"maybe old"), None));
        let after = miss(&c, b"k", 0);
        assert!(c.fill(after, b"k", Some(b"new"), None));
        assert_eq!(hit(&c, b"k", 0).as_deref(), Some(&b"new"[..]));
    }

    /// A value cached before the write began is gone as soon as the write covers its key,
    /// so between the commit and the guard's end no reader is served the old value.
    #[test]
    fn cover_removes_the_cached_value_before_the_commit() {
        let c = cache();
        for k in [&b"a"[..], b"b"] {
            let t = miss(&c, k, 0);
            assert!(c.fill(t, k, Some(b"old"), None));
        }
        let mut w = c.begin_write();
        w.cover(b"a");
        w.cover(b"b");
        let _ = miss(&c, b"a", 0);
        let _ = miss(&c, b"b", 0);
        drop(w);
    }

    #[test]
    fn two_writes_in_flight_on_one_key_both_must_end() {
        let c = cache();
        let mut w1 = c.begin_write();
        w1.cover(b"k");
        let mut w2 = c.begin_write();
        w2.cover(b"k");
        drop(w1);
        let t = miss(&c, b"k", 0);
        assert!(!c.fill(t, b"k", Some(b"v"), None), "w2 still in flight");
        drop(w2);
        let t = miss(&c, b"k", 0);
        assert!(c.fill(t, b"k", Some(b"v"), None));
    }

    #[test]
    fn a_ticket_for_another_shard_is_refused() {
        let c = ReadCache::new(ReadCacheConfig::default().shards(64));
        let t = miss(&c, b"k", 0);
        let other = (0..1000u32)
            .map(|i| i.to_be_bytes())
            .find(|k| c.shard_of(k) != c.shard_of(b"k"))
            .expect("some key lands elsewhere");
        assert!(!c.fill(t, &other, Some(b"v"), None));
    }

    #[test]
    fn entries_past_their_expiry_are_misses() {
        let c = cache();
        let t = miss(&c, b"k", 100);
        assert!(c.fill(t, b"k", Some(b"v"), Some(200)));
        assert_eq!(hit(&c, b"k", 199).as_deref(), Some(&b"v"[..]));
        let _ = miss(&c, b"k", 200);
        assert_eq!(
            c.stats().entries,
            0,
            "an expired entry is dropped when seen"
        );
    }

    #[test]
    fn the_entry_bound_evicts_one_at_a_time_and_spares_recent_reads() {
        let c = ReadCache::new(ReadCacheConfig::default().shards(1).max_entries(4));
        for i in 0u8..4 {
            let t = miss(&c, &[i], 0);
            assert!(c.fill(t, &[i], Some(b"v"), None));
        }
        // Read 0 and 1 so the hand spares them.
        let _ = hit(&c, &[0], 0);
        let _ = hit(&c, &[1], 0);
        let t = miss(&c, &[9], 0);
        assert!(c.fill(t, &[9], Some(b"v"), None));
        let stats = c.stats();
        assert_eq!((stats.entries, stats.evictions), (4, 1));
        assert_eq!(hit(&c, &[0], 0).as_deref(), Some(&b"v"[..]));
        assert_eq!(hit(&c, &[1], 0).as_deref(), Some(&b"v"[..]));
        assert_eq!(hit(&c, &[9], 0).as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn all_hold_is_every_watch_holding_each_on_its_own_clock() {
        let (early, late) = (crate::ManualClock::new(0), crate::ManualClock::new(0));
        let (early_clock, late_clock): (Arc<dyn Clock>, Arc<dyn Clock>) =
            (Arc::new(early.clone()), Arc::new(late.clone()));
        let c = ReadCache::new(ReadCacheConfig::default().shards(1));
        for (key, expiry) in [(0u8, Some(10)), (1, Some(20)), (2, None)] {
            let t = miss(&c, &[key], 0);
            assert!(c.fill(t, &[key], Some(b"v"), expiry));
        }
        let watch = |k: u8, clock: &Arc<dyn Clock>| c.peek_watched(&[k], clock).expect("cached").1;
        let (a, b, none) = (
            watch(0, &early_clock),
            watch(1, &early_clock),
            watch(2, &early_clock),
        );
        assert!(Watch::all_hold([&a, &b, &none]));
        assert!(Watch::all_hold([]), "no watch: nothing to end");
        // One reading of the shared clock decides both expiries.
        early.set(10);
        assert!(!Watch::all_hold([&b, &a]), "the second one expired");
        assert!(Watch::all_hold([&b, &none]));
        early.set(20);
        assert!(!Watch::all_hold([&none, &b]));
        // A watch on another clock is read on that clock, not with the first one's reading.
        let on_late = watch(1, &late_clock);
        early.set(15);
        late.set(25);
        assert!(Watch::all_hold([&b]), "not expired on the early clock");
        assert!(
            !Watch::all_hold([&b, &on_late]),
            "expired on the late clock"
        );
        early.set(25);
        late.set(15);
        assert!(
            !Watch::all_hold([&on_late, &b]),
            "expired on the early clock"
        );
        assert!(Watch::all_hold([&on_late, &none]));
        // An ended watch fails the lot.
        late.set(0);
        let mut guard = c.begin_write();
        guard.cover(&[2]);
        assert!(!Watch::all_hold([&on_late, &none]));
        drop(guard);
    }

    #[test]
    fn a_watch_ends_when_its_entry_leaves_and_a_watched_read_counts_for_clock() {
        let manual = crate::ManualClock::new(0);
        let clock: Arc<dyn Clock> = Arc::new(manual.clone());
        let c = ReadCache::new(ReadCacheConfig::default().shards(1).max_entries(4));
        for i in 0u8..4 {
            let t = miss(&c, &[i], 0);
            assert!(c.fill(t, &[i], Some(b"v"), if i == 3 { Some(10) } else { None }));
        }
        let watch = |k: u8| c.peek_watched(&[k], &clock).expect("cached").1;
        let (w0, w1, w2, w3) = (watch(0), watch(1), watch(2), watch(3));
        assert!(w0.holds() && w1.holds() && w2.holds() && w3.holds());
        // A write covering the key ends its watch at once, before the guard ends.
        let mut guard = c.begin_write();
        guard.cover(&[0]);
        assert!(!w0.holds());
        drop(guard);
        // Expiry on the watch's clock.
        assert!(w3.holds(), "not expired on the clock yet");
        manual.set(10);
        assert!(!w3.holds(), "expired");
        assert!(
            c.peek_watched(&[3], &clock).is_none(),
            "expired: nothing to watch"
        );
        // CLOCK: a watched read marks the entry, so the hand passes over it.
        for i in [0u8, 3] {
            let t = miss(&c, &[i], 10);
            assert!(c.fill(t, &[i], Some(b"v"), None));
        }
        {
            let mut s = c.lock(0);
            for slot in s.slots.iter_mut().flatten() {
                slot.source.take_mark();
            }
        }
        assert!(w1.holds(), "marks entry 1 as read");
        let t = miss(&c, &[9], 10);
        assert!(c.fill(t, &[9], Some(b"v"), None));
        assert!(w1.holds(), "the watched entry was spared");
        assert!(
            !w2.holds(),
            "the unread one was evicted, and its watch ended"
        );
        // Clearing ends every watch; a known-absent key has nothing to watch.
        c.clear();
        assert!(!w1.holds());
        let t = miss(&c, b"none", 10);
        assert!(c.fill(t, b"none", None, None));
        assert!(c.peek_watched(b"none", &clock).is_none());
    }

    #[test]
    fn the_byte_bound_holds_and_oversized_values_are_not_cached() {
        let max = 4 * (ENTRY_OVERHEAD + 101);
        let c = ReadCache::new(ReadCacheConfig::default().shards(1).max_bytes(max));
        for i in 0u8..20 {
            let t = miss(&c, &[i], 0);
            assert!(c.fill(t, &[i], Some(&[0; 100]), None));
            assert!(c.stats().bytes <= max as u64);
        }
        assert_eq!(c.stats().entries, 4);
        let t = miss(&c, b"big", 0);
        assert!(!c.fill(t, b"big", Some(&vec![0; max]), None));
        assert_eq!(c.stats().entries, 4, "a refused fill evicts nothing");
    }

    #[test]
    fn a_disabled_cache_holds_nothing() {
        let c = ReadCache::new(ReadCacheConfig::disabled());
        assert!(!c.is_enabled());
        let t = miss(&c, b"k", 0);
        assert!(!c.fill(t, b"k", Some(b"v"), None));
        let mut w = c.begin_write();
        w.cover(b"k");
        drop(w);
        let _ = miss(&c, b"k", 0);
    }

    #[test]
    fn clear_forgets_everything_and_refuses_older_tickets() {
        let c = cache();
        let t = miss(&c, b"a", 0);
        assert!(c.fill(t, b"a", Some(b"v"), None));
        let late = miss(&c, b"b", 0);
        c.clear();
        assert!(!c.fill(late, b"b", Some(b"v"), None));
        let _ = miss(&c, b"a", 0);
        assert_eq!(c.stats().entries, 0);
    }

    #[test]
    fn many_threads_never_cache_a_value_older_than_a_finished_write() {
        // Writers bump a counter under cover; readers fill what they read from the
        // "engine"; after each write ends, the cache never shows an older counter.
        use std::sync::atomic::{AtomicU64, Ordering};
        let c = Arc::new(ReadCache::new(ReadCacheConfig::default().shards(2)));
        let engine = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (c, engine, finished) = (c.clone(), engine.clone(), finished.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let floor = finished.load(Ordering::SeqCst);
                        let seen = match c.lookup(b"n", 0) {
                            Lookup::Hit(v) => {
                                u64::from_be_bytes(v.expect("present").try_into().expect("8 bytes"))
                            }
                            Lookup::Miss(t) => {
                                let v = engine.load(Ordering::SeqCst);
                                c.fill(t, b"n", Some(&v.to_be_bytes()), None);
                                v
                            }
                        };
                        assert!(seen >= floor, "saw {seen} after write {floor} ended");
                    }
                })
            })
            .collect();
        for n in 1..=5_000u64 {
            let mut w = c.begin_write();
            w.cover(b"n");
            engine.store(n, Ordering::SeqCst);
            drop(w);
            finished.store(n, Ordering::SeqCst);
        }
        for r in readers {
            r.join().expect("reader");
        }
    }
}
