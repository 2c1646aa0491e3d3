//! The conformance suite against a real PostgreSQL server.
//!
//! The server's URL comes from `ACTIX_DEVICE_POSTGRES_URL` (`.ci/with-postgres` starts one
//! and sets it). Without it the test prints why and returns: skipped, never passed
//! silently.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use actix_device_postgres::PostgresStore;
use actix_device_store::testkit::{self, Harness};
use actix_device_store::{async_trait, ManualClock};
use support::{postgres_url, run_table};

struct Postgres {
    url: String,
    /// Every table handed out, to drop them at the end.
    tables: Mutex<Vec<String>>,
}

impl Postgres {
    async fn connect(&self, table: &str, clock: ManualClock) -> PostgresStore {
        PostgresStore::builder(&self.url)
            .table(table)
            .clock(clock)
            // Generous: a burst of new connections (SCRAM authentication each) on a
            // loaded test machine must not fail the contract checks.
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .expect("postgres connects")
    }
}

#[async_trait]
impl Harness for Postgres {
    type Store = PostgresStore;

    /// Each store gets a table of its own: fresh and empty on the shared server.
    async fn open(&self, clock: ManualClock) -> PostgresStore {
        let table = run_table("suite");
        self.tables.lock().unwrap().push(table.clone());
        self.connect(&table, clock).await
    }

    /// PostgreSQL keeps the data, not the client: a new pool on the same table must see
    /// every write and its expiry.
    async fn reopen(&self, store: PostgresStore, clock: ManualClock) -> Option<PostgresStore> {
        let table = store.table().to_owned();
        drop(store);
        Some(self.connect(&table, clock).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_passes_the_conformance_suite() {
    let Some(url) = postgres_url() else { return };
    let harness = Postgres {
        url,
        tables: Mutex::new(Vec::new()),
    };
    testkit::run_suite(&harness).await;
    // Leave the server as we found it.
    let tables = harness.tables.lock().unwrap().clone();
    for table in tables {
        let store = harness.connect(&table, ManualClock::starting_now()).await;
        store.drop_table().await.unwrap();
    }
}
