use actix_device_store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::record::RecordError;

/// An error of the device registry, session and management layer. Each reaches HTTP as
/// JSON `{"error":{"code":"...","message":"..."}}` with a stable `code`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No valid session cookie (missing, unknown, malformed). 401 `not_signed_in`.
    #[error("not signed in")]
    NotSignedIn,
    /// The session was revoked (logout, device revoked, rotation). 401 `session_revoked`.
    #[error("the session was revoked")]
    SessionRevoked,
    /// The session passed its idle or absolute timeout. 401 `session_expired`.
    #[error("the session expired")]
    SessionExpired,
    /// The session token came from another device than the one it was issued to; the
    /// session is now revoked. 401 `session_device_mismatch`.
    #[error("the session belongs to another device")]
    DeviceMismatch,
    /// The client fingerprint changed and the configuration denies such requests.
    /// 401 `session_suspicious`.
    #[error("the session's client fingerprint changed")]
    Suspicious,
    /// The request has no device id (no middleware, no consent). 401 `no_device`.
    #[error("this request has no device id")]
    NoDevice,
    /// The device is not bound to the user, or was revoked. 403 `device_not_trusted`.
    #[error("this device is not a trusted device of the user")]
    DeviceNotTrusted,
    /// The calling device lacks the permission. 403 `forbidden`.
    #[error("not permitted: {0}")]
    Forbidden(&'static str),
    /// No such device among the user's devices. 404 `device_not_found`.
    #[error("no such device")]
    DeviceNotFound,
    /// The user has the maximum number of devices and the policy refuses new ones.
    /// 409 `too_many_devices`.
    #[error("the user already has the maximum of {0} devices")]
    TooManyDevices(usize),
    /// The request conflicts with the current state. 409 `conflict`.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A cart limit (lines per cart, quantity per line) would be exceeded. 422 `cart_limit`.
    #[error("cart limit: {0}")]
    CartLimit(String),
    /// No flag with that key. 404 `flag_not_found`.
    #[error("no such flag")]
    FlagNotFound,
    /// The item is not in the cart. 404 `not_in_cart`.
    #[error("that item is not in the cart")]
    NotInCart,
    /// The request body is not what the endpoint takes. 422 `invalid_body`.
    #[error("invalid body: {0}")]
    InvalidBody(String),
    /// The store failed. 500 `internal`, with details only in the log.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record did not decode. 500 `internal`, with details only in the log.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The service is not configured where the handler expected it. 500 `internal`.
    #[error("misconfigured: {0}")]
    Misconfigured(&'static str),
}

impl ApiError {
    /// The stable `code` of the JSON body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotSignedIn => "not_signed_in",
            ApiError::SessionRevoked => "session_revoked",
            ApiError::SessionExpired => "session_expired",
            ApiError::DeviceMismatch => "session_device_mismatch",
            ApiError::Suspicious => "session_suspicious",
            ApiError::NoDevice => "no_device",
            ApiError::DeviceNotTrusted => "device_not_trusted",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::DeviceNotFound => "device_not_found",
            ApiError::TooManyDevices(_) => "too_many_devices",
            ApiError::Conflict(_) => "conflict",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::CartLimit(_) => "cart_limit",
            ApiError::NotInCart => "not_in_cart",
            ApiError::FlagNotFound => "flag_not_found",
            ApiError::Store(_) | ApiError::Record(_) | ApiError::Misconfigured(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotSignedIn
            | ApiError::SessionRevoked
            | ApiError::SessionExpired
            | ApiError::DeviceMismatch
            | ApiError::Suspicious
            | ApiError::NoDevice => StatusCode::UNAUTHORIZED,
            ApiError::DeviceNotTrusted | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::DeviceNotFound | ApiError::NotInCart | ApiError::FlagNotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::TooManyDevices(_) | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::InvalidBody(_) | ApiError::CartLimit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Store(_) | ApiError::Record(_) | ApiError::Misconfigured(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            // Store and record errors name keys and engine details: useful in the log,
            // none of the client's business.
            ApiError::Store(_) | ApiError::Record(_) | ApiError::Misconfigured(_) => {
                tracing::error!(error = %self, "device layer failure");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        HttpResponse::build(self.status_code()).json(serde_json::json!({
            "error": { "code": self.code(), "message": message }
        }))
    }
}
