//! The services' error: what went wrong, with a stable code, and nothing of HTTP.

use actix_device_store::{KeyName, StoreError};

/// An error of the services (devices, sessions, carts, flags, limits, data rights).
///
/// Each has a stable [`code`](Self::code); the HTTP layer answers it as JSON
/// `{"error":{"code":"...","message":"..."}}` with a status that fits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// No valid session (missing, unknown, malformed token). `not_signed_in`.
    #[error("not signed in")]
    NotSignedIn,
    /// The session was ended (logout, device revoked, rotation). `session_revoked`.
    #[error("the session was revoked")]
    SessionRevoked,
    /// The session passed its idle or absolute timeout. `session_expired`.
    #[error("the session expired")]
    SessionExpired,
    /// The session token came from another device than the one it was issued to; the
    /// session is now revoked. `session_device_mismatch`.
    #[error("the session belongs to another device")]
    DeviceMismatch,
    /// The client fingerprint changed and the configuration denies such requests.
    /// `session_suspicious`.
    #[error("the session's client fingerprint changed")]
    Suspicious,
    /// The browser sent several valid device tokens and none is the session's own:
    /// nothing is bound, rotated or revoked on such a request. `ambiguous_device`.
    #[error("the request carries several device identities")]
    AmbiguousDevice,
    /// The device is not bound to the user, or was revoked. `device_not_trusted`.
    #[error("this device is not a trusted device of the user")]
    DeviceNotTrusted,
    /// The calling device lacks the permission. `forbidden`.
    #[error("not permitted: {0}")]
    Forbidden(&'static str),
    /// No such device among the user's devices. `device_not_found`.
    #[error("no such device")]
    DeviceNotFound,
    /// The user has the maximum number of devices and the policy refuses new ones.
    /// `too_many_devices`.
    #[error("the user already has the maximum of {0} devices")]
    TooManyDevices(usize),
    /// The request conflicts with the current state. `conflict`.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A cart limit (lines per cart, quantity per line) would be exceeded. `cart_limit`.
    #[error("cart limit: {0}")]
    CartLimit(String),
    /// No flag with that key. `flag_not_found`.
    #[error("no such flag")]
    FlagNotFound,
    /// The item is not in the cart. `not_in_cart`.
    #[error("that item is not in the cart")]
    NotInCart,
    /// An argument is out of range (a name too long, a zero quantity...). `invalid_body`.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The store failed. `internal`; details belong in the log only.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record did not decode. `internal`; details belong in the log only.
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl ServiceError {
    /// The stable `code` of the error.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::NotSignedIn => "not_signed_in",
            ServiceError::SessionRevoked => "session_revoked",
            ServiceError::SessionExpired => "session_expired",
            ServiceError::DeviceMismatch => "session_device_mismatch",
            ServiceError::Suspicious => "session_suspicious",
            ServiceError::AmbiguousDevice => "ambiguous_device",
            ServiceError::DeviceNotTrusted => "device_not_trusted",
            ServiceError::Forbidden(_) => "forbidden",
            ServiceError::DeviceNotFound => "device_not_found",
            ServiceError::TooManyDevices(_) => "too_many_devices",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::Invalid(_) => "invalid_body",
            ServiceError::CartLimit(_) => "cart_limit",
            ServiceError::NotInCart => "not_in_cart",
            ServiceError::FlagNotFound => "flag_not_found",
            ServiceError::Store(_) | ServiceError::Record(_) => "internal",
        }
    }

    /// Whether the error is the server's fault (its details stay in the log).
    #[must_use]
    pub fn is_internal(&self) -> bool {
        matches!(self, ServiceError::Store(_) | ServiceError::Record(_))
    }
}

/// The services' result.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Why stored bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// No bytes at all.
    #[error("empty {kind} record at key {key}")]
    Empty {
        /// The record kind.
        kind: &'static str,
        /// Where it was stored.
        key: KeyName,
    },
    /// A version this build does not read.
    #[error("{kind} record at key {key} has version {found}, this build reads {expected}")]
    Version {
        /// The record kind.
        kind: &'static str,
        /// Where it was stored.
        key: KeyName,
        /// The version found.
        found: u8,
        /// The version this build reads.
        expected: u8,
    },
    /// The payload does not decode, or not canonically.
    #[error("corrupt {kind} record at key {key}: {reason}")]
    Corrupt {
        /// The record kind.
        kind: &'static str,
        /// Where it was stored.
        key: KeyName,
        /// What was wrong.
        reason: String,
    },
}
