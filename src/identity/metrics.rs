use std::sync::atomic::{AtomicU64, Ordering};

use crate::identity::extract::Reissue;
use crate::identity::token::Rejected;

/// Operator counters of a [`DeviceTracking`](crate::DeviceTracking) middleware, shared by
/// every worker. Read them with [`DeviceTracking::metrics`](crate::DeviceTracking::metrics);
/// each is also reported to the `metrics` facade (`actix_device_tokens_*_total`), for
/// whichever exporter the application installs.
#[derive(Debug, Default)]
pub struct Metrics {
    issued: AtomicU64,
    accepted: AtomicU64,
    reissued: [AtomicU64; 3],
    forgotten: AtomicU64,
    rejected: [AtomicU64; Rejected::ALL.len()],
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
        self.issued.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("actix_device_tokens_issued_total").increment(1);
    }
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("actix_device_tokens_accepted_total").increment(1);
    }
    pub(crate) fn reissued(&self, why: Reissue) {
        let (slot, reason) = match why {
            Reissue::RetiredKey => (0, "retired_key"),
            Reissue::Refresh => (1, "refresh"),
            _ => (2, "legacy_format"),
        };
        self.reissued[slot].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("actix_device_tokens_reissued_total", "reason" => reason).increment(1);
    }
    pub(crate) fn forgotten(&self) {
        self.forgotten.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("actix_device_tokens_forgotten_total").increment(1);
    }
    pub(crate) fn rejected(&self, reason: Rejected) {
        self.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("actix_device_tokens_rejected_total", "reason" => reason.code())
            .increment(1);
    }

    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            issued: self.issued.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            reissued: self
                .reissued
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum(),
            reissued_retired_key: self.reissued[0].load(Ordering::Relaxed),
            reissued_refresh: self.reissued[1].load(Ordering::Relaxed),
            reissued_legacy_format: self.reissued[2].load(Ordering::Relaxed),
            forgotten: self.forgotten.load(Ordering::Relaxed),
            rejected: Rejected::ALL
                .iter()
                .map(|r| (*r, self.rejected[r.index()].load(Ordering::Relaxed)))
                .collect(),
        }
    }
}
