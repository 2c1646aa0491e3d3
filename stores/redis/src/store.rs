//! [`RedisStore`]: the [`Store`] contract on the scripts and a multiplexed connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::{
    async_trait, check_key, check_scan_limit, check_value, envelope, BatchOp, CasOutcome, Clock,
    KeyName, ScanPage, Store, StoreError,
};
use redis::aio::ConnectionManager;
use redis::{RedisError, Script, ScriptInvocation};

use crate::config::RedisConfig;
use crate::layout::Layout;
use crate::scripts::{invocation, push_delete, push_put, Entry, Scripts};

const BACKEND: &str = "redis";

/// Keys a purge step takes from the expiry index at a time (one script call each).
const PURGE_CHUNK: usize = 1_000;

/// Keys `clear` asks `SCAN` for at a time.
const CLEAR_CHUNK: usize = 1_000;

fn engine(key: Option<&[u8]>, e: RedisError) -> StoreError {
    StoreError::backend(BACKEND, key, e)
}

fn corrupt(key: &[u8]) -> StoreError {
    StoreError::Corrupt {
        key: KeyName::new(key),
        reason: "the stored envelope is not readable".to_owned(),
    }
}

struct Inner {
    server: String,
    layout: Layout,
    clock: Arc<dyn Clock>,
    scripts: Scripts,
}

/// A [`Store`] on a Redis server, shared by every process that connects with the same
/// key prefix. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.inner.server)
            .field("prefix", &self.key_prefix().escape_ascii().to_string())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A configuration for the server at `url` (`redis://[user:password@]host:port/db`;
    /// `rediss://` for TLS once the application enables the `redis` crate's
    /// `tokio-rustls-comp` or `tokio-native-tls-comp` feature).
    pub fn builder(url: impl Into<String>) -> RedisConfig {
        RedisConfig::new(url.into())
    }

    /// Connects to `url` with the default configuration.
    pub async fn connect(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// The store on a connection [`RedisConfig::connect`] opened to `server`.
    pub(crate) fn from_parts(
        conn: ConnectionManager,
        server: String,
        prefix: Vec<u8>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            conn,
            inner: Arc::new(Inner {
                server,
                layout: Layout::new(prefix),
                clock,
                scripts: Scripts::new(),
            }),
        }
    }

    /// The server this store talks to (`host:port/db`, no credentials).
    #[must_use]
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// The prefix of every Redis key this store writes.
    #[must_use]
    pub fn key_prefix(&self) -> &[u8] {
        self.inner.layout.prefix()
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_millis()
    }

    fn entry(&self, value: &[u8], ttl: Option<Duration>, now: u64) -> Entry {
        Entry::new(&*self.inner.clock, value, ttl, now)
    }

    /// A call of `script` on this store's keys at `now`.
    fn call<'a>(&'a self, script: &'a Script, now: u64) -> ScriptInvocation<'a> {
        invocation(script, &self.inner.layout, now)
    }

    /// Runs a script call; `key` names the single key it is about, for errors.
    async fn run<T: redis::FromRedisValue>(
        &self,
        call: &ScriptInvocation<'_>,
        key: Option<&[u8]>,
    ) -> Result<T, StoreError> {
        call.invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| engine(key, e))
    }

    /// Runs one command that is not a script (errors name no key).
    async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        cmd.query_async(&mut self.conn.clone())
            .await
            .map_err(|e| engine(None, e))
    }

    /// Removes everything this store holds: its data keys (`{prefix}d:*`, found with
    /// `SCAN` in steps that never hold the server for long) and its two indexes. For
    /// tests and for retiring an application's state; entries other instances write
    /// meanwhile may survive. Returns how many Redis keys it removed.
    ///
    /// It matches by prefix, so it also removes the data of another application whose
    /// prefix starts with this one's followed by `d:`: give applications prefixes that
    /// do not start with one another.
    pub async fn clear(&self) -> Result<u64, StoreError> {
        let glob = self.inner.layout.data_glob();
        let mut cursor: u64 = 0;
        let mut removed = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&glob)
                .arg("COUNT")
                .arg(CLEAR_CHUNK);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.command(&scan).await?;
            if !keys.is_empty() {
                removed += self.command::<u64>(redis::cmd("UNLINK").arg(&keys)).await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let layout = &self.inner.layout;
        let mut indexes = redis::cmd("UNLINK");
        indexes.arg(layout.index()).arg(layout.expiry());
        Ok(removed + self.command::<u64>(&indexes).await?)
    }
}

