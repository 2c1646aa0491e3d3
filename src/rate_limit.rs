//! Per-device rate limits (GCRA) and daily usage quotas.

use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Future, Ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_device_store::{Clock, Store, SystemClock};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::{HttpMessage, HttpResponse};

use crate::api_error::ApiError;
use crate::client_ip::{client_ip, TrustedProxies};
use crate::device_id::DeviceId;
use crate::record::{Change, Record, Records};
use crate::registry::device_subkey;

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
struct Tat(u64);

impl Record for Tat {
    const KIND: &'static str = "rate limit state";
    const VERSION: u8 = 1;
}

/// A daily counter of a usage quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Count(u64);

impl Record for Count {
    const KIND: &'static str = "usage counter";
    const VERSION: u8 = 1;
}

/// What a limit counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Device(DeviceId),
    Ip(IpAddr),
    Unknown,
}

impl Subject {
    fn store_key(&self, suffix: &[u8]) -> Vec<u8> {
        match self {
            Subject::Device(id) => device_subkey(id, suffix),
            Subject::Ip(ip) => [&b"ip/"[..], ip.to_string().as_bytes(), b"/", suffix].concat(),
            Subject::Unknown => [&b"ip/unknown/"[..], suffix].concat(),
        }
    }
}

#[derive(Clone)]
enum Kind {
    Gcra(Quota),
    Daily(u64),
}

/// Where the limiter keeps its state.
#[derive(Clone)]
enum Backend {
    Memory(Arc<Mutex<HashMap<Subject, u64>>>),
    Store(Records),
}

/// Rate-limit middleware: a quota per device id (per client address for requests without
/// one), answering `429` with `Retry-After` and `RateLimit-Limit` / `-Remaining` /
/// `-Reset` headers and a JSON error when over it.
///
/// Wrap it *inside* `DeviceTracking` (actix runs the last `.wrap` first), on the app or on
/// one scope or resource per quota:
///
/// ```
/// use actix_web::{web, App};
/// use actix_device::{DeviceTracking, Key, Keyring, Quota, RateLimit};
/// let app = App::new()
///     .service(web::scope("/api").wrap(RateLimit::new("api", Quota::per_minute(60))))
///     .wrap(DeviceTracking::new(Keyring::new(Key::generate())));
/// ```
///
/// State is in memory (per process) unless [`shared`](Self::shared) puts it in a store,
/// where several instances share one budget.
#[derive(Clone)]
pub struct RateLimit {
    name: String,
    kind: Kind,
    backend: Backend,
    clock: Arc<dyn Clock>,
    proxies: TrustedProxies,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("name", &self.name)
            .field("shared", &matches!(self.backend, Backend::Store(_)))
            .finish_non_exhaustive()
    }
}

const MAX_MEMORY_ENTRIES: usize = 100_000;

impl RateLimit {
    /// A GCRA limit called `name` (it names the stored state; give each limit its own).
    #[must_use]
    pub fn new(name: impl Into<String>, quota: Quota) -> Self {
        Self {
            name: name.into(),
            kind: Kind::Gcra(quota),
            backend: Backend::Memory(Arc::new(Mutex::new(HashMap::new()))),
            clock: Arc::new(SystemClock),
            proxies: TrustedProxies::None,
        }
    }

    /// A usage quota: at most `limit` requests per device per UTC day, counted in `store`
    /// (so it survives restarts and is shared by instances).
    #[must_use]
    pub fn daily(name: impl Into<String>, limit: u64, store: Arc<dyn Store>) -> Self {
        Self {
            name: name.into(),
            kind: Kind::Daily(limit),
            backend: Backend::Store(Records::new(store)),
            clock: Arc::new(SystemClock),
            proxies: TrustedProxies::None,
        }
    }

    /// Keeps the state in `store`, shared by every instance using it.
    #[must_use]
    pub fn shared(mut self, store: Arc<dyn Store>) -> Self {
        self.backend = Backend::Store(Records::new(store));
        self
    }

