//! Shared store for [actix-device](https://docs.rs/actix-device) on Redis: one state for
//! every instance of an application behind a load balancer.
//!
//! ```no_run
//! # async fn run() -> Result<(), actix_device_store::StoreError> {
//! use actix_device_redis::RedisStore;
//! let store = RedisStore::builder("redis://127.0.0.1:6379/")
//!     .key_prefix("shop:")
//!     .connect()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! Under the key prefix (default `actix-device:`), three kinds of Redis keys:
//!
//! | Redis key | type | holds |
//! |---|---|---|
//! | `{prefix}d:{key}` | string | the value in the shared envelope (expiry + value, see `actix_device_store::envelope`) |
//! | `{prefix}i` | sorted set | every key, all at score 0, so `ZRANGEBYLEX` walks them in byte order |
//! | `{prefix}e` | sorted set | keys that expire, scored by their expiry in epoch milliseconds |
//!
//! Several applications share one Redis by giving each its own prefix.
//!
//! # Expiry
//!
//! An entry written with a TTL is set with Redis's own expiry (`PX`), so Redis frees it
//! on time. The envelope also carries the absolute expiry by the store's
//! [`Clock`], and every read compares against that clock: the contract's "expired means
//! absent everywhere" holds even in the milliseconds before Redis gets to it, and tests
//! can move time with a `ManualClock`. [`Store::purge_expired`] removes the index
//! entries of expired keys (walking only the expiry index); run it now and then
//! (`Sessions::sweep` does) so the key index does not keep names Redis already dropped.
//!
//! # Atomicity
//!
//! Every write is one Lua script, and Redis runs a script without interleaving any other
//! command, from any client: insert-if-absent (`SET NX`, its reply checked),
//! compare-and-swap and batches are atomic across every instance sharing the server, and
//! a scan (also one script) sees a batch whole or not at all. Inputs are validated before
//! a script is sent; inside, the scripts only `SET`, `DEL`, `ZADD` and `ZREM`, which
//! fail only if Redis is out of memory, and Redis refuses a script that would write when
//! over `maxmemory` before it runs its first write.
//!
//! # Durability and failures
//!
//! A write is acknowledged once Redis has applied it; whether it survives a Redis restart
//! is Redis's persistence setting (RDB/AOF), not this crate's. [`Store::flush`] is a
//! round trip that reports whether the server is reachable.
//!
//! The connection is one multiplexed connection per store (clones share it), managed
//! by the client's `ConnectionManager`, whose driver task runs on the tokio runtime that
//! called [`RedisConfig::connect`]: connect inside the runtime that lives as long as the
//! server (in `#[actix_web::main]`, before `HttpServer::new`); every worker can use it. commands time out after
//! [`RedisConfig::response_timeout`], and a dropped connection is re-established on the
//! next command. While Redis is unreachable every call fails with
//! [`StoreError::Backend`] (the source is the Redis client's error); the store recovers
//! by itself when Redis returns. A write that timed out may or may not have been applied.
//!
//! # Limitations
//!
//! Standalone Redis (or a primary behind Sentinel / a managed endpoint): the scripts
//! touch keys they compute from the prefix, which Redis Cluster does not allow. Needs
//! Redis 6.2 or later (or Valkey).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::{
    async_trait, check_key, check_scan_limit, check_value, envelope, BatchOp, CasOutcome, Clock,
    KeyName, ScanPage, Store, StoreError, SystemClock,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script};

const BACKEND: &str = "redis";

/// Keys a purge step takes from the expiry index at a time (one script call each).
const PURGE_CHUNK: usize = 1_000;

/// The longest `PX` Redis accepts is bounded by its clock; TTLs beyond this (over 100,000
/// years) are capped for Redis, while the envelope keeps the exact expiry.
const MAX_PX: u64 = 1 << 51;

/// Appends a delete to a call of the `apply` script (the op takes five arguments, as
/// a put does).
fn push_delete(call: &mut redis::ScriptInvocation<'_>, key: &[u8]) {
    call.arg("d").arg(key).arg("").arg("").arg("");
}

fn engine(key: Option<&[u8]>, e: RedisError) -> StoreError {
    StoreError::backend(BACKEND, key, e)
}

fn corrupt(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: KeyName::new(key),
        reason: reason.to_owned(),
    }
}

/// Configuration of a [`RedisStore`]; [`connect`](Self::connect) opens it.
#[must_use]
pub struct RedisConfig {
    url: String,
    prefix: Vec<u8>,
    clock: Arc<dyn Clock>,
    response_timeout: Duration,
    connection_timeout: Duration,
    reconnect_retries: usize,
    max_reconnect_delay: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: show only where it points.
        f.debug_struct("RedisConfig")
            .field("server", &redacted(&self.url))
            .field("prefix", &self.prefix.escape_ascii().to_string())
            .field("response_timeout", &self.response_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("reconnect_retries", &self.reconnect_retries)
            .field("max_reconnect_delay", &self.max_reconnect_delay)
            .finish_non_exhaustive()
    }
}

/// What messages and logs call a URL that does not parse.
const UNPARSABLE: &str = "(unparsable Redis URL)";

