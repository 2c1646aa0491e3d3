//! Feature flags and A/B experiments with deterministic, stable bucketing.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_device_store::{Clock, Store, SystemClock};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, Scope};
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::device_id::DeviceId;
use crate::record::{decode, Change, Record, Records};

/// Rollouts are in basis points: 10,000 is everyone.
pub const FULL_ROLLOUT: u16 = 10_000;
const MAX_KEY: usize = 64;
const MAX_LIST: usize = 10_000;
const DEF_PREFIX: &[u8] = b"flag/";

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

    fn validate(&self) -> Result<(), ApiError> {
        let bad = |m: &str| Err(ApiError::InvalidBody(m.to_owned()));
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

    /// The device's bucket for rollouts: 0..10,000.
    fn rollout_bucket(&self, device: &DeviceId) -> u64 {
        bucket_hash(&self.salt, &self.key, "rollout", device) % u64::from(FULL_ROLLOUT)
    }

    /// Evaluates the flag for `device`: `None` when off, `Some(variant)` when on (the
    /// variant is `"on"` for flags without variants).
    #[must_use]
    pub fn evaluate(&self, device: &DeviceId) -> Option<String> {
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
            Some(Override::On) => return Some(self.variant(device)),
            None => {}
        }
        if self.allow.contains(device) {
            return Some(self.variant(device));
        }
        if !self.enabled || self.rollout_bucket(device) >= u64::from(self.rollout_bp) {
            return None;
        }
        Some(self.variant(device))
    }

    /// The variant `device` gets when the flag is on. Its own hash, independent of the
    /// rollout's, so raising the rollout never moves anyone between variants.
    fn variant(&self, device: &DeviceId) -> String {
        let total: u64 = self.variants.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return "on".to_owned();
        }
        let mut point = bucket_hash(&self.salt, &self.key, "variant", device) % total;
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

