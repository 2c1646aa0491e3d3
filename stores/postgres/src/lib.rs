//! Shared store for [actix-device](https://docs.rs/actix-device) on PostgreSQL: one state
//! for every instance of an application, in the database it already runs.
//!
//! ```no_run
//! # async fn run() -> Result<(), actix_device_store::StoreError> {
//! use actix_device_postgres::PostgresStore;
//! let store = PostgresStore::builder("postgres://app:secret@127.0.0.1:5432/shop")
//!     .table("actix_device")
//!     .connect()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Client
//!
//! [`tokio-postgres`](https://docs.rs/tokio-postgres) with a
//! [`deadpool-postgres`](https://docs.rs/deadpool-postgres) pool: a maintained, pure-Rust
//! async client with pipelining and per-connection prepared statements, and a small pool
//! over it. It compiles far less than `sqlx` (no macros, no query checking against a
//! live database, no other databases' drivers), and this store sends a fixed set of
//! statements, so `sqlx`'s compile-time query checks would buy little.
//!
//! # Layout
//!
//! One table per store (default `actix_device`, see [`PostgresConfig::table`]), created
//! at connect when missing:
//!
//! | column | type | holds |
//! |---|---|---|
//! | `key` | `bytea`, primary key | the key; PostgreSQL orders `bytea` byte by byte, the order scans promise |
//! | `value` | `bytea` | the value |
//! | `expires_at` | `bigint`, null for never | expiry in epoch milliseconds by the store's [`Clock`]; a partial index on it serves `purge_expired` |
//!
//! The table `actix_device_schema` records each store table's layout version (1), so a
//! later version of this crate can migrate an older table at connect, and an older one
//! refuses a newer table instead of misreading it.
//!
//! # Expiry
//!
//! Every statement takes the caller's clock reading and treats a row with
//! `expires_at <= now` as absent: expired rows are never returned, count as absent for
//! insert-if-absent and compare-and-swap, and `delete` reports them as not live. They
//! stay on disk until [`Store::purge_expired`] removes them (walking only the expiry
//! index); run it now and then (`Sessions::sweep` does). Instances sharing a table should
//! have synchronised clocks, as with any shared store.
//!
//! # Atomicity
//!
//! Every call is one statement or one transaction: `get`, `put`, `delete`,
//! insert-if-absent (`INSERT … ON CONFLICT DO UPDATE … WHERE expired`) and scans are
//! single statements; compare-and-swap is one conditional `UPDATE` or `DELETE` when it
//! succeeds, and a short transaction holding the row lock (`SELECT … FOR UPDATE`) when it
//! has to report the current value; a batch is one statement (a `DELETE` and an upsert
//! over arrays), so a scan, itself one statement on one snapshot, sees it whole or not
//! at all. A batch or purge that PostgreSQL aborts as a deadlock victim is retried.
//!
//! # Durability and failures
//!
//! A write is acknowledged once its transaction has committed: durable under the
//! server's default `synchronous_commit = on`. [`Store::flush`] is a round trip that
//! reports whether the server is reachable.
//!
//! Connections come from a pool ([`PostgresConfig::pool_size`]), opened on demand: the
//! store connects once at [`PostgresConfig::connect`] to create the table, then opens
//! connections as calls need them. Every call is bounded by
//! [`PostgresConfig::timeout`], the wait for a connection included; a connection whose
//! call timed out is closed rather than reused. While PostgreSQL is unreachable every
//! call fails with [`StoreError::Backend`]; the pool drops dead connections and the
//! store recovers by itself when the server returns. A write that timed out may or may
//! not have been applied.
//!
//! Each connection's I/O runs as a task on the tokio runtime of the call that opened it:
//! under actix-web every worker opens and uses connections, and a connection whose
//! worker has stopped is seen closed and replaced.
//!
//! # Limitations
//!
//! - No TLS yet: connections are plain TCP (or a Unix socket). Keep the database on a
//!   private network or loopback.
//! - Expired rows take space until a purge.
//! - Keys are at most [`MAX_KEY_LEN`](actix_device_store::MAX_KEY_LEN) bytes, well under
//!   PostgreSQL's index row limit.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod config;
mod sql;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::{
    async_trait, check_key, check_scan_limit, check_value, BatchOp, CasOutcome, Clock, ScanPage,
    Store, StoreError,
};
use deadpool_postgres::{ClientWrapper, GenericClient, Object, Pool, PoolError};
use tokio_postgres::error::SqlState;

pub use config::PostgresConfig;
use sql::{prefix_end, Statements};

