//! One cookie configuration, embedded by every builder that sets a cookie (the device
//! cookie, the session cookie), validated and turned into `Set-Cookie` in one place.

use std::time::Duration;

use actix_web::cookie::time::{self, OffsetDateTime};
use actix_web::cookie::{Cookie, SameSite};

const HOST_PREFIX: &str = "__Host-";
const SECURE_PREFIX: &str = "__Secure-";

/// Why a cookie configuration (or a builder embedding one) could not build.
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
    /// A `Partitioned` cookie must be Secure.
    #[error("a Partitioned cookie must be Secure")]
    PartitionedWithoutSecure,
    /// A timeout or interval must be at least one second.
    #[error("{0} must be at least one second")]
    TooShort(&'static str),
}

/// The attributes of a cookie: name, lifetime, scope and the browser-side protections.
///
/// The secure defaults: `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`, and
/// therefore the `__Host-` name prefix, which makes the browser refuse any cookie of that
/// name that a sibling subdomain or a plain-http page tries to set. Changing `Secure`,
/// `Path` or `Domain` drops the prefix; [`host_prefix(false)`](Self::host_prefix) drops it
/// explicitly (plain-http development: browsers do not store `Secure` cookies from
/// `http://` pages other than localhost).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct CookieConfig {
    name: String,
    max_age: Duration,
    expires: Option<OffsetDateTime>,
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    host_prefix: bool,
    partitioned: bool,
}

impl CookieConfig {
    /// A cookie called `name` (the `__Host-` prefix is added at build time when it
    /// applies) kept for `max_age`, with the secure defaults.
    pub fn new(name: impl Into<String>, max_age: Duration) -> Self {
        Self {
            name: name.into(),
            max_age,
            expires: None,
            path: "/".to_owned(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            host_prefix: true,
            partitioned: false,
        }
    }

    /// The cookie name (before any `__Host-` prefix is added).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How long the browser keeps the cookie, sent as `Max-Age`.
    #[doc(alias = "max_age")]
    pub fn cookie_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// An absolute `Expires` date sent beside `Max-Age` (default none).
    #[doc(alias = "expires")]
    pub fn cookie_expires(mut self, at: OffsetDateTime) -> Self {
        self.expires = Some(at);
        self
    }

    /// The cookie `Path` (default `/`).
    #[doc(alias = "path")]
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The cookie `Domain` (default none: this host only, the safest choice).
    #[doc(alias = "domain")]
    pub fn cookie_domain(mut self, domain: Option<String>) -> Self {
        self.domain = domain;
        self
    }

    /// `Secure` (default `true`). Turn it off only for plain-http development.
    #[doc(alias = "secure")]
    pub fn cookie_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// `HttpOnly` (default `true`: scripts cannot read the cookie).
    #[doc(alias = "http_only")]
    pub fn cookie_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// `SameSite` (default `Lax`). `None` requires `Secure`.
    #[doc(alias = "same_site")]
    pub fn cookie_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Whether to add the `__Host-` prefix when the cookie allows it (Secure, `Path=/`,
    /// no `Domain`). Default `true`.
    pub fn host_prefix(mut self, on: bool) -> Self {
        self.host_prefix = on;
        self
    }

    /// The `Partitioned` attribute (CHIPS, default off): in a third-party (embedded)
    /// context the browser keeps a separate cookie per top-level site. Requires `Secure`;
    /// such embeds usually also need `SameSite=None`.
    pub fn cookie_partitioned(mut self, on: bool) -> Self {
        self.partitioned = on;
        self
    }

    /// The name as sent, with the `__Host-` prefix when it applies.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configured max-age.
    #[must_use]
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Checks the attributes and settles the name: a cookie the browser would drop is an
    /// error here rather than a silent failure in production.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        let prefixable = self.secure && self.path == "/" && self.domain.is_none();
        if self.host_prefix && prefixable && !self.name.starts_with(HOST_PREFIX) {
            self.name = format!("{HOST_PREFIX}{}", self.name);
        }
        let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if self.name.is_empty() || !self.name.bytes().all(token_char) {
            return Err(ConfigError::InvalidCookieName(self.name));
        }
        if self.max_age < Duration::from_secs(1) {
            return Err(ConfigError::ZeroMaxAge);
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::SameSiteNoneWithoutSecure);
        }
        if self.name.starts_with(HOST_PREFIX) && !prefixable {
            return Err(ConfigError::HostPrefixViolated);
        }
        if self.name.starts_with(SECURE_PREFIX) && !self.secure {
            return Err(ConfigError::SecurePrefixViolated);
        }
        if self.partitioned && !self.secure {
            return Err(ConfigError::PartitionedWithoutSecure);
        }
        Ok(self)
    }

    /// A cookie carrying `value` with every configured attribute.
    #[must_use]
    pub fn build(&self, value: String) -> Cookie<'static> {
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        let mut builder = Cookie::build(self.name.clone(), value)
            .path(self.path.clone())
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(self.same_site)
            .max_age(time::Duration::seconds(max_age));
        if let Some(domain) = &self.domain {
            builder = builder.domain(domain.clone());
        }
        if let Some(expires) = self.expires {
            builder = builder.expires(expires);
        }
        builder.finish()
    }

    /// A removal cookie repeating every attribute of the original, so the browser really
    /// drops it.
    #[must_use]
    pub fn removal(&self) -> Cookie<'static> {
        let mut cookie = self.build(String::new());
        cookie.make_removal();
        cookie
    }

    /// The `Set-Cookie` header value for `cookie` (built by this configuration), with the
    /// attributes the `cookie` crate cannot carry (`Partitioned`).
    #[must_use]
    pub fn header(&self, cookie: &Cookie<'_>) -> String {
        if self.partitioned {
            format!("{cookie}; Partitioned")
        } else {
            cookie.to_string()
        }
    }
}