/// A `ZRANGEBYLEX` bound where a scan of `prefix` after `after` starts: `(` exclusive or
/// `[` inclusive, then the member; `-` is the very start.
fn scan_start(prefix: &[u8], after: Option<&[u8]>) -> Vec<u8> {
    match after {
        Some(after) if after >= prefix => [b"(", after].concat(),
        _ if prefix.is_empty() => b"-".to_vec(),
        _ => [b"[", prefix].concat(),
    }
}

/// The page the scan script's reply `(more, [k1, v1, k2, v2, ...])` describes.
fn scan_page(more: i64, flat: Vec<Vec<u8>>) -> ScanPage {
    let mut entries = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        entries.push((k, v));
    }
    let next = if more == 1 {
        entries.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    ScanPage { entries, next }
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.inner.layout.data_key(key))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| engine(Some(key), e))?;
        let Some(raw) = raw else { return Ok(None) };
        let env = envelope::decode(key, &raw)?;
        if env.is_expired(self.now()) {
            return Ok(None);
        }
        Ok(Some(env.value.to_vec()))
    }

    async fn put(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        check_key(key)?;
        check_value(key, value)?;
        let now = self.now();
        let mut call = self.call(&self.inner.scripts.apply, now);
        push_put(&mut call, key, self.entry(value, ttl, now));
        self.run::<u64>(&call, Some(key)).await.map(drop)
    }

    async fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let mut call = self.call(&self.inner.scripts.apply, self.now());
        push_delete(&mut call, key);
        Ok(self.run::<u64>(&call, Some(key)).await? > 0)
    }

    async fn insert_if_absent(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        check_key(key)?;
        check_value(key, value)?;
        let now = self.now();
        let e = self.entry(value, ttl, now);
        let mut call = self.call(&self.inner.scripts.insert, now);
        call.arg(key).arg(e.envelope).arg(e.px).arg(e.at);
        match self.run::<i64>(&call, Some(key)).await? {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(corrupt(key)),
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
        if let Some(new) = new {
            check_value(key, new)?;
        }
        let now = self.now();
        let mut call = self.call(&self.inner.scripts.cas, now);
        call.arg(key)
            .arg(u8::from(expected.is_some()))
            .arg(expected.unwrap_or_default());
        match new {
            Some(new) => {
                let e = self.entry(new, ttl, now);
                call.arg(1).arg(e.envelope).arg(e.px).arg(e.at);
            }
            None => {
                call.arg(0).arg("").arg("").arg("");
            }
        }
        match self.run::<(i64, Option<Vec<u8>>)>(&call, Some(key)).await? {
            (1, _) => Ok(CasOutcome::Swapped),
            (0, current) => Ok(CasOutcome::Conflict { current }),
            _ => Err(corrupt(key)),
        }
    }

    async fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        check_scan_limit(limit)?;
        let mut call = self.call(&self.inner.scripts.scan, self.now());
        call.arg(prefix).arg(scan_start(prefix, after)).arg(limit);
        let (more, flat): (i64, Vec<Vec<u8>>) = self.run(&call, Some(prefix)).await?;
        if more < 0 {
            return Err(corrupt(flat.first().map_or(prefix, Vec::as_slice)));
        }
        Ok(scan_page(more, flat))
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        for op in &ops {
            op.check()?;
        }
        if ops.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut call = self.call(&self.inner.scripts.apply, now);
        for op in &ops {
            match op {
                BatchOp::Put { key, value, ttl } => {
                    push_put(&mut call, key, self.entry(value, *ttl, now));
                }
                BatchOp::Delete { key } => push_delete(&mut call, key),
            }
        }
        let single = (ops.len() == 1).then(|| ops[0].key());
        self.run::<u64>(&call, single).await.map(drop)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        loop {
            let mut call = self.call(&self.inner.scripts.purge, self.now());
            call.arg(PURGE_CHUNK);
            let (n, seen): (u64, usize) = self.run(&call, None).await?;
            removed += n;
            if seen < PURGE_CHUNK {
                return Ok(removed);
            }
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let _: String = self.command(&redis::cmd("PING")).await?;
        Ok(())
    }
}
