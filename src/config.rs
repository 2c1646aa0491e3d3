//! Configuration of the [`DeviceTracking`] middleware.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::{Clock, SystemClock};
use actix_web::cookie::time::OffsetDateTime;
use actix_web::cookie::SameSite;
use actix_web::dev::ServiceRequest;

use crate::cookie_header::HeaderLimits;
use crate::device_id::{IdGenerator, SharedGenerator, UuidV7};
use crate::keyring::Keyring;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::registry::Devices;
use crate::token::{Mode, TokenCodec, TokenContext};

/// The purpose string device tokens are bound to.
pub(crate) const DEVICE_PURPOSE: &str = "device";
const HOST_PREFIX: &str = "__Host-";
const SECURE_PREFIX: &str = "__Secure-";

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

/// Why a [`DeviceTrackingBuilder`] could not build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty or has characters a cookie name may not have.
    #[error("invalid cookie name {0:?}: use letters, digits and !#$%&'*+-.^_`|~")]
    InvalidCookieName(String),
    /// Browsers drop `SameSite=None` cookies that are not `Secure`.
    #[error("SameSite=None requires Secure: browsers silently drop such cookies")]
    SameSiteNoneWithoutSecure,
    /// A `__Host-` cookie must be Secure, have `Path=/` and no `Domain`.
    #[error("a __Host- cookie must be Secure, with Path=/ and no Domain")]
    HostPrefixViolated,
    /// A `__Secure-` cookie must be Secure.
    #[error("a __Secure- cookie must be Secure")]
    SecurePrefixViolated,
    /// Max-age must be at least one second.
    #[error("max-age must be at least one second")]
    ZeroMaxAge,
    /// The refresh age must be positive and shorter than the max-age.
    #[error("refresh age must be between one second and the max-age")]
    RefreshAge,
}

/// A predicate deciding, per request, whether the browser agreed to be tracked.
pub type ConsentFn = dyn Fn(&ServiceRequest) -> bool + Send + Sync;

/// The cookie's attributes.
#[derive(Debug, Clone)]
pub(crate) struct CookieSettings {
    pub(crate) name: String,
    pub(crate) max_age: Duration,
    pub(crate) expires: Option<OffsetDateTime>,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
}

pub(crate) struct Settings {
    pub(crate) cookie: CookieSettings,
    pub(crate) codec: TokenCodec,
    pub(crate) generator: SharedGenerator,
    pub(crate) refresh_age: Duration,
    pub(crate) on_rejected: RejectPolicy,
    pub(crate) consent: Option<Arc<ConsentFn>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: HeaderLimits,
    pub(crate) metrics: Metrics,
    pub(crate) registry: Option<Devices>,
}

impl Settings {
    /// Now, in seconds since the epoch.
    pub(crate) fn now_secs(&self) -> u64 {
        self.clock.now_millis() / 1000
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
        &self.settings.cookie.name
    }
}

