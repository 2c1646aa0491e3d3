//! Configuration of the [`DeviceTracking`] middleware.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::{Clock, SystemClock};
use actix_web::dev::ServiceRequest;

use crate::identity::client::{RequestInfo, TrustedProxies};
use crate::identity::cookie::{cookie_setters, ConfigError, CookieConfig};
use crate::identity::cookie_header::{CookieName, HeaderLimits};
use crate::identity::device_id::{DeviceId, IdGenerator, SharedGenerator, UuidV7};
use crate::identity::extract::DeviceContext;
use crate::identity::keyring::Keyring;
use crate::identity::memo::Memo;
use crate::identity::metrics::{Metrics, MetricsSnapshot};
use crate::identity::token::{Mode, Rejected, Token, TokenCodec, TokenContext};

/// The purpose string device tokens are bound to.
pub(crate) const DEVICE_PURPOSE: &str = "device";

/// What the middleware does with a cookie that does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RejectPolicy {
    /// Give the browser a new id and carry on (the default): a tampered or stale cookie
    /// costs the browser its old identity, nothing more.
    #[default]
    Reissue,
    /// Answer `401` with `{"error":{"code":"device_rejected",...}}` without running the
    /// handler; for APIs where a bad device cookie means a misbehaving client.
    Refuse,
}

/// What a response that sets a cookie says to caches (`Cache-Control`), so a shared cache
/// (a CDN) never hands one browser's cookie to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CacheControl {
    /// `Cache-Control: private` (the default): only the browser may keep the response.
    #[default]
    Private,
    /// `Cache-Control: no-store`: nobody keeps it.
    NoStore,
}

/// What the services hear from the identity layer, which knows nothing of them: the
/// device registry counts returning devices, and sessions follow a renewed id.
///
/// Both run inline; an implementation logs its own failures (the request goes on).
#[async_trait::async_trait]
pub trait DeviceObserver: Send + Sync + 'static {
    /// A browser came back with a valid device cookie (never called for new ids, so a
    /// client that keeps no cookies costs nothing). What can be decided at once is done
    /// here; only work that must wait (a store write) comes back, as a future the
    /// middleware awaits before the handler runs, so a request with nothing to write costs
    /// no allocation. `info` builds the request's client info when called: an observer
    /// that has nothing to write this time never pays for it. The future owns what it
    /// needs (it may not borrow `context` or `info`), so the middleware's own future
    /// stays unboxed on requests that return `None`.
    fn returning(
        &self,
        context: &DeviceContext,
        info: &(dyn Fn() -> RequestInfo + Sync),
    ) -> Option<ObserverFuture>;
    /// A handler renewed the device id: `old` is now `new`.
    async fn renewed(&self, old: DeviceId, new: DeviceId);
}

/// The work a [`DeviceObserver`] hands back from
/// [`returning`](DeviceObserver::returning).
pub type ObserverFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A predicate deciding, per request, whether the browser agreed to be tracked.
pub type ConsentFn = dyn Fn(&ServiceRequest) -> bool + Send + Sync;

pub(crate) struct Settings {
    pub(crate) cookie: CookieConfig,
    /// The cookie's name, made ready for reading the `Cookie` header.
    pub(crate) cookie_name: CookieName<'static>,
    pub(crate) codec: TokenCodec,
    pub(crate) generator: SharedGenerator,
    pub(crate) refresh_age: Duration,
    pub(crate) on_rejected: RejectPolicy,
    pub(crate) consent: Option<Arc<ConsentFn>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: HeaderLimits,
    pub(crate) metrics: Metrics,
    pub(crate) registry: Option<Arc<dyn DeviceObserver>>,
    pub(crate) proxies: TrustedProxies,
    pub(crate) cache_control: CacheControl,
    /// Device tokens verified before, by their bytes (see `identity::memo`).
    pub(crate) verified: Memo<Token>,
}

impl Settings {
    /// Now, in seconds since the epoch (read cheaply: [`Clock::recent_millis`]).
    pub(crate) fn now_secs(&self) -> u64 {
        self.clock.recent_millis() / 1000
    }

