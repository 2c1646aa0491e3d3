use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::identity::extract::Reissue;
use crate::identity::token::Rejected;

/// Operator counters of a [`DeviceTracking`](crate::DeviceTracking) middleware, shared by
/// every worker. Read them with [`DeviceTracking::metrics`](crate::DeviceTracking::metrics);
/// each is also reported to the `metrics` facade (`actix_device_tokens_*_total`), for
/// whichever exporter the application installs. The facade's handles are taken when the
/// counters are made (when the middleware is built), so a request reports without a
/// lookup in the exporter's registry: install the exporter before building the
/// middleware.
pub struct Metrics {
    issued: Count,
    accepted: Count,
    /// By [`REISSUE_REASONS`].
    reissued: [Count; 3],
    forgotten: Count,
    /// By [`Rejected::ALL`].
    rejected: [Count; Rejected::ALL.len()],
}

/// The `reason` labels of `actix_device_tokens_reissued_total`, in the order of
/// [`Metrics::reissued`]'s slots.
const REISSUE_REASONS: [&str; 3] = ["retired_key", "refresh", "legacy_format"];

/// One counter: kept here for [`Metrics::snapshot`], and reported to the facade through
/// the handle taken when it was made.
struct Count {
    here: AtomicU64,
    exported: metrics::Counter,
}

impl Count {
    fn new(exported: metrics::Counter) -> Self {
        Self {
            here: AtomicU64::new(0),
            exported,
        }
    }

    fn add(&self) {
        self.here.fetch_add(1, Ordering::Relaxed);
        self.exported.increment(1);
    }

    fn get(&self) -> u64 {
        self.here.load(Ordering::Relaxed)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            issued: Count::new(metrics::counter!("actix_device_tokens_issued_total")),
            accepted: Count::new(metrics::counter!("actix_device_tokens_accepted_total")),
            reissued: REISSUE_REASONS.map(|reason| {
                Count::new(metrics::counter!("actix_device_tokens_reissued_total", "reason" => reason))
            }),
            forgotten: Count::new(metrics::counter!("actix_device_tokens_forgotten_total")),
            rejected: Rejected::ALL.map(|reason| {
                Count::new(metrics::counter!("actix_device_tokens_rejected_total", "reason" => reason.code()))
            }),
        }
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Metrics").field(&self.snapshot()).finish()
    }
}

/// A point-in-time copy of [`Metrics`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Fresh device ids handed out (first visits, rejected cookies replaced, renewals).
    pub issued: u64,
    /// Cookies that verified.
    pub accepted: u64,
    /// Verified cookies re-minted for the same id, for any reason (the sum of the three
    /// below).
    pub reissued: u64,
    /// Re-minted because they verified under a retired key: when this stops growing, the
    /// retired key can go.
    pub reissued_retired_key: u64,
    /// Re-minted because they were older than the refresh age (routine).
    pub reissued_refresh: u64,
    /// Re-minted from an older token format (sealed v1).
    pub reissued_legacy_format: u64,
    /// Removal cookies sent at a handler's request.
    pub forgotten: u64,
    /// Cookies rejected, by reason, in the order of [`Rejected::ALL`].
    pub rejected: Vec<(Rejected, u64)>,
}

impl MetricsSnapshot {
    /// How many cookies were rejected for `reason`.
    #[must_use]
    pub fn rejected_for(&self, reason: Rejected) -> u64 {
        self.rejected
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// How many cookies were rejected for any reason.
    #[must_use]
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, n)| n).sum()
    }
}

impl Metrics {
    pub(crate) fn issued(&self) {
        self.issued.add();
    }
    pub(crate) fn accepted(&self) {
        self.accepted.add();
    }
    pub(crate) fn reissued(&self, why: Reissue) {
        let slot = match why {
            Reissue::RetiredKey => 0,
            Reissue::Refresh => 1,
            _ => 2,
        };
        self.reissued[slot].add();
    }
    pub(crate) fn forgotten(&self) {
        self.forgotten.add();
    }
    pub(crate) fn rejected(&self, reason: Rejected) {
        self.rejected[reason.index()].add();
    }

    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            issued: self.issued.get(),
            accepted: self.accepted.get(),
            reissued: self.reissued.iter().map(Count::get).sum(),
            reissued_retired_key: self.reissued[0].get(),
            reissued_refresh: self.reissued[1].get(),
            reissued_legacy_format: self.reissued[2].get(),
            forgotten: self.forgotten.get(),
            rejected: Rejected::ALL
                .iter()
                .map(|r| (*r, self.rejected[r.index()].get()))
                .collect(),
        }
    }
}
