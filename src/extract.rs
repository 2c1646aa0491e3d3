//! What handlers take: `DeviceId`, `DeviceContext`, `DeviceControl`.

use std::future::{ready, Ready};
use std::time::SystemTime;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};

use crate::device_id::DeviceId;
use crate::token::Rejected;

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
}

/// Marks a request the middleware saw but did not track (no consent). A tracked request
/// is marked by its [`DeviceContext`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoConsent;

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
        self.req.extensions_mut().insert(DeviceAction::Forget);
    }

    /// Replaces the device id with a fresh one (a new cookie with a new id).
    pub fn renew(&self) {
        self.req.extensions_mut().insert(DeviceAction::Renew);
    }
}

/// An error from the device layer, answered as JSON
/// `{"error":{"code":"...","message":"..."}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// A handler asked for the device but the `DeviceTracking` middleware is not installed
    /// around it. A server bug, hence 500.
    #[error("no DeviceTracking middleware: wrap the App or scope with `.wrap(DeviceTracking::new(keyring))`")]
    MiddlewareMissing,
    /// The browser has not consented to tracking, so there is no device id (403).
    #[error("this browser has not consented to device tracking")]
    NoConsent,
    /// The device cookie did not verify and the middleware refuses such requests (401).
    #[error("the device cookie was rejected ({})", .0.code())]
    Rejected(Rejected),
}

impl DeviceError {
    /// The stable `code` of the JSON body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            DeviceError::MiddlewareMissing => "device_tracking_missing",
            DeviceError::NoConsent => "device_consent_required",
            DeviceError::Rejected(_) => "device_rejected",
        }
    }
}

impl ResponseError for DeviceError {
    fn status_code(&self) -> StatusCode {
        match self {
            DeviceError::MiddlewareMissing => StatusCode::INTERNAL_SERVER_ERROR,
            DeviceError::NoConsent => StatusCode::FORBIDDEN,
            DeviceError::Rejected(_) => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let DeviceError::MiddlewareMissing = self {
            tracing::error!("{self}");
        }
        HttpResponse::build(self.status_code()).json(serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        }))
    }
}

fn lookup<T: Clone + 'static>(req: &HttpRequest) -> Result<T, DeviceError> {
    let ext = req.extensions();
    if let Some(value) = ext.get::<T>() {
        return Ok(value.clone());
    }
    if ext.contains::<NoConsent>() {
        Err(DeviceError::NoConsent)
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