const BACKEND: &str = "postgres";

/// Rows a purge statement removes at a time.
const PURGE_CHUNK: i64 = 10_000;

/// How often a statement PostgreSQL aborted as a deadlock victim (or a serialization
/// failure) is tried again before the error is returned.
const RETRIES: usize = 5;

/// A PostgreSQL error with what the server said, for messages and logs (the client's
/// own `Display` says only "db error").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// Why a call failed; the source of [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{}", describe(.0))]
    Postgres(#[source] tokio_postgres::Error),
    #[error("cannot get a connection: {0}")]
    Pool(#[source] PoolError),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("the table holds a row that is not readable: {0}")]
    Row(&'static str),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Postgres(e)
    }
}

impl Failure {
    /// A deadlock victim or serialization failure: safe to run again.
    fn is_transient(&self) -> bool {
        matches!(self, Self::Postgres(e) if matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
        ))
    }
}

/// A pooled connection lent to one call. Dropped without [`release`](Self::release) —
/// the call was cancelled by its timeout mid-statement — it is closed rather than
/// returned: what it was doing is unknown, and a stuck connection must not be reused.
struct Lease(Option<Object>);

impl Lease {
    fn client(&mut self) -> &mut ClientWrapper {
        // Only `release` and `drop` empty it, and both consume the lease.
        self.0.as_deref_mut().expect("a lease holds its connection")
    }

    fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

struct Inner {
    pool: Pool,
    server: String,
    table: String,
    sql: Statements,
    clock: Arc<dyn Clock>,
    timeout: Duration,
}

/// A [`Store`] on a PostgreSQL table, shared by every process that connects to the same
/// table. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("server", &self.inner.server)
            .field("table", &self.inner.table)
            .finish_non_exhaustive()
    }
}

/// Converts an epoch-milliseconds reading to PostgreSQL's `bigint`, saturating.
fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// The value of a row (`value`, `expires_at`) if it is live at `now`.
fn live_value(row: &tokio_postgres::Row, now: i64) -> Result<Option<Vec<u8>>, Failure> {
    let expires_at: Option<i64> = row.try_get(1)?;
    if expires_at.is_some_and(|at| at <= now) {
        return Ok(None);
    }
    Ok(Some(row.try_get(0)?))
}

/// Runs `$body` with `$c` bound to a pooled connection, within the store's timeout,
/// again when PostgreSQL aborted it as a deadlock victim; `$key` names the key for
/// errors. (A macro, not a method taking an async closure: the trait's futures must be
/// `Send`, which a closure over borrowed arguments cannot yet promise.)
macro_rules! on_client {
    ($store:expr, $key:expr, |$c:ident| $body:expr) => {
        $store.finish($key, async {
            let mut lease = $store.lease().await?;
            let mut attempt = 0;
            let outcome = loop {
                attempt += 1;
                let $c = lease.client();
                let result: Result<_, Failure> = async { $body }.await;
                match result {
                    Err(e) if e.is_transient() && attempt < RETRIES => {}
                    done => break done,
                }
            };
            lease.release();
            outcome
        })
    };
}

impl PostgresStore {
    /// A configuration for the server at `url`
    /// (`postgres://user:password@host:port/database`, or the key-value form
    /// `host=… user=… dbname=…`).
    pub fn builder(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig::new(url.into())
    }

    /// Connects to `url` with the default configuration.
    pub async fn connect(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// The server this store talks to (`host:port/database`, no credentials).
    #[must_use]
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// The table this store keeps its entries in.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    fn now(&self) -> i64 {
        millis(self.inner.clock.now_millis())
    }

    /// The absolute expiry of a write made now with `ttl`.
    fn expiry(&self, ttl: Option<Duration>) -> Option<i64> {
        ttl.map(|ttl| millis(self.inner.clock.expiry_for(ttl)))
    }

    /// A pooled connection for one call.
    async fn lease(&self) -> Result<Lease, Failure> {
        Ok(Lease(Some(
            self.inner.pool.get().await.map_err(Failure::Pool)?,
        )))
    }

