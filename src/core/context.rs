//! What every service shares: typed access to the store, the clock, the event hooks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::{Clock, Store, SystemClock};

use crate::core::events::{DeviceEvents, NoEvents};
use crate::core::metered::MeteredStore;
use crate::core::record::Records;

/// How long security audit events are kept unless configured.
const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The store, clock and event hooks every service is built on.
///
/// Build one and hand it to each service, so they all read the same store with the same
/// clock and report to the same hooks:
///
/// ```
/// # use std::sync::Arc;
/// # use actix_device::stores::{Store, MokaStore};
/// use actix_device::ServiceContext;
/// use actix_device::devices::Devices;
/// use actix_device::carts::Carts;
/// # fn demo(store: Arc<dyn Store>) {
/// let context = ServiceContext::new(store);
/// let devices = Devices::new(&context);
/// let carts = Carts::new(&context);
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct ServiceContext {
    records: Records,
    clock: Arc<dyn Clock>,
    events: Arc<dyn DeviceEvents>,
    audit_retention: Option<Duration>,
}

impl fmt::Debug for ServiceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceContext").finish_non_exhaustive()
    }
}

impl ServiceContext {
    /// A context on `store` with the system clock and no hooks. Every store call the
    /// services make through it is reported to the `metrics` facade (see the README's
    /// "Metrics").
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            records: Records::new(MeteredStore::wrap(store)),
            clock: Arc::new(SystemClock),
            events: Arc::new(NoEvents),
            audit_retention: Some(DEFAULT_AUDIT_RETENTION),
        }
    }

    /// How long security audit events are kept (default 90 days); `None` keeps no audit
    /// log.
    pub fn audit_retention(mut self, retention: Option<Duration>) -> Self {
        self.audit_retention = retention;
        self
    }

    /// Reads time from `clock` (for tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Reports to `events`.
    pub fn events(mut self, events: impl DeviceEvents) -> Self {
        self.events = Arc::new(events);
        self
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        self.records.store()
    }

    pub(crate) fn records(&self) -> &Records {
        &self.records
    }

    pub(crate) fn hooks(&self) -> &dyn DeviceEvents {
        &*self.events
    }

    pub(crate) fn audit_ttl(&self) -> Option<Duration> {
        self.audit_retention
    }

    pub(crate) fn clock_arc(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// Now, in milliseconds since the epoch.
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    /// Now, read cheaply: up to a clock tick old ([`Clock::recent_millis`]). For the
    /// hot path's decisions in seconds (timeouts, throttles).
    pub(crate) fn recent(&self) -> u64 {
        self.clock.recent_millis()
    }
}
