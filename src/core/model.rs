//! The records the services keep: plain data, stored through [`Records`](super::record)
//! with a version byte, and what the hooks and the JSON API show.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::core::record::Record;
use crate::identity::device_id::DeviceId;

/// What a device may do to the user's *other* devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Permissions {
    /// May rename other devices.
    pub rename_others: bool,
    /// May revoke other devices (one, or all at once) and change their permissions.
    pub revoke_others: bool,
}

impl Permissions {
    /// Every permission.
    pub const ALL: Self = Self {
        rename_others: true,
        revoke_others: true,
    };
    /// No permission.
    pub const NONE: Self = Self {
        rename_others: false,
        revoke_others: false,
    };

    /// Whether every permission in `other` is also in `self`.
    #[must_use]
    pub fn includes(&self, other: &Permissions) -> bool {
        (self.rename_others || !other.rename_others) && (self.revoke_others || !other.revoke_others)
    }
}

/// Why a device was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RevokeReason {
    /// Revoked from another device.
    Revoked,
    /// Revoked by "revoke every other device".
    RevokedAll,
    /// Evicted to make room for a new device.
    Evicted,
    /// Every device of the user was revoked on the server (`Sessions::revoke_user`: a
    /// password reset, a compromised account).
    UserRevoked,
}

/// A recorded revocation: revoking never deletes the device record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When, in milliseconds since the epoch.
    pub at: u64,
    /// The device that did it (`None` when the library did it, e.g. eviction).
    pub by: Option<DeviceId>,
    /// The user the device was bound to.
    pub user_id: String,
    /// Why.
    pub reason: RevokeReason,
}

/// Everything the registry remembers about one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeviceRecord {
    /// The device id.
    pub id: DeviceId,
    /// First seen, in milliseconds since the epoch.
    pub first_seen: u64,
    /// Last seen (to within the touch interval), in milliseconds since the epoch.
    pub last_seen: u64,
    /// Requests counted (written at most once per touch interval; requests of a final
    /// interval before a shutdown may be missing).
    pub visits: u64,
    /// The last User-Agent seen (at most 256 bytes).
    pub user_agent: Option<String>,
    /// The first client address seen.
    pub first_ip: Option<IpAddr>,
    /// The last client address seen.
    pub last_ip: Option<IpAddr>,
    /// A name the user gave it.
    pub name: Option<String>,
    /// The user it is bound to.
    pub owner: Option<String>,
    /// When it was bound, in milliseconds since the epoch.
    pub bound_at: Option<u64>,
    /// Whether it is currently a trusted device of its owner (bound and not revoked).
    pub trusted: bool,
    /// What it may do to the owner's other devices.
    pub permissions: Permissions,
    /// The current revocation, if revoked and not bound again since.
    pub revoked: Option<Revocation>,
    /// Earlier revocations, oldest first (at most 16 kept).
    pub history: Vec<Revocation>,
}

impl Record for DeviceRecord {
    const KIND: &'static str = "device";
    const VERSION: u8 = 1;
}

/// The devices bound to one user, in binding order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserDevices {
    pub(crate) devices: Vec<DeviceId>,
}

impl Record for UserDevices {
    const KIND: &'static str = "user devices";
    const VERSION: u8 = 1;
}

/// Who gives way when a user binds one device more than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EvictionPolicy {
    /// Refuse the new device: login answers 409 `too_many_devices` (the default).
    #[default]
    Refuse,
    /// Revoke the device seen least recently.
    LeastRecentlySeen,
    /// Revoke the device bound longest ago.
    Oldest,
}

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
    /// Every session of the user was ended on the server.
    UserRevoked,
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
