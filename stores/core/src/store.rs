use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{KeyName, StoreError};
use crate::read_cache::Watch;

/// The longest key a store accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// The longest value a store accepts, in bytes (4 MiB).
pub const MAX_VALUE_LEN: usize = 4 * 1024 * 1024;
/// The largest `limit` a single [`Store::scan_prefix`] call accepts.
pub const MAX_SCAN_LIMIT: usize = 10_000;

/// One write of an atomic [`Store::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Write `value` under `key`, expiring after `ttl` (never, if `None`).
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// Time to live from the moment the batch is applied.
        ttl: Option<Duration>,
    },
    /// Remove `key` (a no-op if it is absent).
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

impl BatchOp {
    /// The key this write touches.
    #[must_use]
    pub fn key(&self) -> &[u8] {
        match self {
            Self::Put { key, .. } | Self::Delete { key } => key,
        }
    }

    /// Checks the key and value against the store limits.
    pub fn check(&self) -> Result<(), StoreError> {
        check_key(self.key())?;
        if let Self::Put { key, value, .. } = self {
            check_value(key, value)?;
        }
        Ok(())
    }
}

/// What [`Store::compare_and_swap`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum CasOutcome {
    /// The current value matched and was replaced (or deleted).
    Swapped,
    /// The current value did not match; nothing was written. `current` is the live value
    /// seen instead (`None` if absent or expired), ready for the next turn of a CAS loop.
    Conflict {
        /// The live value found.
        current: Option<Vec<u8>>,
    },
}

impl CasOutcome {
    /// `true` if the swap happened.
    #[must_use]
    pub fn is_swapped(&self) -> bool {
        matches!(self, Self::Swapped)
    }
}

/// What [`Store::peek`] found without waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Peek {
    /// The live value, from memory (shared, not copied).
    Value(Arc<[u8]>),
    /// Known to be absent (or expired).
    Absent,
    /// Not known without reading the engine: call [`Store::get`].
    Unknown,
}

/// One page of a [`Store::scan_prefix`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ScanPage {
    /// Live entries, in ascending byte order of their keys.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// `Some(cursor)` if and only if at least one more live entry with the prefix followed
    /// the last one returned when the page was read; pass it as `after` for the next page.
    pub next: Option<Vec<u8>>,
}

