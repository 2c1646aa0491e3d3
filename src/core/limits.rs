//! Rate limits (GCRA) and daily quotas: the budgets, who is charged, where the state
//! lives. No HTTP: the `http` layer's `RateLimit` middleware asks [`Limiter::check`].

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use actix_device_store::{Clock, SystemClock};

use crate::core::context::ServiceContext;
use crate::core::error::{Result, ServiceError};
use crate::core::keys::Key;
use crate::core::record::{Change, Record};
use crate::identity::device_id::DeviceId;

/// How many requests, how fast: `burst` at once, refilled evenly over `period`
/// (the `governor` crate's semantics: one cell every `period / burst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    burst: u32,
    period: Duration,
}

impl Quota {
    /// `burst` requests per `period`, all usable at once. A zero burst or period is
    /// raised to one (one request, one millisecond).
    #[must_use]
    pub fn new(burst: u32, period: Duration) -> Self {
        Self {
            burst: burst.max(1),
            period: period.max(Duration::from_millis(1)),
        }
    }

    /// `n` requests per second.
    #[must_use]
    pub fn per_second(n: u32) -> Self {
        Self::new(n, Duration::from_secs(1))
    }

    /// `n` requests per minute.
    #[must_use]
    pub fn per_minute(n: u32) -> Self {
        Self::new(n, Duration::from_secs(60))
    }

    /// Milliseconds between two cells (at least 1).
    fn emission_ms(&self) -> u64 {
        (u64::try_from(self.period.as_millis()).unwrap_or(u64::MAX) / u64::from(self.burst)).max(1)
    }

    /// How far ahead of now the theoretical arrival time may run.
    fn tolerance_ms(&self) -> u64 {
        self.emission_ms() * u64::from(self.burst - 1)
    }
}

/// A GCRA decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The burst size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Seconds until the budget is full again (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// Seconds to wait before retrying, when refused (`Retry-After`).
    pub retry_after_secs: u64,
}

/// One GCRA step: the new theoretical arrival time (if allowed) and the decision.
fn gcra(quota: &Quota, tat: Option<u64>, now: u64) -> (Option<u64>, Decision) {
    let t = quota.emission_ms();
    let tau = quota.tolerance_ms();
    let tat = tat.unwrap_or(now).max(now);
    let allow_at = tat.saturating_sub(tau);
    if now < allow_at {
        let wait = allow_at - now;
        let decision = Decision {
            allowed: false,
            limit: quota.burst,
            remaining: 0,
            reset_secs: (tat - now).div_ceil(1000),
            retry_after_secs: wait.div_ceil(1000).max(1),
        };
        return (None, decision);
    }
    let new_tat = tat + t;
    let used = new_tat - now; // at most tau + t
    let remaining = (tau + t).saturating_sub(used) / t;
    let decision = Decision {
        allowed: true,
        limit: quota.burst,
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        reset_secs: used.div_ceil(1000),
        retry_after_secs: 0,
    };
    (Some(new_tat), decision)
}

/// The stored GCRA state of one key when a limiter is shared through a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Tat(pub(crate) u64);

impl Record for Tat {
    const KIND: &'static str = "rate limit state";
    const VERSION: u8 = 1;
}

/// A daily counter of a usage quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Count(pub(crate) u64);

impl Record for Count {
    const KIND: &'static str = "usage counter";
    const VERSION: u8 = 1;
}

/// Who a request is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    /// A proven device: its cookie verified, so it is a returning browser.
    Device(DeviceId),
    /// A client address (IPv6 grouped by /64: one home or host holds a whole /64).
    Addr(String),
    /// An application-chosen key (an account name, say).
    Named(String),
    /// No address known.
    Unknown,
}

