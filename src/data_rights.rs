//! Export and erase everything stored about one device.

use std::fmt;

use actix_web::{HttpMessage, HttpRequest};
use serde_json::{json, Value};

use crate::api_error::ApiError;
use crate::carts::CartRecord;
use crate::device_id::DeviceId;
use crate::extract::DeviceAction;
use crate::flags::Flags;
use crate::record::decode;
use crate::registry::{device_key, DeviceRecord, Devices};
use crate::sessions::{session_key, SessionRecord};

/// Data-subject requests for one device: a JSON export of everything stored about it,
/// and erasure of all of it.
///
/// Everything per-device lives under the key prefix `dev/{id}` (registry record, cart,
/// session markers, rate-limit and quota counters); besides that, the device appears in
/// its owner's device list, in its session records (`sess/…`) and in flag allow, deny and
/// override lists. Export reads, and erase removes, all of those.
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

impl DataRights {
    /// Data rights over the registry's store.
    #[must_use]
    pub fn new(devices: Devices) -> Self {
        Self {
            devices,
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
    async fn device_entries(&self, id: &DeviceId) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ApiError> {
        let store = self.devices.records().store();
        let prefix = device_key(id);
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

    /// Everything stored about `id`, as one JSON document.
    pub async fn export(&self, id: DeviceId) -> Result<Value, ApiError> {
        let prefix = device_key(&id);
        let records = self.devices.records();
        let mut device = Value::Null;
        let mut cart = Value::Null;
        let mut sessions = Vec::new();
        let mut counters = serde_json::Map::new();
        for (key, value) in self.device_entries(&id).await? {
            let suffix = &key[prefix.len()..];
            if suffix.is_empty() {
                device = serde_json::to_value(decode::<DeviceRecord>(&key, &value)?)
                    .unwrap_or(Value::Null);
            } else if suffix == b"/cart" {
                cart = serde_json::to_value(decode::<CartRecord>(&key, &value)?)
                    .unwrap_or(Value::Null);
            } else if let Some(hash) = suffix.strip_prefix(b"/sess/") {
                let Ok(hash) = <[u8; 32]>::try_from(hash) else {
                    continue;
                };
                if let Some(s) = records.get::<SessionRecord>(&session_key(&hash)).await? {
                    let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
                    if let Some(obj) = v.as_object_mut() {
                        obj.remove("fingerprint");
                        obj.insert("session_ref".into(), json!(hex::encode(&hash[..8])));
                    }
                    sessions.push(v);
                }
            } else {
                // Rate-limit and quota state: an opaque counter, shown as its raw record.
                counters.insert(
                    String::from_utf8_lossy(&suffix[1..]).into_owned(),
                    json!(hex::encode(&value)),
                );
            }
        }
        let flags = match &self.flags {
            Some(flags) => {
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
                json!({ "assignments": flags.evaluate_all(&id), "overrides": overrides })
            }
            None => Value::Null,
        };
        Ok(json!({
            "device_id": id,
            "device": device,
            "cart": cart,
            "sessions": sessions,
            "counters": counters,
            "flags": flags,
        }))
    }

    /// Deletes everything stored about `id`. Returns how many keys were deleted.
    pub async fn erase(&self, id: DeviceId) -> Result<u64, ApiError> {
        let store = self.devices.records().store();
        let prefix = device_key(&id);
        if let Some(owner) = self.devices.get(&id).await?.and_then(|r| r.owner) {
            self.devices.unlist(&owner, &id).await?;
        }
        let mut deleted = 0;
        for (key, _) in self.device_entries(&id).await? {
            if let Some(hash) = key[prefix.len()..].strip_prefix(b"/sess/") {
                if let Ok(hash) = <[u8; 32]>::try_from(hash) {
                    deleted += u64::from(store.delete(&session_key(&hash)).await?);
                }
            }
            deleted += u64::from(store.delete(&key).await?);
        }
        if let Some(flags) = &self.flags {
            flags.forget_device(id).await?;
        }
        Ok(deleted)
    }

    /// Erases the request's device and has the middleware clear its cookie on this
    /// response, so the browser starts afresh.
    pub async fn erase_current(&self, req: &HttpRequest) -> Result<u64, ApiError> {
        let id = req
            .extensions()
            .get::<DeviceId>()
            .copied()
            .ok_or(ApiError::NoDevice)?;
        let deleted = self.erase(id).await?;
        req.extensions_mut().insert(DeviceAction::Forget);
        Ok(deleted)
    }
}
