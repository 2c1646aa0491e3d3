//! The security audit log: what happened to a user's devices and sessions, appended per
//! user in the store, kept for a retention period, listed newest first.

use std::sync::atomic::{AtomicU32, Ordering};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::core::context::ServiceContext;
use crate::core::error::Result;
use crate::core::keys::{audit_prefix, Key};
use crate::core::record::{decode, Record};
use crate::identity::device_id::DeviceId;

/// What a security event was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditKind {
    /// The user signed in on the device.
    SignIn,
    /// The user signed out on the device.
    SignOut,
    /// The device was bound to the user.
    DeviceBound,
    /// The device was renamed.
    Renamed,
    /// The device's permissions changed.
    PermissionsChanged,
    /// The device was revoked (by another device, by "revoke all", or on the server).
    Revoked,
    /// The device was evicted to make room for a new one.
    Evicted,
    /// A session token of the device turned up on another device; the session was ended.
    Hijack,
    /// A session's client fingerprint changed.
    SuspiciousSession,
    /// The device's data was erased.
    Erased,
}

/// One entry of a user's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When, in milliseconds since the epoch.
    pub at: u64,
    /// What happened.
    pub kind: AuditKind,
    /// The device it happened to.
    pub device: Option<DeviceId>,
    /// The device that did it, when another one did.
    pub by: Option<DeviceId>,
}

impl Record for AuditEvent {
    const KIND: &'static str = "audit event";
    const VERSION: u8 = 1;
}

impl AuditEvent {
    /// Whether the event concerns device `id` (as subject or as actor).
    #[must_use]
    pub fn mentions(&self, id: &DeviceId) -> bool {
        self.device.as_ref() == Some(id) || self.by.as_ref() == Some(id)
    }
}

/// A page of a user's audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuditPage {
    /// The events, newest first.
    pub events: Vec<AuditEvent>,
    /// Pass it as `after` for the next (older) page; `None` on the last page.
    pub next: Option<String>,
}

/// Most events one page returns.
pub(crate) const MAX_PAGE: usize = 100;

/// Appends an event to `user_id`'s log. A failure is logged and never fails the caller:
/// the audit log records what happened, it does not decide it.
pub(crate) async fn append(
    ctx: &ServiceContext,
    user_id: &str,
    kind: AuditKind,
    device: Option<DeviceId>,
    by: Option<DeviceId>,
) {
    let Some(retention) = ctx.audit_ttl() else {
        return;
    };
    let at = ctx.now();
    let event = AuditEvent {
        at,
        kind,
        device,
        by,
    };
    let key = Key::Audit(user_id.to_owned(), u64::MAX - at, tiebreak());
    if let Err(error) = ctx
        .records()
        .put(&key.encode(), &event, Some(retention))
        .await
    {
        tracing::error!(%error, ?kind, "audit log write failed");
    }
}

/// Orders events of the same millisecond newest first within this process (the high half,
/// a falling sequence) and keeps keys of other instances apart (the low half, random).
fn tiebreak() -> u64 {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seq = u32::MAX - SEQ.fetch_add(1, Ordering::Relaxed);
    (u64::from(seq) << 32) | u64::from(rand::rngs::OsRng.next_u32())
}

/// One page of `user_id`'s log, newest first, starting after cursor `after`.
pub(crate) async fn page(
    ctx: &ServiceContext,
    user_id: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<AuditPage> {
    let prefix = audit_prefix(user_id);
    let after = after
        .and_then(|c| hex::decode(c).ok())
        .map(|tail| [prefix.clone(), tail].concat());
    let limit = limit.clamp(1, MAX_PAGE);
    let page = ctx
        .store()
        .scan_prefix(&prefix, after.as_deref(), limit)
        .await?;
    let mut events = Vec::with_capacity(page.entries.len());
    for (key, value) in &page.entries {
        events.push(decode::<AuditEvent>(key, value)?);
    }
    let next = page.next.map(|k| hex::encode(&k[prefix.len()..]));
    Ok(AuditPage { events, next })
}

/// Every event of `user_id`'s log that mentions device `id`, with its key.
pub(crate) async fn mentioning(
    ctx: &ServiceContext,
    user_id: &str,
    id: &DeviceId,
) -> Result<Vec<(Vec<u8>, AuditEvent)>> {
    let prefix = audit_prefix(user_id);
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = ctx
            .store()
            .scan_prefix(&prefix, after.as_deref(), 500)
            .await?;
        for (key, value) in page.entries {
            let event = decode::<AuditEvent>(&key, &value)?;
            if event.mentions(id) {
                out.push((key, event));
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}
