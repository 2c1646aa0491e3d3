//! The device registry: what the server remembers about each device, which user it is
//! bound to, and what it may do.
//!
//! The device record is the authority on trust (owner, `trusted`, `bound_at`); the
//! user's device list is an index over it. Every record reached through the list is
//! checked to belong to the user.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use crate::core::audit::{self, AuditKind, AuditPage};
use crate::core::context::ServiceContext;
use crate::core::error::{Result, ServiceError};
use crate::core::events::report;
use crate::core::keys::Key;
use crate::core::model::{
    DeviceRecord, EndReason, EvictionPolicy, Permissions, Revocation, RevokeReason, UserDevices,
};
use crate::core::record::Change;
use crate::core::session_records::{end_device_sessions, move_sessions};
use crate::identity::client::RequestInfo;
use crate::identity::config::{DeviceObserver, ObserverFuture};
use crate::identity::device_id::DeviceId;
use crate::identity::extract::DeviceContext;
use crate::identity::shards::{ByHash, Shards, SHARDS};

const MAX_USER_AGENT: usize = 256;
const MAX_USER_ID: usize = 256;
const MAX_NAME_CHARS: usize = 64;
const MAX_HISTORY: usize = 16;
/// Throttle entries kept in memory before stale ones are dropped, in all: each shard
/// holds at most its share, and a full shard's sweep holds up only its own devices.
const MAX_THROTTLE_ENTRIES: usize = 100_000;
/// How long an erased device's tombstone stops a late touch from recreating its record.
const TOMBSTONE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The registry's settings.
#[derive(Debug, Clone)]
struct Config {
    touch_interval: Duration,
    max_devices: usize,
    policy: EvictionPolicy,
    record_ttl: Duration,
    default_permissions: Permissions,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            touch_interval: Duration::from_secs(300),
            max_devices: 10,
            policy: EvictionPolicy::Refuse,
            record_ttl: Duration::from_secs(400 * 24 * 3600),
            default_permissions: Permissions::NONE,
        }
    }
}

/// Configuration of [`Devices`].
#[must_use]
#[derive(Debug)]
pub struct DevicesBuilder {
    context: ServiceContext,
    config: Config,
}

impl DevicesBuilder {
    /// Write a device's record at most once per `interval` (default 5 minutes).
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.config.touch_interval = interval;
        self
    }

    /// At most `max` devices per user (default 10), and what happens at the limit.
    pub fn max_devices_per_user(mut self, max: usize, policy: EvictionPolicy) -> Self {
        self.config.max_devices = max.max(1);
        self.config.policy = policy;
        self
    }

    /// How long a device record is kept after its last write (default 400 days).
    pub fn record_ttl(mut self, ttl: Duration) -> Self {
        self.config.record_ttl = ttl;
        self
    }

    /// Permissions of every device bound after the user's first (default: none). The
    /// first device a user ever binds gets [`Permissions::ALL`].
    pub fn default_permissions(mut self, permissions: Permissions) -> Self {
        self.config.default_permissions = permissions;
        self
    }

    /// The registry.
    pub fn build(self) -> Devices {
        Devices {
            inner: Arc::new(DevicesInner {
                context: self.context,
                config: self.config,
                throttle: Throttle::default(),
                writes: AtomicU64::new(0),
            }),
        }
    }
}

struct Pending {
    last_write: Option<u64>,
    uncounted: u64,
}

impl Pending {
    const NONE: Self = Self {
        last_write: None,
        uncounted: 0,
    };
}

struct DevicesInner {
    context: ServiceContext,
    config: Config,
    throttle: Throttle,
    writes: AtomicU64,
}

/// Per device, the requests counted since its last touch write. On the middleware's path
/// the ids come from verified cookies or were minted here, not chosen by a client; every
/// shard is bounded and the hashes are seeded per process, so a fast hash is enough.
#[derive(Default)]
struct Throttle {
    shards: Shards<ThrottleMap>,
    /// Picks a device's shard, and keys its entry there.
    hasher: foldhash::fast::RandomState,
}