    /// [`TokenCodec::decode`], with the tag checked once per distinct token (see
    /// `identity::memo`); the expiry and lifetime are checked every time.
    pub(crate) fn decode(&self, value: &[u8], now: u64) -> Result<Token, Rejected> {
        let token = self
            .verified
            .get_or_derive(value, || self.codec.decode(value, now))?;
        self.codec.check_time(token, now)
    }
}

/// The middleware that gives every browser a persistent device id.
///
/// `DeviceTracking::new(keyring)` is the secure default: a signed `device_id` cookie,
/// `Secure`, `HttpOnly`, `SameSite=Lax`, one year, re-issued when older than six months.
/// Use [`DeviceTracking::builder`] to change anything.
///
/// Cloning is cheap and clones share their counters, so keep one clone to read
/// [`metrics`](Self::metrics) while another is in the `App`.
#[derive(Clone)]
pub struct DeviceTracking {
    pub(crate) settings: Arc<Settings>,
}

impl fmt::Debug for DeviceTracking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("DeviceTracking")
            .field("cookie", &s.cookie)
            .field("codec", &s.codec)
            .field("refresh_age", &s.refresh_age)
            .field("on_rejected", &s.on_rejected)
            .field("consent", &s.consent.is_some())
            .finish_non_exhaustive()
    }
}

impl DeviceTracking {
    /// The secure default configuration with `keyring`.
    #[must_use]
    pub fn new(keyring: Keyring) -> Self {
        Self::builder(keyring)
            .build()
            .unwrap_or_else(|e| unreachable!("the default configuration is valid: {e}"))
    }

    /// A builder starting from the secure defaults.
    pub fn builder(keyring: Keyring) -> DeviceTrackingBuilder {
        DeviceTrackingBuilder::new(keyring)
    }

    /// The operator counters: issued, accepted, re-issued, rejected by reason.
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.settings.metrics.snapshot()
    }

    /// The cookie name, exactly as sent (with any `__Host-` prefix).
    #[must_use]
    pub fn cookie_name(&self) -> &str {
        self.settings.cookie.name()
    }
}

/// Builds a [`DeviceTracking`]; every option has a secure default.
///
/// ```
/// use std::time::Duration;
/// use actix_device::{DeviceTracking, Key, Keyring, Mode, RejectPolicy};
///
/// let tracking = DeviceTracking::builder(Keyring::new(Key::generate()))
///     .mode(Mode::Sealed)
///     .cookie_max_age(Duration::from_secs(90 * 24 * 3600))
///     .on_rejected(RejectPolicy::Refuse)
///     .build()
///     .expect("valid configuration");
/// assert_eq!(tracking.cookie_name(), "__Host-device_id");
/// ```
#[must_use]
pub struct DeviceTrackingBuilder {
    keyring: Keyring,
    mode: Mode,
    cookie: CookieConfig,
    refresh_age: Option<Duration>,
    token_lifetime: Option<Duration>,
    on_rejected: RejectPolicy,
    consent: Option<Arc<ConsentFn>>,
    generator: SharedGenerator,
    clock: Arc<dyn Clock>,
    limits: HeaderLimits,
    registry: Option<Arc<dyn DeviceObserver>>,
    proxies: TrustedProxies,
    cache_control: CacheControl,
}

impl fmt::Debug for DeviceTrackingBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceTrackingBuilder")
            .field("mode", &self.mode)
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

