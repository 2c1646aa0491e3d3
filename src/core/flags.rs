//! Feature flags and A/B experiments with deterministic, stable bucketing.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::context::ServiceContext;
use crate::core::error::{Result, ServiceError};
use crate::core::keys::{flags_prefix, Key};
use crate::core::record::{decode, Change, Record};
use crate::identity::device_id::DeviceId;

/// Rollouts are in basis points: 10,000 is everyone.
pub const FULL_ROLLOUT: u16 = 10_000;
const MAX_KEY: usize = 64;
const MAX_LIST: usize = 10_000;

/// Who a flag is evaluated for: the bucket follows the user when one is signed in (so
/// all their devices see one variant), the device otherwise. Allow, deny and override
/// lists always name devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    /// The device asking.
    pub device: &'a DeviceId,
    /// The signed-in user, if the bucket should follow them.
    pub user: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// An anonymous device.
    #[must_use]
    pub fn device(device: &'a DeviceId) -> Self {
        Self { device, user: None }
    }
}

/// A per-device override, for QA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Override {
    /// Always on (with the variant the device would get).
    On,
    /// Always off.
    Off,
    /// On, with this variant.
    Variant(String),
}

/// A flag or experiment, as stored and as the admin API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagDefinition {
    /// The flag's key: 1 to 64 of `a-z 0-9 _ - .`.
    pub key: String,
    /// Off for everyone (but allow-listed and overridden devices) when false.
    pub enabled: bool,
    /// Share of devices that get the flag, in basis points (0 to 10,000).
    #[serde(default = "full")]
    pub rollout_bp: u16,
    /// Weighted variants (`[("control", 50), ("blue", 50)]`); empty for a plain on/off flag.
    #[serde(default)]
    pub variants: Vec<(String, u32)>,
    /// Devices that always get the flag.
    #[serde(default)]
    pub allow: Vec<DeviceId>,
    /// Devices that never get it (wins over everything but nothing).
    #[serde(default)]
    pub deny: Vec<DeviceId>,
    /// Per-device overrides.
    #[serde(default)]
    pub overrides: Vec<(DeviceId, Override)>,
    /// Mixed into the bucket hash; change it to reshuffle everyone.
    #[serde(default)]
    pub salt: String,
}

fn full() -> u16 {
    FULL_ROLLOUT
}

impl Record for FlagDefinition {
    const KIND: &'static str = "flag";
    const VERSION: u8 = 1;
}

impl FlagDefinition {
    /// A plain on/off flag, on for everyone.
    #[must_use]
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            enabled: true,
            rollout_bp: FULL_ROLLOUT,
            variants: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            overrides: Vec::new(),
            salt: String::new(),
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ServiceError::Invalid(m.to_owned()));
        if self.key.is_empty()
            || self.key.len() > MAX_KEY
            || !self
                .key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
        {
            return bad("a flag key is 1 to 64 of a-z 0-9 _ - .");
        }
        if self.rollout_bp > FULL_ROLLOUT {
            return bad("rollout_bp is at most 10000");
        }
        if !self.variants.is_empty()
            && self
                .variants
                .iter()
                .map(|(_, w)| u64::from(*w))
                .sum::<u64>()
                == 0
        {
            return bad("variant weights must not all be zero");
        }
        let mut names: Vec<&str> = self.variants.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        if names.len() != self.variants.len()
            || names.iter().any(|n| n.is_empty() || n.len() > MAX_KEY)
        {
            return bad("variant names are unique, 1 to 64 bytes");
        }
        for (_, o) in &self.overrides {
            if let Override::Variant(v) = o {
                if !names.contains(&v.as_str()) {
                    return bad("an override names a variant the flag does not have");
                }
            }
        }
        if self.allow.len() + self.deny.len() + self.overrides.len() > MAX_LIST
            || self.salt.len() > MAX_KEY
        {
            return bad(
                "allow, deny and override lists hold at most 10000 devices; salt at most 64 bytes",
            );
        }
        Ok(())
    }

    /// The subject's bucket for rollouts: 0..10,000.
    fn rollout_bucket(&self, subject: Subject<'_>) -> u64 {
        bucket_hash(&self.salt, &self.key, "rollout", subject) % u64::from(FULL_ROLLOUT)
    }

    /// Evaluates the flag for an anonymous `device`: `None` when off, `Some(variant)` when
    /// on (the variant is `"on"` for flags without variants).
    #[must_use]
    pub fn evaluate(&self, device: &DeviceId) -> Option<String> {
        self.evaluate_for(Subject::device(device))
    }

    /// Evaluates the flag for `subject`.
    #[must_use]
    pub fn evaluate_for(&self, subject: Subject<'_>) -> Option<String> {
        let device = subject.device;
        if self.deny.contains(device) {
            return None;
        }
        match self
            .overrides
            .iter()
            .find(|(d, _)| d == device)
            .map(|(_, o)| o)
        {
            Some(Override::Off) => return None,
            Some(Override::Variant(v)) => return Some(v.clone()),
            Some(Override::On) => return Some(self.variant(subject)),
            None => {}
        }
        if self.allow.contains(device) {
            return Some(self.variant(subject));
        }
        if !self.enabled || self.rollout_bucket(subject) >= u64::from(self.rollout_bp) {
            return None;
        }
        Some(self.variant(subject))
    }

    /// The variant `device` gets when the flag is on. Its own hash, independent of the
    /// rollout's, so raising the rollout never moves anyone between variants.
    fn variant(&self, subject: Subject<'_>) -> String {
        let total: u64 = self.variants.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return "on".to_owned();
        }
        let mut point = bucket_hash(&self.salt, &self.key, "variant", subject) % total;
        for (name, weight) in &self.variants {
            if point < u64::from(*weight) {
                return name.clone();
            }
            point -= u64::from(*weight);
        }
        self.variants
            .last()
            .map(|(n, _)| n.clone())
            .unwrap_or_default()
    }
}

