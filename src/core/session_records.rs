//! Session records as the registry reaches them: ending one, ending every session a
//! device holds, moving them to a renewed id. Below both `devices` and `sessions`.

use std::time::Duration;

use crate::core::context::ServiceContext;
use crate::core::error::Result;
use crate::core::keys::{device_sessions_prefix, Key, TokenHash};
use crate::core::model::{EndReason, SessionRecord, SessionStatus};
use crate::core::record::Change;
use crate::identity::device_id::DeviceId;

/// Ended and expired sessions stay readable this long (for audit and export), and so do
/// the markers that find them from their device; then the store purges both.
pub(crate) const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Marks session `hash` ended; returns whether it was active. Safe to repeat.
pub(crate) async fn end_session(
    ctx: &ServiceContext,
    hash: &TokenHash,
    reason: EndReason,
) -> Result<bool> {
    let now = ctx.now();
    let mut ended = false;
    ctx.records()
        .update::<SessionRecord, _>(&Key::Session(*hash).encode(), Some(RETENTION), |current| {
            ended = false;
            match current {
                Some(mut r) if r.status == SessionStatus::Active => {
                    ended = true;
                    r.status = SessionStatus::Revoked { at: now, reason };
                    Ok(Change::Write(r))
                }
                _ => Ok(Change::Keep),
            }
        })
        .await?;
    if ended {
        let reason = match reason {
            EndReason::Logout => "logout",
            EndReason::Rotated => "rotated",
            EndReason::DeviceRevoked => "device_revoked",
            EndReason::Hijacked => "hijacked",
            EndReason::UserRevoked => "user_revoked",
        };
        metrics::counter!("actix_device_sessions_ended_total", "reason" => reason).increment(1);
    }
    Ok(ended)
}

/// The hashes of every session device `device` holds or held within the retention.
pub(crate) async fn sessions_of(ctx: &ServiceContext, device: &DeviceId) -> Result<Vec<TokenHash>> {
    let prefix = device_sessions_prefix(device);
    let store = ctx.store();
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan_prefix(&prefix, after.as_deref(), 200).await?;
        for (key, _) in &page.entries {
            if let Some(Key::DeviceSession(_, hash)) = Key::parse(key) {
                out.push(hash);
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

/// Ends every session device `device` holds. Safe to repeat.
pub(crate) async fn end_device_sessions(
    ctx: &ServiceContext,
    device: &DeviceId,
    reason: EndReason,
) -> Result<()> {
    for hash in sessions_of(ctx, device).await? {
        end_session(ctx, &hash, reason).await?;
    }
    Ok(())
}

/// Moves the sessions of `old` to `new` (a renewed device id): each record names the new
/// device, and the markers move with them.
pub(crate) async fn move_sessions(
    ctx: &ServiceContext,
    old: DeviceId,
    new: DeviceId,
) -> Result<()> {
    let store = ctx.store();
    for hash in sessions_of(ctx, &old).await? {
        let key = Key::Session(hash).encode();
        if let Some(record) = ctx.records().get::<SessionRecord>(&key).await? {
            let left = record.expires_at.saturating_sub(ctx.now());
            let ttl = Some(Duration::from_millis(left) + RETENTION);
            ctx.records()
                .update::<SessionRecord, _>(&key, ttl, |current| match current {
                    Some(mut r) if r.device_id == old => {
                        r.device_id = new;
                        Ok(Change::Write(r))
                    }
                    _ => Ok(Change::Keep),
                })
                .await?;
            store
                .put(&Key::DeviceSession(new, hash).encode(), &[], ttl)
                .await?;
        }
        store
            .delete(&Key::DeviceSession(old, hash).encode())
            .await?;
    }
    Ok(())
}
