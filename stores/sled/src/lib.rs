//! Embedded store for [actix-device](https://docs.rs/actix-device) on
//! [sled](https://docs.rs/sled) 0.34.
//!
//! ```no_run
//! use actix_device_sled::SledStore;
//! let store = SledStore::open("data/sled")?;
//! # Ok::<(), actix_device_store::StoreError>(())
//! ```
//!
//! # Durability
//!
//! **sled is durable only after a flush.** By default sled flushes in the background
//! every 500 ms ([`SledConfig::flush_every_ms`]): a crash loses at most the writes of the
//! last interval, and a write counts as acknowledged only once [`Store::flush`] has
//! returned after it. [`SledConfig::flush_every_write`] flushes inside every write call
//! instead — no loss window, one fsync per write. The crash test in this crate checks
//! exactly this: every record written before a completed `flush` survives `SIGKILL`.
//!
//! # How it meets the `Store` contract
//!
//! Values are stored in the shared envelope (`actix_device_store::envelope`) carrying
//! their expiry, and a second tree, `expiry`, indexes keys by expiry time so
//! [`Store::purge_expired`] walks only expired entries. Every write — put, delete,
//! insert-if-absent, compare-and-swap, batch — is one sled transaction over both trees,
//! so the index never disagrees with the data and compare-and-swap is atomic. Every sled
//! call runs on `tokio::task::spawn_blocking`.
//!
//! # Reads
//!
//! `get` answers from an in-process [`ReadCache`] when it can, on the calling task with no
//! thread hop; otherwise it reads sled on `spawn_blocking` and caches the answer, absent
//! keys included. The cache is coherent because this process is the database's only writer
//! (sled locks the directory): each write covers its keys before its transaction and
//! releases them after, inside the blocking task (which a cancelled request cannot stop
//! halfway), so a reader never gets a value older than a write that has returned, and never
//! half of a batch. Cached entries keep their expiry and are misses once it passes by the
//! store's clock. Scans always read sled. Size it or turn it off with
//! [`SledConfig::read_cache`].
//!
//! # Limitations
//!
//! One process at a time (sled locks the directory). sled 0.34 is the last stable
//! release; its on-disk format is not compatible with later sled versions. For new
//! deployments the redb store is the recommended durable default.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_device_store::{
    async_trait, check_key, check_scan_limit, check_value, envelope, BatchOp, CasOutcome, Clock,
    Lookup, Peek, ReadCache, ReadCacheConfig, ReadCacheStats, ScanPage, Store, StoreError,
    SystemClock, Watch,
};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;

const BACKEND: &str = "sled";

fn engine(key: Option<&[u8]>, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(BACKEND, key, e)
}

/// Configuration of a [`SledStore`].
#[must_use]
pub struct SledConfig {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    flush_every_write: bool,
    flush_every_ms: Option<u64>,
    cache_bytes: u64,
    read_cache: ReadCacheConfig,
}

impl fmt::Debug for SledConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledConfig")
            .field("path", &self.path)
            .field("flush_every_write", &self.flush_every_write)
            .field("flush_every_ms", &self.flush_every_ms)
            .field("read_cache", &self.read_cache)
            .finish_non_exhaustive()
    }
}

impl SledConfig {
    /// The clock expiry is measured by (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Flush inside every write call, before it returns (default `false`).
    pub fn flush_every_write(mut self, yes: bool) -> Self {
        self.flush_every_write = yes;
        self
    }

    /// sled's background flush interval (default `Some(500)`; `None` flushes only on
    /// [`Store::flush`]). This is the loss window after a crash.
    pub fn flush_every_ms(mut self, ms: Option<u64>) -> Self {
        self.flush_every_ms = ms;
        self
    }

