//! Store operations as operators see them: every call the services make is counted,
//! timed and its errors counted, by backend and operation, through the `metrics` facade.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_device_store::{async_trait, BatchOp, CasOutcome, ScanPage, Store, StoreError};

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

const OPS: [&str; 9] = [
    "get",
    "put",
    "delete",
    "insert_if_absent",
    "compare_and_swap",
    "scan",
    "batch",
    "purge",
    "flush",
];

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
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = call.await;
        if let Some(m) = OPS.iter().position(|o| *o == op).map(|i| &self.ops[i]) {
            m.calls.increment(1);
            m.seconds.record(start.elapsed().as_secs_f64());
            if result.is_err() {
                m.errors.increment(1);
            }
        }
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed("get", self.inner.get(key)).await
    }
    async fn put(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.timed("put", self.inner.put(key, value, ttl)).await
    }
    async fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.timed("delete", self.inner.delete(key)).await
    }
    async fn insert_if_absent(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let call = self.inner.insert_if_absent(key, value, ttl);
        self.timed("insert_if_absent", call).await
    }
    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, StoreError> {
        let call = self.inner.compare_and_swap(key, expected, new, ttl);
        self.timed("compare_and_swap", call).await
    }
    async fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.timed("scan", self.inner.scan_prefix(prefix, after, limit))
            .await
    }
    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        self.timed("batch", self.inner.batch(ops)).await
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.timed("purge", self.inner.purge_expired()).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.timed("flush", self.inner.flush()).await
    }
    fn backend(&self) -> &'static str {
        self.backend
    }
}
