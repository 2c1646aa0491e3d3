//! Durable embedded store for [actix-device](https://docs.rs/actix-device) on
//! [redb](https://docs.rs/redb) 4: the recommended default for a single-binary deployment.
//!
//! ```no_run
//! use actix_device_redb::RedbStore;
//! let store = RedbStore::open("data/app.redb")?;
//! # Ok::<(), actix_device_store::StoreError>(())
//! ```
//!
//! # Durability
//!
//! Every write is committed with redb's `Durability::Immediate` and two-phase commit
//! before its `await` returns: once a call returns `Ok`, the write survives a crash or
//! power loss. Two-phase commit is on because keys and values come from requests
//! (attacker-influenced data): it keeps a torn commit from being mistaken for a valid one
//! without relying on checksums alone. [`RedbConfig::durable`]`(false)` trades that for
//! speed: writes are then durable only after [`Store::flush`].
//!
//! # Group commit
//!
//! Writes do not each pay an fsync. One writer thread takes every write queued so far
//! (up to [`RedbConfig::max_batch`]), applies them in arrival order inside one write
//! transaction, commits once, then answers each caller with its own result. Each
//! operation sees the effects of the ones before it in the same transaction, so
//! compare-and-swap and insert-if-absent stay atomic and linearizable. If the commit
//! fails, every caller of that group gets the error and nothing of the group is written.
//! Input errors (oversized keys or values) are caught before a write reaches the queue.
//!
//! # Reads
//!
//! `get` answers from an in-process [`ReadCache`] when it can, on the calling task with
//! no thread hop; otherwise it reads in a read transaction on `tokio::task::spawn_blocking`
//! (never waiting for the writer) and caches the answer, absent keys included. The cache is
//! coherent because this process is the database's only writer (redb locks the file): the
//! writer thread covers every key a group changes before it commits and releases them
//! after, so a reader never gets a value older than a write that has returned, and never
//! half of a batch. Cached entries keep their expiry and are misses once it passes by the
//! store's clock. Scans always read the database. Size it or turn it off with
//! [`RedbConfig::read_cache`].
//!
//! # Limitations
//!
//! One process at a time: redb locks the file, and a second open (in this process or
//! another) is an error. Expired entries stay on disk until
//! [`Store::purge_expired`] removes them (they are never returned).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_device_store::{
    async_trait, check_key, check_scan_limit, check_value, envelope, BatchOp, CasOutcome, Clock,
    Lookup, Peek, ReadCache, ReadCacheConfig, ReadCacheStats, ScanPage, Store, StoreError,
    SystemClock, Watch, WriteGuard,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::oneshot;

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");
const BACKEND: &str = "redb";

fn engine(key: Option<&[u8]>, e: impl Into<redb::Error>) -> StoreError {
    StoreError::backend(BACKEND, key, e.into())
}

/// Configuration of a [`RedbStore`].
#[must_use]
pub struct RedbConfig {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    durable: bool,
    max_batch: usize,
    cache_bytes: usize,
    read_cache: ReadCacheConfig,
}

impl fmt::Debug for RedbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbConfig")
            .field("path", &self.path)
            .field("durable", &self.durable)
            .field("max_batch", &self.max_batch)
            .field("cache_bytes", &self.cache_bytes)
            .field("read_cache", &self.read_cache)
            .finish_non_exhaustive()
    }
}