    /// Bounds `work` by the store's timeout and turns its failure into a
    /// [`StoreError::Backend`] naming `key`.
    async fn finish<T>(
        &self,
        key: Option<&[u8]>,
        work: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, StoreError> {
        let failure = match tokio::time::timeout(self.inner.timeout, work).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(failure)) => failure,
            Err(_) => Failure::TimedOut(self.inner.timeout),
        };
        Err(StoreError::backend(BACKEND, key, failure))
    }

    /// Removes every entry of this store's table (other tables are untouched). For
    /// tests and for retiring an application's state. Returns how many rows it removed.
    pub async fn clear(&self) -> Result<u64, StoreError> {
        on_client!(self, None, |c| {
            let st = c.prepare_cached(&self.inner.sql.clear).await?;
            Ok(c.execute(&st, &[]).await?)
        })
        .await
    }

    /// Drops this store's table and its layout record: everything it held is gone, and
    /// the next `connect` to it starts empty. Other instances using the table fail until
    /// one of them reconnects.
    pub async fn drop_table(self) -> Result<(), StoreError> {
        on_client!(self, None, |c| {
            let tx = c.transaction().await?;
            tx.batch_execute(&self.inner.sql.drop).await?;
            let forget = format!("DELETE FROM {} WHERE store_table = $1", sql::SCHEMA_TABLE);
            tx.execute(&forget, &[&self.inner.table]).await?;
            Ok(tx.commit().await?)
        })
        .await
    }

    /// The compare-and-swap that must report what it found: in one transaction, lock
    /// the row, compare, write. `new` is the value and its expiry.
    async fn swap_locked(
        &self,
        c: &mut ClientWrapper,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<(&[u8], Option<i64>)>,
        now: i64,
    ) -> Result<CasOutcome, Failure> {
        let sql = &self.inner.sql;
        let tx = c.transaction().await?;
        loop {
            let row = tx
                .query_opt(&tx.prepare_cached(&sql.lock_row).await?, &[&key])
                .await?;
            let current = row
                .as_ref()
                .map(|r| live_value(r, now))
                .transpose()?
                .flatten();
            if current.as_deref() != expected {
                tx.commit().await?;
                return Ok(CasOutcome::Conflict { current });
            }
            match (row.is_some(), new) {
                (true, Some((value, at))) => {
                    let st = tx.prepare_cached(&sql.update_row).await?;
                    tx.execute(&st, &[&key, &value, &at]).await?;
                }
                (true, None) => {
                    let st = tx.prepare_cached(&sql.delete_row).await?;
                    tx.execute(&st, &[&key]).await?;
                }
                (false, None) => {}
                (false, Some((value, at))) => {
                    let st = tx.prepare_cached(&sql.insert_new).await?;
                    if tx.execute(&st, &[&key, &value, &at]).await? == 0 {
                        // Inserted meanwhile (and committed: the insert waited for it).
                        // Look again, with a fresh snapshot.
                        continue;
                    }
                }
            }
            tx.commit().await?;
            return Ok(CasOutcome::Swapped);
        }
    }

    /// The single-statement attempt at a compare-and-swap: `Some(Swapped)` if it
    /// swapped, `None` if the transaction must find out why not.
    async fn swap_fast(
        &self,
        c: &mut ClientWrapper,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<(&[u8], Option<i64>)>,
        now: i64,
    ) -> Result<Option<CasOutcome>, Failure> {
        let sql = &self.inner.sql;
        let swapped = match (expected, new) {
            (Some(expected), Some((value, at))) => {
                let st = c.prepare_cached(&sql.swap).await?;
                c.execute(&st, &[&key, &expected, &value, &at, &now])
                    .await?
                    == 1
            }
            (Some(expected), None) => {
                let st = c.prepare_cached(&sql.swap_delete).await?;
                c.execute(&st, &[&key, &expected, &now]).await? == 1
            }
            (None, Some((value, at))) => {
                let st = c.prepare_cached(&sql.insert_if_absent).await?;
                c.query_opt(&st, &[&key, &value, &at, &now])
                    .await?
                    .is_some()
            }
            // Nothing to write: one read is the whole answer.
            (None, None) => {
                let st = c.prepare_cached(&sql.get).await?;
                let current: Option<Vec<u8>> = c
                    .query_opt(&st, &[&key, &now])
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                return Ok(Some(match current {
                    None => CasOutcome::Swapped,
                    Some(v) => CasOutcome::Conflict { current: Some(v) },
                }));
            }
        };
        Ok(swapped.then_some(CasOutcome::Swapped))
    }
}

/// A batch as one statement's arrays: the last write to each key wins, as if the
/// writes were applied in order. Keys are sorted, so concurrent batches lock rows in
/// one order.
struct BatchArrays<'a> {
    deletes: Vec<&'a [u8]>,
    keys: Vec<&'a [u8]>,
    values: Vec<&'a [u8]>,
    expiries: Vec<Option<i64>>,
}