/// Keyed by the seeded hash that picked the shard; the id beside each entry tells apart
/// two devices with one hash.
type ThrottleMap = ByHash<(DeviceId, Pending)>;

impl Throttle {
    /// The hash of `id` and its shard, locked.
    fn shard(&self, id: &DeviceId) -> (u64, MutexGuard<'_, ThrottleMap>) {
        let hash = self.hasher.hash_one(id);
        (hash, self.shards.lock(hash))
    }
}

/// The device registry. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Devices {
    inner: Arc<DevicesInner>,
}

impl fmt::Debug for Devices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Devices")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// What [`Devices::reserve_slot`] did to the user's list.
struct Slot {
    first_ever: bool,
    evicted: Vec<DeviceId>,
}

impl Devices {
    /// A registry with the defaults.
    pub fn new(context: &ServiceContext) -> Self {
        Self::builder(context).build()
    }

    /// A builder.
    pub fn builder(context: &ServiceContext) -> DevicesBuilder {
        DevicesBuilder {
            context: context.clone(),
            config: Config::default(),
        }
    }

    /// The shared context.
    pub fn context(&self) -> &ServiceContext {
        &self.inner.context
    }

    fn ctx(&self) -> &ServiceContext {
        &self.inner.context
    }

    fn ttl(&self) -> Option<Duration> {
        Some(self.inner.config.record_ttl)
    }

    /// How many device-record writes [`touch`](Self::touch) has made (for operators and
    /// tests of the throttle).
    #[must_use]
    pub fn touch_writes(&self) -> u64 {
        self.inner.writes.load(Ordering::Relaxed)
    }

    /// The record of device `id`.
    pub async fn get(&self, id: &DeviceId) -> Result<Option<DeviceRecord>> {
        self.ctx().records().get(&Key::Device(*id).encode()).await
    }

    /// Counts a request from device `id` and, at most once per touch interval, writes
    /// last-seen, visits, address and user agent to its record, creating the record if
    /// there is none (unless the device was erased). Returns whether it wrote.
    pub async fn touch(&self, id: DeviceId, info: &RequestInfo) -> Result<bool> {
        self.touch_with(id, &|| info.clone()).await
    }

    /// What the registry does for a returning device: counts the request and, when a
    /// write is due (see [`touch`](Self::touch)), hands back that write. `Sessions`
    /// forwards here. Failures are logged.
    pub(crate) fn note_returning(
        &self,
        context: &DeviceContext,
        info: &(dyn Fn() -> RequestInfo + Sync),
    ) -> Option<ObserverFuture> {
        let now = self.ctx().recent();
        let id = context.id;
        let visits = self.take_due(id, now)?;
        let (devices, info) = (self.clone(), info());
        Some(Box::pin(async move {
            if let Err(error) = devices.write_touch(id, now, visits, info).await {
                tracing::error!(%error, "device registry touch failed");
            }
        }))
    }

    /// [`touch`](Self::touch), building the request info only when a write is due.
    async fn touch_with(
        &self,
        id: DeviceId,
        info: &(dyn Fn() -> RequestInfo + Sync),
    ) -> Result<bool> {
        let now = self.ctx().now();
        let Some(visits) = self.take_due(id, now) else {
            return Ok(false);
        };
        self.write_touch(id, now, visits, info()).await
    }

    /// The due write of a touch: `visits` requests counted since the last one.
    async fn write_touch(
        &self,
        id: DeviceId,
        now: u64,
        visits: u64,
        info: RequestInfo,
    ) -> Result<bool> {
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        let key = Key::Device(id).encode();
        let mut created = None;
        let user_agent = info.user_agent.as_deref().map(truncate_user_agent);
        self.ctx()
            .records()
            .update::<DeviceRecord, _>(&key, self.ttl(), |current| {
                created = None;
                let record = match current {
                    Some(mut r) => {
                        r.last_seen = r.last_seen.max(now);
                        r.visits = r.visits.saturating_add(visits);
                        r.last_ip = info.ip.or(r.last_ip);
                        if user_agent.is_some() {
                            r.user_agent.clone_from(&user_agent);
                        }
                        r
                    }
                    None => {
                        let r = new_record(id, now, info.ip, user_agent.clone(), visits);
                        created = Some(r.clone());
                        r
                    }
                };
                Ok(Change::Write(record))
            })
            .await?;
        if let Some(record) = created {
            // Erase writes its tombstone before deleting, and this check comes after our
            // write: either erase deletes what we wrote, or we see the tombstone here.
            if self.is_erased(&id).await? {
                self.ctx().store().delete(&key).await?;
                return Ok(false);
            }
            report("new_device", self.ctx().hooks().new_device(&record).await);
        }
        Ok(true)
    }

