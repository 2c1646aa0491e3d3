//! Login sessions over HTTP: the session cookie, login and logout on a request, and the
//! session check: the full check at most once per request, its outcome shared by every
//! extractor; a hot session answered from memory on each call.

use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header::{ACCEPT_LANGUAGE, COOKIE, USER_AGENT};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::Either;

use crate::core::carts::Carts;
use crate::core::devices::Devices;
use crate::core::error::ServiceError;
use crate::core::keys::TokenHash;
use crate::core::model::DeviceRecord;
use crate::core::sessions::{
    token_hash, ClientHeaders, CurrentSession, Hot, Presented, SessionConfig, SessionService,
};
use crate::http::auth::{Caller, SignedIn};
use crate::http::error::ApiError;
use crate::http::guard::CrossSiteGuard;
use crate::identity::client::RequestInfo;
use crate::identity::config::{DeviceObserver, ObserverFuture};
use crate::identity::cookie::{cookie_setters, ConfigError, CookieConfig};
use crate::identity::cookie_header::{CookieName, HeaderLimits};
use crate::identity::device_id::DeviceId;
use crate::identity::extract::{lookup, queue_cookie, DeviceContext};
use crate::identity::memo::Memo;

/// Configuration of [`Sessions`].
#[must_use]
pub struct SessionsBuilder {
    devices: Devices,
    carts: Option<Carts>,
    config: SessionConfig,
    cookie: CookieConfig,
    guard: Option<CrossSiteGuard>,
    limits: HeaderLimits,
}

impl fmt::Debug for SessionsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsBuilder")
            .field("cookie", &self.cookie)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SessionsBuilder {
    /// A session unused this long expires (default 30 minutes).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }
    /// A session expires this long after login, however active (default 7 days); also
    /// the cookie's max-age.
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.config.absolute_timeout = timeout;
        self
    }
    /// Refuse (401 `session_suspicious`) requests whose User-Agent / Accept-Language
    /// fingerprint differs from the login's (default: only raise the event; browsers
    /// update themselves and users change languages).
    pub fn deny_on_fingerprint_change(mut self, deny: bool) -> Self {
        self.config.deny_on_fingerprint_change = deny;
        self
    }
    /// Write a session's last-seen at most this often (default 1 minute; at most a quarter
    /// of the idle timeout).
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.config.touch_interval = interval;
        self
    }
    /// At login, merge the device's cart into the user's (see [`Carts::merge_into_user`]).
    pub fn carts(mut self, carts: &Carts) -> Self {
        self.carts = Some(carts.clone());
        self
    }
    /// The cross-site guard of login, logout and the device routes (default
    /// [`CrossSiteGuard::new`]; `None` turns the check off, for APIs that authenticate
    /// by other means than cookies).
    pub fn cross_site(mut self, guard: Option<CrossSiteGuard>) -> Self {
        self.guard = guard;
        self
    }
    /// Bounds on how much of the `Cookie` header is read for the session cookie (the same
    /// type the device cookie uses).
    pub fn header_limits(mut self, limits: HeaderLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the cookie attributes (the same rules as the device cookie's) and builds.
    pub fn build(mut self) -> Result<Sessions, ConfigError> {
        if self.config.idle_timeout < Duration::from_secs(1) {
            return Err(ConfigError::TooShort("the idle timeout"));
        }
        if self.config.absolute_timeout < Duration::from_secs(1) {
            return Err(ConfigError::TooShort("the absolute timeout"));
        }
        self.config.touch_interval = self.config.touch_interval.min(self.config.idle_timeout / 4);
        let cookie = self
            .cookie
            .cookie_max_age(self.config.absolute_timeout)
            .validate()?;
        Ok(Sessions {
            inner: Arc::new(SessionsInner {
                service: SessionService::new(self.devices, self.carts, self.config),
                cookie_name: CookieName::new(cookie.name().as_bytes()),
                cookie,
                guard: self.guard,
                limits: self.limits,
                remembered: Memo::default(),
            }),
        })
    }
}

cookie_setters!(SessionsBuilder);

struct SessionsInner {
    service: SessionService,
    cookie: CookieConfig,
    /// The cookie's name, made ready for reading the `Cookie` header.
    cookie_name: CookieName<'static>,
    guard: Option<CrossSiteGuard>,
    limits: HeaderLimits,
    /// Session cookie values seen before (see `identity::memo`): their hash, and the hot
    /// entry of their last full check that passed.
    remembered: Memo<Remembered>,
}

/// What is remembered of a session cookie value.
#[derive(Clone)]
struct Remembered {
    hash: TokenHash,
    /// The entry the last full check of this session gave, if it passed and the session
    /// can take the hot check (see `SessionService::check_hot`).
    hot: Option<Arc<Hot>>,
}

impl Remembered {
    /// The hash, and whether a hot entry is kept beside it.
    fn summary(&self) -> (TokenHash, bool) {
        (self.hash, self.hot.is_some())
    }
}

/// Login sessions bound to devices, over HTTP.
///
/// Register it as app data (`.app_data(web::Data::new(sessions.clone()))`) so the
/// [`CurrentSession`] and `TrustedDevice` extractors find it, and give it to
/// `DeviceTracking::builder(..).registry(sessions.clone())` so renewed ids keep their
/// sessions. It needs the `DeviceTracking` middleware around the routes that use it:
/// sessions are bound to the device id, and the middleware writes the session cookie.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<SessionsInner>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("cookie", &self.inner.cookie.name())
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

/// A signed-in request's device, trusted by its user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustedDevice {
    /// The user.
    pub user_id: String,
    /// The device's record.
    pub device: std::sync::Arc<DeviceRecord>,
}