    /// Which proxies may report the client address for requests without a device.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// The clock (for tests).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn subject(&self, req: &ServiceRequest) -> Subject {
        if let Some(id) = req.extensions().get::<DeviceId>() {
            return Subject::Device(*id);
        }
        client_ip(
            req.peer_addr().map(|a| a.ip()),
            req.headers(),
            &self.proxies,
        )
        .map_or(Subject::Unknown, Subject::Ip)
    }

    /// Counts one request for `subject` and decides.
    async fn check(&self, subject: &Subject) -> Result<Decision, ApiError> {
        let now = self.clock.now_millis();
        match (&self.kind, &self.backend) {
            (Kind::Gcra(quota), Backend::Memory(map)) => {
                let mut map = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if map.len() >= MAX_MEMORY_ENTRIES {
                    // Entries whose arrival time is in the past hold a full budget anyway.
                    map.retain(|_, tat| *tat > now);
                    if map.len() >= MAX_MEMORY_ENTRIES {
                        // Still full of active clients (a flood of distinct addresses):
                        // start over rather than scan the whole map on every request.
                        // Budgets reset, which fails open for a moment; logged.
                        tracing::warn!(limit = %self.name, "rate-limit table full; resetting it");
                        map.clear();
                    }
                }
                let (new, decision) = gcra(quota, map.get(subject).copied(), now);
                if let Some(tat) = new {
                    map.insert(subject.clone(), tat);
                }
                Ok(decision)
            }
            (Kind::Gcra(quota), Backend::Store(records)) => {
                let key = subject.store_key(format!("rl/{}", self.name).as_bytes());
                let ttl = Duration::from_millis(quota.tolerance_ms() + quota.emission_ms());
                let mut decision = None;
                records
                    .update::<Tat, _>(&key, Some(ttl), |current| {
                        let (new, d) = gcra(quota, current.map(|t| t.0), now);
                        decision = Some(d);
                        Ok(new.map_or(Change::Keep, |t| Change::Write(Tat(t))))
                    })
                    .await?;
                decision.ok_or(ApiError::Conflict("rate limit state"))
            }
            (Kind::Daily(limit), backend) => {
                let Backend::Store(records) = backend else {
                    return Err(ApiError::Misconfigured("a daily quota needs a store"));
                };
                let day = now / 86_400_000;
                let reset_secs = ((day + 1) * 86_400_000 - now).div_ceil(1000);
                let key = subject.store_key(format!("quota/{}/{day}", self.name).as_bytes());
                let mut decision = None;
                let limit = *limit;
                records
                    .update::<Count, _>(&key, Some(Duration::from_secs(2 * 86_400)), |current| {
                        let used = current.map_or(0, |c| c.0);
                        let allowed = used < limit;
                        decision = Some(Decision {
                            allowed,
                            limit: u32::try_from(limit).unwrap_or(u32::MAX),
                            remaining: u32::try_from(
                                limit.saturating_sub(used + u64::from(allowed)),
                            )
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
                decision.ok_or(ApiError::Conflict("usage counter"))
            }
        }
    }
}

fn set_headers(headers: &mut actix_web::http::header::HeaderMap, d: &Decision) {
    let mut put = |name: &'static str, value: u64| {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    };
    put("ratelimit-limit", u64::from(d.limit));
    put("ratelimit-remaining", u64::from(d.remaining));
    put("ratelimit-reset", d.reset_secs);
    if !d.allowed {
        headers.insert(RETRY_AFTER, HeaderValue::from(d.retry_after_secs));
    }
}

impl<S, B> Transform<S, ServiceRequest> for RateLimit
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RateLimitService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimitService {
            service: Rc::new(service),
            limit: self.clone(),
        }))
    }
}

/// The service [`RateLimit`] wraps.
#[doc(hidden)]
pub struct RateLimitService<S> {
    service: Rc<S>,
    limit: RateLimit,
}

impl<S> fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("limit", &self.limit)
            .finish()
    }
}

impl<S, B> Service<ServiceRequest> for RateLimitService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let limit = self.limit.clone();
        Box::pin(async move {
            let subject = limit.subject(&req);
            let decision = match limit.check(&subject).await {
                Ok(d) => d,
                Err(e) => {
                    // A limiter whose store fails lets traffic through rather than taking
                    // the site down with it; the failure is logged.
                    tracing::error!(error = %e, limit = %limit.name, "rate limit check failed");
                    return service
                        .call(req)
                        .await
                        .map(ServiceResponse::map_into_left_body);
                }
            };
            if !decision.allowed {
                let mut res = HttpResponse::TooManyRequests().json(serde_json::json!({
                    "error": {
                        "code": "rate_limited",
                        "message": format!("too many requests; retry in {} s", decision.retry_after_secs),
                    }
                }));
                set_headers(res.headers_mut(), &decision);
                return Ok(req.into_response(res).map_into_right_body());
            }
            let mut res = service.call(req).await?;
            set_headers(res.headers_mut(), &decision);
            Ok(res.map_into_left_body())
        })
    }
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
}