impl DeviceTrackingBuilder {
    fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            mode: Mode::Signed,
            cookie: CookieConfig::new("device_id", Duration::from_secs(365 * 24 * 3600)),
            refresh_age: None,
            token_lifetime: None,
            on_rejected: RejectPolicy::Reissue,
            consent: None,
            generator: Arc::new(UuidV7),
            clock: Arc::new(SystemClock),
            limits: HeaderLimits::default(),
            registry: None,
            proxies: TrustedProxies::none(),
            cache_control: CacheControl::Private,
        }
    }

    /// How the id is carried: [`Mode::Signed`] (default), [`Mode::Sealed`], or
    /// [`Mode::Plain`] (development only: anyone can claim any id).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Re-issue a verified token once it is this old, so an active browser never falls off
    /// the end of its cookie (default: half the max-age). Plain tokens carry no issue
    /// time and are never refreshed.
    pub fn refresh_age(mut self, age: Duration) -> Self {
        self.refresh_age = Some(age);
        self
    }

    /// An absolute lifetime written into every token and enforced on the server, whatever
    /// the browser does with `Max-Age` (default: none). A token past it is rejected as
    /// expired. Keep it above the refresh age, or active browsers lose their ids.
    #[doc(alias = "expiration_hours")]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = Some(lifetime);
        self
    }

    /// What to do with a cookie that does not verify (default: [`RejectPolicy::Reissue`]).
    pub fn on_rejected(mut self, policy: RejectPolicy) -> Self {
        self.on_rejected = policy;
        self
    }

    /// Only track requests for which `consent` returns `true`. For the others no cookie is
    /// read or set and handlers see no device id (`Option<DeviceId>` is `None`).
    pub fn consent(
        mut self,
        consent: impl Fn(&ServiceRequest) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.consent = Some(Arc::new(consent));
        self
    }

    /// Makes new ids with `generator` instead of UUIDv7.
    #[doc(alias = "id_generator")]
    pub fn generator(mut self, generator: impl IdGenerator) -> Self {
        self.generator = Arc::new(generator);
        self
    }

    /// Reads time from `clock` (default: the system clock). For tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Bounds on how much of the `Cookie` header is read.
    pub fn header_limits(mut self, limits: HeaderLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Tells `registry` of every returning device and every renewed id: give it the
    /// `Devices` registry (a record per returning device, throttled to one write per
    /// touch interval) or `Sessions` (the same, and a renewed id keeps its session).
    /// Browsers that never send the cookie back create no record.
    pub fn registry(mut self, registry: impl DeviceObserver) -> Self {
        self.registry = Some(Arc::new(registry));
        self
    }

    /// What a response that sets a device or session cookie says to caches (default
    /// [`CacheControl::Private`]; a handler's own `private` or `no-store` is kept).
    pub fn cache_control(mut self, cache: CacheControl) -> Self {
        self.cache_control = cache;
        self
    }

    /// Which proxies may report the client address (default: none, the peer is the
    /// client). Every service reads the address the middleware settled on.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Checks the configuration and builds the middleware.
    pub fn build(self) -> Result<DeviceTracking, ConfigError> {
        let cookie = self.cookie.validate()?;
        let refresh_age = self.refresh_age.unwrap_or(cookie.max_age() / 2);
        if refresh_age < Duration::from_secs(1) || refresh_age >= cookie.max_age() {
            return Err(ConfigError::RefreshAge);
        }
        let codec = TokenCodec::new(
            &self.keyring,
            self.mode,
            &TokenContext::new(cookie.name(), DEVICE_PURPOSE),
        )
        .with_lifetime(self.token_lifetime);
        Ok(DeviceTracking {
            settings: Arc::new(Settings {
                cookie_name: CookieName::new(cookie.name().as_bytes()),
                cookie,
                codec,
                generator: self.generator,
                refresh_age,
                on_rejected: self.on_rejected,
                consent: self.consent,
                clock: self.clock,
                limits: self.limits,
                metrics: Metrics::default(),
                registry: self.registry,
                proxies: self.proxies,
                cache_control: self.cache_control,
                verified: Memo::default(),
            }),
        })
    }
}

cookie_setters!(DeviceTrackingBuilder);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::keyring::Key;

    fn builder() -> DeviceTrackingBuilder {
        DeviceTracking::builder(Keyring::new(Key::generate()))
    }

    #[test]
    fn refresh_age_must_fall_inside_the_max_age() {
        let err = builder()
            .refresh_age(Duration::from_secs(365 * 24 * 3600))
            .build()
            .unwrap_err();
        assert_eq!(err, ConfigError::RefreshAge);
        let t = builder().build().unwrap();
        assert_eq!(t.cookie_name(), "__Host-device_id");
        assert_eq!(
            t.settings.refresh_age,
            Duration::from_secs(365 * 24 * 3600 / 2)
        );
    }
}