/// The outcome of this request's full session check (or what a login or logout in it
/// set), kept in its extensions. A hot answer is not kept: every call answers it again
/// from memory, which costs less than a fourth extension (the table's first growth).
#[derive(Clone)]
struct SessionCheck(Rc<Result<CurrentSession, ServiceError>>);

impl SessionCheck {
    fn new(outcome: Result<CurrentSession, ServiceError>) -> Self {
        Self(Rc::new(outcome))
    }
}

impl Sessions {
    /// Sessions with the defaults: cookie `__Host-session` (Secure, HttpOnly,
    /// SameSite=Lax), idle timeout 30 minutes, absolute timeout 7 days, the cross-site
    /// guard on.
    #[must_use]
    pub fn new(devices: &Devices) -> Self {
        Self::builder(devices)
            .build()
            .unwrap_or_else(|e| unreachable!("the default configuration is valid: {e}"))
    }

    /// A builder with the defaults.
    pub fn builder(devices: &Devices) -> SessionsBuilder {
        SessionsBuilder {
            devices: devices.clone(),
            carts: None,
            config: SessionConfig::default(),
            cookie: CookieConfig::new("session", SessionConfig::default().absolute_timeout),
            guard: Some(CrossSiteGuard::new()),
            limits: HeaderLimits::default(),
        }
    }

    /// The device registry.
    #[must_use]
    pub fn devices(&self) -> &Devices {
        self.inner.service.devices()
    }

    /// The session cookie's name, exactly as sent.
    #[must_use]
    pub fn cookie_name(&self) -> &str {
        self.inner.cookie.name()
    }

    fn guard(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.inner.guard.as_ref().map_or(Ok(()), |g| g.check(req))
    }

    /// Signs `user_id` in on this request's device. The application has checked the
    /// password (or whatever proves the user); this refuses cross-site requests, ends any
    /// session the browser held (fixation), binds the device to the user under the device
    /// limit, stores a new session and queues its cookie on the response.
    pub async fn login(
        &self,
        req: &HttpRequest,
        user_id: &str,
    ) -> Result<CurrentSession, ApiError> {
        self.guard(req)?;
        let device = device_context(req)?;
        let info = RequestInfo::new(device.client_ip, req.headers());
        let new = self
            .inner
            .service
            .login(
                &device,
                user_id,
                &info,
                client_headers(req).fingerprint(),
                self.cookie_hash(req),
            )
            .await?;
        let cookie = &self.inner.cookie;
        queue_cookie(req, cookie.header(&cookie.build(new.token)));
        req.extensions_mut()
            .insert(SessionCheck::new(Ok(new.session.clone())));
        Ok(new.session)
    }

    /// Ends the request's session on the server and queues a removal cookie repeating the
    /// original attributes. A replay of the old token then gets 401.
    pub async fn logout(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.guard(req)?;
        let (value, (hash, was_hot)) = self
            .session_cookie(req, Remembered::summary)
            .ok_or(ServiceError::NotSignedIn)?;
        let ended = self.inner.service.logout(&hash).await?;
        if was_hot {
            let forgotten = Remembered { hash, hot: None };
            self.inner.remembered.insert(value, forgotten);
        }
        let cookie = &self.inner.cookie;
        queue_cookie(req, cookie.header(&cookie.removal()));
        req.extensions_mut()
            .insert(SessionCheck::new(Err(ServiceError::NotSignedIn)));
        if ended {
            Ok(())
        } else {
            Err(ServiceError::NotSignedIn.into())
        }
    }