    async fn is_erased(&self, id: &DeviceId) -> Result<bool> {
        Ok(self
            .ctx()
            .store()
            .get(&Key::erased(id).encode())
            .await?
            .is_some())
    }

    /// Marks `id` erased (see [`touch`](Self::touch)); called by erase before it deletes.
    pub(crate) async fn write_tombstone(&self, id: &DeviceId) -> Result<()> {
        let key = Key::erased(id).encode();
        Ok(self
            .ctx()
            .store()
            .put(&key, &[], Some(TOMBSTONE_TTL))
            .await?)
    }

    /// The requests counted for `id` since its last write, if a write is due now.
    fn take_due(&self, id: DeviceId, now: u64) -> Option<u64> {
        let interval = millis(self.inner.config.touch_interval);
        let (hash, mut map) = self.inner.throttle.shard(&id);
        let bound = MAX_THROTTLE_ENTRIES / SHARDS;
        if map.len() >= bound {
            map.retain(|_, (_, p)| {
                p.last_write
                    .is_some_and(|at| now.saturating_sub(at) < interval)
            });
            if map.len() >= bound {
                // Still full of devices active within the interval: start over rather than
                // scan the whole shard on every request. The cost is one extra write per
                // device; visits counted but not yet written are lost.
                map.clear();
            }
        }
        let (owner, pending) = map.entry(hash).or_insert((id, Pending::NONE));
        if *owner != id {
            // Another device with the same 64-bit seeded hash: it gives up the slot, which
            // costs it one write sooner than its interval and the visits not yet written.
            (*owner, *pending) = (id, Pending::NONE);
        }
        pending.uncounted += 1;
        if pending
            .last_write
            .is_some_and(|at| now.saturating_sub(at) < interval)
        {
            return None;
        }
        pending.last_write = Some(now);
        Some(std::mem::take(&mut pending.uncounted))
    }

    async fn user_list(&self, user_id: &str) -> Result<Option<UserDevices>> {
        self.ctx()
            .records()
            .get(&Key::UserDevices(user_id.to_owned()).encode())
            .await
    }

    /// The devices bound to `user_id`, in binding order (only records that name the user
    /// as their owner).
    pub async fn list(&self, user_id: &str) -> Result<Vec<DeviceRecord>> {
        let bound = self.user_list(user_id).await?;
        let mut out = Vec::new();
        for id in bound.map(|b| b.devices).unwrap_or_default() {
            if let Some(record) = self.get(&id).await? {
                if record.owner.as_deref() == Some(user_id) {
                    out.push(record);
                }
            }
        }
        Ok(out)
    }

    /// Binds device `id` to `user_id` (at login), applying the per-user device limit.
    /// A device bound to another user is moved; a revoked device becomes trusted again
    /// (its revocation stays in its history). The first device a user ever binds gets
    /// every permission; later ones the default permissions.
    pub async fn bind(
        &self,
        id: DeviceId,
        user_id: &str,
        info: &RequestInfo,
    ) -> Result<DeviceRecord> {
        check_user_id(user_id)?;
        self.detach_from_previous_owner(&id, user_id).await?;
        let slot = self.reserve_slot(id, user_id).await?;
        self.evict(&slot.evicted, user_id).await?;
        let permissions = if slot.first_ever {
            Permissions::ALL
        } else {
            self.inner.config.default_permissions
        };
        let (record, created) = self.trust(id, user_id, info, permissions).await?;
        if created {
            report("new_device", self.ctx().hooks().new_device(&record).await);
        }
        self.confirm_listed(id, user_id).await?;
        report(
            "device_bound",
            self.ctx().hooks().device_bound(&record, user_id).await,
        );
        audit::append(self.ctx(), user_id, AuditKind::DeviceBound, Some(id), None).await;
        Ok(record)
    }