/// Checks that `key` is non-empty and at most [`MAX_KEY_LEN`] bytes.
pub fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::KeyTooLarge {
            key: KeyName::new(key),
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// Checks that `value` (for `key`) is at most [`MAX_VALUE_LEN`] bytes.
pub fn check_value(key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::ValueTooLarge {
            key: KeyName::new(key),
            len: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

/// An async key-value store over bytes: the one thing actix-device needs from storage.
///
/// # Implementing a custom store
///
/// A store is a map from byte keys to byte values, some with an expiry. Implement the
/// methods below with `#[async_trait]` and run the conformance suite
/// (`actix_device_store::testkit::run_suite`, feature `testkit`) in your crate's tests:
/// the suite, not this prose, is the definition of correct. What it checks:
///
/// - **Limits.** Keys are 1..=[`MAX_KEY_LEN`] bytes, values 0..=[`MAX_VALUE_LEN`];
///   anything else is a [`StoreError`] returned before any write (use [`check_key`] and
///   [`check_value`]). Keys and values are arbitrary bytes.
/// - **Expiry.** Entries written with a TTL expire at `clock.now_millis() + ttl`, measured
///   by the [`Clock`](crate::Clock) the store was built with. An expired entry is absent
///   for *every* method: `get`, `scan_prefix`, `compare_and_swap`, `insert_if_absent`,
///   `delete`'s return value. [`purge_expired`](Store::purge_expired) removes expired
///   entries for good; it should not need to read live data to find them (keep an index
///   ordered by expiry).
/// - **Atomicity.** `insert_if_absent`, `compare_and_swap` and `batch` are atomic with
///   respect to every other call on the store, from any task or thread: no lost updates.
/// - **Ordering.** `scan_prefix` returns keys in ascending byte order; paging with the
///   returned cursor never returns a key twice and never skips one that existed for the
///   whole scan, whatever is inserted meanwhile.
/// - **Durability.** Say in your docs when a write is durable. Once `flush` has returned,
///   every write acknowledged before it must survive the process.
/// - **No blocking.** Never block the async executor: run a blocking engine on
///   `spawn_blocking` or a thread of its own.
/// - **Peeks.** [`peek`](Store::peek) is optional (the default knows nothing); a store
///   that answers it must answer exactly what `get` would at that moment, reflecting every
///   write acknowledged before the call.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The live value under `key`, or `None` if absent or expired.
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The answer [`get`](Store::get) would give, if the store has it in memory now: no
    /// I/O, no waiting beyond a short lock, no copy of the value. Hot paths (the session
    /// check) try it first and fall back to `get` on [`Peek::Unknown`], the default.
    ///
    /// Only a store that is the sole writer of its data can answer it coherently (an
    /// in-memory map, an embedded engine behind a write-invalidated cache); a store shared
    /// with other processes must keep the default, since another instance's write would
    /// never reach this process's memory. An invalid key is `Unknown` (`get` reports it).
    ///
    /// Expiry is judged by the clock's [`recent_millis`](crate::Clock::recent_millis), so
    /// an entry may still peek as live up to a clock tick (a few milliseconds) after `get`
    /// stops returning it; never earlier.
    fn peek(&self, key: &[u8]) -> Peek {
        let _ = key;
        Peek::Unknown
    }

    /// [`peek`](Store::peek) of a live value, with a [`Watch`] that tells later, with no
    /// lookup, whether it is still the answer: a caller that keeps something derived from
    /// the value (the session check keeps its outcome) rechecks the watch instead of
    /// peeking again. `None` (the default) for a store with nothing to watch: call `peek`.
    /// The value and the watch must come from one atomic look at the entry.
    fn peek_watched(&self, key: &[u8]) -> Option<(Arc<[u8]>, Watch)> {
        let _ = key;
        None
    }

    /// Writes `value` under `key`, replacing any previous value and its expiry. With
    /// `ttl`, the entry expires that long from now; with `None`, never.
    async fn put(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;

    /// Removes `key`. Returns whether a live entry was there.
    async fn delete(&self, key: &[u8]) -> Result<bool, StoreError>;

    /// Writes `value` only if `key` is absent or expired. Returns whether it wrote.
    async fn insert_if_absent(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;

    /// If the live value under `key` equals `expected` (`None`: absent or expired), replace
    /// it with `new` (`None`: delete) expiring after `ttl`; otherwise change nothing and
    /// report what was there.
    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, StoreError>;

    /// Up to `limit` live entries whose keys start with `prefix` and sort strictly after
    /// `after` (from the start of the prefix when `after` is `None`), in ascending order.
    /// `limit` must be 1..=[`MAX_SCAN_LIMIT`].
    async fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, StoreError>;

    /// Applies every write or none: no reader ever sees part of a batch, and a batch that
    /// fails (an invalid op, an engine error) leaves nothing behind.
    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError>;

    /// Removes every expired entry; returns how many it removed.
    async fn purge_expired(&self) -> Result<u64, StoreError>;

    /// Makes every acknowledged write durable (a no-op for stores that are always durable
    /// or never are).
    async fn flush(&self) -> Result<(), StoreError>;

    /// A short name of the engine (`"redb"`, `"redis"`, ...), for metrics and logs.
    fn backend(&self) -> &'static str {
        "custom"
    }
}

/// Checks a scan's `limit` argument.
pub fn check_scan_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 || limit > MAX_SCAN_LIMIT {
        return Err(StoreError::InvalidArgument(
            "scan limit must be between 1 and MAX_SCAN_LIMIT",
        ));
    }
    Ok(())
}

#[async_trait]
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key).await
    }
    fn peek(&self, key: &[u8]) -> Peek {
        (**self).peek(key)
    }
    fn peek_watched(&self, key: &[u8]) -> Option<(Arc<[u8]>, Watch)> {
        (**self).peek_watched(key)
    }
    async fn put(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        (**self).put(key, value, ttl).await
    }
    async fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        (**self).delete(key).await
    }
    async fn insert_if_absent(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        (**self).insert_if_absent(key, value, ttl).await
    }
    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, StoreError> {
        (**self).compare_and_swap(key, expected, new, ttl).await
    }
    async fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        (**self).scan_prefix(prefix, after, limit).await
    }
    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        (**self).batch(ops).await
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        (**self).purge_expired().await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        (**self).flush().await
    }
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
}
