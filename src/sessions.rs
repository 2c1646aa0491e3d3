//! Login sessions bound to a device.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::header::{ACCEPT_LANGUAGE, COOKIE, USER_AGENT};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::api_error::ApiError;
use crate::carts::Carts;
use crate::client_ip::client_ip;
use crate::config::{validate_cookie, ConfigError, CookieSettings};
use crate::cookie_header::{values_named, HeaderLimits};
use crate::device_id::DeviceId;
use crate::events::{report, SessionEvent};
use crate::record::{Change, Record};
use crate::registry::{device_subkey, DeviceRecord, Devices, RequestInfo};

/// Why a session ended before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EndReason {
    /// The user logged out.
    Logout,
    /// A new login from the same browser replaced it (session fixation defence).
    Rotated,
    /// Its device was revoked.
    DeviceRevoked,
    /// Its token was presented by another device.
    Hijacked,
}

/// A session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SessionStatus {
    /// Valid until a timeout.
    Active,
    /// Ended on the server.
    Revoked {
        /// When, in milliseconds since the epoch.
        at: u64,
        /// Why.
        reason: EndReason,
    },
    /// Past its idle or absolute timeout (computed, see [`SessionRecord::status_at`]).
    Expired,
}

/// A session as stored: the token itself is never stored, only its BLAKE3 hash (the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionRecord {
    /// The user who logged in.
    pub user_id: String,
    /// The device the session was issued to.
    pub device_id: DeviceId,
    /// Created, in milliseconds since the epoch.
    pub created_at: u64,
    /// Last used (to within the touch interval), in milliseconds since the epoch.
    pub last_seen: u64,
    /// Absolute expiry, in milliseconds since the epoch.
    pub expires_at: u64,
    /// Idle timeout in milliseconds.
    pub idle_timeout_ms: u64,
    /// Active or revoked; expiry is computed by [`status_at`](Self::status_at).
    pub status: SessionStatus,
    /// BLAKE3 of User-Agent and Accept-Language at login.
    pub fingerprint: [u8; 32],
}

impl SessionRecord {
    /// The status at `now` (milliseconds), with both timeouts applied.
    #[must_use]
    pub fn status_at(&self, now: u64) -> SessionStatus {
        match self.status {
            SessionStatus::Active
                if now >= self.expires_at
                    || now.saturating_sub(self.last_seen) >= self.idle_timeout_ms =>
            {
                SessionStatus::Expired
            }
            other => other,
        }
    }
}

impl Record for SessionRecord {
    const KIND: &'static str = "session";
    const VERSION: u8 = 1;
}

const TOKEN_LEN: usize = 32;
const TOKEN_TEXT_LEN: usize = 43;
/// Revoked and expired sessions stay readable this long (for audit), then the store
/// purges them.
const RETENTION: Duration = Duration::from_secs(24 * 3600);

pub(crate) fn session_key(hash: &[u8; 32]) -> Vec<u8> {
    [&b"sess/"[..], hash].concat()
}

fn device_sessions_prefix(device: &DeviceId) -> Vec<u8> {
    device_subkey(device, b"sess/")
}

fn device_session_key(device: &DeviceId, hash: &[u8; 32]) -> Vec<u8> {
    [device_sessions_prefix(device), hash.to_vec()].concat()
}

/// Cookies queued by services during a request; the `DeviceTracking` middleware writes
/// them on the way out.
#[derive(Debug, Default, Clone)]
pub(crate) struct PendingCookies(pub(crate) Vec<Cookie<'static>>);

fn queue_cookie(req: &HttpRequest, cookie: Cookie<'static>) {
    let mut ext = req.extensions_mut();
    match ext.get_mut::<PendingCookies>() {
        Some(pending) => pending.0.push(cookie),
        None => {
            ext.insert(PendingCookies(vec![cookie]));
        }
    }
}

/// Configuration of [`Sessions`].
#[must_use]
pub struct SessionsBuilder {
    devices: Devices,
    cookie: CookieSettings,
    host_prefix: bool,
    idle_timeout: Duration,
    absolute_timeout: Duration,
    deny_on_fingerprint_change: bool,
    touch_interval: Duration,
    carts: Option<Carts>,
}

impl fmt::Debug for SessionsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsBuilder")
            .field("cookie", &self.cookie)
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_timeout", &self.absolute_timeout)
            .finish_non_exhaustive()
    }
}