    /// A device moving to another user leaves the previous user's list.
    async fn detach_from_previous_owner(&self, id: &DeviceId, user_id: &str) -> Result<()> {
        if let Some(previous) = self.get(id).await?.and_then(|r| r.owner) {
            if previous != user_id {
                self.unlist(&previous, id).await?;
            }
        }
        Ok(())
    }

    /// Puts `id` in the user's list, choosing victims when the list is full.
    async fn reserve_slot(&self, id: DeviceId, user_id: &str) -> Result<Slot> {
        // Snapshot of the candidates' ages for the eviction choice; a device bound
        // meanwhile is missing here and so never chosen.
        let ages: HashMap<DeviceId, (u64, u64)> = self
            .list(user_id)
            .await?
            .into_iter()
            .map(|r| (r.id, (r.last_seen, r.bound_at.unwrap_or(r.first_seen))))
            .collect();
        let Config {
            max_devices: max,
            policy,
            ..
        } = self.inner.config;
        let mut slot = Slot {
            first_ever: false,
            evicted: Vec::new(),
        };
        self.ctx()
            .records()
            .update::<UserDevices, _>(
                &Key::UserDevices(user_id.to_owned()).encode(),
                None,
                |current| {
                    // The list is kept (empty) once a user has bound a device, so "absent"
                    // means "never bound", not "no device right now".
                    slot.first_ever = current.is_none();
                    slot.evicted.clear();
                    let mut bound = current.unwrap_or_default();
                    if bound.devices.contains(&id) {
                        return Ok(Change::Keep);
                    }
                    if bound.devices.len() >= max {
                        if policy == EvictionPolicy::Refuse {
                            return Err(ServiceError::TooManyDevices(max));
                        }
                        let age = |d: &DeviceId| {
                            let (seen, bound_at) =
                                ages.get(d).copied().unwrap_or((u64::MAX, u64::MAX));
                            if policy == EvictionPolicy::Oldest {
                                bound_at
                            } else {
                                seen
                            }
                        };
                        let mut by_age = bound.devices.clone();
                        by_age.sort_by_key(age);
                        slot.evicted = by_age
                            .into_iter()
                            .take(bound.devices.len() + 1 - max)
                            .collect();
                        bound.devices.retain(|d| !slot.evicted.contains(d));
                    }
                    bound.devices.push(id);
                    Ok(Change::Write(bound))
                },
            )
            .await?;
        Ok(slot)
    }

    async fn evict(&self, victims: &[DeviceId], user_id: &str) -> Result<()> {
        for victim in victims {
            if let Some(record) = self
                .mark_revoked(*victim, user_id, None, RevokeReason::Evicted)
                .await?
            {
                let policy = self.inner.config.policy;
                audit::append(self.ctx(), user_id, AuditKind::Evicted, Some(*victim), None).await;
                report(
                    "device_evicted",
                    self.ctx()
                        .hooks()
                        .device_evicted(&record, user_id, policy)
                        .await,
                );
            }
        }
        Ok(())
    }

    /// Writes the binding on the device record: owner, trusted, permissions.
    async fn trust(
        &self,
        id: DeviceId,
        user_id: &str,
        info: &RequestInfo,
        permissions: Permissions,
    ) -> Result<(DeviceRecord, bool)> {
        let now = self.ctx().now();
        let user_agent = info.user_agent.as_deref().map(truncate_user_agent);
        let mut created = false;
        let record = self
            .ctx()
            .records()
            .update::<DeviceRecord, _>(&Key::Device(id).encode(), self.ttl(), |current| {
                created = current.is_none();
                let mut r =
                    current.unwrap_or_else(|| new_record(id, now, info.ip, user_agent.clone(), 1));
                if r.owner.as_deref() != Some(user_id) || r.revoked.is_some() || !r.trusted {
                    r.permissions = permissions;
                    r.bound_at = Some(now);
                }
                r.owner = Some(user_id.to_owned());
                r.trusted = true;
                if let Some(old) = r.revoked.take() {
                    push_history(&mut r.history, old);
                }
                r.last_seen = r.last_seen.max(now);
                r.last_ip = info.ip.or(r.last_ip);
                Ok(Change::Write(r))
            })
            .await?
            .ok_or(ServiceError::Conflict(
                "device record vanished while binding",
            ))?;
        Ok((record, created))
    }