/// Keyed BLAKE3 of (flag key, purpose, subject), keyed by the flag's salt: uniform,
/// independent across flags, and not a function of the id's text (whose UUIDv7 prefix
/// is time, so a modulo of it would correlate buckets with sign-up time). A user's
/// bucket uses its own purpose string, so it never equals any device's.
fn bucket_hash(salt: &str, key: &str, purpose: &str, subject: Subject<'_>) -> u64 {
    let derived = blake3::derive_key("actix-device 2026-11 flag bucket v1", salt.as_bytes());
    let mut h = blake3::Hasher::new_keyed(&derived);
    let user_purpose;
    let purpose = match subject.user {
        Some(_) => {
            user_purpose = format!("{purpose}/user");
            user_purpose.as_str()
        }
        None => purpose,
    };
    for part in [key.as_bytes(), purpose.as_bytes()] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    match subject.user {
        Some(user) => h.update(user.as_bytes()),
        None => h.update(subject.device.as_bytes()),
    };
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

fn flag_key(key: &str) -> Vec<u8> {
    Key::Flag(key.to_owned()).encode()
}

struct Cache {
    flags: HashMap<String, FlagDefinition>,
    loaded_at: Option<u64>,
}

struct FlagsInner {
    context: ServiceContext,
    cache: RwLock<Cache>,
    refresh: Duration,
    by_user: bool,
    reload: tokio::sync::Mutex<()>,
}

/// Configuration of [`Flags`].
#[must_use]
#[derive(Debug)]
pub struct FlagsBuilder {
    context: ServiceContext,
    refresh: Duration,
    by_user: bool,
}

impl FlagsBuilder {
    /// Reload definitions from the store at most this often (default 10 s), so changes
    /// made by other instances arrive within it.
    pub fn refresh(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// Whether a signed-in user's buckets follow the user, so all their devices see one
    /// variant (default `true`). Anonymous visitors are bucketed per device either way.
    pub fn bucket_by_user(mut self, on: bool) -> Self {
        self.by_user = on;
        self
    }

    /// The service.
    pub fn build(self) -> Flags {
        Flags {
            inner: Arc::new(FlagsInner {
                context: self.context,
                cache: RwLock::new(Cache {
                    flags: HashMap::new(),
                    loaded_at: None,
                }),
                refresh: self.refresh,
                by_user: self.by_user,
                reload: tokio::sync::Mutex::new(()),
            }),
        }
    }
}

/// Feature flags stored in the store and cached in memory.
///
/// Evaluation reads the cache, never the store: definitions are reloaded when this
/// process changes one, and at most every refresh interval (default 10 s) so changes made
/// by other instances arrive within it.
#[derive(Clone)]
pub struct Flags {
    inner: Arc<FlagsInner>,
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flags")
            .field("refresh", &self.inner.refresh)
            .finish_non_exhaustive()
    }
}

impl Flags {
    /// Flags with the defaults.
    pub fn new(context: &ServiceContext) -> Self {
        Self::builder(context).build()
    }

    /// A builder.
    pub fn builder(context: &ServiceContext) -> FlagsBuilder {
        FlagsBuilder {
            context: context.clone(),
            refresh: Duration::from_secs(10),
            by_user: true,
        }
    }

    /// Whether signed-in users are bucketed by user id.
    #[must_use]
    pub fn buckets_by_user(&self) -> bool {
        self.inner.by_user
    }

    /// Loads every definition from the store into the cache.
    pub async fn reload(&self) -> Result<()> {
        let _one_at_a_time = self.inner.reload.lock().await;
        let store = self.inner.context.store();
        let mut flags = HashMap::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = store
                .scan_prefix(flags_prefix(), after.as_deref(), 500)
                .await?;
            for (key, value) in &page.entries {
                let def: FlagDefinition = decode(key, value)?;
                flags.insert(def.key.clone(), def);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let now = self.inner.context.now();
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.flags = flags;
        cache.loaded_at = Some(now);
        Ok(())
    }

    /// Reloads if the cache is older than the refresh interval.
    pub async fn refresh_if_stale(&self) -> Result<()> {
        let now = self.inner.context.now();
        let stale = {
            let cache = self
                .inner
                .cache
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.loaded_at.is_none_or(|at| {
                now.saturating_sub(at)
                    >= u64::try_from(self.inner.refresh.as_millis()).unwrap_or(u64::MAX)
            })
        };
        if stale {
            self.reload().await?;
        }
        Ok(())
    }

    /// Every definition, sorted by key (from the cache).
    #[must_use]
    pub fn list(&self) -> Vec<FlagDefinition> {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut all: Vec<_> = cache.flags.values().cloned().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// One definition (from the cache).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<FlagDefinition> {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.flags.get(key).cloned()
    }

    /// Creates or replaces a definition.
    pub async fn upsert(&self, def: FlagDefinition) -> Result<()> {
        def.validate()?;
        self.inner
            .context
            .records()
            .put(&flag_key(&def.key), &def, None)
            .await?;
        self.reload().await
    }

    /// Deletes a definition; returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let existed = self.inner.context.store().delete(&flag_key(key)).await?;
        self.reload().await?;
        Ok(existed)
    }

    /// Forces `device` on, off or into a variant of flag `key` (`None` removes the override).
    pub async fn set_override(
        &self,
        key: &str,
        device: DeviceId,
        value: Option<Override>,
    ) -> Result<FlagDefinition> {
        let updated = self
            .inner
            .context
            .records()
            .update::<FlagDefinition, _>(&flag_key(key), None, |current| {
                let mut def = current.ok_or(ServiceError::FlagNotFound)?;
                def.overrides.retain(|(d, _)| *d != device);
                if let Some(v) = value.clone() {
                    def.overrides.push((device, v));
                }
                def.validate()?;
                Ok(Change::Write(def))
            })
            .await?
            .ok_or(ServiceError::FlagNotFound)?;
        self.reload().await?;
        Ok(updated)
    }

    /// Removes `device` from every flag's allow, deny and override lists (for erasure).
    pub async fn forget_device(&self, device: DeviceId) -> Result<()> {
        self.reload().await?;
        for def in self.list() {
            let mentions = def.allow.contains(&device)
                || def.deny.contains(&device)
                || def.overrides.iter().any(|(d, _)| *d == device);
            if !mentions {
                continue;
            }
            self.inner
                .context
                .records()
                .update::<FlagDefinition, _>(&flag_key(&def.key), None, |current| {
                    let Some(mut def) = current else {
                        return Ok(Change::Keep);
                    };
                    def.allow.retain(|d| *d != device);
                    def.deny.retain(|d| *d != device);
                    def.overrides.retain(|(d, _)| *d != device);
                    Ok(Change::Write(def))
                })
                .await?;
        }
        self.reload().await
    }

    /// Evaluates every flag for `device` (from the cache).
    #[must_use]
    pub fn evaluate_all(&self, device: &DeviceId) -> HashMap<String, Option<String>> {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .flags
            .values()
            .map(|def| (def.key.clone(), def.evaluate(device)))
            .collect()
    }

    /// Evaluates flag `key` for `device`: `None` when off or unknown.
    #[must_use]
    pub fn evaluate(&self, key: &str, device: &DeviceId) -> Option<String> {
        self.evaluate_for(key, Subject::device(device))
    }

    /// Evaluates flag `key` for `subject`: `None` when off or unknown.
    #[must_use]
    pub fn evaluate_for(&self, key: &str, subject: Subject<'_>) -> Option<String> {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .flags
            .get(key)
            .and_then(|def| def.evaluate_for(subject))
    }
}