/// Writes, on a builder with a `cookie: CookieConfig` field, the setters that forward to
/// [`CookieConfig`], so every builder offers the same names (actix-session's).
macro_rules! cookie_setters {
    ($builder:ty) => {
        impl $builder {
            /// The cookie name; see [`CookieConfig::cookie_name`](crate::CookieConfig::cookie_name).
            pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
                self.cookie = self.cookie.cookie_name(name);
                self
            }
            /// `Max-Age`; see [`CookieConfig::cookie_max_age`](crate::CookieConfig::cookie_max_age).
            #[doc(alias = "max_age")]
            pub fn cookie_max_age(mut self, max_age: std::time::Duration) -> Self {
                self.cookie = self.cookie.cookie_max_age(max_age);
                self
            }
            /// `Expires`; see [`CookieConfig::cookie_expires`](crate::CookieConfig::cookie_expires).
            #[doc(alias = "expires")]
            pub fn cookie_expires(mut self, at: actix_web::cookie::time::OffsetDateTime) -> Self {
                self.cookie = self.cookie.cookie_expires(at);
                self
            }
            /// `Path`; see [`CookieConfig::cookie_path`](crate::CookieConfig::cookie_path).
            #[doc(alias = "path")]
            pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
                self.cookie = self.cookie.cookie_path(path);
                self
            }
            /// `Domain`; see [`CookieConfig::cookie_domain`](crate::CookieConfig::cookie_domain).
            #[doc(alias = "domain")]
            pub fn cookie_domain(mut self, domain: Option<String>) -> Self {
                self.cookie = self.cookie.cookie_domain(domain);
                self
            }
            /// `Secure`; see [`CookieConfig::cookie_secure`](crate::CookieConfig::cookie_secure).
            #[doc(alias = "secure")]
            pub fn cookie_secure(mut self, secure: bool) -> Self {
                self.cookie = self.cookie.cookie_secure(secure);
                self
            }
            /// `HttpOnly`; see [`CookieConfig::cookie_http_only`](crate::CookieConfig::cookie_http_only).
            #[doc(alias = "http_only")]
            pub fn cookie_http_only(mut self, http_only: bool) -> Self {
                self.cookie = self.cookie.cookie_http_only(http_only);
                self
            }
            /// `SameSite`; see [`CookieConfig::cookie_same_site`](crate::CookieConfig::cookie_same_site).
            #[doc(alias = "same_site")]
            pub fn cookie_same_site(mut self, same_site: actix_web::cookie::SameSite) -> Self {
                self.cookie = self.cookie.cookie_same_site(same_site);
                self
            }
            /// `Partitioned`; see [`CookieConfig::cookie_partitioned`](crate::CookieConfig::cookie_partitioned).
            pub fn cookie_partitioned(mut self, on: bool) -> Self {
                self.cookie = self.cookie.cookie_partitioned(on);
                self
            }
            /// The `__Host-` prefix; see [`CookieConfig::host_prefix`](crate::CookieConfig::host_prefix).
            pub fn host_prefix(mut self, on: bool) -> Self {
                self.cookie = self.cookie.host_prefix(on);
                self
            }
        }
    };
}
pub(crate) use cookie_setters;

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CookieConfig {
        CookieConfig::new("id", Duration::from_secs(60))
    }

    #[test]
    fn host_prefix_is_the_default_when_the_attributes_allow_it() {
        assert_eq!(config().validate().unwrap().name(), "__Host-id");
        let plain_http = config().cookie_secure(false).validate().unwrap();
        assert_eq!(plain_http.name(), "id");
        let scoped = config().cookie_path("/app").validate().unwrap();
        assert_eq!(scoped.name(), "id");
        let off = config().host_prefix(false).validate().unwrap();
        assert_eq!(off.name(), "id");
    }

    #[test]
    fn misconfigurations_fail_at_build_time() {
        let cases = [
            (
                config()
                    .cookie_same_site(SameSite::None)
                    .cookie_secure(false),
                ConfigError::SameSiteNoneWithoutSecure,
            ),
            (
                config().cookie_name("__Host-id").cookie_secure(false),
                ConfigError::HostPrefixViolated,
            ),
            (
                config()
                    .cookie_name("__Host-id")
                    .cookie_domain(Some("example.com".into())),
                ConfigError::HostPrefixViolated,
            ),
            (
                config().cookie_name("__Secure-id").cookie_secure(false),
                ConfigError::SecurePrefixViolated,
            ),
            (
                config().cookie_name("bad name"),
                ConfigError::InvalidCookieName("__Host-bad name".into()),
            ),
            (
                config().cookie_max_age(Duration::ZERO),
                ConfigError::ZeroMaxAge,
            ),
            (
                config().cookie_partitioned(true).cookie_secure(false),
                ConfigError::PartitionedWithoutSecure,
            ),
        ];
        for (c, want) in cases {
            assert_eq!(c.validate().unwrap_err(), want);
        }
    }
}
