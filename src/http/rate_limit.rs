//! The `RateLimit` middleware: asks the core limiter, answers 429 with the standard
//! headers.

use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_device_store::Clock;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::{HttpMessage, ResponseError};

use crate::core::limits::{Decision, Limit, Limiter, Quota};
use crate::http::error::ApiError;
use crate::identity::extract::DeviceContext;

/// Rate-limit middleware: a budget per proven device (a browser whose cookie verified),
/// per client address for everything else, answering `429` with `Retry-After` and
/// `RateLimit-Limit` / `-Remaining` / `-Reset` headers and a JSON error when over it.
///
/// A client that drops or forges its cookie gets a new id on every request, and so no
/// budget of its own: it is charged to its address (IPv6 grouped by /64), and nothing is
/// written to the store for it. [`per_address`](RateLimitBuilder::per_address) adds a
/// ceiling per address across every device, so rotating cookies from one address gains
/// nothing. In-memory state is one table per limit name in the process: clones, workers
/// and limiters built inside the `HttpServer::new` factory all share it.
///
/// Wrap it *inside* `DeviceTracking` (actix runs the last `.wrap` first), on the app or on
/// one scope or resource per limit:
///
/// ```
/// use actix_web::{web, App};
/// use actix_device::{DeviceTracking, Key, Keyring, RateLimit};
/// use actix_device::limits::{Limit, Quota};
/// let app = App::new()
///     .service(web::scope("/api").wrap(RateLimit::new("api", Limit::InMemory(Quota::per_minute(60)))))
///     .wrap(DeviceTracking::new(Keyring::new(Key::generate())));
/// ```
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<Limiter>,
    decisions: Arc<Decisions>,
}

/// The handles of `actix_device_limiter_decisions_total` for one limit, by outcome, taken
/// when the middleware is built: a request reports without a lookup in the exporter's
/// registry.
struct Decisions {
    allowed: metrics::Counter,
    refused: metrics::Counter,
    error: metrics::Counter,
}

impl Decisions {
    fn new(limit: &str) -> Self {
        let counter = |outcome: &'static str| {
            let limit = metrics::SharedString::from(limit.to_owned());
            metrics::counter!("actix_device_limiter_decisions_total", "limit" => limit, "outcome" => outcome)
        };
        Self {
            allowed: counter("allowed"),
            refused: counter("refused"),
            error: counter("error"),
        }
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("limiter", &self.limiter)
            .finish()
    }
}

/// Configuration of [`RateLimit`].
#[must_use]
pub struct RateLimitBuilder {
    name: String,
    limit: Limit,
    per_address: Option<Quota>,
    clock: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for RateLimitBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitBuilder")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("per_address", &self.per_address)
            .finish_non_exhaustive()
    }
}

impl RateLimitBuilder {
    /// A ceiling per client address across every device (for a daily limit, the quota's
    /// burst is the daily count).
    pub fn per_address(mut self, quota: Quota) -> Self {
        self.per_address = Some(quota);
        self
    }

    /// The clock (for tests; stored limits use their context's clock by default).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The middleware.
    pub fn build(self) -> RateLimit {
        RateLimit {
            decisions: Arc::new(Decisions::new(&self.name)),
            limiter: Arc::new(Limiter::new(
                self.name,
                self.limit,
                self.per_address,
                self.clock,
            )),
        }
    }
}

impl RateLimit {
    /// The limit `name` (it names the state: give each limit its own).
    #[must_use]
    pub fn new(name: impl Into<String>, limit: Limit) -> Self {
        Self::builder(name, limit).build()
    }

    /// A builder.
    pub fn builder(name: impl Into<String>, limit: Limit) -> RateLimitBuilder {
        RateLimitBuilder {
            name: name.into(),
            limit,
            per_address: None,
            clock: None,
        }
    }

    /// Charges one request to `key` (an account name under attack, say), whoever sends
    /// it: `Err(ApiError::RateLimited)` once over the limit. For limits a middleware
    /// cannot see, such as login attempts per account.
    pub async fn charge_key(&self, key: &str) -> Result<Decision, ApiError> {
        let decision = self.limiter.check_key(key).await?;
        if decision.allowed {
            Ok(decision)
        } else {
            Err(ApiError::RateLimited(decision.retry_after_secs))
        }
    }

    async fn decide(
        &self,
        req: &ServiceRequest,
    ) -> Result<Decision, crate::core::error::ServiceError> {
        let (device, ip) = match req.extensions().get::<DeviceContext>() {
            Some(c) => ((!c.is_new).then_some(c.id), c.client_ip),
            None => (None, req.peer_addr().map(|a| a.ip())),
        };
        self.limiter.check(device, ip).await
    }
}

fn set_headers(headers: &mut HeaderMap, d: &Decision) {
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
#[derive(Debug)]
pub struct RateLimitService<S> {
    service: Rc<S>,
    limit: RateLimit,
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
            let outcome = limit.decide(&req).await;
            let decisions = &limit.decisions;
            let counter = match &outcome {
                Ok(d) if d.allowed => &decisions.allowed,
                Ok(_) => &decisions.refused,
                Err(_) => &decisions.error,
            };
            counter.increment(1);
            let decision = match outcome {
                Ok(d) => d,
                Err(e) => {
                    // A limiter whose store fails lets traffic through rather than taking
                    // the site down with it; the failure is logged.
                    tracing::error!(error = %e, limit = %limit.limiter.name(), "rate limit check failed");
                    return Ok(service.call(req).await?.map_into_left_body());
                }
            };
            if !decision.allowed {
                let mut res = ApiError::RateLimited(decision.retry_after_secs).error_response();
                set_headers(res.headers_mut(), &decision);
                return Ok(req.into_response(res).map_into_right_body());
            }
            let mut res = service.call(req).await?;
            set_headers(res.headers_mut(), &decision);
            Ok(res.map_into_left_body())
        })
    }
}
