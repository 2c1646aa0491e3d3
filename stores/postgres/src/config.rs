//! [`PostgresConfig`]: the builder, and connecting (pool, table creation, layout check).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::{Clock, StoreError, SystemClock};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

use crate::sql::{self, Statements, LAYOUT_VERSION};
use crate::{Inner, PostgresStore};

/// What messages and logs call a URL that does not parse.
const UNPARSABLE: &str = "(unparsable PostgreSQL URL)";

/// Configuration of a [`PostgresStore`]; [`connect`](Self::connect) opens it.
#[must_use]
pub struct PostgresConfig {
    url: String,
    table: String,
    clock: Arc<dyn Clock>,
    pool_size: usize,
    timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: show only where it points.
        f.debug_struct("PostgresConfig")
            .field("server", &redacted(&self.url))
            .field("table", &self.table)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// `host:port/database` of a parsed configuration: no user name, no password.
fn server_name(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or_else(|| config.get_user())
        .unwrap_or("");
    format!("{host}:{port}/{db}")
}

/// [`server_name`] of `url`, for a configuration not yet connected.
fn redacted(url: &str) -> String {
    url.parse::<tokio_postgres::Config>()
        .map_or_else(|_| UNPARSABLE.to_owned(), |c| server_name(&c))
}

impl PostgresConfig {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            table: "actix_device".to_owned(),
            clock: Arc::new(SystemClock),
            pool_size: 16,
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
        }
    }

    /// The table this store keeps its entries in (default `actix_device`), created at
    /// connect if missing. 1 to 48 lowercase ASCII letters, digits and underscores, not
    /// starting with a digit; anything else fails [`connect`](Self::connect). Give each
    /// application sharing a database its own table.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// The clock expiry is measured by (default: the system clock). Every instance
    /// sharing a table should read the same time: expiry is decided by the caller's
    /// clock, not the server's.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The most connections the pool opens (default 16). Each is a server process:
    /// mind `max_connections` when many instances share one server.
    #[doc(alias = "max_connections")]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long one store call may take, waiting for a pooled connection included,
    /// before it fails (default 2 s). A connection whose call timed out is closed, not
    /// reused.
    #[doc(alias = "statement_timeout")]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long opening one connection may take (default 1 s), unless the URL sets
    /// `connect_timeout` itself.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects, creates the table and its expiry index if missing, and checks the
    /// table's layout version. A malformed URL, an unreachable server, failed
    /// authentication or a table of a newer layout is [`StoreError::Open`] naming the
    /// server (never the password); a bad table name is [`StoreError::InvalidArgument`].
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        if !sql::valid_table_name(&self.table) {
            return Err(StoreError::InvalidArgument(
                "the table name must be 1 to 48 lowercase ASCII letters, digits or \
                 underscores, not starting with a digit",
            ));
        }
        let mut pg: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| StoreError::open(UNPARSABLE, e))?;
        let server = server_name(&pg);
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(self.connect_timeout);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("actix-device");
        }
        // An idle connection to a peer that vanished without closing the socket is
        // noticed within half a minute (a busy one by the call timeout first).
        pg.keepalives_idle(Duration::from_secs(10));
        pg.keepalives_interval(Duration::from_secs(5));
        pg.keepalives_retries(3);
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.timeout))
            .create_timeout(Some(self.timeout.max(self.connect_timeout)))
            .recycle_timeout(Some(self.timeout))
            .build()
            .map_err(|e| StoreError::open(&server, e))?;
        let limit = self.timeout.max(self.connect_timeout);
        match tokio::time::timeout(limit, prepare_table(&pool, &self.table)).await {
            Ok(prepared) => prepared.map_err(|e| StoreError::open(&server, e))?,
            Err(_) => return Err(StoreError::open(&server, PrepareError::TimedOut(limit))),
        }
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                server,
                sql: Statements::new(&self.table),
                table: self.table,
                clock: self.clock,
                timeout: self.timeout,
            }),
        })
    }
}

/// Why a table could not be prepared at connect.
#[derive(Debug, thiserror::Error)]
enum PrepareError {
    #[error("cannot get a connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{}", crate::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error(
        "table {table} has layout version {found}; this version of actix-device-postgres \
         knows versions up to {LAYOUT_VERSION}"
    )]
    NewerLayout { table: String, found: i32 },
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Creates the table if missing (one transaction) and checks its layout version.
async fn prepare_table(pool: &Pool, table: &str) -> Result<(), PrepareError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(&sql::create_schema(table)).await?;
    let found: i32 = tx
        .query_one(sql::SELECT_VERSION, &[&table])
        .await?
        .try_get(0)?;
    tx.commit().await?;
    // Later layouts migrate older tables here, one version at a time.
    if found > LAYOUT_VERSION {
        return Err(PrepareError::NewerLayout {
            table: table.to_owned(),
            found,
        });
    }
    Ok(())
}