    /// The request's session (see [`CurrentSession`]). The full check runs at most once
    /// per request: every later call and extractor in the same request reads its outcome.
    /// A hot session (one whose full check still holds) is answered from memory by each
    /// call, its watches and timeouts rechecked, with no store access.
    pub async fn current(&self, req: &HttpRequest) -> Result<CurrentSession, ApiError> {
        if let Some(outcome) = self.current_now(req) {
            return outcome;
        }
        match self.check(req, &device_context(req)?).await {
            Err(e) if e.is_internal() => Err(e.into()),
            fresh => {
                let outcome = Rc::new(fresh);
                req.extensions_mut()
                    .insert(SessionCheck(Rc::clone(&outcome)));
                answer(&outcome)
            }
        }
    }

    /// The request's session if it is known without waiting: this request's earlier
    /// outcome, or a hot session (one whose full check still holds, see
    /// `SessionService::check_hot`). `None`: the check must run and may wait on the store.
    fn current_now(&self, req: &HttpRequest) -> Option<Result<CurrentSession, ApiError>> {
        let ext = req.extensions();
        if let Some(SessionCheck(outcome)) = ext.get::<SessionCheck>() {
            return Some(answer(outcome));
        }
        let device = ext.get::<DeviceContext>()?;
        let (_, hot) = self.session_cookie(req, |remembered| {
            let hot = remembered.hot.as_ref()?;
            let presented = Presented {
                hash: remembered.hash,
                device,
                client: client_headers(req),
            };
            (self.inner.service.check_hot(&presented, hot)).then(|| hot.session().clone())
        })?;
        hot.map(Ok)
    }

    /// The full check; the cookie value is remembered with the hot entry a pass gives, or
    /// with none.
    async fn check(
        &self,
        req: &HttpRequest,
        device: &DeviceContext,
    ) -> Result<CurrentSession, ServiceError> {
        let (value, (hash, was_hot)) = self
            .session_cookie(req, Remembered::summary)
            .ok_or(ServiceError::NotSignedIn)?;
        let presented = Presented {
            hash,
            device,
            client: client_headers(req),
        };
        let checked = self.inner.service.check(presented).await;
        let hot = checked.as_ref().ok().and_then(|(_, hot)| hot.clone());
        if hot.is_some() || was_hot {
            self.inner
                .remembered
                .insert(value, Remembered { hash, hot });
        }
        checked.map(|(session, _)| session)
    }

    /// [`current`](Self::current), and the device must be a trusted device of the user
    /// (it is, for any valid session: the check requires it).
    pub async fn trusted(&self, req: &HttpRequest) -> Result<TrustedDevice, ApiError> {
        let session = self.current(req).await?;
        Ok(TrustedDevice {
            user_id: session.user_id().to_owned(),
            device: session.device_arc(),
        })
    }

    /// Ends every session of `user_id` and untrusts every device of the user, with no
    /// device in hand: for password resets and compromised accounts. Returns how many
    /// devices were revoked. Safe to retry.
    pub async fn revoke_user(&self, user_id: &str) -> Result<usize, ApiError> {
        Ok(self.inner.service.revoke_user(user_id).await?)
    }

    /// Removes expired entries from the store (sessions are written with a TTL that ends a
    /// day after their absolute expiry). Run it periodically; returns how many it removed.
    pub async fn sweep(&self) -> Result<u64, ApiError> {
        Ok(self.inner.service.sweep().await?)
    }

    /// The hash of the first well-formed session cookie of the request.
    fn cookie_hash(&self, req: &HttpRequest) -> Option<TokenHash> {
        self.session_cookie(req, |remembered| remembered.hash)
            .map(|(_, hash)| hash)
    }

    /// The first well-formed session cookie of the request, and what `read` makes of what
    /// is remembered of it. `read` runs under the memo's lock (see `Memo::read_or_derive`),
    /// so the remembered entry is not cloned.
    fn session_cookie<'r, R>(
        &self,
        req: &'r HttpRequest,
        mut read: impl FnMut(&Remembered) -> R,
    ) -> Option<(&'r [u8], R)> {
        let headers = req.headers().get_all(COOKIE).map(|v| v.as_bytes());
        let mut found = None;
        self.inner
            .cookie_name
            .visit(headers, self.inner.limits, |value| {
                let derive = || {
                    let hash = token_hash(value).ok_or(())?;
                    Ok::<_, ()>(Remembered { hash, hot: None })
                };
                found = (self.inner.remembered)
                    .read_or_derive(value, derive, &mut read)
                    .ok()
                    .map(|read| (value, read));
                found.is_none()
            });
        found
    }
}