impl SessionsBuilder {
    /// The session cookie's name (default `session`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }
    /// `Secure` (default `true`).
    pub fn secure(mut self, secure: bool) -> Self {
        self.cookie.secure = secure;
        self
    }
    /// `SameSite` (default `Lax`).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = same_site;
        self
    }
    /// `Path` (default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }
    /// `Domain` (default none).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }
    /// The `__Host-` prefix (Secure, `Path=/`, no Domain).
    pub fn host_prefix(mut self) -> Self {
        self.host_prefix = true;
        self.cookie.secure = true;
        self.cookie.path = "/".to_owned();
        self.cookie.domain = None;
        self
    }
    /// A session unused this long expires (default 30 minutes).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }
    /// A session expires this long after login, however active (default 7 days).
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute_timeout = timeout;
        self
    }
    /// Refuse (401 `session_suspicious`) requests whose User-Agent / Accept-Language
    /// fingerprint differs from the login's (default: only raise the event; browsers
    /// update themselves and users change languages).
    pub fn deny_on_fingerprint_change(mut self, deny: bool) -> Self {
        self.deny_on_fingerprint_change = deny;
        self
    }
    /// Write a session's last-seen at most this often (default 1 minute; at most a quarter
    /// of the idle timeout).
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = interval;
        self
    }

    /// At login, merge the device's cart into the user's (see [`Carts::merge_into_user`]).
    pub fn carts(mut self, carts: Carts) -> Self {
        self.carts = Some(carts);
        self
    }

    /// Checks the cookie attributes (the same rules as the device cookie's) and builds.
    pub fn build(self) -> Result<Sessions, ConfigError> {
        let mut cookie = self.cookie;
        if self.host_prefix && !cookie.name.starts_with("__Host-") {
            cookie.name = format!("__Host-{}", cookie.name);
        }
        cookie.max_age = self.absolute_timeout;
        validate_cookie(&cookie)?;
        if self.idle_timeout < Duration::from_secs(1) {
            return Err(ConfigError::RefreshAge);
        }
        let touch_interval = self.touch_interval.min(self.idle_timeout / 4);
        Ok(Sessions {
            inner: Arc::new(SessionsInner {
                devices: self.devices,
                cookie,
                idle_timeout: self.idle_timeout,
                absolute_timeout: self.absolute_timeout,
                deny_on_fingerprint_change: self.deny_on_fingerprint_change,
                touch_interval,
                carts: self.carts,
            }),
        })
    }
}

struct SessionsInner {
    devices: Devices,
    cookie: CookieSettings,
    idle_timeout: Duration,
    absolute_timeout: Duration,
    deny_on_fingerprint_change: bool,
    touch_interval: Duration,
    carts: Option<Carts>,
}

/// Login sessions bound to devices, and the trusted-device rules around them.
///
/// Register it as app data (`.app_data(web::Data::new(sessions.clone()))`) so the
/// [`CurrentSession`] and [`TrustedDevice`] extractors find it. It needs the
/// `DeviceTracking` middleware around the routes that use it: sessions are bound to the
/// device id, and the middleware writes the session cookie.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<SessionsInner>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("cookie", &self.inner.cookie.name)
            .field("idle_timeout", &self.inner.idle_timeout)
            .field("absolute_timeout", &self.inner.absolute_timeout)
            .finish_non_exhaustive()
    }
}

