//! The one `ResponseError` of the services: every error reaches the client as JSON
//! `{"error":{"code","message"}}` with a stable code, device, session and limiter errors
//! alike.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::core::error::ServiceError;
use crate::identity::error::{json_error, DeviceError};

/// An error answered by the services' HTTP layer. Handlers return it and `?` converts the
/// services' [`ServiceError`] and the middleware's [`DeviceError`] into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A service refused or failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The device layer refused.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// An unsafe request from another site (Fetch Metadata or `Origin` say so). 403
    /// `cross_origin_request`.
    #[error("cross-origin request refused")]
    CrossOrigin,
    /// A JSON endpoint was sent a body that is not `application/json`. 415
    /// `unsupported_media_type`.
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// Over a rate limit or quota; retry after this many seconds. 429 `rate_limited`.
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    /// The body does not parse as what the endpoint takes. 422 `invalid_body`.
    #[error("invalid body: {0}")]
    InvalidBody(String),
    /// The app is not wired the way the handler expects (a service missing from app
    /// data). 500 `internal`.
    #[error("misconfigured: {0}")]
    Misconfigured(&'static str),
}

impl ApiError {
    /// The stable `code` of the JSON body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Service(e) => e.code(),
            ApiError::Device(e) => e.code(),
            ApiError::CrossOrigin => "cross_origin_request",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::Misconfigured(_) => "internal",
        }
    }

    fn is_internal(&self) -> bool {
        match self {
            ApiError::Service(e) => e.is_internal(),
            ApiError::Misconfigured(_) => true,
            _ => false,
        }
    }
}

fn service_status(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::NotSignedIn
        | ServiceError::SessionRevoked
        | ServiceError::SessionExpired
        | ServiceError::DeviceMismatch
        | ServiceError::Suspicious
        | ServiceError::AmbiguousDevice => StatusCode::UNAUTHORIZED,
        ServiceError::DeviceNotTrusted | ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::DeviceNotFound | ServiceError::NotInCart | ServiceError::FlagNotFound => {
            StatusCode::NOT_FOUND
        }
        ServiceError::TooManyDevices(_) | ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::Invalid(_) | ServiceError::CartLimit(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Service(e) => service_status(e),
            ApiError::Device(e) => e.status_code(),
            ApiError::CrossOrigin => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidBody(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Store and record errors name keys and engine details: useful in the log, none
        // of the client's business.
        if self.is_internal() {
            tracing::error!(error = %self, "device layer failure");
            return json_error(self.status_code(), self.code(), "internal error");
        }
        json_error(self.status_code(), self.code(), &self.to_string())
    }
}
