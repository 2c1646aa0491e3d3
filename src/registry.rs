//! The device registry: what the server remembers about each device, which user it is
//! bound to, and what it may do.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_device_store::{Clock, Store, SystemClock};
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::client_ip::TrustedProxies;
use crate::device_id::DeviceId;
use crate::events::{report, DeviceEvents, NoEvents};
use crate::record::{Change, Record, Records};

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

/// What the middleware knows about a request, for the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// The client address (see [`TrustedProxies`]).
    pub ip: Option<IpAddr>,
    /// The User-Agent header.
    pub user_agent: Option<String>,
}

const MAX_USER_AGENT: usize = 256;
const MAX_USER_ID: usize = 256;
const MAX_NAME_CHARS: usize = 64;
const MAX_HISTORY: usize = 16;
/// Throttle entries kept in memory before old ones are dropped.
const MAX_THROTTLE_ENTRIES: usize = 100_000;

/// Everything stored about one device lives under `dev/{16 id bytes}`: the record at the
/// prefix itself, and per-device data below it (`…/cart`, `…/sess/{hash}`, `…/rl/{name}`,
/// `…/quota/{name}/{day}`), so one prefix scan finds all of it for export and erasure.
pub(crate) fn device_key(id: &DeviceId) -> Vec<u8> {
    [&b"dev/"[..], id.as_bytes()].concat()
}

/// A per-device key below the device's record: `dev/{id}/{suffix}`.
pub(crate) fn device_subkey(id: &DeviceId, suffix: &[u8]) -> Vec<u8> {
    [&b"dev/"[..], id.as_bytes(), b"/", suffix].concat()
}

fn user_key(user_id: &str) -> Vec<u8> {
    [&b"udev/"[..], user_id.as_bytes()].concat()
}

/// Configuration of [`Devices`].
#[must_use]
pub struct DevicesBuilder {
    store: Arc<dyn Store>,
    touch_interval: Duration,
    max_devices: usize,
    policy: EvictionPolicy,
    proxies: TrustedProxies,
    record_ttl: Duration,
    default_permissions: Permissions,
    events: Arc<dyn DeviceEvents>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for DevicesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevicesBuilder")
            .field("touch_interval", &self.touch_interval)
            .field("max_devices", &self.max_devices)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl DevicesBuilder {
    /// Write a device's record at most once per `interval` (default 5 minutes).
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = interval;
        self
    }

    /// At most `max` devices per user (default 10), and what happens at the limit.
    pub fn max_devices_per_user(mut self, max: usize, policy: EvictionPolicy) -> Self {
        self.max_devices = max.max(1);
        self.policy = policy;
        self
    }

    /// Which proxies may report the client address (default: none, the peer is the client).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// How long a device record is kept after its last write (default 400 days).
    pub fn record_ttl(mut self, ttl: Duration) -> Self {
        self.record_ttl = ttl;
        self
    }

    /// Permissions of every device bound after the user's first (default: none). The
    /// first device of a user gets [`Permissions::ALL`].
    pub fn default_permissions(mut self, permissions: Permissions) -> Self {
        self.default_permissions = permissions;
        self
    }

    /// Event hooks (default: none).
    pub fn events(mut self, events: impl DeviceEvents) -> Self {
        self.events = Arc::new(events);
        self
    }