/// `host:port/db` of the client's server: no user name, no password.
fn server_name(client: &Client) -> String {
    let info = client.get_connection_info();
    format!("{}/{}", info.addr(), info.redis_settings().db())
}

/// [`server_name`] of `url`, for a configuration not yet connected.
fn redacted(url: &str) -> String {
    Client::open(url).map_or_else(|_| UNPARSABLE.to_owned(), |c| server_name(&c))
}

impl RedisConfig {
    /// The prefix of every Redis key this store writes (default `actix-device:`). Give
    /// each application sharing a Redis its own, and none that starts with another's
    /// (`shop:` and `blog:`, not `app:` and `app:d:`).
    pub fn key_prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.prefix = prefix.as_ref().to_vec();
        self
    }

    /// The clock expiry is measured by (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long a command may wait for its reply before it fails (default 2 s).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long one connection attempt may take (default 1 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How many times a lost connection is retried, with exponential backoff, before
    /// the commands waiting on it fail (default 2; the next command tries again).
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// The longest pause between two reconnection attempts (default 500 ms).
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay;
        self
    }

    /// Connects and checks the server answers. A malformed URL or an unreachable server
    /// is [`StoreError::Open`] naming the server (never the password).
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let client =
            Client::open(self.url.as_str()).map_err(|e| StoreError::open(UNPARSABLE, e))?;
        let server = server_name(&client);
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connection_timeout))
            .set_number_of_retries(self.reconnect_retries)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(self.max_reconnect_delay);
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| StoreError::open(&server, e))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::open(&server, e))?;
        let data_prefix = [&self.prefix[..], b"d:"].concat();
        let index = [&self.prefix[..], b"i"].concat();
        let expiry = [&self.prefix[..], b"e"].concat();
        Ok(RedisStore {
            conn,
            inner: Arc::new(Inner {
                server,
                prefix: self.prefix,
                data_prefix,
                index,
                expiry,
                clock: self.clock,
                scripts: Scripts::new(),
            }),
        })
    }
}

/// The Lua scripts, loaded once per server (by SHA; reloaded if Redis restarted).
struct Scripts {
    apply: Script,
    insert: Script,
    cas: Script,
    scan: Script,
    purge: Script,
}

/// The Lua scripts, one file each under `src/scripts/`; every script is `common.lua`
/// (envelope decoding, index upkeep) followed by its own body.
const LUA_COMMON: &str = include_str!("scripts/common.lua");
const LUA_APPLY: &str = include_str!("scripts/apply.lua");
const LUA_INSERT: &str = include_str!("scripts/insert.lua");
const LUA_CAS: &str = include_str!("scripts/cas.lua");
const LUA_SCAN: &str = include_str!("scripts/scan.lua");
const LUA_PURGE: &str = include_str!("scripts/purge.lua");

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{LUA_COMMON}{body}"));
        Self {
            apply: script(LUA_APPLY),
            insert: script(LUA_INSERT),
            cas: script(LUA_CAS),
            scan: script(LUA_SCAN),
            purge: script(LUA_PURGE),
        }
    }
}

struct Inner {
    server: String,
    /// The configured key prefix; the three below are it plus `d:`, `i` and `e`, kept
    /// so no call builds them again.
    prefix: Vec<u8>,
    data_prefix: Vec<u8>,
    index: Vec<u8>,
    expiry: Vec<u8>,
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

/// A write's expiry as the scripts take it: the envelope, `PX` and the index score
/// (both empty for no expiry).
struct Expiry {
    envelope: Vec<u8>,
    px: String,
    at: String,
}

impl RedisStore {
    /// A configuration for the server at `url` (`redis://[user:password@]host:port/db`;
    /// `rediss://` for TLS once the application enables the `redis` crate's
    /// `tokio-rustls-comp` or `tokio-native-tls-comp` feature).
    pub fn builder(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            prefix: b"actix-device:".to_vec(),
            clock: Arc::new(SystemClock),
            response_timeout: Duration::from_secs(2),
            connection_timeout: Duration::from_secs(1),
            reconnect_retries: 2,
            max_reconnect_delay: Duration::from_millis(500),
        }
    }