    /// A concurrent login may have evicted this device between the list update and the
    /// record write; the list decides, so undo the trust and say so.
    async fn confirm_listed(&self, id: DeviceId, user_id: &str) -> Result<()> {
        let listed = self
            .user_list(user_id)
            .await?
            .is_some_and(|b| b.devices.contains(&id));
        if listed {
            return Ok(());
        }
        self.mark_revoked(id, user_id, None, RevokeReason::Evicted)
            .await?;
        Err(ServiceError::Conflict(
            "evicted by a concurrent login while binding",
        ))
    }

    /// The record of `id` if it is a trusted device of `user_id`: bound to the user, not
    /// revoked. The record decides; the list is only its index.
    pub async fn is_trusted(&self, user_id: &str, id: &DeviceId) -> Result<Option<DeviceRecord>> {
        Ok(self.get(id).await?.filter(|d| is_trusted_by(d, user_id)))
    }

    /// Checks that `target` is one of `user_id`'s devices: listed, and its record says so.
    async fn owned(&self, user_id: &str, target: &DeviceId) -> Result<DeviceRecord> {
        let listed = self
            .user_list(user_id)
            .await?
            .is_some_and(|b| b.devices.contains(target));
        if !listed {
            return Err(ServiceError::DeviceNotFound);
        }
        self.get(target)
            .await?
            .filter(|r| r.owner.as_deref() == Some(user_id))
            .ok_or(ServiceError::DeviceNotFound)
    }

    /// The acting device's record, which must be a trusted device of `user_id`.
    async fn actor(&self, user_id: &str, actor: &DeviceId) -> Result<DeviceRecord> {
        self.is_trusted(user_id, actor)
            .await?
            .ok_or(ServiceError::DeviceNotTrusted)
    }

    /// Renames `target` (one of `user_id`'s devices) on behalf of device `actor`. Renaming
    /// another device needs [`Permissions::rename_others`].
    pub async fn rename(
        &self,
        actor: DeviceId,
        user_id: &str,
        target: DeviceId,
        name: &str,
    ) -> Result<DeviceRecord> {
        self.patch(actor, user_id, target, Some(name), None).await
    }

    /// Sets `target`'s permissions on behalf of device `actor`.
    ///
    /// A device can only grant permissions it holds itself — so no device can raise its
    /// own — and changing another device's permissions needs
    /// [`Permissions::revoke_others`]. A device may always drop its own permissions.
    pub async fn set_permissions(
        &self,
        actor: DeviceId,
        user_id: &str,
        target: DeviceId,
        permissions: Permissions,
    ) -> Result<DeviceRecord> {
        self.patch(actor, user_id, target, None, Some(permissions))
            .await
    }

    /// Renames and/or sets permissions in one write, after checking every rule of
    /// [`rename`](Self::rename) and [`set_permissions`](Self::set_permissions): either
    /// all of it applies or none.
    pub async fn patch(
        &self,
        actor: DeviceId,
        user_id: &str,
        target: DeviceId,
        name: Option<&str>,
        permissions: Option<Permissions>,
    ) -> Result<DeviceRecord> {
        let name = name.map(str::trim);
        if let Some(name) = name {
            check_name(name)?;
        }
        let me = self.actor(user_id, &actor).await?;
        let current = self.owned(user_id, &target).await?;
        let other = target != actor;
        if name.is_some() && other && !me.permissions.rename_others {
            return Err(ServiceError::Forbidden("renaming other devices"));
        }
        if let Some(wanted) = permissions {
            check_grant(&me, &current, wanted, other)?;
        }
        let record = self
            .update_owned(user_id, target, |r| {
                if let Some(name) = name {
                    r.name = Some(name.to_owned());
                }
                if let Some(p) = permissions {
                    r.permissions = p;
                }
            })
            .await?;
        let ctx = self.ctx();
        if name.is_some() {
            audit::append(ctx, user_id, AuditKind::Renamed, Some(target), Some(actor)).await;
        }
        if permissions.is_some() {
            let kind = AuditKind::PermissionsChanged;
            audit::append(ctx, user_id, kind, Some(target), Some(actor)).await;
        }
        Ok(record)
    }