/// The signed-in user of a request, checked against the server's session record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CurrentSession {
    /// The user.
    pub user_id: String,
    /// The device (the request's own, which matches the session's).
    pub device_id: DeviceId,
    /// The session record.
    pub record: SessionRecord,
    hash: [u8; 32],
}

/// A [`CurrentSession`] whose device is bound to the user and not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustedDevice {
    /// The session.
    pub session: CurrentSession,
    /// The device's record.
    pub device: DeviceRecord,
}

impl Sessions {
    /// A builder with the defaults: cookie `session`, Secure, HttpOnly, SameSite=Lax,
    /// idle timeout 30 minutes, absolute timeout 7 days.
    pub fn builder(devices: Devices) -> SessionsBuilder {
        SessionsBuilder {
            devices,
            cookie: CookieSettings {
                name: "session".to_owned(),
                max_age: Duration::from_secs(7 * 24 * 3600),
                expires: None,
                path: "/".to_owned(),
                domain: None,
                secure: true,
                http_only: true,
                same_site: SameSite::Lax,
            },
            host_prefix: false,
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(7 * 24 * 3600),
            deny_on_fingerprint_change: false,
            touch_interval: Duration::from_secs(60),
            carts: None,
        }
    }

    /// The device registry.
    #[must_use]
    pub fn devices(&self) -> &Devices {
        &self.inner.devices
    }

    /// The session cookie's name.
    #[must_use]
    pub fn cookie_name(&self) -> &str {
        &self.inner.cookie.name
    }

    /// Signs `user_id` in on this request's device. The application has checked the
    /// password (or whatever proves the user); this revokes any session the browser
    /// already held (fixation), binds the device to the user under the device limit,
    /// stores a new session and queues its cookie on the response.
    pub async fn login(
        &self,
        req: &HttpRequest,
        user_id: &str,
    ) -> Result<CurrentSession, ApiError> {
        let device_id = req
            .extensions()
            .get::<DeviceId>()
            .copied()
            .ok_or(ApiError::NoDevice)?;
        let devices = &self.inner.devices;
        if let Some(hash) = self.cookie_hash(req) {
            self.end(&hash, EndReason::Rotated).await?;
        }
        revoke_sessions_of(devices, &device_id, EndReason::Rotated).await?;
        devices
            .bind(device_id, user_id, &request_info(devices, req))
            .await?;
        if let Some(carts) = &self.inner.carts {
            carts.merge_into_user(device_id, user_id).await?;
        }

        let mut token = [0u8; TOKEN_LEN];
        rand::rngs::OsRng.fill_bytes(&mut token);
        let hash = *blake3::hash(&token).as_bytes();
        let now = devices.now();
        let absolute = millis(self.inner.absolute_timeout);
        let record = SessionRecord {
            user_id: user_id.to_owned(),
            device_id,
            created_at: now,
            last_seen: now,
            expires_at: now.saturating_add(absolute),
            idle_timeout_ms: millis(self.inner.idle_timeout),
            status: SessionStatus::Active,
            fingerprint: fingerprint(req),
        };
        let ttl = Some(self.inner.absolute_timeout + RETENTION);
        let records = devices.records();
        // An empty marker under `dev/{device}/sess/{hash}`: the device holds this session.
        records
            .store()
            .put(&device_session_key(&device_id, &hash), &[], ttl)
            .await?;
        records.put(&session_key(&hash), &record, ttl).await?;
        queue_cookie(req, self.cookie(URL_SAFE_NO_PAD.encode(token)));
        Ok(CurrentSession {
            user_id: user_id.to_owned(),
            device_id,
            record,
            hash,
        })
    }

    /// Ends the request's session on the server and queues a removal cookie repeating the
    /// original attributes. A replay of the old token then gets 401.
    pub async fn logout(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let hash = self.cookie_hash(req).ok_or(ApiError::NotSignedIn)?;
        let ended = self.end(&hash, EndReason::Logout).await?;
        let mut removal = self.cookie(String::new());
        removal.make_removal();
        queue_cookie(req, removal);
        if ended {
            Ok(())
        } else {
            Err(ApiError::NotSignedIn)
        }
    }

