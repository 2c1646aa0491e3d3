//! Who is signed in: a small hook, so trust checks and device management work with any
//! authentication (this crate's sessions, actix-identity, a JWT, an auth proxy).

use actix_web::HttpRequest;

use crate::http::error::ApiError;
use crate::identity::device_id::DeviceId;

/// The signed-in caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Caller {
    /// The user.
    pub user_id: String,
    /// The device the authentication is bound to, when it knows one (a session does);
    /// otherwise the request's own device is used.
    pub device_id: Option<DeviceId>,
}

impl Caller {
    /// A caller known by user id only.
    #[must_use]
    pub fn user(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            device_id: None,
        }
    }
}

/// Tells the device routes and the `TrustedDevice` extractor who is signed in.
///
/// `Sessions` implements it; so can any other authentication:
///
/// ```
/// use actix_web::HttpRequest;
/// use actix_device::{ApiError, Caller, SignedIn};
///
/// /// Trusts an `X-User` header set by an authenticating proxy in front of the app.
/// struct ProxyAuth;
///
/// #[async_trait::async_trait(?Send)]
/// impl SignedIn for ProxyAuth {
///     async fn caller(&self, req: &HttpRequest) -> Result<Option<Caller>, ApiError> {
///         Ok(req.headers().get("x-user").and_then(|v| v.to_str().ok()).map(Caller::user))
///     }
/// }
/// ```
#[async_trait::async_trait(?Send)]
pub trait SignedIn: Send + Sync + 'static {
    /// The signed-in caller of `req`, `None` when nobody is signed in. An error (a
    /// revoked session, say) is answered as is.
    async fn caller(&self, req: &HttpRequest) -> Result<Option<Caller>, ApiError>;
}