impl Subject {
    /// The subject for a client address.
    pub(crate) fn addr(ip: Option<IpAddr>) -> Self {
        match ip {
            Some(IpAddr::V4(v4)) => Subject::Addr(v4.to_string()),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Subject::Addr(v4.to_string()),
                None => {
                    let s = v6.segments();
                    let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    Subject::Addr(format!("{net}+64"))
                }
            },
            None => Subject::Unknown,
        }
    }

    fn gcra_key(&self, name: &str) -> Vec<u8> {
        match self {
            Subject::Device(id) => Key::DeviceLimit(*id, name.to_owned()).encode(),
            Subject::Addr(a) => Key::AddrLimit(a.clone(), name.to_owned()).encode(),
            Subject::Named(k) => Key::AddrLimit(format!("key={k}"), name.to_owned()).encode(),
            Subject::Unknown => Key::AddrLimit("unknown".into(), name.to_owned()).encode(),
        }
    }

    fn quota_key(&self, name: &str, day: u64) -> Vec<u8> {
        match self {
            Subject::Device(id) => Key::DeviceQuota(*id, name.to_owned(), day).encode(),
            Subject::Addr(a) => Key::AddrQuota(a.clone(), name.to_owned(), day).encode(),
            Subject::Named(k) => Key::AddrQuota(format!("key={k}"), name.to_owned(), day).encode(),
            Subject::Unknown => Key::AddrQuota("unknown".into(), name.to_owned(), day).encode(),
        }
    }
}

/// What a limit counts and where: every kind is complete, so no misconfigured limiter can
/// exist at run time.
#[derive(Clone)]
#[non_exhaustive]
pub enum Limit {
    /// GCRA in this process's memory: one table per limit name, shared by every worker
    /// and every clone (a limiter built inside the `HttpServer::new` factory gets the same
    /// table in each worker).
    InMemory(Quota),
    /// GCRA with its state in the context's store, shared by every instance using it.
    Shared(Quota, ServiceContext),
    /// At most this many requests per UTC day, counted in the context's store.
    Daily(u64, ServiceContext),
}

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::InMemory(q) => f.debug_tuple("InMemory").field(q).finish(),
            Limit::Shared(q, _) => f.debug_tuple("Shared").field(q).finish(),
            Limit::Daily(n, _) => f.debug_tuple("Daily").field(n).finish(),
        }
    }
}

/// Entries an in-memory table holds before the stalest are evicted.
const MAX_MEMORY_ENTRIES: usize = 100_000;

/// An in-memory GCRA table: theoretical arrival times by subject.
#[derive(Default)]
struct Table {
    tats: Mutex<HashMap<(Subject, bool), u64>>,
}

impl Table {
    /// The table of limit `name`, shared by every limiter of that name alive in this
    /// process.
    fn named(name: &str) -> Arc<Table> {
        static TABLES: OnceLock<Mutex<HashMap<String, Weak<Table>>>> = OnceLock::new();
        let mut tables = TABLES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(table) = tables.get(name).and_then(Weak::upgrade) {
            return table;
        }
        tables.retain(|_, t| t.strong_count() > 0);
        let table = Arc::new(Table::default());
        tables.insert(name.to_owned(), Arc::downgrade(&table));
        table
    }

    fn check(&self, quota: &Quota, subject: (Subject, bool), now: u64) -> Decision {
        let mut tats = self
            .tats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tats.len() >= MAX_MEMORY_ENTRIES && !tats.contains_key(&subject) {
            evict_stalest(&mut tats, now);
        }
        let (new, decision) = gcra(quota, tats.get(&subject).copied(), now);
        if let Some(tat) = new {
            tats.insert(subject, tat);
        }
        decision
    }
}

