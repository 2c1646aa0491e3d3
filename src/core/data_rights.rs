//! Export and erase everything stored about one device.

use std::fmt;

use serde_json::{json, Map, Value};

use crate::core::audit::{self, AuditKind};
use crate::core::carts::CartRecord;
use crate::core::devices::Devices;
use crate::core::error::Result;
use crate::core::flags::Flags;
use crate::core::keys::{device_prefix, Key};
use crate::core::model::{DeviceRecord, SessionRecord};
use crate::core::record::decode;
use crate::identity::device_id::DeviceId;

/// Data-subject requests for one device: a JSON export of everything stored about it,
/// and erasure of all of it.
///
/// Everything per-device lives under the key prefix `dev/{id}` (registry record, cart,
/// session markers, rate-limit and quota counters); besides that, the device appears in
/// its owner's device list and audit log, in its session records (`sess/…`, ended ones
/// included while they are kept) and in flag allow, deny and override lists. Export reads, and erase
/// removes, all of those; every key is read through the key layout table, whose kinds are
/// matched one by one.
#[derive(Clone)]
pub struct DataRights {
    devices: Devices,
    flags: Option<Flags>,
}

impl fmt::Debug for DataRights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataRights")
            .field("flags", &self.flags.is_some())
            .finish_non_exhaustive()
    }
}

/// What export gathers, section by section.
#[derive(Default)]
struct Export {
    device: Value,
    cart: Value,
    sessions: Vec<Value>,
    counters: Map<String, Value>,
}

impl DataRights {
    /// Data rights over the registry's store.
    #[must_use]
    pub fn new(devices: &Devices) -> Self {
        Self {
            devices: devices.clone(),
            flags: None,
        }
    }

    /// Includes flag overrides and assignments in exports, and list entries in erasure.
    #[must_use]
    pub fn with_flags(mut self, flags: Flags) -> Self {
        self.flags = Some(flags);
        self
    }

    /// Every key under the device's prefix, with its value.
    async fn device_entries(&self, id: &DeviceId) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let store = self.devices.context().store();
        let prefix = device_prefix(id);
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = store.scan_prefix(&prefix, after.as_deref(), 500).await?;
            out.extend(page.entries);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Everything stored about `id`, as one JSON document: its records, and the events of
    /// its owner's audit log that mention it.
    pub async fn export(&self, id: DeviceId) -> Result<Value> {
        let mut export = Export::default();
        for (key, value) in self.device_entries(&id).await? {
            self.export_entry(&mut export, &key, &value).await?;
        }
        let audit = match self.devices.get(&id).await?.and_then(|r| r.owner) {
            Some(owner) => audit::mentioning(self.devices.context(), &owner, &id)
                .await?
                .into_iter()
                .map(|(_, event)| to_json(&event))
                .collect(),
            None => Vec::new(),
        };
        let flags = match &self.flags {
            Some(flags) => flag_export(flags, id).await?,
            None => Value::Null,
        };
        Ok(json!({
            "device_id": id,
            "device": export.device,
            "cart": export.cart,
            "sessions": export.sessions,
            "counters": export.counters,
            "flags": flags,
            "audit": audit,
        }))
    }

    async fn export_entry(&self, export: &mut Export, key: &[u8], value: &[u8]) -> Result<()> {
        let Some(parsed) = Key::parse(key) else {
            return Ok(());
        };
        match parsed {
            Key::Device(_) => {
                export.device = to_json(&decode::<DeviceRecord>(key, value)?);
            }
            Key::DeviceCart(_) => export.cart = to_json(&decode::<CartRecord>(key, value)?),
            Key::DeviceSession(_, hash) => {
                let records = self.devices.context().records();
                if let Some(s) = records
                    .get::<SessionRecord>(&Key::Session(hash).encode())
                    .await?
                {
                    let mut v = to_json(&s);
                    if let Some(obj) = v.as_object_mut() {
                        obj.remove("fingerprint");
                        obj.insert("session_ref".into(), json!(hex::encode(&hash[..8])));
                    }
                    export.sessions.push(v);
                }
            }
            Key::DeviceLimit(_, name) => {
                export
                    .counters
                    .insert(format!("rl/{name}"), json!(hex::encode(value)));
            }
            Key::DeviceQuota(_, name, day) => {
                export
                    .counters
                    .insert(format!("quota/{name}/{day}"), json!(hex::encode(value)));
            }
            // Not under a device prefix: never met in this scan (the owner's audit events
            // are read by `export` itself).
            Key::Audit(..)
            | Key::Session(_)
            | Key::UserDevices(_)
            | Key::UserCart(_)
            | Key::Flag(_)
            | Key::AddrLimit(..)
            | Key::AddrQuota(..)
            | Key::Erased(_) => {}
        }
        Ok(())
    }

    /// Deletes everything stored about `id`, ended sessions included, and leaves a
    /// tombstone (kept a day) so a request in flight cannot recreate the device record.
    /// Returns how many keys were deleted.
    pub async fn erase(&self, id: DeviceId) -> Result<u64> {
        let store = self.devices.context().store();
        self.devices.write_tombstone(&id).await?;
        let mut deleted = 0;
        let owner = self.devices.get(&id).await?.and_then(|r| r.owner);
        if let Some(owner) = &owner {
            self.devices.unlist(owner, &id).await?;
            let ctx = self.devices.context();
            for (key, _) in audit::mentioning(ctx, owner, &id).await? {
                deleted += u64::from(store.delete(&key).await?);
            }
            // The owner learns that a device was erased, not which.
            audit::append(ctx, owner, AuditKind::Erased, None, None).await;
        }
        for (key, _) in self.device_entries(&id).await? {
            match Key::parse(&key) {
                Some(Key::DeviceSession(_, hash)) => {
                    deleted += u64::from(store.delete(&Key::Session(hash).encode()).await?);
                }
                Some(
                    Key::Audit(..)
                    | Key::Device(_)
                    | Key::DeviceCart(_)
                    | Key::DeviceLimit(..)
                    | Key::DeviceQuota(..)
                    | Key::Session(_)
                    | Key::UserDevices(_)
                    | Key::UserCart(_)
                    | Key::Flag(_)
                    | Key::AddrLimit(..)
                    | Key::AddrQuota(..)
                    | Key::Erased(_),
                )
                | None => {}
            }
            deleted += u64::from(store.delete(&key).await?);
        }
        if let Some(flags) = &self.flags {
            flags.forget_device(id).await?;
        }
        Ok(deleted)
    }
}

async fn flag_export(flags: &Flags, id: DeviceId) -> Result<Value> {
    flags.reload().await?;
    let overrides: Vec<Value> = flags
        .list()
        .into_iter()
        .filter_map(|def| {
            def.overrides
                .iter()
                .find(|(d, _)| *d == id)
                .map(|(_, o)| json!({ "flag": def.key, "override": o }))
        })
        .collect();
    Ok(json!({ "assignments": flags.evaluate_all(&id), "overrides": overrides }))
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
