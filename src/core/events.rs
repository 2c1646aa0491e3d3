//! Hooks the application implements to hear about devices and sessions.

use async_trait::async_trait;

use crate::core::model::{DeviceRecord, EvictionPolicy, Revocation};
use crate::identity::device_id::DeviceId;

/// An error from a hook. It is logged and never breaks the request.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// What a session check noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEvent {
    /// The session's user.
    pub user_id: String,
    /// The device the session was issued to.
    pub session_device: DeviceId,
    /// The device that presented it (the same, for a fingerprint change).
    pub presented_by: DeviceId,
    /// The first 8 bytes of the session token's hash, hex: enough to correlate logs,
    /// useless for replay.
    pub session_ref: String,
}

/// Event hooks. Every method has a no-op default; implement the ones you need.
///
/// Hooks run inline, after the state change they report is stored. A hook that fails is
/// logged with `tracing` and the request goes on.
#[async_trait]
pub trait DeviceEvents: Send + Sync + 'static {
    /// A device record was created (the browser came back with its cookie, or logged in).
    async fn new_device(&self, _device: &DeviceRecord) -> Result<(), HookError> {
        Ok(())
    }
    /// A device was bound to a user at login.
    async fn device_bound(&self, _device: &DeviceRecord, _user_id: &str) -> Result<(), HookError> {
        Ok(())
    }
    /// A device was revoked.
    async fn device_revoked(
        &self,
        _device: &DeviceRecord,
        _revocation: &Revocation,
    ) -> Result<(), HookError> {
        Ok(())
    }
    /// A device was evicted to make room under `max_devices_per_user`.
    async fn device_evicted(
        &self,
        _device: &DeviceRecord,
        _user_id: &str,
        _policy: EvictionPolicy,
    ) -> Result<(), HookError> {
        Ok(())
    }
    /// A session's client fingerprint (User-Agent, Accept-Language) changed.
    async fn suspicious_session(&self, _event: &SessionEvent) -> Result<(), HookError> {
        Ok(())
    }
    /// A session token turned up on another device; the session was revoked.
    async fn session_hijack(&self, _event: &SessionEvent) -> Result<(), HookError> {
        Ok(())
    }
}

/// Hooks that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl DeviceEvents for NoEvents {}

/// Logs a hook failure; never propagates it.
pub(crate) fn report(hook: &'static str, result: Result<(), HookError>) {
    if let Err(error) = result {
        tracing::warn!(hook, %error, "device event hook failed");
    }
}