    /// The clock (default: the system clock). For tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The registry.
    pub fn build(self) -> Devices {
        Devices {
            inner: Arc::new(DevicesInner {
                records: Records::new(self.store),
                touch_interval: self.touch_interval,
                max_devices: self.max_devices,
                policy: self.policy,
                proxies: self.proxies,
                record_ttl: self.record_ttl,
                default_permissions: self.default_permissions,
                events: self.events,
                clock: self.clock,
                throttle: Mutex::new(HashMap::new()),
                writes: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }
}

struct Pending {
    last_write: Option<u64>,
    uncounted: u64,
}

struct DevicesInner {
    records: Records,
    touch_interval: Duration,
    max_devices: usize,
    policy: EvictionPolicy,
    proxies: TrustedProxies,
    record_ttl: Duration,
    default_permissions: Permissions,
    events: Arc<dyn DeviceEvents>,
    clock: Arc<dyn Clock>,
    throttle: Mutex<HashMap<DeviceId, Pending>>,
    writes: std::sync::atomic::AtomicU64,
}

/// The device registry. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Devices {
    inner: Arc<DevicesInner>,
}

impl fmt::Debug for Devices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Devices")
            .field("touch_interval", &self.inner.touch_interval)
            .field("max_devices", &self.inner.max_devices)
            .finish_non_exhaustive()
    }
}