    /// sled's page cache in bytes (default 64 MiB).
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The in-process read cache in front of `get` (default
    /// [`ReadCacheConfig::default`]: 100 000 entries, 64 MiB);
    /// [`ReadCacheConfig::disabled`] sends every `get` to sled.
    #[doc(alias = "cache")]
    pub fn read_cache(mut self, config: ReadCacheConfig) -> Self {
        self.read_cache = config;
        self
    }

    /// Opens (or creates) the database directory, creating missing parent directories.
    /// A path that is a file, a directory another open store holds (sled locks it), or
    /// a corrupt database is [`StoreError::Open`], never a panic.
    pub fn open(self) -> Result<SledStore, StoreError> {
        let path = self.path.clone();
        let config = sled::Config::new()
            .path(&self.path)
            .cache_capacity(self.cache_bytes)
            .flush_every_ms(self.flush_every_ms);
        // sled 0.34 panics on some corrupt files instead of answering an error.
        let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
            .map_err(|_| {
                StoreError::open(&path, "sled panicked while opening (corrupt database?)")
            })?
            .map_err(|e| StoreError::open(&path, e))?;
        let data = db
            .open_tree("data")
            .map_err(|e| StoreError::open(&path, e))?;
        let expiry = db
            .open_tree("expiry")
            .map_err(|e| StoreError::open(&path, e))?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                db,
                data,
                expiry,
                cache: ReadCache::new(self.read_cache),
                clock: self.clock,
                flush_every_write: self.flush_every_write,
                path,
                scan_vs_batch: RwLock::new(()),
            }),
        })
    }
}

struct Inner {
    db: sled::Db,
    data: sled::Tree,
    expiry: sled::Tree,
    cache: ReadCache,
    clock: Arc<dyn Clock>,
    flush_every_write: bool,
    path: PathBuf,
    /// Scans hold it shared for their whole walk, batches exclusively while their
    /// transaction commits. sled serialises a transaction against single reads, but its
    /// iterators are not isolated from transactions between steps: without this lock a
    /// scan could see half a batch. (It guards no data, so a poisoned lock still works.)
    scan_vs_batch: RwLock<()>,
}

/// A [`Store`] on a sled database directory.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// What a transaction body may fail with.
type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn tx_err(e: UnabortableTransactionError) -> ConflictableTransactionError<StoreError> {
    e.into()
}

/// The live value under `key` inside a transaction.
fn live(data: &TransactionalTree, key: &[u8], now: u64) -> TxResult<Option<Vec<u8>>> {
    let Some(raw) = data.get(key).map_err(tx_err)? else {
        return Ok(None);
    };
    let env = envelope::decode(key, &raw).map_err(ConflictableTransactionError::Abort)?;
    Ok((!env.is_expired(now)).then(|| env.value.to_vec()))
}

/// Writes (or with `None` removes) `key` and keeps the expiry index in step; returns the
/// previous live value.
fn write(
    data: &TransactionalTree,
    expiry: &TransactionalTree,
    key: &[u8],
    value: Option<&[u8]>,
    expires_at: Option<u64>,
    now: u64,
) -> TxResult<Option<Vec<u8>>> {
    let previous = match data.remove(key).map_err(tx_err)? {
        Some(old) => {
            let env = envelope::decode(key, &old).map_err(ConflictableTransactionError::Abort)?;
            if let Some(at) = env.expires_at {
                expiry
                    .remove(envelope::index_key(at, key))
                    .map_err(tx_err)?;
            }
            (!env.is_expired(now)).then(|| env.value.to_vec())
        }
        None => None,
    };
    if let Some(value) = value {
        data.insert(key, envelope::encode(value, expires_at))
            .map_err(tx_err)?;
        if let Some(at) = expires_at {
            expiry
                .insert(envelope::index_key(at, key), &[][..])
                .map_err(tx_err)?;
        }
    }
    Ok(previous)
}

