use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a store reads the current time, in milliseconds since the Unix epoch.
///
/// Expiry is decided against this clock, never against the engine's own timers, so a
/// test can move time forward with a [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// [`now_millis`](Self::now_millis) read cheaply: it may lag by up to a clock tick
    /// (a few milliseconds; [`SystemClock`] reads the kernel's coarse clock, which costs a
    /// tenth of a precise reading), never more. For decisions measured in seconds or
    /// longer on a hot path: token lifetimes, session timeouts, write throttles, whether a
    /// cached entry has expired. Defaults to `now_millis`.
    fn recent_millis(&self) -> u64 {
        self.now_millis()
    }

    /// The absolute expiry (in epoch milliseconds) of an entry written now with `ttl`.
    /// Saturates instead of overflowing for absurd TTLs.
    fn expiry_for(&self, ttl: Duration) -> u64 {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.now_millis().saturating_add(ttl_ms.max(1))
    }
}

/// The wall clock (`SystemTime::now`). A clock before 1970 reads as 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    /// `CLOCK_REALTIME_COARSE` where the kernel has it (the time at the last tick: 1 to
    /// 10 ms old, 4 ms on the usual `HZ=250`), else [`now_millis`](Self::now_millis).
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    fn recent_millis(&self) -> u64 {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let sub = u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000_000;
        secs.saturating_mul(1000).saturating_add(sub)
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `start_millis`.
    #[must_use]
    pub fn new(start_millis: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start_millis)))
    }

    /// A clock starting at the current wall-clock time.
    #[must_use]
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now_millis())
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            })
            .ok();
    }

    /// Sets the time to `millis` since the epoch.
    pub fn set(&self, millis: u64) {
        self.0.store(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_reading_lags_by_a_tick_at_most() {
        for _ in 0..1000 {
            let before = SystemClock.now_millis();
            let recent = SystemClock.recent_millis();
            let after = SystemClock.now_millis();
            assert!(recent <= after, "recent {recent} leads {after}");
            assert!(
                before.saturating_sub(recent) <= 20,
                "recent {recent} lags {before}"
            );
        }
        let manual = ManualClock::new(5_000);
        assert_eq!(manual.recent_millis(), 5_000);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_millis(), 1_000);
        c.advance(Duration::from_millis(250));
        assert_eq!(c.clone().now_millis(), 1_250);
        assert_eq!(c.expiry_for(Duration::from_secs(1)), 2_250);
        assert_eq!(c.expiry_for(Duration::MAX), u64::MAX);
    }
}