impl Devices {
    /// A registry on `store` with the defaults.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::builder(store).build()
    }

    /// A builder on `store`.
    pub fn builder(store: Arc<dyn Store>) -> DevicesBuilder {
        DevicesBuilder {
            store,
            touch_interval: Duration::from_secs(300),
            max_devices: 10,
            policy: EvictionPolicy::Refuse,
            proxies: TrustedProxies::None,
            record_ttl: Duration::from_secs(400 * 24 * 3600),
            default_permissions: Permissions::NONE,
            events: Arc::new(NoEvents),
            clock: Arc::new(SystemClock),
        }
    }

    pub(crate) fn records(&self) -> &Records {
        &self.inner.records
    }

    pub(crate) fn events(&self) -> &dyn DeviceEvents {
        &*self.inner.events
    }

    pub(crate) fn now(&self) -> u64 {
        self.inner.clock.now_millis()
    }

    pub(crate) fn proxies(&self) -> &TrustedProxies {
        &self.inner.proxies
    }

    /// How many device-record writes [`touch`](Self::touch) has made (for operators and
    /// tests of the throttle).
    #[must_use]
    pub fn touch_writes(&self) -> u64 {
        self.inner.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The record of device `id`.
    pub async fn get(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, ApiError> {
        self.inner.records.get(&device_key(id)).await
    }

    /// Counts a request from device `id` and, at most once per touch interval, writes
    /// last-seen, visits, address and user agent to its record, creating the record if
    /// there is none. Returns whether it wrote.
    ///
    /// The middleware calls this only for browsers that sent their cookie back, so a
    /// client that never keeps cookies never creates a record.
    pub async fn touch(&self, id: DeviceId, info: &RequestInfo) -> Result<bool, ApiError> {
        let now = self.now();
        let Some(visits) = self.take_due(id, now) else {
            return Ok(false);
        };
        self.inner
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut created = None;
        let user_agent = info.user_agent.as_deref().map(truncate_user_agent);
        self.inner
            .records
            .update::<DeviceRecord, _>(&device_key(&id), Some(self.inner.record_ttl), |current| {
                let record = match current {
                    Some(mut r) => {
                        r.last_seen = r.last_seen.max(now);
                        r.visits = r.visits.saturating_add(visits);
                        r.last_ip = info.ip.or(r.last_ip);
                        if user_agent.is_some() {
                            r.user_agent.clone_from(&user_agent);
                        }
                        created = None;
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
            report("new_device", self.events().new_device(&record).await);
        }
        Ok(true)
    }

    /// The requests counted for `id` since its last write, if a write is due now.
    fn take_due(&self, id: DeviceId, now: u64) -> Option<u64> {
        let interval = u64::try_from(self.inner.touch_interval.as_millis()).unwrap_or(u64::MAX);
        let mut map = self
            .inner
            .throttle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_THROTTLE_ENTRIES {
            map.retain(|_, p| {
                p.last_write
                    .is_some_and(|at| now.saturating_sub(at) < interval)
            });
            if map.len() >= MAX_THROTTLE_ENTRIES {
                // Still full of devices active within the interval: start over rather than
                // scan the whole map on every request. The cost is one extra write per
                // device; visits counted but not yet written are lost.
                map.clear();
            }
        }
        let pending = map.entry(id).or_insert(Pending {
            last_write: None,
            uncounted: 0,
        });
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

    /// The devices bound to `user_id`, in binding order.
    pub async fn list(&self, user_id: &str) -> Result<Vec<DeviceRecord>, ApiError> {
        let bound: Option<UserDevices> = self.inner.records.get(&user_key(user_id)).await?;
        let mut out = Vec::new();
        for id in bound.map(|b| b.devices).unwrap_or_default() {
            if let Some(record) = self.get(&id).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Binds device `id` to `user_id` (at login), applying the per-user device limit.
    /// A device bound to another user is moved; a revoked device becomes trusted again
    /// (its revocation stays in its history).
    pub async fn bind(
        &self,
        id: DeviceId,
        user_id: &str,
        info: &RequestInfo,
    ) -> Result<DeviceRecord, ApiError> {
        if user_id.is_empty() || user_id.len() > MAX_USER_ID {
            return Err(ApiError::InvalidBody(format!(
                "user ids are 1 to {MAX_USER_ID} bytes"
            )));
        }
        let now = self.now();
        if let Some(previous) = self.get(&id).await?.and_then(|r| r.owner) {
            if previous != user_id {
                self.unlist(&previous, &id).await?;
            }
        }
        // Snapshot of the candidates' ages for the eviction choice; a device bound
        // meanwhile is missing here and so never chosen.
        let ages: HashMap<DeviceId, (u64, u64)> = self
            .list(user_id)
            .await?
            .into_iter()
            .map(|r| (r.id, (r.last_seen, r.bound_at.unwrap_or(r.first_seen))))
            .collect();
        let (max, policy) = (self.inner.max_devices, self.inner.policy);
        let mut evicted = None;
        let mut first = false;
        self.inner
            .records
            .update::<UserDevices, _>(&user_key(user_id), None, |current| {
                let mut bound = current.unwrap_or_default();
                evicted = None;
                first = bound.devices.is_empty();
                if bound.devices.contains(&id) {
                    return Ok(Change::Keep);
                }
                if bound.devices.len() >= max {
                    let age = |d: &DeviceId| {
                        let (seen, bound_at) = ages.get(d).copied().unwrap_or((u64::MAX, u64::MAX));
                        match policy {
                            EvictionPolicy::Oldest => bound_at,
                            _ => seen,
                        }
                    };
                    if policy == EvictionPolicy::Refuse {
                        return Err(ApiError::TooManyDevices(max));
                    }
                    let excess = bound.devices.len() + 1 - max;
                    let mut by_age = bound.devices.clone();
                    by_age.sort_by_key(age);
                    let victims: Vec<DeviceId> = by_age.into_iter().take(excess).collect();
                    bound.devices.retain(|d| !victims.contains(d));
                    evicted = Some(victims);
                }
                bound.devices.push(id);
                Ok(Change::Write(bound))
            })
            .await?;
        for victim in evicted.unwrap_or_default() {
            if let Some(record) = self
                .mark_revoked(victim, user_id, None, RevokeReason::Evicted)
                .await?
            {
                report(
                    "device_evicted",
                    self.events().device_evicted(&record, user_id, policy).await,
                );
            }
        }
        let permissions = if first {
            Permissions::ALL
        } else {
            self.inner.default_permissions
        };
        let user_agent = info.user_agent.as_deref().map(truncate_user_agent);
        let mut created = false;
        let record = self
            .inner
            .records
            .update::<DeviceRecord, _>(&device_key(&id), Some(self.inner.record_ttl), |current| {
                created = current.is_none();
                let mut r =
                    current.unwrap_or_else(|| new_record(id, now, info.ip, user_agent.clone(), 1));
                if r.owner.as_deref() != Some(user_id) || r.revoked.is_some() {
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
            .ok_or(ApiError::Conflict("device record vanished while binding"))?;
        if created {
            report("new_device", self.events().new_device(&record).await);
        }
        // A concurrent login may have evicted this device between the list update and the
        // record write; the list is the authority, so undo the trust and say so.
        if !self.is_listed(user_id, &id).await? {
            self.mark_revoked(id, user_id, None, RevokeReason::Evicted)
                .await?;
            return Err(ApiError::Conflict(
                "evicted by a concurrent login while binding",
            ));
        }
        report(
            "device_bound",
            self.events().device_bound(&record, user_id).await,
        );
        Ok(record)
    }

    /// Whether `id` is in `user_id`'s device list.
    async fn is_listed(&self, user_id: &str, id: &DeviceId) -> Result<bool, ApiError> {
        let bound: Option<UserDevices> = self.inner.records.get(&user_key(user_id)).await?;
        Ok(bound.is_some_and(|b| b.devices.contains(id)))
    }

    /// Whether `id` is a trusted device of `user_id`: in the user's list, and its record
    /// bound to the user and not revoked.
    pub async fn is_trusted(
        &self,
        user_id: &str,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, ApiError> {
        if !self.is_listed(user_id, id).await? {
            return Ok(None);
        }
        Ok(self
            .get(id)
            .await?
            .filter(|d| d.trusted && d.revoked.is_none() && d.owner.as_deref() == Some(user_id)))
    }

    /// Checks that `target` is one of `user_id`'s devices.
    async fn owned(&self, user_id: &str, target: &DeviceId) -> Result<DeviceRecord, ApiError> {
        let bound: Option<UserDevices> = self.inner.records.get(&user_key(user_id)).await?;
        if !bound.is_some_and(|b| b.devices.contains(target)) {
            return Err(ApiError::DeviceNotFound);
        }
        self.get(target).await?.ok_or(ApiError::DeviceNotFound)
    }

    /// The acting device's record, which must be a trusted device of `user_id`.
    async fn actor(&self, user_id: &str, actor: &DeviceId) -> Result<DeviceRecord, ApiError> {
        match self.owned(user_id, actor).await {
            Ok(r) if r.trusted => Ok(r),
            Ok(_) | Err(ApiError::DeviceNotFound) => Err(ApiError::DeviceNotTrusted),
            Err(e) => Err(e),
        }
    }

    /// Renames `target` (one of `user_id`'s devices) on behalf of device `actor`. Renaming
    /// another device needs [`Permissions::rename_others`].
    pub async fn rename(
        &self,
        actor: DeviceId,
        user_id: &str,
        target: DeviceId,
        name: &str,
    ) -> Result<DeviceRecord, ApiError> {
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
    ) -> Result<DeviceRecord, ApiError> {
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
    ) -> Result<DeviceRecord, ApiError> {
        let name = name.map(str::trim);
        if let Some(name) = name {
            if name.is_empty()
                || name.chars().count() > MAX_NAME_CHARS
                || name.chars().any(char::is_control)
            {
                return Err(ApiError::InvalidBody(format!(
                    "a device name is 1 to {MAX_NAME_CHARS} printable characters"
                )));
            }
        }
        let me = self.actor(user_id, &actor).await?;
        let current = self.owned(user_id, &target).await?;
        let other = target != actor;
        if name.is_some() && other && !me.permissions.rename_others {
            return Err(ApiError::Forbidden("renaming other devices"));
        }
        if let Some(wanted) = permissions {
            if other && !me.permissions.revoke_others {
                return Err(ApiError::Forbidden("changing other devices' permissions"));
            }
            let granted = Permissions {
                rename_others: wanted.rename_others && !current.permissions.rename_others,
                revoke_others: wanted.revoke_others && !current.permissions.revoke_others,
            };
            if !me.permissions.includes(&granted) {
                return Err(ApiError::Forbidden(
                    "granting a permission the acting device does not hold",
                ));
            }
        }
        self.update_owned(user_id, target, |r| {
            if let Some(name) = name {
                r.name = Some(name.to_owned());
            }
            if let Some(p) = permissions {
                r.permissions = p;
            }
        })
        .await
    }

    /// Revokes `target` on behalf of `actor`: it leaves the user's devices, every session
    /// it holds is revoked, and the revocation is recorded on its record. Needs
    /// [`Permissions::revoke_others`]; a device cannot revoke itself this way (that is
    /// logout).
    pub async fn revoke(
        &self,
        actor: DeviceId,
        user_id: &str,
        target: DeviceId,
    ) -> Result<DeviceRecord, ApiError> {
        let me = self.actor(user_id, &actor).await?;
        self.owned(user_id, &target).await?;
        if target == actor {
            return Err(ApiError::Conflict(
                "a device cannot revoke itself: log out instead",
            ));
        }
        if !me.permissions.revoke_others {
            return Err(ApiError::Forbidden("revoking other devices"));
        }
        self.revoke_unchecked(target, user_id, Some(actor), RevokeReason::Revoked)
            .await?
            .ok_or(ApiError::DeviceNotFound)
    }

    /// Revokes every device of `user_id` except `actor`, under the same permission rule as
    /// [`revoke`](Self::revoke). Returns the revoked records.
    pub async fn revoke_all_others(
        &self,
        actor: DeviceId,
        user_id: &str,
    ) -> Result<Vec<DeviceRecord>, ApiError> {
        let me = self.actor(user_id, &actor).await?;
        if !me.permissions.revoke_others {
            return Err(ApiError::Forbidden("revoking other devices"));
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

    async fn revoke_unchecked(
        &self,
        target: DeviceId,
        user_id: &str,
        by: Option<DeviceId>,
        reason: RevokeReason,
    ) -> Result<Option<DeviceRecord>, ApiError> {
        let Some(record) = self.mark_revoked(target, user_id, by, reason).await? else {
            return Ok(None);
        };
        if let Some(revocation) = &record.revoked {
            report(
                "device_revoked",
                self.events().device_revoked(&record, revocation).await,
            );
        }
        Ok(Some(record))
    }

    /// Takes `target` off the user's list, records the revocation and revokes its sessions.
    async fn mark_revoked(
        &self,
        target: DeviceId,
        user_id: &str,
        by: Option<DeviceId>,
        reason: RevokeReason,
    ) -> Result<Option<DeviceRecord>, ApiError> {
        let now = self.now();
        self.unlist(user_id, &target).await?;
        let record = self
            .inner
            .records
            .update::<DeviceRecord, _>(
                &device_key(&target),
                Some(self.inner.record_ttl),
                |current| {
                    let Some(mut r) = current else {
                        return Ok(Change::Keep);
                    };
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
                },
            )
            .await?;
        crate::sessions::revoke_device_sessions(self, &target).await?;
        Ok(record)
    }

    pub(crate) async fn unlist(&self, user_id: &str, id: &DeviceId) -> Result<(), ApiError> {
        self.inner
            .records
            .update::<UserDevices, _>(&user_key(user_id), None, |current| {
                let Some(mut bound) = current else {
                    return Ok(Change::Keep);
                };
                if !bound.devices.contains(id) {
                    return Ok(Change::Keep);
                }
                bound.devices.retain(|d| d != id);
                Ok(if bound.devices.is_empty() {
                    Change::Delete
                } else {
                    Change::Write(bound)
                })
            })
            .await?;
        Ok(())
    }

    async fn update_owned(
        &self,
        user_id: &str,
        target: DeviceId,
        mut change: impl FnMut(&mut DeviceRecord),
    ) -> Result<DeviceRecord, ApiError> {
        self.inner
            .records
            .update::<DeviceRecord, _>(
                &device_key(&target),
                Some(self.inner.record_ttl),
                |current| match current {
                    Some(mut r) if r.owner.as_deref() == Some(user_id) => {
                        change(&mut r);
                        Ok(Change::Write(r))
                    }
                    _ => Err(ApiError::DeviceNotFound),
                },
            )
            .await?
            .ok_or(ApiError::DeviceNotFound)
    }
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
