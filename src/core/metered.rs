//! Store operations as operators see them: every call the services make is counted,
//! timed and its errors counted, by backend and operation, through the `metrics` facade.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_device_store::{
    async_trait, BatchOp, CasOutcome, Peek, ScanPage, Store, StoreError, Watch,
};

/// A store whose every call reports `actix_device_store_operations_total`,
/// `actix_device_store_errors_total` and `actix_device_store_operation_seconds`, labelled
/// `backend` and `op`. The handles are registered when the store is wrapped (when the
/// `ServiceContext` is built), so install the metrics recorder before that, as exporters
/// ask anyway; without one every report is a no-op.
pub(crate) struct MeteredStore {
    inner: Arc<dyn Store>,
    backend: &'static str,
    ops: [OpMetrics; OPS.len()],
}

const OPS: [&str; 10] = [
    "get",
    "peek",
    "put",
    "delete",
    "insert_if_absent",
    "compare_and_swap",
    "scan",
    "batch",
    "purge",
    "flush",
];

// Indexes into `OPS` and `MeteredStore::ops`, so a call finds its handles without a lookup.
const GET: usize = 0;
const PEEK: usize = 1;
const PUT: usize = 2;
const DELETE: usize = 3;
const INSERT_IF_ABSENT: usize = 4;
const COMPARE_AND_SWAP: usize = 5;
const SCAN: usize = 6;
const BATCH: usize = 7;
const PURGE: usize = 8;
const FLUSH: usize = 9;

struct OpMetrics {
    calls: metrics::Counter,
    errors: metrics::Counter,
    seconds: metrics::Histogram,
}

impl MeteredStore {
    pub(crate) fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        let backend = inner.backend();
        let ops = OPS.map(|op| {
            let labels = [("backend", backend), ("op", op)];
            OpMetrics {
                calls: metrics::counter!("actix_device_store_operations_total", &labels),
                errors: metrics::counter!("actix_device_store_errors_total", &labels),
                seconds: metrics::histogram!("actix_device_store_operation_seconds", &labels),
            }
        });
        Arc::new(Self {
            inner,
            backend,
            ops,
        })
    }

    async fn timed<T>(
        &self,
        op: usize,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = call.await;
        let m = &self.ops[op];
        m.calls.increment(1);
        m.seconds.record(start.elapsed().as_secs_f64());
        if result.is_err() {
            m.errors.increment(1);
        }
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed(GET, self.inner.get(key)).await
    }
    /// Answered peeks are counted (op `peek`), not timed: they take a lock and a hash
    /// lookup, and two clock reads would cost about as much again. A peek that knows
    /// nothing is not counted; the `get` that follows is.
    fn peek(&self, key: &[u8]) -> Peek {
        let answer = self.inner.peek(key);
        if answer != Peek::Unknown {
            self.ops[PEEK].calls.increment(1);
        }
        answer
    }
    fn peek_watched(&self, key: &[u8]) -> Option<(Arc<[u8]>, Watch)> {
        let answer = self.inner.peek_watched(key);
        if answer.is_some() {
            self.ops[PEEK].calls.increment(1);
        }
        answer
    }
    async fn put(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.timed(PUT, self.inner.put(key, value, ttl)).await
    }
    async fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.timed(DELETE, self.inner.delete(key)).await
    }
    async fn insert_if_absent(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let call = self.inner.insert_if_absent(key, value, ttl);
        self.timed(INSERT_IF_ABSENT, call).await
    }
    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, StoreError> {
        let call = self.inner.compare_and_swap(key, expected, new, ttl);
        self.timed(COMPARE_AND_SWAP, call).await
    }
    async fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.timed(SCAN, self.inner.scan_prefix(prefix, after, limit))
            .await
    }
    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        self.timed(BATCH, self.inner.batch(ops)).await
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.timed(PURGE, self.inner.purge_expired()).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.timed(FLUSH, self.inner.flush()).await
    }
    fn backend(&self) -> &'static str {
        self.backend
    }
}