impl RedbConfig {
    /// The clock expiry is measured by (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Whether each commit is durable before its caller is answered (default `true`).
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// The most writes one group commit takes (default 512).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// redb's page cache size in bytes (default 64 MiB).
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The in-process read cache in front of `get` (default
    /// [`ReadCacheConfig::default`]: 100 000 entries, 64 MiB);
    /// [`ReadCacheConfig::disabled`] sends every `get` to the database.
    #[doc(alias = "cache")]
    pub fn read_cache(mut self, config: ReadCacheConfig) -> Self {
        self.read_cache = config;
        self
    }

    /// Opens (or creates) the database. The directory must exist. A file that is not a
    /// redb database, a database already open, or a missing directory is
    /// [`StoreError::Open`], never a panic.
    pub fn open(self) -> Result<RedbStore, StoreError> {
        let path = self.path.clone();
        let open_err = |e: String| StoreError::open(&path, e);
        let cache = self.cache_bytes;
        let opened = std::panic::catch_unwind(|| {
            Database::builder().set_cache_size(cache).create(&self.path)
        })
        .map_err(|_| open_err("redb panicked while opening the file (corrupt?)".into()))?;
        let db = opened.map_err(|e| StoreError::open(&path, e))?;
        let txn = db.begin_write().map_err(|e| StoreError::open(&path, e))?;
        {
            txn.open_table(DATA)
                .map_err(|e| StoreError::open(&path, e))?;
            txn.open_table(EXPIRY)
                .map_err(|e| StoreError::open(&path, e))?;
        }
        txn.commit().map_err(|e| StoreError::open(&path, e))?;
        let db = Arc::new(db);
        let cache = Arc::new(ReadCache::new(self.read_cache));
        let (tx, rx) = mpsc::channel::<Job>();
        let writer = Writer {
            db: Arc::clone(&db),
            cache: Arc::clone(&cache),
            clock: Arc::clone(&self.clock),
            durable: self.durable,
            max_batch: self.max_batch,
        };
        let thread = std::thread::Builder::new()
            .name("actix-device-redb-writer".into())
            .spawn(move || writer.run(&rx))
            .map_err(|e| StoreError::open(&path, e))?;
        Ok(RedbStore {
            inner: Arc::new(Inner {
                db,
                cache,
                clock: self.clock,
                sender: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                path,
            }),
        })
    }
}

/// A [`Store`] on a redb file.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    cache: Arc<ReadCache>,
    clock: Arc<dyn Clock>,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the writer after it has committed what it holds; joining
        // it releases the file lock before the store is gone, so it can be reopened at once.
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (or creates) the database at `path` with the defaults.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::builder(path).open()
    }

    /// A configuration for the database at `path`.
    pub fn builder(path: impl AsRef<Path>) -> RedbConfig {
        RedbConfig {
            path: path.as_ref().to_owned(),
            clock: Arc::new(SystemClock),
            durable: true,
            max_batch: 512,
            cache_bytes: 64 * 1024 * 1024,
            read_cache: ReadCacheConfig::default(),
        }
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The read cache's counters (hits, misses, entries held, ...).
    #[must_use]
    pub fn read_cache_stats(&self) -> ReadCacheStats {
        self.inner.cache.stats()
    }

    async fn submit(&self, op: Op) -> Result<Reply, StoreError> {
        let (tx, rx) = oneshot::channel();
        {
            let sender = self.inner.sender.lock().map_err(|_| StoreError::Closed)?;
            sender
                .as_ref()
                .ok_or(StoreError::Closed)?
                .send(Job { op, reply: tx })
                .map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database, u64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.inner.db);
        let now = self.inner.clock.now_millis();
        tokio::task::spawn_blocking(move || f(&db, now))
            .await
            .map_err(|e| StoreError::backend(BACKEND, None, e))?
    }
}

enum Op {
    Put(Vec<u8>, Vec<u8>, Option<Duration>),
    Delete(Vec<u8>),
    InsertIfAbsent(Vec<u8>, Vec<u8>, Option<Duration>),
    Cas(Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, Option<Duration>),
    Batch(Vec<BatchOp>),
    Purge,
    Flush,
}

enum Reply {
    Unit,
    Bool(bool),
    Cas(CasOutcome),
    Count(u64),
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Reply, StoreError>>,
}

struct Writer {
    db: Arc<Database>,
    cache: Arc<ReadCache>,
    clock: Arc<dyn Clock>,
    durable: bool,
    max_batch: usize,
}