/// Keyed BLAKE3 of (flag key, purpose, device id), keyed by the flag's salt: uniform,
/// independent across flags, and not a function of the id's text (whose UUIDv7 prefix
/// is time, so a modulo of it would correlate buckets with sign-up time).
fn bucket_hash(salt: &str, key: &str, purpose: &str, device: &DeviceId) -> u64 {
    let derived = blake3::derive_key("actix-device 2026-11 flag bucket v1", salt.as_bytes());
    let mut h = blake3::Hasher::new_keyed(&derived);
    for part in [key.as_bytes(), purpose.as_bytes()] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(device.as_bytes());
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

fn flag_key(key: &str) -> Vec<u8> {
    [DEF_PREFIX, key.as_bytes()].concat()
}

struct Cache {
    flags: HashMap<String, FlagDefinition>,
    loaded_at: Option<u64>,
}

struct FlagsInner {
    records: Records,
    cache: RwLock<Cache>,
    refresh: Duration,
    clock: Arc<dyn Clock>,
    reload: tokio::sync::Mutex<()>,
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
    /// Flags on `store`, refreshed from it at most every `refresh` interval.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, refresh: Duration) -> Self {
        Self::with_clock(store, refresh, SystemClock)
    }

    /// [`Flags::new`] with a clock (for tests).
    #[must_use]
    pub fn with_clock(store: Arc<dyn Store>, refresh: Duration, clock: impl Clock) -> Self {
        Self {
            inner: Arc::new(FlagsInner {
                records: Records::new(store),
                cache: RwLock::new(Cache {
                    flags: HashMap::new(),
                    loaded_at: None,
                }),
                refresh,
                clock: Arc::new(clock),
                reload: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Loads every definition from the store into the cache.
    pub async fn reload(&self) -> Result<(), ApiError> {
        let _one_at_a_time = self.inner.reload.lock().await;
        let store = self.inner.records.store();
        let mut flags = HashMap::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = store.scan_prefix(DEF_PREFIX, after.as_deref(), 500).await?;
            for (key, value) in &page.entries {
                let def: FlagDefinition = decode(key, value)?;
                flags.insert(def.key.clone(), def);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let now = self.inner.clock.now_millis();
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
    pub async fn refresh_if_stale(&self) -> Result<(), ApiError> {
        let now = self.inner.clock.now_millis();
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
    pub async fn upsert(&self, def: FlagDefinition) -> Result<(), ApiError> {
        def.validate()?;
        self.inner
            .records
            .put(&flag_key(&def.key), &def, None)
            .await?;
        self.reload().await
    }

    /// Deletes a definition; returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, ApiError> {
        let existed = self.inner.records.store().delete(&flag_key(key)).await?;
        self.reload().await?;
        Ok(existed)
    }

    /// Forces `device` on, off or into a variant of flag `key` (`None` removes the override).
    pub async fn set_override(
        &self,
        key: &str,
        device: DeviceId,
        value: Option<Override>,
    ) -> Result<FlagDefinition, ApiError> {
        let updated = self
            .inner
            .records
            .update::<FlagDefinition, _>(&flag_key(key), None, |current| {
                let mut def = current.ok_or(ApiError::FlagNotFound)?;
                def.overrides.retain(|(d, _)| *d != device);
                if let Some(v) = value.clone() {
                    def.overrides.push((device, v));
                }
                def.validate()?;
                Ok(Change::Write(def))
            })
            .await?
            .ok_or(ApiError::FlagNotFound)?;
        self.reload().await?;
        Ok(updated)
    }

    /// Removes `device` from every flag's allow, deny and override lists (for erasure).
    pub async fn forget_device(&self, device: DeviceId) -> Result<(), ApiError> {
        self.reload().await?;
        for def in self.list() {
            let mentions = def.allow.contains(&device)
                || def.deny.contains(&device)
                || def.overrides.iter().any(|(d, _)| *d == device);
            if !mentions {
                continue;
            }
            self.inner
                .records
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
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.flags.get(key).and_then(|def| def.evaluate(device))
    }

    /// The admin API under `path` (mount it behind your own authentication):
    /// `GET /` lists, `PUT /{key}` creates or replaces (body: a [`FlagDefinition`]),
    /// `DELETE /{key}` deletes, `PUT /{key}/overrides/{device}` (body: `"on"`, `"off"` or
    /// `{"variant":"name"}`) and `DELETE /{key}/overrides/{device}` manage overrides.
    #[must_use]
    pub fn admin_routes(&self, path: &str) -> Scope {
        web::scope(path)
            .app_data(web::Data::new(self.clone()))
            .route("", web::get().to(admin_list))
            .route("/", web::get().to(admin_list))
            .route("/{key}", web::put().to(admin_put))
            .route("/{key}", web::delete().to(admin_delete))
            .route("/{key}/overrides/{device}", web::put().to(admin_override))
            .route(
                "/{key}/overrides/{device}",
                web::delete().to(admin_clear_override),
            )
    }
}

async fn admin_list(flags: web::Data<Flags>) -> Result<HttpResponse, ApiError> {
    flags.reload().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "flags": flags.list() })))
}

async fn admin_put(
    flags: web::Data<Flags>,
    key: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let def: FlagDefinition =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    if def.key != *key {
        return Err(ApiError::InvalidBody(
            "the body's key differs from the path's".to_owned(),
        ));
    }
    flags.upsert(def.clone()).await?;
    Ok(HttpResponse::Ok().json(def))
}

async fn admin_delete(
    flags: web::Data<Flags>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if flags.delete(&key).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::FlagNotFound)
    }
}

async fn admin_override(
    flags: web::Data<Flags>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (key, device) = path.into_inner();
    let device: DeviceId = device.parse().map_err(|_| ApiError::DeviceNotFound)?;
    let value: Override =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    let def = flags.set_override(&key, device, Some(value)).await?;
    Ok(HttpResponse::Ok().json(def))
}

async fn admin_clear_override(
    flags: web::Data<Flags>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (key, device) = path.into_inner();
    let device: DeviceId = device.parse().map_err(|_| ApiError::DeviceNotFound)?;
    let def = flags.set_override(&key, device, None).await?;
    Ok(HttpResponse::Ok().json(def))
}

/// The flags of the request's device, evaluated from the cache. Needs `web::Data<Flags>`
/// in app data and the `DeviceTracking` middleware; without a device every flag is off.
#[derive(Debug, Clone)]
pub struct DeviceFlags {
    device: Option<DeviceId>,
    flags: Flags,
}

impl DeviceFlags {
    /// Whether flag `key` is on for this device.
    #[must_use]
    pub fn is_enabled(&self, key: &str) -> bool {
        self.variant(key).is_some()
    }

    /// The variant of `key` for this device (`"on"` for flags without variants), or
    /// `None` when off.
    #[must_use]
    pub fn variant(&self, key: &str) -> Option<String> {
        self.device
            .as_ref()
            .and_then(|d| self.flags.evaluate(key, d))
    }
}

impl FromRequest for DeviceFlags {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let flags = req.app_data::<web::Data<Flags>>().map(|f| Flags::clone(f));
        let device = req.extensions().get::<DeviceId>().copied();
        Box::pin(async move {
            let flags = flags.ok_or(ApiError::Misconfigured(
                "no Flags in app data: add .app_data(web::Data::new(flags))",
            ))?;
            if let Err(e) = flags.refresh_if_stale().await {
                // A store hiccup keeps the last good definitions rather than failing requests.
                tracing::error!(error = %e, "flag definitions could not be refreshed");
            }
            Ok(DeviceFlags { device, flags })
        })
    }
}