    /// Checks the request's session: present, known, active, within both timeouts, on the
    /// device it was issued to. A token from another device revokes the session and raises
    /// the hijack event; a changed fingerprint raises the suspicious-session event.
    pub async fn current(&self, req: &HttpRequest) -> Result<CurrentSession, ApiError> {
        let hash = self.cookie_hash(req).ok_or(ApiError::NotSignedIn)?;
        let devices = &self.inner.devices;
        let records = devices.records();
        let key = session_key(&hash);
        let record: SessionRecord = records.get(&key).await?.ok_or(ApiError::NotSignedIn)?;
        let now = devices.now();
        match record.status_at(now) {
            SessionStatus::Active => {}
            SessionStatus::Revoked { .. } => return Err(ApiError::SessionRevoked),
            SessionStatus::Expired => return Err(ApiError::SessionExpired),
        }
        let presented_by = req
            .extensions()
            .get::<DeviceId>()
            .copied()
            .ok_or(ApiError::NoDevice)?;
        let event = || SessionEvent {
            user_id: record.user_id.clone(),
            session_device: record.device_id,
            presented_by,
            session_ref: hex::encode(&hash[..8]),
        };
        if !record.device_id.ct_eq(&presented_by) {
            self.end(&hash, EndReason::Hijacked).await?;
            tracing::warn!(session = %event().session_ref, "session token presented by another device");
            report(
                "session_hijack",
                devices.events().session_hijack(&event()).await,
            );
            return Err(ApiError::DeviceMismatch);
        }
        if !bool::from(record.fingerprint.ct_eq(&fingerprint(req))) {
            report(
                "suspicious_session",
                devices.events().suspicious_session(&event()).await,
            );
            if self.inner.deny_on_fingerprint_change {
                return Err(ApiError::Suspicious);
            }
        }
        let record = if now.saturating_sub(record.last_seen) >= millis(self.inner.touch_interval) {
            let ttl = Duration::from_millis(record.expires_at.saturating_sub(now)) + RETENTION;
            records
                .update::<SessionRecord, _>(&key, Some(ttl), |current| match current {
                    Some(mut r) if r.status == SessionStatus::Active => {
                        r.last_seen = r.last_seen.max(now);
                        Ok(Change::Write(r))
                    }
                    Some(_) => Err(ApiError::SessionRevoked),
                    None => Err(ApiError::NotSignedIn),
                })
                .await?
                .ok_or(ApiError::NotSignedIn)?
        } else {
            record
        };
        Ok(CurrentSession {
            user_id: record.user_id.clone(),
            device_id: presented_by,
            record,
            hash,
        })
    }

    /// [`current`](Self::current), and the device must be a trusted device of the user.
    pub async fn trusted(&self, req: &HttpRequest) -> Result<TrustedDevice, ApiError> {
        let session = self.current(req).await?;
        let device = self
            .inner
            .devices
            .is_trusted(&session.user_id, &session.device_id)
            .await?
            .ok_or(ApiError::DeviceNotTrusted)?;
        Ok(TrustedDevice { session, device })
    }

    /// Removes expired entries from the store (sessions are written with a TTL that ends a
    /// day after their absolute expiry). Run it periodically; returns how many it removed.
    pub async fn sweep(&self) -> Result<u64, ApiError> {
        Ok(self.inner.devices.records().store().purge_expired().await?)
    }

    /// Marks session `hash` revoked; returns whether it was active.
    async fn end(&self, hash: &[u8; 32], reason: EndReason) -> Result<bool, ApiError> {
        end_session(&self.inner.devices, hash, reason).await
    }