impl<'a> BatchArrays<'a> {
    fn new(ops: &'a [BatchOp], expiry: impl Fn(Option<Duration>) -> Option<i64>) -> Self {
        let mut last = std::collections::BTreeMap::new();
        for op in ops {
            last.insert(op.key(), op);
        }
        let mut arrays = Self {
            deletes: Vec::new(),
            keys: Vec::new(),
            values: Vec::new(),
            expiries: Vec::new(),
        };
        for (key, op) in last {
            match op {
                BatchOp::Put { value, ttl, .. } => {
                    arrays.keys.push(key);
                    arrays.values.push(value);
                    arrays.expiries.push(expiry(*ttl));
                }
                BatchOp::Delete { .. } => arrays.deletes.push(key),
            }
        }
        arrays
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let now = self.now();
        on_client!(self, Some(key), |c| {
            let st = c.prepare_cached(&self.inner.sql.get).await?;
            let row = c.query_opt(&st, &[&key, &now]).await?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        })
        .await
    }

    async fn put(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        check_key(key)?;
        check_value(key, value)?;
        let at = self.expiry(ttl);
        on_client!(self, Some(key), |c| {
            let st = c.prepare_cached(&self.inner.sql.put).await?;
            c.execute(&st, &[&key, &value, &at]).await?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let now = self.now();
        on_client!(self, Some(key), |c| {
            let st = c.prepare_cached(&self.inner.sql.delete).await?;
            let row = c.query_opt(&st, &[&key, &now]).await?;
            Ok(row.map(|r| r.try_get(0)).transpose()?.unwrap_or(false))
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
        let (now, at) = (self.now(), self.expiry(ttl));
        on_client!(self, Some(key), |c| {
            let st = c.prepare_cached(&self.inner.sql.insert_if_absent).await?;
            Ok(c.query_opt(&st, &[&key, &value, &at, &now])
                .await?
                .is_some())
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
        if let Some(new) = new {
            check_value(key, new)?;
        }
        let now = self.now();
        let new = new.map(|value| (value, self.expiry(ttl)));
        on_client!(self, Some(key), |c| {
            match self.swap_fast(c, key, expected, new, now).await? {
                Some(outcome) => Ok(outcome),
                None => self.swap_locked(c, key, expected, new, now).await,
            }
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
        let now = self.now();
        // Every key is non-empty, so every key sorts after the empty string.
        let after = after.unwrap_or_default();
        let end = prefix_end(prefix);
        // One row more than asked tells whether another page follows.
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let sql = &self.inner.sql;
        let rows = on_client!(self, Some(prefix), |c| {
            Ok(match &end {
                Some(end) => {
                    let st = c.prepare_cached(&sql.scan_bounded).await?;
                    c.query(&st, &[&prefix, &after, end, &now, &fetch]).await?
                }
                None => {
                    let st = c.prepare_cached(&sql.scan_open).await?;
                    c.query(&st, &[&prefix, &after, &now, &fetch]).await?
                }
            })
        })
        .await?;
        let more = rows.len() > limit;
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(rows.len().min(limit));
        for row in rows.iter().take(limit) {
            let pair = (row.try_get(0), row.try_get(1));
            let (Ok(k), Ok(v)) = pair else {
                let failure = Failure::Row("a key or value is not bytea");
                return Err(StoreError::backend(BACKEND, Some(prefix), failure));
            };
            entries.push((k, v));
        }
        let next = more
            .then(|| entries.last().map(|(k, _)| k.clone()))
            .flatten();
        Ok(ScanPage { entries, next })
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        for op in &ops {
            op.check()?;
        }
        if ops.is_empty() {
            return Ok(());
        }
        let arrays = BatchArrays::new(&ops, |ttl| self.expiry(ttl));
        let single = (ops.len() == 1).then(|| ops[0].key());
        on_client!(self, single, |c| {
            let st = c.prepare_cached(&self.inner.sql.batch).await?;
            let a = &arrays;
            c.execute(&st, &[&a.deletes, &a.keys, &a.values, &a.expiries])
                .await?;
            Ok(())
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.now();
        let mut removed = 0;
        loop {
            let n = on_client!(self, None, |c| {
                let st = c.prepare_cached(&self.inner.sql.purge).await?;
                Ok(c.execute(&st, &[&now, &PURGE_CHUNK]).await?)
            })
            .await?;
            removed += n;
            if n < PURGE_CHUNK.unsigned_abs() {
                return Ok(removed);
            }
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        on_client!(self, None, |c| {
            c.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }
}
