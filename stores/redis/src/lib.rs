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
//! server (in `#[actix_web::main]`, before `HttpServer::new`); every worker can use it.
//! Commands time out after [`RedisConfig::response_timeout`], and a dropped connection is
//! re-established on the next command. While Redis is unreachable every call fails with
//! [`StoreError::Backend`] (the source is the Redis client's error); the store recovers
//! by itself when Redis returns. A write that timed out may or may not have been applied.
//!
//! # Limitations
//!
//! Standalone Redis (or a primary behind Sentinel / a managed endpoint): the scripts
//! touch keys they compute from the prefix, which Redis Cluster does not allow. Needs
//! Redis 6.2 or later (or Valkey).
//!
//! [`Clock`]: actix_device_store::Clock
//! [`Store::purge_expired`]: actix_device_store::Store::purge_expired
//! [`Store::flush`]: actix_device_store::Store::flush
//! [`StoreError::Backend`]: actix_device_store::StoreError::Backend

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

// The crate in four parts: the configuration and connecting (`config`), the names of the
// Redis keys under a prefix (`layout`), the Lua scripts and the arguments they take
// (`scripts`, the Lua itself in `src/scripts/*.lua`), and the `Store` on top (`store`).
mod config;
mod layout;
mod scripts;
mod store;

pub use config::RedisConfig;
pub use store::RedisStore;
