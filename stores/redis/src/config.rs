//! The configuration of a [`RedisStore`] and connecting to the server.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::{Clock, StoreError, SystemClock};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Client;

use crate::store::RedisStore;

/// What messages and logs call a URL that does not parse.
const UNPARSABLE: &str = "(unparsable Redis URL)";

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
    /// The defaults, for the server at `url` ([`RedisStore::builder`]).
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            prefix: b"actix-device:".to_vec(),
            clock: Arc::new(SystemClock),
            response_timeout: Duration::from_secs(2),
            connection_timeout: Duration::from_secs(1),
            reconnect_retries: 2,
            max_reconnect_delay: Duration::from_millis(500),
        }
    }

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
        Ok(RedisStore::from_parts(
            conn,
            server,
            self.prefix,
            self.clock,
        ))
    }
}
