//! The identity layer's error, and the one JSON error envelope every error of the crate
//! is answered with.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::identity::token::Rejected;

/// The JSON body of every error this crate answers: `{"error":{"code","message"}}`.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "error": { "code": code, "message": message }
    }))
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
    /// The `Cookie` header is past the configured limits and the device cookie was not
    /// among the part read: no id was minted, so the browser's real cookie is not
    /// overwritten (431).
    #[error("the Cookie header is too large to find the device cookie")]
    Unreadable,
}

impl DeviceError {
    /// The stable `code` of the JSON body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            DeviceError::MiddlewareMissing => "device_tracking_missing",
            DeviceError::NoConsent => "device_consent_required",
            DeviceError::Rejected(_) => "device_rejected",
            DeviceError::Unreadable => "cookie_header_too_large",
        }
    }
}

impl ResponseError for DeviceError {
    fn status_code(&self) -> StatusCode {
        match self {
            DeviceError::MiddlewareMissing => StatusCode::INTERNAL_SERVER_ERROR,
            DeviceError::NoConsent => StatusCode::FORBIDDEN,
            DeviceError::Rejected(_) => StatusCode::UNAUTHORIZED,
            DeviceError::Unreadable => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let DeviceError::MiddlewareMissing = self {
            tracing::error!("{self}");
        }
        json_error(self.status_code(), self.code(), &self.to_string())
    }
}