impl Writer {
    fn run(self, rx: &mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.commit_group(jobs);
        }
    }

    /// Applies `jobs` in one transaction and answers each.
    fn commit_group(&self, jobs: Vec<Job>) {
        let outcome = {
            // Every key the group changes is covered before the commit; the guard ends
            // after it, before any caller is answered, so a caller's next read sees its
            // write. It lives on this thread, which no cancelled request can interrupt.
            let mut guard = self.cache.begin_write();
            self.transaction(&jobs, &mut guard)
        };
        match outcome {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                let text = e.to_string();
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(StoreError::backend(BACKEND, None, text.clone())));
                }
            }
        }
    }

    /// Runs `jobs` in one write transaction and commits it.
    fn transaction(
        &self,
        jobs: &[Job],
        guard: &mut WriteGuard<'_>,
    ) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
        let flush = jobs.iter().any(|j| matches!(j.op, Op::Flush));
        let mut txn = self.db.begin_write().map_err(|e| engine(None, e))?;
        txn.set_two_phase_commit(true);
        let durability = if self.durable || flush {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability)
            .map_err(|e| StoreError::backend(BACKEND, None, e.to_string()))?;
        let mut results = Vec::with_capacity(jobs.len());
        {
            let mut data = txn.open_table(DATA).map_err(|e| engine(None, e))?;
            let mut expiry = txn.open_table(EXPIRY).map_err(|e| engine(None, e))?;
            let mut tables = Tables {
                data: &mut data,
                expiry: &mut expiry,
                now: self.clock.now_millis(),
                clock: &*self.clock,
                guard,
            };
            for job in jobs {
                // An engine error inside the transaction fails the whole group: redb
                // cannot roll back one operation without a savepoint per operation.
                results.push(Ok(tables.apply(&job.op)?));
            }
        }
        txn.commit().map_err(|e| engine(None, e))?;
        Ok(results)
    }
}

struct Tables<'a, 't, 'c> {
    data: &'a mut Table<'t, &'static [u8], &'static [u8]>,
    expiry: &'a mut Table<'t, &'static [u8], ()>,
    now: u64,
    clock: &'a dyn Clock,
    /// Covers each key before it is changed (see [`ReadCache`]).
    guard: &'a mut WriteGuard<'c>,
}