/// Makes room in a full table: entries whose arrival time has passed hold a full budget
/// anyway and go first; if that is not enough, the eighth with the earliest arrival times
/// (the clients closest to a full budget) go. Never everyone: an honest client's spent
/// budget survives a flood of new ones.
fn evict_stalest(tats: &mut HashMap<(Subject, bool), u64>, now: u64) {
    tats.retain(|_, tat| *tat > now);
    if tats.len() < MAX_MEMORY_ENTRIES {
        return;
    }
    let mut by_tat: Vec<u64> = tats.values().copied().collect();
    let cut = by_tat.len() / 8;
    let (_, threshold, _) = by_tat.select_nth_unstable(cut);
    let threshold = *threshold;
    tracing::warn!(
        entries = tats.len(),
        "rate-limit table full; evicting the stalest eighth"
    );
    let mut budget = cut + 1;
    tats.retain(|_, tat| {
        if *tat <= threshold && budget > 0 {
            budget -= 1;
            false
        } else {
            true
        }
    });
}

/// A named limit: who is charged, against which budget, with an optional ceiling per
/// client address across every device.
pub(crate) struct Limiter {
    name: String,
    limit: Limit,
    per_address: Option<Quota>,
    table: Option<Arc<Table>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("per_address", &self.per_address)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    pub(crate) fn new(
        name: String,
        limit: Limit,
        per_address: Option<Quota>,
        clock: Option<Arc<dyn Clock>>,
    ) -> Self {
        let table = matches!(limit, Limit::InMemory(_)).then(|| Table::named(&name));
        let clock = clock.unwrap_or_else(|| match &limit {
            Limit::Shared(_, ctx) | Limit::Daily(_, ctx) => ctx.clock_arc(),
            Limit::InMemory(_) => Arc::new(SystemClock),
        });
        Self {
            name,
            limit,
            per_address,
            table,
            clock,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Counts one request and decides. A proven device (its cookie verified) is charged
    /// to itself; any other request to its client address, so a client that drops its
    /// cookies gains nothing. The per-address ceiling, when set, is charged on every
    /// request from the address, whatever device it claims.
    pub(crate) async fn check(
        &self,
        device: Option<DeviceId>,
        ip: Option<IpAddr>,
    ) -> Result<Decision> {
        let now = self.clock.now_millis();
        let subject = device.map_or_else(|| Subject::addr(ip), Subject::Device);
        let own = self
            .charge(subject, false, self.quota_or_count(None), now)
            .await?;
        let Some(ceiling) = self.per_address else {
            return Ok(own);
        };
        if !own.allowed {
            return Ok(own);
        }
        let shared = self
            .charge(
                Subject::addr(ip),
                true,
                self.quota_or_count(Some(ceiling)),
                now,
            )
            .await?;
        Ok(if shared.allowed && shared.remaining >= own.remaining {
            own
        } else {
            shared
        })
    }

    /// Counts one request against `key` (an account name, say) instead of a device or an
    /// address.
    pub(crate) async fn check_key(&self, key: &str) -> Result<Decision> {
        let now = self.clock.now_millis();
        let key: String = key.chars().filter(|c| *c != '/').take(256).collect();
        self.charge(Subject::Named(key), false, self.quota_or_count(None), now)
            .await
    }

    fn quota_or_count(&self, ceiling: Option<Quota>) -> Budget {
        match (&self.limit, ceiling) {
            (Limit::InMemory(q) | Limit::Shared(q, _), None) => Budget::Gcra(*q),
            (Limit::InMemory(_) | Limit::Shared(_, _), Some(c)) => Budget::Gcra(c),
            (Limit::Daily(n, _), None) => Budget::Daily(*n),
            (Limit::Daily(_, _), Some(c)) => Budget::Daily(u64::from(c.burst)),
        }
    }

    async fn charge(
        &self,
        subject: Subject,
        ceiling: bool,
        budget: Budget,
        now: u64,
    ) -> Result<Decision> {
        let name = if ceiling {
            format!("{}/addr", self.name)
        } else {
            self.name.clone()
        };
        match (&self.limit, budget) {
            (Limit::InMemory(_), Budget::Gcra(q)) => Ok(self.table.as_ref().map_or_else(
                || gcra(&q, None, now).1,
                |t| t.check(&q, (subject, ceiling), now),
            )),
            (Limit::Shared(_, ctx), Budget::Gcra(q)) => {
                stored_gcra(ctx, &subject.gcra_key(&name), &q, now).await
            }
            (Limit::Daily(_, ctx), Budget::Daily(n)) => daily(ctx, &subject, &name, n, now).await,
            _ => Err(ServiceError::Conflict("limit kind and budget disagree")),
        }
    }
}

#[derive(Clone, Copy)]
enum Budget {
    Gcra(Quota),
    Daily(u64),
}

async fn stored_gcra(
    ctx: &ServiceContext,
    key: &[u8],
    quota: &Quota,
    now: u64,
) -> Result<Decision> {
    let ttl = Duration::from_millis(quota.tolerance_ms() + quota.emission_ms());
    let mut decision = None;
    ctx.records()
        .update::<Tat, _>(key, Some(ttl), |current| {
            let (new, d) = gcra(quota, current.map(|t| t.0), now);
            decision = Some(d);
            Ok(new.map_or(Change::Keep, |t| Change::Write(Tat(t))))
        })
        .await?;
    decision.ok_or(ServiceError::Conflict("rate limit state"))
}

async fn daily(
    ctx: &ServiceContext,
    subject: &Subject,
    name: &str,
    limit: u64,
    now: u64,
) -> Result<Decision> {
    let day = now / 86_400_000;
    let reset_secs = ((day + 1) * 86_400_000 - now).div_ceil(1000);
    let key = subject.quota_key(name, day);
    let mut decision = None;
    ctx.records()
        .update::<Count, _>(&key, Some(Duration::from_secs(2 * 86_400)), |current| {
            let used = current.map_or(0, |c| c.0);
            let allowed = used < limit;
            decision = Some(Decision {
                allowed,
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
                remaining: u32::try_from(limit.saturating_sub(used + u64::from(allowed)))
                    .unwrap_or(u32::MAX),
                reset_secs,
                retry_after_secs: if allowed { 0 } else { reset_secs.max(1) },
            });
            Ok(if allowed {
                Change::Write(Count(used + 1))
            } else {
                Change::Keep
            })
        })
        .await?;
    decision.ok_or(ServiceError::Conflict("usage counter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        let q = Quota::new(3, Duration::from_secs(3)); // one cell per second
        let mut tat = None;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let (new, d) = gcra(&q, tat, 10_000);
            assert!(d.allowed);
            remaining.push(d.remaining);
            tat = new;
        }
        assert_eq!(remaining, [2, 1, 0]);
        let (_, d) = gcra(&q, tat, 10_000);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 1);
        let (_, d) = gcra(&q, tat, 10_999);
        assert!(!d.allowed);
        let (new, d) = gcra(&q, tat, 11_000);
        assert!(d.allowed && d.remaining == 0);
        // After the full period the whole burst is back.
        let (_, d) = gcra(&q, new, 14_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
    }

    #[test]
    fn a_full_table_evicts_the_stalest_never_everyone() {
        let table = Table::default();
        let q = Quota::per_minute(10);
        let honest = (Subject::Addr("192.0.2.1".into()), false);
        for _ in 0..10 {
            assert!(table.check(&q, honest.clone(), 1_000).allowed);
        }
        assert!(!table.check(&q, honest.clone(), 1_000).allowed);
        // A flood of distinct clients, each spending one request.
        for i in 0..MAX_MEMORY_ENTRIES as u32 + 1_000 {
            let flood = (Subject::Addr(format!("flood-{i}")), false);
            table.check(&q, flood, 1_000 + u64::from(i % 7));
        }
        // The honest client spent its whole budget: it is the last to be evicted.
        assert!(!table.check(&q, honest, 1_000).allowed);
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Subject::addr(Some(a)), Subject::addr(Some(b)));
        assert_ne!(Subject::addr(Some(a)), Subject::addr(Some(c)));
    }
}