    /// The hash of the first well-formed session cookie of the request.
    fn cookie_hash(&self, req: &HttpRequest) -> Option<[u8; 32]> {
        let headers = req.headers().get_all(COOKIE).map(|v| v.as_bytes());
        values_named(
            headers,
            self.inner.cookie.name.as_bytes(),
            HeaderLimits::default(),
        )
        .find_map(|value| {
            if value.len() != TOKEN_TEXT_LEN {
                return None;
            }
            let raw = URL_SAFE_NO_PAD.decode(value).ok()?;
            let token = <[u8; TOKEN_LEN]>::try_from(raw).ok()?;
            Some(*blake3::hash(&token).as_bytes())
        })
    }

    fn cookie(&self, value: String) -> Cookie<'static> {
        crate::middleware::build_cookie(&self.inner.cookie, value)
    }

    /// The hash of this session's token (hex of the first 8 bytes) for logs.
    #[must_use]
    pub fn session_ref(session: &CurrentSession) -> String {
        hex::encode(&session.hash[..8])
    }
}

async fn end_session(
    devices: &Devices,
    hash: &[u8; 32],
    reason: EndReason,
) -> Result<bool, ApiError> {
    let now = devices.now();
    let mut ended = false;
    let record = devices
        .records()
        .update::<SessionRecord, _>(&session_key(hash), Some(RETENTION), |current| {
            ended = false;
            match current {
                Some(mut r) if r.status == SessionStatus::Active => {
                    ended = true;
                    r.status = SessionStatus::Revoked { at: now, reason };
                    Ok(Change::Write(r))
                }
                _ => Ok(Change::Keep),
            }
        })
        .await?;
    if let Some(r) = record {
        devices
            .records()
            .store()
            .delete(&device_session_key(&r.device_id, hash))
            .await?;
    }
    Ok(ended)
}

/// Revokes every session device `device` holds.
async fn revoke_sessions_of(
    devices: &Devices,
    device: &DeviceId,
    reason: EndReason,
) -> Result<(), ApiError> {
    let prefix = device_sessions_prefix(device);
    let store = devices.records().store();
    loop {
        // Each ended session deletes its own index entry, so the first page is always
        // what remains.
        let page = store.scan_prefix(&prefix, None, 100).await?;
        if page.entries.is_empty() {
            return Ok(());
        }
        for (key, _) in &page.entries {
            let Ok(hash) = <[u8; 32]>::try_from(&key[prefix.len()..]) else {
                store.delete(key).await?;
                continue;
            };
            end_session(devices, &hash, reason).await?;
            store.delete(key).await?;
        }
    }
}

/// Revokes the sessions of a revoked device (called by the registry).
pub(crate) async fn revoke_device_sessions(
    devices: &Devices,
    device: &DeviceId,
) -> Result<(), ApiError> {
    revoke_sessions_of(devices, device, EndReason::DeviceRevoked).await
}

fn fingerprint(req: &HttpRequest) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("actix-device 2026-11 session fingerprint v1");
    for header in [USER_AGENT, ACCEPT_LANGUAGE] {
        let value = req
            .headers()
            .get(header)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        hasher.update(&(value.len() as u64).to_be_bytes());
        hasher.update(value);
    }
    *hasher.finalize().as_bytes()
}

pub(crate) fn request_info(devices: &Devices, req: &HttpRequest) -> RequestInfo {
    RequestInfo {
        ip: client_ip(
            req.peer_addr().map(|a| a.ip()),
            req.headers(),
            devices.proxies(),
        ),
        user_agent: req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn sessions_of(req: &HttpRequest) -> Result<Sessions, ApiError> {
    if let Some(s) = req.app_data::<web::Data<Sessions>>() {
        return Ok(Sessions::clone(s));
    }
    req.app_data::<Sessions>()
        .cloned()
        .ok_or(ApiError::Misconfigured(
            "no Sessions in app data: add .app_data(web::Data::new(sessions))",
        ))
}

impl FromRequest for CurrentSession {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { sessions_of(&req)?.current(&req).await })
    }
}

impl FromRequest for TrustedDevice {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { sessions_of(&req)?.trusted(&req).await })
    }
}
