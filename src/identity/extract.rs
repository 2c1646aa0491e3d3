//! What handlers take: `DeviceId`, `DeviceContext`, `DeviceControl`.

use std::future::{ready, Ready};
use std::time::SystemTime;

use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::identity::device_id::DeviceId;
use crate::identity::error::DeviceError;
use crate::identity::token::Rejected;

/// Why the middleware minted a new token for this response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reissue {
    /// The browser sent no device cookie: a new id.
    New,
    /// The browser's cookie was rejected for this reason: a new id.
    Rejected(Rejected),
    /// The cookie verified under a retired key: same id, re-minted under the primary.
    RetiredKey,
    /// The cookie is older than the refresh age: same id, re-minted with a fresh date.
    Refresh,
    /// The cookie verified but is in an older format of its mode (sealed version 1): same
    /// id, re-minted in the current format.
    LegacyFormat,
}

/// What the middleware knows about this request's device, in request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceContext {
    /// The device id.
    pub id: DeviceId,
    /// `true` if the id was made for this request (first visit, or rejected cookie).
    pub is_new: bool,
    /// Whether and why a new token is sent with the response.
    pub reissue: Option<Reissue>,
    /// The key the cookie verified under (for new ids: the primary key). `None` in plain mode.
    pub key_id: Option<u32>,
    /// When the browser's token was minted; `None` for new ids and plain tokens.
    pub issued_at: Option<SystemTime>,
    /// Other valid device tokens the browser sent beside the one taken as [`id`](Self::id)
    /// (a stray cookie from an old `Path` or `Domain`, or one tossed in by a sibling
    /// subdomain). Non-empty means the identity is ambiguous: the services then bind,
    /// rotate and revoke nothing on its account.
    pub others: Vec<DeviceId>,
    /// The client address, as the configured trusted proxies report it.
    pub client_ip: Option<IpAddr>,
}

impl DeviceContext {
    /// Whether the browser sent more than one valid device token.
    #[must_use]
    pub fn is_ambiguous(&self) -> bool {
        !self.others.is_empty()
    }

    /// Whether `id` is among the valid device tokens the browser sent.
    #[must_use]
    pub fn presented(&self, id: &DeviceId) -> bool {
        self.id == *id || self.others.contains(id)
    }
}

/// Marks a request the middleware saw but did not track (no consent). A tracked request
/// is marked by its [`DeviceContext`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoConsent;

/// Marks a request whose `Cookie` header was past the limits without the device cookie
/// in the part read: no id was minted for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unreadable;

/// What the way out must add to the response, left in the request by handlers and
/// services: one entry, so the middleware looks once.
#[derive(Debug, Default, Clone)]
pub(crate) struct Outgoing {
    /// A handler's change to the device cookie.
    pub(crate) action: Option<DeviceAction>,
    /// `Set-Cookie` values queued by services.
    pub(crate) cookies: Vec<String>,
}

/// Queues a `Set-Cookie` header value (see `CookieConfig::header`) for the response to
/// `req`.
pub(crate) fn queue_cookie(req: &HttpRequest, cookie: String) {
    outgoing(req, |out| out.cookies.push(cookie));
}

/// Changes what the way out adds to the response to `req`.
fn outgoing(req: &HttpRequest, change: impl FnOnce(&mut Outgoing)) {
    let mut ext = req.extensions_mut();
    match ext.get_mut::<Outgoing>() {
        Some(out) => change(out),
        None => {
            let mut out = Outgoing::default();
            change(&mut out);
            ext.insert(out);
        }
    }
}

/// A handler's request to change the device cookie, applied on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceAction {
    Forget,
    Renew,
}

/// Lets a handler forget the device (the browser's cookie is removed) or give it a fresh
/// id. The change is applied to the response; the id seen during this request does not
/// change.
///
/// ```
/// use actix_device::DeviceControl;
/// async fn forget_me(control: DeviceControl) -> &'static str {
///     control.forget();
///     "this browser is no longer tracked"
/// }
/// ```
#[derive(Debug, Clone)]
pub struct DeviceControl {
    req: HttpRequest,
}

impl DeviceControl {
    /// Sends a removal cookie repeating every attribute of the original (name, path,
    /// domain, Secure, HttpOnly, SameSite), so the browser really drops it.
    pub fn forget(&self) {
        outgoing(&self.req, |out| out.action = Some(DeviceAction::Forget));
    }

    /// Replaces the device id with a fresh one (a new cookie with a new id). The
    /// middleware's registry hook hears of it, so a signed-in browser keeps its session
    /// and its trust under the new id (see `DeviceTrackingBuilder::registry`).
    pub fn renew(&self) {
        outgoing(&self.req, |out| out.action = Some(DeviceAction::Renew));
    }
}

/// The `T` the middleware left in the request, or why there is none.
pub(crate) fn lookup<T: Clone + 'static>(req: &HttpRequest) -> Result<T, DeviceError> {
    let ext = req.extensions();
    if let Some(value) = ext.get::<T>() {
        return Ok(value.clone());
    }
    if ext.contains::<NoConsent>() {
        Err(DeviceError::NoConsent)
    } else if ext.contains::<Unreadable>() {
        Err(DeviceError::Unreadable)
    } else {
        Err(DeviceError::MiddlewareMissing)
    }
}

impl FromRequest for DeviceId {
    type Error = DeviceError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(lookup::<DeviceId>(req))
    }
}

impl FromRequest for DeviceContext {
    type Error = DeviceError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(lookup::<DeviceContext>(req))
    }
}

impl FromRequest for DeviceControl {
    type Error = DeviceError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(lookup::<DeviceContext>(req).map(|_| DeviceControl { req: req.clone() }))
    }
}
