//! The Lua scripts every write and scan runs (one file each under `src/scripts/`), and
//! the Rust side of their arguments.
//!
//! Every script is `common.lua` (envelope decoding against the caller's clock, index
//! upkeep) followed by its own body. Every call passes the two indexes as `KEYS` and the
//! data prefix and the time (epoch ms) as `ARGV[1]` and `ARGV[2]`; each file's opening
//! comment gives the rest of its arguments and its reply.

use std::time::Duration;

use actix_device_store::{envelope, Clock};
use redis::{Script, ScriptInvocation};

use crate::layout::Layout;

const LUA_COMMON: &str = include_str!("scripts/common.lua");
const LUA_APPLY: &str = include_str!("scripts/apply.lua");
const LUA_INSERT: &str = include_str!("scripts/insert.lua");
const LUA_CAS: &str = include_str!("scripts/cas.lua");
const LUA_SCAN: &str = include_str!("scripts/scan.lua");
const LUA_PURGE: &str = include_str!("scripts/purge.lua");

/// The longest `PX` Redis accepts is bounded by its clock; TTLs beyond this (over 100,000
/// years) are capped for Redis, while the envelope keeps the exact expiry.
const MAX_PX: u64 = 1 << 51;

/// The Lua scripts, loaded once per server (by SHA; reloaded if Redis restarted).
pub(crate) struct Scripts {
    /// Puts and deletes, in order.
    pub(crate) apply: Script,
    /// Insert-if-absent.
    pub(crate) insert: Script,
    /// Compare-and-swap.
    pub(crate) cas: Script,
    /// One page of a prefix scan.
    pub(crate) scan: Script,
    /// One chunk of expired keys removed.
    pub(crate) purge: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{LUA_COMMON}{body}"));
        Self {
            apply: script(LUA_APPLY),
            insert: script(LUA_INSERT),
            cas: script(LUA_CAS),
            scan: script(LUA_SCAN),
            purge: script(LUA_PURGE),
        }
    }
}

/// A call of `script` with the indexes as keys and the data prefix and time as the first
/// arguments, as every script expects.
pub(crate) fn invocation<'a>(
    script: &'a Script,
    layout: &Layout,
    now: u64,
) -> ScriptInvocation<'a> {
    let mut call = script.prepare_invoke();
    call.key(layout.index())
        .key(layout.expiry())
        .arg(layout.data_prefix())
        .arg(now);
    call
}

/// A write's value and expiry as the scripts take them: the envelope, `PX` and the
/// expiry index's score (both empty for no expiry).
pub(crate) struct Entry {
    pub(crate) envelope: Vec<u8>,
    pub(crate) px: String,
    pub(crate) at: String,
}

impl Entry {
    /// `value` written at `now` (by `clock`) to live for `ttl`.
    pub(crate) fn new(clock: &dyn Clock, value: &[u8], ttl: Option<Duration>, now: u64) -> Self {
        match ttl {
            None => Self {
                envelope: envelope::encode(value, None),
                px: String::new(),
                at: String::new(),
            },
            Some(ttl) => {
                let at = clock.expiry_for(ttl).max(now.saturating_add(1));
                Self {
                    envelope: envelope::encode(value, Some(at)),
                    px: (at - now).min(MAX_PX).to_string(),
                    at: at.to_string(),
                }
            }
        }
    }
}

/// Appends a put to a call of the `apply` script.
pub(crate) fn push_put(call: &mut ScriptInvocation<'_>, key: &[u8], entry: Entry) {
    call.arg("p")
        .arg(key)
        .arg(entry.envelope)
        .arg(entry.px)
        .arg(entry.at);
}

/// Appends a delete to a call of the `apply` script (the op takes five arguments, as
/// a put does).
pub(crate) fn push_delete(call: &mut ScriptInvocation<'_>, key: &[u8]) {
    call.arg("d").arg(key).arg("").arg("").arg("");
}