impl SledStore {
    /// Opens (or creates) the database at `path` with the defaults.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::builder(path).open()
    }

    /// A configuration for the database at `path`.
    pub fn builder(path: impl AsRef<Path>) -> SledConfig {
        SledConfig {
            path: path.as_ref().to_owned(),
            clock: Arc::new(SystemClock),
            flush_every_write: false,
            flush_every_ms: Some(500),
            cache_bytes: 64 * 1024 * 1024,
            read_cache: ReadCacheConfig::default(),
        }
    }

    /// The database directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The read cache's counters (hits, misses, entries held, ...).
    #[must_use]
    pub fn read_cache_stats(&self) -> ReadCacheStats {
        self.inner.cache.stats()
    }

    /// Runs `f` on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::backend(BACKEND, None, e))?
    }

    /// Runs a write transaction over both trees that changes `keys`, then flushes if
    /// configured to. A write of several keys (`exclusive`) keeps scans out while it
    /// commits.
    async fn transact<T: Send + 'static>(
        &self,
        keys: Vec<Vec<u8>>,
        exclusive: bool,
        body: impl Fn(&TransactionalTree, &TransactionalTree, u64) -> TxResult<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.blocking(move |inner| {
            let now = inner.clock.now_millis();
            // Covered before the transaction, released after it (and the flush): see
            // "Reads" in the crate docs. This runs to the end even if the caller is gone.
            let mut cover = inner.cache.begin_write();
            for key in &keys {
                cover.cover(key);
            }
            let one_key = (keys.len() == 1).then(|| keys[0].as_slice());
            let no_scans = exclusive.then(|| {
                inner
                    .scan_vs_batch
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
            });
            let out = (&inner.data, &inner.expiry)
                .transaction(|(data, expiry)| body(data, expiry, now))
                .map_err(|e| match e {
                    TransactionError::Abort(e) => e,
                    TransactionError::Storage(e) => engine(one_key, e),
                })?;
            drop(no_scans);
            if inner.flush_every_write {
                inner.db.flush().map_err(|e| engine(one_key, e))?;
            }
            drop(cover);
            Ok(out)
        })
        .await
    }
}

/// The live value under `key` and its expiry.
fn read_live(inner: &Inner, key: &[u8], now: u64) -> Result<Live, StoreError> {
    let Some(raw) = inner.data.get(key).map_err(|e| engine(Some(key), e))? else {
        return Ok(None);
    };
    let env = envelope::decode(key, &raw)?;
    Ok((!env.is_expired(now)).then(|| (env.value.to_vec(), env.expires_at)))
}

/// A live value and its absolute expiry.
type Live = Option<(Vec<u8>, Option<u64>)>;

/// Up to `limit` live entries under `prefix` after `after`, with batches kept out.
fn scan_page(
    inner: &Inner,
    prefix: &[u8],
    after: Option<Vec<u8>>,
    limit: usize,
) -> Result<ScanPage, StoreError> {
    let now = inner.clock.now_millis();
    let start: Bound<Vec<u8>> = match after {
        Some(a) if a.as_slice() >= prefix => Bound::Excluded(a),
        _ => Bound::Included(prefix.to_vec()),
    };
    let mut page = ScanPage::default();
    let _no_batch_meanwhile = inner
        .scan_vs_batch
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    for item in inner.data.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
        let (k, v) = item.map_err(|e| engine(None, e))?;
        if !k.starts_with(prefix) {
            break;
        }
        let env = envelope::decode(&k, &v)?;
        if env.is_expired(now) {
            continue;
        }
        if page.entries.len() == limit {
            page.next = page.entries.last().map(|(k, _)| k.clone());
            break;
        }
        page.entries.push((k.to_vec(), env.value.to_vec()));
    }
    Ok(page)
}

/// Removes every entry whose expiry has passed, walking only the expiry index.
fn purge(inner: &Inner) -> Result<u64, StoreError> {
    let now = inner.clock.now_millis();
    let bound = envelope::index_upper_bound(now);
    let mut removed = 0;
    for item in inner.expiry.range(..bound) {
        let (index_key, _) = item.map_err(|e| engine(None, e))?;
        removed += u64::from(purge_one(inner, &index_key)?);
    }
    if inner.flush_every_write {
        inner.db.flush().map_err(|e| engine(None, e))?;
    }
    Ok(removed)
}

/// Removes one expiry-index entry and, if the data entry still carries that expiry (not
/// rewritten since), the entry itself. Returns whether it removed an entry.
fn purge_one(inner: &Inner, index_key: &[u8]) -> Result<bool, StoreError> {
    let Some((at, key)) = envelope::split_index_key(index_key) else {
        inner
            .expiry
            .remove(index_key)
            .map_err(|e| engine(None, e))?;
        return Ok(false);
    };
    let mut cover = inner.cache.begin_write();
    cover.cover(key);
    let gone = (&inner.data, &inner.expiry)
        .transaction(|(data, expiry)| {
            expiry.remove(index_key).map_err(tx_err)?;
            let Some(raw) = data.get(key).map_err(tx_err)? else {
                return Ok(false);
            };
            let env = envelope::decode(key, &raw).map_err(ConflictableTransactionError::Abort)?;
            if env.expires_at == Some(at) {
                data.remove(key).map_err(tx_err)?;
                return Ok(true);
            }
            Ok(false)
        })
        .map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => engine(Some(key), e),
        })?;
    drop(cover);
    Ok(gone)
}