/// Builds a [`DeviceTracking`]; every option has a secure default.
///
/// ```
/// use std::time::Duration;
/// use actix_device::{DeviceTracking, Key, Keyring, Mode, RejectPolicy};
///
/// let tracking = DeviceTracking::builder(Keyring::new(Key::generate()))
///     .host_prefix()
///     .mode(Mode::Sealed)
///     .max_age(Duration::from_secs(90 * 24 * 3600))
///     .on_rejected(RejectPolicy::Refuse)
///     .build()
///     .expect("valid configuration");
/// assert_eq!(tracking.cookie_name(), "__Host-device_id");
/// ```
#[must_use]
pub struct DeviceTrackingBuilder {
    keyring: Keyring,
    mode: Mode,
    cookie: CookieSettings,
    host_prefix: bool,
    refresh_age: Option<Duration>,
    token_lifetime: Option<Duration>,
    on_rejected: RejectPolicy,
    consent: Option<Arc<ConsentFn>>,
    generator: SharedGenerator,
    clock: Arc<dyn Clock>,
    limits: HeaderLimits,
    registry: Option<Devices>,
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
            cookie: CookieSettings {
                name: "device_id".to_owned(),
                max_age: Duration::from_secs(365 * 24 * 3600),
                expires: None,
                path: "/".to_owned(),
                domain: None,
                secure: true,
                http_only: true,
                same_site: SameSite::Lax,
            },
            host_prefix: false,
            refresh_age: None,
            token_lifetime: None,
            on_rejected: RejectPolicy::Reissue,
            consent: None,
            generator: Arc::new(UuidV7),
            clock: Arc::new(SystemClock),
            limits: HeaderLimits::default(),
            registry: None,
        }
    }

    /// The cookie name (default `device_id`). With [`host_prefix`](Self::host_prefix) the
    /// `__Host-` prefix is added in front of it.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }

    /// How long the browser keeps the cookie (default one year), sent as `Max-Age`.
    #[doc(alias = "cookie_max_age")]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.cookie.max_age = max_age;
        self
    }

    /// An absolute `Expires` date sent beside `Max-Age` (for very old browsers; modern
    /// ones prefer `Max-Age`). Default: none.
    #[doc(alias = "cookie_expires")]
    pub fn expires(mut self, at: OffsetDateTime) -> Self {
        self.cookie.expires = Some(at);
        self
    }

    /// The cookie `Path` (default `/`).
    #[doc(alias = "cookie_path")]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The cookie `Domain` (default none: this host only, the safest choice).
    #[doc(alias = "cookie_domain")]
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// The `Secure` attribute (default `true`). Turn it off only for plain-http
    /// development: browsers do not send Secure cookies over http (except to localhost).
    #[doc(alias = "cookie_secure")]
    pub fn secure(mut self, secure: bool) -> Self {
        self.cookie.secure = secure;
        self
    }

    /// The `HttpOnly` attribute (default `true`: scripts cannot read the cookie).
    #[doc(alias = "cookie_httponly")]
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.cookie.http_only = http_only;
        self
    }

    /// The `SameSite` attribute (default `Lax`). `None` requires `Secure`.
    #[doc(alias = "cookie_samesite")]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = same_site;
        self
    }

    /// Uses the `__Host-` cookie prefix: the browser then only accepts the cookie if it is
    /// Secure, has `Path=/` and no `Domain`, so no subdomain can plant or overwrite it.
    /// Sets those attributes; changing them afterwards makes [`build`](Self::build) fail.
    pub fn host_prefix(mut self) -> Self {
        self.host_prefix = true;
        self.cookie.secure = true;
        self.cookie.path = "/".to_owned();
        self.cookie.domain = None;
        self
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

    /// Keeps a registry record for every returning device: the middleware calls
    /// [`Devices::touch`] (throttled to one write per device per touch interval) for each
    /// request whose device cookie verified. Browsers that never send the cookie back
    /// create no record.
    pub fn registry(mut self, devices: Devices) -> Self {
        self.registry = Some(devices);
        self
    }

    /// Checks the configuration and builds the middleware.
    pub fn build(self) -> Result<DeviceTracking, ConfigError> {
        let mut cookie = self.cookie;
        if self.host_prefix && !cookie.name.starts_with(HOST_PREFIX) {
            cookie.name = format!("{HOST_PREFIX}{}", cookie.name);
        }
        validate_cookie(&cookie)?;
        let refresh_age = self.refresh_age.unwrap_or(cookie.max_age / 2);
        if refresh_age < Duration::from_secs(1) || refresh_age >= cookie.max_age {
            return Err(ConfigError::RefreshAge);
        }
        let codec = TokenCodec::new(
            &self.keyring,
            self.mode,
            &TokenContext::new(cookie.name.clone(), DEVICE_PURPOSE),
        )
        .with_lifetime(self.token_lifetime);
        Ok(DeviceTracking {
            settings: Arc::new(Settings {
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
            }),
        })
    }
}

pub(crate) fn validate_cookie(cookie: &CookieSettings) -> Result<(), ConfigError> {
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if cookie.name.is_empty() || !cookie.name.bytes().all(token_char) {
        return Err(ConfigError::InvalidCookieName(cookie.name.clone()));
    }
    if cookie.max_age < Duration::from_secs(1) {
        return Err(ConfigError::ZeroMaxAge);
    }
    if cookie.same_site == SameSite::None && !cookie.secure {
        return Err(ConfigError::SameSiteNoneWithoutSecure);
    }
    if cookie.name.starts_with(HOST_PREFIX)
        && (!cookie.secure || cookie.path != "/" || cookie.domain.is_some())
    {
        return Err(ConfigError::HostPrefixViolated);
    }
    if cookie.name.starts_with(SECURE_PREFIX) && !cookie.secure {
        return Err(ConfigError::SecurePrefixViolated);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::Key;

    fn builder() -> DeviceTrackingBuilder {
        DeviceTracking::builder(Keyring::new(Key::generate()))
    }

    #[test]
    fn misconfigurations_fail_at_build_time() {
        let cases = [
            (
                builder().same_site(SameSite::None).secure(false),
                ConfigError::SameSiteNoneWithoutSecure,
            ),
            (
                builder().host_prefix().secure(false),
                ConfigError::HostPrefixViolated,
            ),
            (
                builder().host_prefix().domain("example.com"),
                ConfigError::HostPrefixViolated,
            ),
            (
                builder().host_prefix().path("/app"),
                ConfigError::HostPrefixViolated,
            ),
            (
                builder().cookie_name("__Secure-id").secure(false),
                ConfigError::SecurePrefixViolated,
            ),
            (
                builder().cookie_name("bad name"),
                ConfigError::InvalidCookieName("bad name".into()),
            ),
            (
                builder().cookie_name(""),
                ConfigError::InvalidCookieName(String::new()),
            ),
            (builder().max_age(Duration::ZERO), ConfigError::ZeroMaxAge),
            (
                builder().refresh_age(Duration::from_secs(365 * 24 * 3600)),
                ConfigError::RefreshAge,
            ),
        ];
        for (b, want) in cases {
            assert_eq!(b.build().unwrap_err(), want);
        }
    }

    #[test]
    fn host_prefix_sets_what_it_requires() {
        let t = builder().cookie_name("id").host_prefix().build().unwrap();
        assert_eq!(t.cookie_name(), "__Host-id");
        assert!(t.settings.cookie.secure);
        assert_eq!(t.settings.cookie.path, "/");
        assert_eq!(
            t.settings.refresh_age,
            Duration::from_secs(365 * 24 * 3600 / 2)
        );
    }
}