    /// Connects to `url` with the default configuration.
    pub async fn connect(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// The server this store talks to (`host:port/db`, no credentials).
    #[must_use]
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// The prefix of every Redis key this store writes.
    #[must_use]
    pub fn key_prefix(&self) -> &[u8] {
        &self.inner.prefix
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_millis()
    }

    fn data_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.inner.data_prefix.len() + key.len());
        k.extend_from_slice(&self.inner.data_prefix);
        k.extend_from_slice(key);
        k
    }

    fn expiry(&self, value: &[u8], ttl: Option<Duration>, now: u64) -> Expiry {
        match ttl {
            None => Expiry {
                envelope: envelope::encode(value, None),
                px: String::new(),
                at: String::new(),
            },
            Some(ttl) => {
                let at = self.inner.clock.expiry_for(ttl).max(now.saturating_add(1));
                Expiry {
                    envelope: envelope::encode(value, Some(at)),
                    px: (at - now).min(MAX_PX).to_string(),
                    at: at.to_string(),
                }
            }
        }
    }

    /// A script call with the indexes as keys and the data prefix and time as the first
    /// arguments, as every script expects.
    fn invocation<'a>(&self, script: &'a Script, now: u64) -> redis::ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        call.key(&self.inner.index[..])
            .key(&self.inner.expiry[..])
            .arg(&self.inner.data_prefix[..])
            .arg(now);
        call
    }

    /// Appends a put to a call of the `apply` script.
    fn push_put(
        &self,
        call: &mut redis::ScriptInvocation<'_>,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
        now: u64,
    ) {
        let e = self.expiry(value, ttl, now);
        call.arg("p").arg(key).arg(e.envelope).arg(e.px).arg(e.at);
    }

    /// Runs a call of the `apply` script; returns how many of its deletes found an
    /// entry. `key` names the single key written, for errors.
    async fn apply(
        &self,
        call: &redis::ScriptInvocation<'_>,
        key: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        call.invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| engine(key, e))
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
        let mut conn = self.conn.clone();
        // SCAN's MATCH is a glob: escape the prefix's glob characters.
        let mut glob = Vec::with_capacity(self.inner.data_prefix.len() + 2);
        for &b in &self.inner.data_prefix {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                glob.push(b'\\');
            }
            glob.push(b);
        }
        glob.push(b'*');
        let mut cursor: u64 = 0;
        let mut removed = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&glob)
                .arg("COUNT")
                .arg(1_000)
                .query_async(&mut conn)
                .await
                .map_err(|e| engine(None, e))?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| engine(None, e))?;
                removed += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let n: u64 = redis::cmd("UNLINK")
            .arg(&self.inner.index)
            .arg(&self.inner.expiry)
            .query_async(&mut conn)
            .await
            .map_err(|e| engine(None, e))?;
        Ok(removed + n)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.data_key(key))
            .query_async(&mut conn)
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
        let mut call = self.invocation(&self.inner.scripts.apply, now);
        self.push_put(&mut call, key, value, ttl, now);
        self.apply(&call, Some(key)).await.map(drop)
    }

    async fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let mut call = self.invocation(&self.inner.scripts.apply, self.now());
        push_delete(&mut call, key);
        Ok(self.apply(&call, Some(key)).await? > 0)
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
        let e = self.expiry(value, ttl, now);
        let mut call = self.invocation(&self.inner.scripts.insert, now);
        call.arg(key).arg(e.envelope).arg(e.px).arg(e.at);
        let outcome: i64 = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| engine(Some(key), e))?;
        match outcome {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(corrupt(key, "the stored envelope is not readable")),
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
        let mut call = self.invocation(&self.inner.scripts.cas, now);
        call.arg(key)
            .arg(u8::from(expected.is_some()))
            .arg(expected.unwrap_or_default());
        match new {
            Some(new) => {
                let e = self.expiry(new, ttl, now);
                call.arg(1).arg(e.envelope).arg(e.px).arg(e.at);
            }
            None => {
                call.arg(0).arg("").arg("").arg("");
            }
        }
        let reply: (i64, Option<Vec<u8>>) = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| engine(Some(key), e))?;
        match reply {
            (1, _) => Ok(CasOutcome::Swapped),
            (0, current) => Ok(CasOutcome::Conflict { current }),
            _ => Err(corrupt(key, "the stored envelope is not readable")),
        }
    }

    async fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        check_scan_limit(limit)?;
        // A ZRANGEBYLEX bound: "(" exclusive or "[" inclusive, then the member; "-" is
        // the very start.
        let start = match after {
            Some(after) if after >= prefix => [b"(", after].concat(),
            _ if prefix.is_empty() => b"-".to_vec(),
            _ => [b"[", prefix].concat(),
        };
        let now = self.now();
        let mut call = self.invocation(&self.inner.scripts.scan, now);
        call.arg(prefix).arg(start).arg(limit);
        let (more, flat): (i64, Vec<Vec<u8>>) = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| engine(Some(prefix), e))?;
        if more < 0 {
            let key = flat.first().map_or(prefix, Vec::as_slice);
            return Err(corrupt(key, "the stored envelope is not readable"));
        }
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
        Ok(ScanPage { entries, next })
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        for op in &ops {
            op.check()?;
        }
        if ops.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut call = self.invocation(&self.inner.scripts.apply, now);
        for op in &ops {
            match op {
                BatchOp::Put { key, value, ttl } => self.push_put(&mut call, key, value, *ttl, now),
                BatchOp::Delete { key } => push_delete(&mut call, key),
            }
        }
        let single = (ops.len() == 1).then(|| ops[0].key());
        self.apply(&call, single).await.map(drop)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        loop {
            let now = self.now();
            let mut call = self.invocation(&self.inner.scripts.purge, now);
            call.arg(PURGE_CHUNK);
            let (n, seen): (u64, usize) = call
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| engine(None, e))?;
            removed += n;
            if seen < PURGE_CHUNK {
                return Ok(removed);
            }
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| engine(None, e))?;
        Ok(())
    }
}