/// What a settled check answers: the session, or the same refusal again.
fn answer(outcome: &Result<CurrentSession, ServiceError>) -> Result<CurrentSession, ApiError> {
    match outcome {
        Ok(session) => Ok(session.clone()),
        Err(e) => Err(replay(e)),
    }
}

/// The error a cached check answers again: the same refusal. A store failure is not
/// cached, so it is never replayed.
fn replay(e: &ServiceError) -> ApiError {
    let again = match e {
        ServiceError::NotSignedIn => ServiceError::NotSignedIn,
        ServiceError::SessionRevoked => ServiceError::SessionRevoked,
        ServiceError::SessionExpired => ServiceError::SessionExpired,
        ServiceError::DeviceMismatch => ServiceError::DeviceMismatch,
        ServiceError::Suspicious => ServiceError::Suspicious,
        ServiceError::AmbiguousDevice => ServiceError::AmbiguousDevice,
        ServiceError::DeviceNotTrusted => ServiceError::DeviceNotTrusted,
        _ => ServiceError::Conflict("the session check failed earlier in this request"),
    };
    again.into()
}

/// The request's device context, as the middleware left it; without one, the same error
/// the `DeviceContext` extractor gives (500 without the middleware, 403 without consent,
/// 431 for an unreadable Cookie header), so a missing device means one thing everywhere.
pub(crate) fn device_context(req: &HttpRequest) -> Result<DeviceContext, ApiError> {
    Ok(lookup::<DeviceContext>(req)?)
}

/// The request's device id, as the middleware left it (see [`device_context`]).
pub(crate) fn device_id(req: &HttpRequest) -> Result<DeviceId, ApiError> {
    Ok(lookup::<DeviceId>(req)?)
}

fn client_headers(req: &HttpRequest) -> ClientHeaders<'_> {
    let header = |name| {
        req.headers()
            .get(name)
            .map(|v| v.as_bytes())
            .unwrap_or_default()
    };
    ClientHeaders {
        user_agent: header(USER_AGENT),
        accept_language: header(ACCEPT_LANGUAGE),
    }
}

/// The app's [`Sessions`], from app data.
pub(crate) fn sessions_of(req: &HttpRequest) -> Option<Sessions> {
    sessions_in(req).cloned()
}

/// The app's [`Sessions`], borrowed from the request's app data.
fn sessions_in(req: &HttpRequest) -> Option<&Sessions> {
    match req.app_data::<web::Data<Sessions>>() {
        Some(data) => Some(data.get_ref()),
        None => req.app_data::<Sessions>(),
    }
}

#[async_trait::async_trait(?Send)]
impl SignedIn for Sessions {
    async fn caller(&self, req: &HttpRequest) -> Result<Option<Caller>, ApiError> {
        match self.current(req).await {
            Ok(s) => Ok(Some(Caller {
                user_id: s.user_id().to_owned(),
                device_id: Some(s.device_id()),
            })),
            Err(ApiError::Service(ServiceError::NotSignedIn)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait::async_trait]
impl DeviceObserver for Sessions {
    fn returning(
        &self,
        context: &DeviceContext,
        info: &(dyn Fn() -> RequestInfo + Sync),
    ) -> Option<ObserverFuture> {
        self.devices().note_returning(context, info)
    }

    async fn renewed(&self, old: DeviceId, new: DeviceId) {
        self.devices().renewed(old, new).await;
    }
}

impl FromRequest for CurrentSession {
    type Error = ApiError;
    /// Ready at once for a hot session or a request already checked; otherwise the full
    /// check, which may wait on the store.
    type Future = Either<
        Ready<Result<Self, Self::Error>>,
        Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>,
    >;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(sessions) = sessions_in(req) else {
            return Either::Left(ready(Err(NO_SESSIONS)));
        };
        if let Some(outcome) = sessions.current_now(req) {
            return Either::Left(ready(outcome));
        }
        let req = req.clone();
        Either::Right(Box::pin(async move {
            let sessions = sessions_in(&req).ok_or(NO_SESSIONS)?;
            sessions.current(&req).await
        }))
    }
}

/// What a session extractor answers in an app without [`Sessions`].
const NO_SESSIONS: ApiError =
    ApiError::Misconfigured("no Sessions in app data: add .app_data(web::Data::new(sessions))");