    /// One page of `user_id`'s security audit log, newest first (at most 100 events),
    /// starting after the cursor a previous page returned.
    pub async fn events(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<AuditPage> {
        audit::page(self.ctx(), user_id, after, limit).await
    }

    /// Revokes `target` on behalf of `actor`: its record is marked revoked, it leaves the
    /// user's devices, and every session it holds ends. Needs
    /// [`Permissions::revoke_others`]; a device cannot revoke itself this way (that is
    /// logout). Safe to retry: a revoked device stays revoked.
    pub async fn revoke(
        &self,
        actor: DeviceId,
        user_id: &str,
        target: DeviceId,
    ) -> Result<DeviceRecord> {
        let me = self.actor(user_id, &actor).await?;
        self.owned(user_id, &target).await?;
        if target == actor {
            return Err(ServiceError::Conflict(
                "a device cannot revoke itself: log out instead",
            ));
        }
        if !me.permissions.revoke_others {
            return Err(ServiceError::Forbidden("revoking other devices"));
        }
        self.revoke_unchecked(target, user_id, Some(actor), RevokeReason::Revoked)
            .await?
            .ok_or(ServiceError::DeviceNotFound)
    }

    /// Revokes every device of `user_id` except `actor`, under the same permission rule as
    /// [`revoke`](Self::revoke). Returns the revoked records.
    pub async fn revoke_all_others(
        &self,
        actor: DeviceId,
        user_id: &str,
    ) -> Result<Vec<DeviceRecord>> {
        let me = self.actor(user_id, &actor).await?;
        if !me.permissions.revoke_others {
            return Err(ServiceError::Forbidden("revoking other devices"));
        }
        let mut out = Vec::new();
        for other in self.list(user_id).await? {
            if other.id == actor {
                continue;
            }
            if let Some(r) = self
                .revoke_unchecked(other.id, user_id, Some(actor), RevokeReason::RevokedAll)
                .await?
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Revokes every device of `user_id`, with no device in hand (a password reset, a
    /// compromised account): each is untrusted and its sessions end. Returns the revoked
    /// records.
    pub async fn revoke_user(&self, user_id: &str) -> Result<Vec<DeviceRecord>> {
        let mut out = Vec::new();
        for device in self.list(user_id).await? {
            if let Some(r) = self
                .revoke_unchecked(device.id, user_id, None, RevokeReason::UserRevoked)
                .await?
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn revoke_unchecked(
        &self,
        target: DeviceId,
        user_id: &str,
        by: Option<DeviceId>,
        reason: RevokeReason,
    ) -> Result<Option<DeviceRecord>> {
        let Some(record) = self.mark_revoked(target, user_id, by, reason).await? else {
            return Ok(None);
        };
        audit::append(self.ctx(), user_id, AuditKind::Revoked, Some(target), by).await;
        if let Some(revocation) = &record.revoked {
            report(
                "device_revoked",
                self.ctx().hooks().device_revoked(&record, revocation).await,
            );
        }
        Ok(Some(record))
    }

    /// Untrusts `target` on its record first (from then on no session of it passes a
    /// check, whatever happens to the steps after), then takes it off the user's list and
    /// ends its sessions. Every step is safe to repeat.
    async fn mark_revoked(
        &self,
        target: DeviceId,
        user_id: &str,
        by: Option<DeviceId>,
        reason: RevokeReason,
    ) -> Result<Option<DeviceRecord>> {
        let now = self.ctx().now();
        let record = self
            .ctx()
            .records()
            .update::<DeviceRecord, _>(&Key::Device(target).encode(), self.ttl(), |current| {
                let Some(mut r) = current else {
                    return Ok(Change::Keep);
                };
                if r.owner.as_deref() != Some(user_id) || (r.revoked.is_some() && !r.trusted) {
                    return Ok(Change::Keep);
                }
                if let Some(old) = r.revoked.take() {
                    push_history(&mut r.history, old);
                }
                r.revoked = Some(Revocation {
                    at: now,
                    by,
                    user_id: user_id.to_owned(),
                    reason,
                });
                r.trusted = false;
                r.permissions = Permissions::NONE;
                Ok(Change::Write(r))
            })
            .await?;
        self.unlist(user_id, &target).await?;
        end_device_sessions(self.ctx(), &target, EndReason::DeviceRevoked).await?;
        Ok(record.filter(|r| r.owner.as_deref() == Some(user_id)))
    }

    /// Takes `id` off `user_id`'s list (the list itself stays, empty or not).
    pub(crate) async fn unlist(&self, user_id: &str, id: &DeviceId) -> Result<()> {
        self.ctx()
            .records()
            .update::<UserDevices, _>(
                &Key::UserDevices(user_id.to_owned()).encode(),
                None,
                |current| {
                    let Some(mut bound) = current else {
                        return Ok(Change::Keep);
                    };
                    if !bound.devices.contains(id) {
                        return Ok(Change::Keep);
                    }
                    bound.devices.retain(|d| d != id);
                    Ok(Change::Write(bound))
                },
            )
            .await?;
        Ok(())
    }

    async fn update_owned(
        &self,
        user_id: &str,
        target: DeviceId,
        mut change: impl FnMut(&mut DeviceRecord),
    ) -> Result<DeviceRecord> {
        self.ctx()
            .records()
            .update::<DeviceRecord, _>(&Key::Device(target).encode(), self.ttl(), |current| {
                match current {
                    Some(mut r) if r.owner.as_deref() == Some(user_id) => {
                        change(&mut r);
                        Ok(Change::Write(r))
                    }
                    _ => Err(ServiceError::DeviceNotFound),
                }
            })
            .await?
            .ok_or(ServiceError::DeviceNotFound)
    }

    /// A renewed device id takes over the old one's record, its place in the owner's
    /// list and its sessions; the old record is deleted.
    pub async fn rekey(&self, old: DeviceId, new: DeviceId) -> Result<()> {
        let Some(mut record) = self.get(&old).await? else {
            return Ok(());
        };
        record.id = new;
        self.ctx()
            .records()
            .put(&Key::Device(new).encode(), &record, self.ttl())
            .await?;
        if let Some(owner) = &record.owner {
            self.ctx()
                .records()
                .update::<UserDevices, _>(
                    &Key::UserDevices(owner.clone()).encode(),
                    None,
                    |current| {
                        let Some(mut bound) = current else {
                            return Ok(Change::Keep);
                        };
                        for d in &mut bound.devices {
                            if *d == old {
                                *d = new;
                            }
                        }
                        Ok(Change::Write(bound))
                    },
                )
                .await?;
        }
        move_sessions(self.ctx(), old, new).await?;
        self.ctx()
            .store()
            .delete(&Key::Device(old).encode())
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl DeviceObserver for Devices {
    fn returning(
        &self,
        context: &DeviceContext,
        info: &(dyn Fn() -> RequestInfo + Sync),
    ) -> Option<ObserverFuture> {
        self.note_returning(context, info)
    }

    async fn renewed(&self, old: DeviceId, new: DeviceId) {
        if let Err(error) = self.rekey(old, new).await {
            tracing::error!(%error, "moving a renewed device's record failed");
        }
    }
}

/// Whether `record` is a trusted device of `user_id`.
pub(crate) fn is_trusted_by(record: &DeviceRecord, user_id: &str) -> bool {
    record.trusted && record.revoked.is_none() && record.owner.as_deref() == Some(user_id)
}

fn check_user_id(user_id: &str) -> Result<()> {
    if user_id.is_empty() || user_id.len() > MAX_USER_ID {
        return Err(ServiceError::Invalid(format!(
            "user ids are 1 to {MAX_USER_ID} bytes"
        )));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ServiceError::Invalid(format!(
            "a device name is 1 to {MAX_NAME_CHARS} printable characters"
        )));
    }
    Ok(())
}

/// The permission rules of a grant by `me` to `target`.
fn check_grant(
    me: &DeviceRecord,
    target: &DeviceRecord,
    wanted: Permissions,
    other: bool,
) -> Result<()> {
    if other && !me.permissions.revoke_others {
        return Err(ServiceError::Forbidden(
            "changing other devices' permissions",
        ));
    }
    let granted = Permissions {
        rename_others: wanted.rename_others && !target.permissions.rename_others,
        revoke_others: wanted.revoke_others && !target.permissions.revoke_others,
    };
    if !me.permissions.includes(&granted) {
        return Err(ServiceError::Forbidden(
            "granting a permission the acting device does not hold",
        ));
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn new_record(
    id: DeviceId,
    now: u64,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
    visits: u64,
) -> DeviceRecord {
    DeviceRecord {
        id,
        first_seen: now,
        last_seen: now,
        visits,
        user_agent,
        first_ip: ip,
        last_ip: ip,
        name: None,
        owner: None,
        bound_at: None,
        trusted: false,
        permissions: Permissions::NONE,
        revoked: None,
        history: Vec::new(),
    }
}

fn push_history(history: &mut Vec<Revocation>, entry: Revocation) {
    history.push(entry);
    if history.len() > MAX_HISTORY {
        history.remove(0);
    }
}

fn truncate_user_agent(ua: &str) -> String {
    let mut end = ua.len().min(MAX_USER_AGENT);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    ua[..end].to_owned()
}

#[cfg(all(test, feature = "moka"))]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A registry on a fresh in-memory store.
    fn registry() -> Devices {
        let store: Arc<dyn crate::stores::Store> =
            Arc::new(crate::stores::MokaStore::builder().build());
        Devices::new(&ServiceContext::new(store))
    }

    #[test]
    fn a_device_sharing_a_throttle_slot_takes_it_over() {
        let devices = registry();
        let now = 1_000_000;
        let (a, b) = (DeviceId::from_bytes([1; 16]), DeviceId::from_bytes([2; 16]));
        // No two ids are known to share a seeded hash, so `b` is put in `a`'s slot: what a
        // collision would leave there, with a write just made and visits counted.
        {
            let (hash, mut map) = devices.inner.throttle.shard(&a);
            let written = Pending {
                last_write: Some(now),
                uncounted: 7,
            };
            map.insert(hash, (b, written));
        }
        assert_eq!(
            devices.take_due(a, now),
            Some(1),
            "a's first request is due"
        );
        assert_eq!(devices.take_due(a, now + 1), None, "then a is throttled");
        let (hash, map) = devices.inner.throttle.shard(&a);
        let (owner, pending) = &map[&hash];
        assert_eq!((*owner, pending.uncounted), (a, 1));
    }

    #[test]
    fn the_touch_throttle_stays_within_its_bound() {
        let devices = registry();
        let now = 1_000_000;
        // Three times the bound, every one active within the interval: the sweeps find
        // nothing stale and each full shard starts over.
        let ids = 3 * u128::try_from(MAX_THROTTLE_ENTRIES).unwrap();
        for i in 0..ids {
            let id = DeviceId::from_bytes(i.to_be_bytes());
            assert_eq!(devices.take_due(id, now), Some(1), "a first request is due");
        }
        let bound = MAX_THROTTLE_ENTRIES / SHARDS;
        let mut held = 0;
        for shard in devices.inner.throttle.shards.each() {
            let len = shard.len();
            assert!(len <= bound, "a shard holds {len}, more than {bound}");
            assert!(len > 0, "every shard takes its share of the ids");
            held += len;
        }
        assert!(held <= MAX_THROTTLE_ENTRIES, "{held} entries in all");
    }
}