#[async_trait]
impl Store for SledStore {
    fn backend(&self) -> &'static str {
        "sled"
    }

    /// A hot key straight from the read cache, with no thread hop (see the crate docs).
    fn peek(&self, key: &[u8]) -> Peek {
        self.inner.cache.peek(key, self.inner.clock.recent_millis())
    }

    fn peek_watched(&self, key: &[u8]) -> Option<(Arc<[u8]>, Watch)> {
        self.inner.cache.peek_watched(key, &self.inner.clock)
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let now = self.inner.clock.now_millis();
        let ticket = match self.inner.cache.lookup(key, now) {
            Lookup::Hit(value) => return Ok(value),
            Lookup::Miss(ticket) => ticket,
        };
        let owned = key.to_vec();
        let live = self
            .blocking(move |inner| read_live(inner, &owned, now))
            .await?;
        let (value, expires_at) = live.map_or((None, None), |(v, at)| (Some(v), at));
        let _ = self
            .inner
            .cache
            .fill(ticket, key, value.as_deref(), expires_at);
        Ok(value)
    }

    async fn put(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        check_key(key)?;
        check_value(key, value)?;
        let expires_at = ttl.map(|t| self.inner.clock.expiry_for(t));
        let (k, v) = (key.to_vec(), value.to_vec());
        self.transact(vec![k.clone()], false, move |d, e, now| {
            write(d, e, &k, Some(&v), expires_at, now).map(|_| ())
        })
        .await
    }

    async fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let k = key.to_vec();
        self.transact(vec![k.clone()], false, move |d, e, now| {
            write(d, e, &k, None, None, now).map(|p| p.is_some())
        })
        .await
    }

    async fn insert_if_absent(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        check_key(key)?;
        check_value(key, value)?;
        let expires_at = ttl.map(|t| self.inner.clock.expiry_for(t));
        let (k, v) = (key.to_vec(), value.to_vec());
        self.transact(vec![k.clone()], false, move |d, e, now| {
            if live(d, &k, now)?.is_some() {
                return Ok(false);
            }
            write(d, e, &k, Some(&v), expires_at, now)?;
            Ok(true)
        })
        .await
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
        let expires_at = ttl.map(|t| self.inner.clock.expiry_for(t));
        let k = key.to_vec();
        let expected = expected.map(<[u8]>::to_vec);
        let new = new.map(<[u8]>::to_vec);
        self.transact(vec![k.clone()], false, move |d, e, now| {
            let current = live(d, &k, now)?;
            if current != expected {
                return Ok(CasOutcome::Conflict { current });
            }
            write(d, e, &k, new.as_deref(), expires_at, now)?;
            Ok(CasOutcome::Swapped)
        })
        .await
    }

    async fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        check_scan_limit(limit)?;
        let prefix = prefix.to_vec();
        let after = after.map(<[u8]>::to_vec);
        self.blocking(move |inner| scan_page(inner, &prefix, after, limit))
            .await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        for op in &ops {
            op.check()?;
        }
        let clock = Arc::clone(&self.inner.clock);
        let keys = ops.iter().map(|op| op.key().to_vec()).collect();
        let ops: Vec<(BatchOp, Option<u64>)> = ops
            .into_iter()
            .map(|op| {
                let at = match &op {
                    BatchOp::Put { ttl: Some(t), .. } => Some(clock.expiry_for(*t)),
                    _ => None,
                };
                (op, at)
            })
            .collect();
        self.transact(keys, true, move |d, e, now| {
            for (op, at) in &ops {
                match op {
                    BatchOp::Put { key, value, .. } => write(d, e, key, Some(value), *at, now)?,
                    BatchOp::Delete { key } => write(d, e, key, None, None, now)?,
                };
            }
            Ok(())
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.blocking(purge).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.blocking(|inner| {
            inner.db.flush().map_err(|e| engine(None, e))?;
            Ok(())
        })
        .await
    }
}