impl Tables<'_, '_, '_> {
    fn apply(&mut self, op: &Op) -> Result<Reply, StoreError> {
        Ok(match op {
            Op::Put(k, v, ttl) => {
                self.write(k, Some(v), *ttl)?;
                Reply::Unit
            }
            Op::Delete(k) => Reply::Bool(self.write(k, None, None)?.is_some()),
            Op::InsertIfAbsent(k, v, ttl) => {
                if self.live(k)?.is_some() {
                    Reply::Bool(false)
                } else {
                    self.write(k, Some(v), *ttl)?;
                    Reply::Bool(true)
                }
            }
            Op::Cas(k, expected, new, ttl) => {
                let current = self.live(k)?;
                if current.as_deref() == expected.as_deref() {
                    self.write(k, new.as_deref(), *ttl)?;
                    Reply::Cas(CasOutcome::Swapped)
                } else {
                    Reply::Cas(CasOutcome::Conflict { current })
                }
            }
            Op::Batch(ops) => {
                for op in ops {
                    match op {
                        BatchOp::Put { key, value, ttl } => self.write(key, Some(value), *ttl)?,
                        BatchOp::Delete { key } => self.write(key, None, None)?,
                    };
                }
                Reply::Unit
            }
            Op::Purge => Reply::Count(self.purge()?),
            Op::Flush => Reply::Unit,
        })
    }

    /// The live value under `key`.
    fn live(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(raw) = self.data.get(key).map_err(|e| engine(Some(key), e))? else {
            return Ok(None);
        };
        let env = envelope::decode(key, raw.value())?;
        Ok((!env.is_expired(self.now)).then(|| env.value.to_vec()))
    }

    /// Writes (or with `None` removes) `key`, keeping the expiry index in step. Returns
    /// the previous live value.
    fn write(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.guard.cover(key);
        let previous = match self.data.remove(key).map_err(|e| engine(Some(key), e))? {
            Some(old) => {
                let env = envelope::decode(key, old.value())?;
                if let Some(at) = env.expires_at {
                    self.expiry
                        .remove(envelope::index_key(at, key).as_slice())
                        .map_err(|e| engine(Some(key), e))?;
                }
                (!env.is_expired(self.now)).then(|| env.value.to_vec())
            }
            None => None,
        };
        if let Some(value) = value {
            let expires_at = ttl.map(|t| self.clock.expiry_for(t));
            self.data
                .insert(key, envelope::encode(value, expires_at).as_slice())
                .map_err(|e| engine(Some(key), e))?;
            if let Some(at) = expires_at {
                self.expiry
                    .insert(envelope::index_key(at, key).as_slice(), ())
                    .map_err(|e| engine(Some(key), e))?;
            }
        }
        Ok(previous)
    }

    /// Removes every entry whose expiry has passed, walking only the expiry index.
    fn purge(&mut self) -> Result<u64, StoreError> {
        let bound = envelope::index_upper_bound(self.now);
        let mut due = Vec::new();
        for item in self
            .expiry
            .range::<&[u8]>(..bound.as_slice())
            .map_err(|e| engine(None, e))?
        {
            let (k, _) = item.map_err(|e| engine(None, e))?;
            due.push(k.value().to_vec());
        }
        let mut removed = 0;
        for index_key in due {
            self.expiry
                .remove(index_key.as_slice())
                .map_err(|e| engine(None, e))?;
            if let Some((_, key)) = envelope::split_index_key(&index_key) {
                self.guard.cover(key);
                self.data.remove(key).map_err(|e| engine(Some(key), e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A live value and its absolute expiry.
type Live = Option<(Vec<u8>, Option<u64>)>;

/// The live value under `key` and its expiry, in a read transaction.
fn read_live(db: &Database, key: &[u8], now: u64) -> Result<Live, StoreError> {
    let txn = db.begin_read().map_err(|e| engine(Some(key), e))?;
    let table = txn.open_table(DATA).map_err(|e| engine(Some(key), e))?;
    let Some(raw) = table.get(key).map_err(|e| engine(Some(key), e))? else {
        return Ok(None);
    };
    let env = envelope::decode(key, raw.value())?;
    Ok((!env.is_expired(now)).then(|| (env.value.to_vec(), env.expires_at)))
}

/// Up to `limit` live entries under `prefix` after `after`, in a read transaction.
fn scan_page(
    db: &Database,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
    now: u64,
) -> Result<ScanPage, StoreError> {
    let txn = db.begin_read().map_err(|e| engine(None, e))?;
    let table = txn.open_table(DATA).map_err(|e| engine(None, e))?;
    let start: Bound<&[u8]> = match after {
        Some(a) if a >= prefix => Bound::Excluded(a),
        _ => Bound::Included(prefix),
    };
    let mut page = ScanPage::default();
    for item in table
        .range::<&[u8]>((start, Bound::Unbounded))
        .map_err(|e| engine(None, e))?
    {
        let (k, v) = item.map_err(|e| engine(None, e))?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        let env = envelope::decode(key, v.value())?;
        if env.is_expired(now) {
            continue;
        }
        if page.entries.len() == limit {
            page.next = page.entries.last().map(|(k, _)| k.clone());
            break;
        }
        page.entries.push((key.to_vec(), env.value.to_vec()));
    }
    Ok(page)
}

#[async_trait]
impl Store for RedbStore {
    fn backend(&self) -> &'static str {
        "redb"
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
        let live = self.read(move |db, now| read_live(db, &owned, now)).await?;
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
        self.submit(Op::Put(key.to_vec(), value.to_vec(), ttl))
            .await
            .map(|_| ())
    }

    async fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        match self.submit(Op::Delete(key.to_vec())).await? {
            Reply::Bool(b) => Ok(b),
            _ => Ok(false),
        }
    }

    async fn insert_if_absent(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        check_key(key)?;
        check_value(key, value)?;
        match self
            .submit(Op::InsertIfAbsent(key.to_vec(), value.to_vec(), ttl))
            .await?
        {
            Reply::Bool(b) => Ok(b),
            _ => Ok(false),
        }
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
        let op = Op::Cas(
            key.to_vec(),
            expected.map(<[u8]>::to_vec),
            new.map(<[u8]>::to_vec),
            ttl,
        );
        match self.submit(op).await? {
            Reply::Cas(outcome) => Ok(outcome),
            _ => Err(StoreError::backend(
                BACKEND,
                Some(key),
                "unexpected writer reply",
            )),
        }
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
        self.read(move |db, now| scan_page(db, &prefix, after.as_deref(), limit, now))
            .await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        for op in &ops {
            op.check()?;
        }
        self.submit(Op::Batch(ops)).await.map(|_| ())
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        match self.submit(Op::Purge).await? {
            Reply::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.submit(Op::Flush).await.map(|_| ())
    }
}
