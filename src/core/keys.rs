//! The key layout: every key the services write, in one table, with a typed constructor
//! and a parser. Export and erase walk keys through [`Key::parse`] and match on every
//! kind, so a new kind of record cannot be forgotten by erase.
//!
//! | key | holds | found by erase through |
//! |---|---|---|
//! | `dev/{id:16}` | the device record | the device prefix |
//! | `dev/{id:16}/cart` | the device's cart | the device prefix |
//! | `dev/{id:16}/sess/{hash:32}` | marker: the device holds this session | the device prefix |
//! | `dev/{id:16}/rl/{limit}` | rate-limit state of the device | the device prefix |
//! | `dev/{id:16}/quota/{limit}/{day}` | daily quota counter of the device | the device prefix |
//! | `sess/{hash:32}` | a session record (token hash, never the token) | the session markers |
//! | `udev/{user}` | the user's device list | the device record's owner |
//! | `ucart/{user}` | the user's cart | (the user's, not the device's) |
//! | `flag/{key}` | a flag definition | the flag lists are edited |
//! | `ip/{addr}/rl/{limit}`, `ip/{addr}/quota/{limit}/{day}` | per-address limits | (not per device) |
//! | `audit/{user}/{MAX-at:8}{nonce:8}` | a security event of the user, newest first | events mentioning the device |
//! | `erased/{blake3(id):16}` | tombstone: the device was erased (its id hashed) | written by erase |
//!
//! `{id:16}` and `{hash:32}` are raw bytes; users, limits and flag keys are UTF-8 text.
//! Everything about one device lives under its `dev/{id}` prefix, so one scan finds it.

use crate::identity::device_id::DeviceId;

/// A session token's BLAKE3 hash: what the store knows of a session token.
pub(crate) type TokenHash = [u8; 32];

/// Every kind of key the services write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Device(DeviceId),
    DeviceCart(DeviceId),
    DeviceSession(DeviceId, TokenHash),
    DeviceLimit(DeviceId, String),
    DeviceQuota(DeviceId, String, u64),
    Session(TokenHash),
    UserDevices(String),
    UserCart(String),
    Flag(String),
    AddrLimit(String, String),
    AddrQuota(String, String, u64),
    /// A user's audit event: the user, `u64::MAX - at` (so a scan is newest first), a nonce.
    Audit(String, u64, u64),
    /// The tombstone of an erased device, keyed by a hash of its id so that no key names
    /// the erased device.
    Erased([u8; 16]),
}

const DEV: &[u8] = b"dev/";
const SESS: &[u8] = b"sess/";
const UDEV: &[u8] = b"udev/";
const UCART: &[u8] = b"ucart/";
const FLAG: &[u8] = b"flag/";
const ADDR: &[u8] = b"ip/";
const ERASED: &[u8] = b"erased/";
const AUDIT: &[u8] = b"audit/";

impl Key {
    /// The stored form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Key::Device(id) => [DEV, id.as_bytes()].concat(),
            Key::DeviceCart(id) => [DEV, id.as_bytes(), b"/cart"].concat(),
            Key::DeviceSession(id, hash) => [DEV, id.as_bytes(), b"/sess/", hash].concat(),
            Key::DeviceLimit(id, name) => [DEV, id.as_bytes(), b"/rl/", name.as_bytes()].concat(),
            Key::DeviceQuota(id, name, day) => {
                let tail = format!("/quota/{name}/{day}");
                [DEV, id.as_bytes(), tail.as_bytes()].concat()
            }
            Key::Session(hash) => [SESS, hash].concat(),
            Key::UserDevices(user) => [UDEV, user.as_bytes()].concat(),
            Key::UserCart(user) => [UCART, user.as_bytes()].concat(),
            Key::Flag(key) => [FLAG, key.as_bytes()].concat(),
            Key::AddrLimit(addr, name) => format!("ip/{addr}/rl/{name}").into_bytes(),
            Key::AddrQuota(addr, name, day) => format!("ip/{addr}/quota/{name}/{day}").into_bytes(),
            Key::Erased(hash) => [ERASED, hash].concat(),
            Key::Audit(user, inverted, nonce) => [
                AUDIT,
                user.as_bytes(),
                b"/",
                &inverted.to_be_bytes(),
                &nonce.to_be_bytes(),
            ]
            .concat(),
        }
    }

    /// The tombstone key of device `id`.
    pub(crate) fn erased(id: &DeviceId) -> Key {
        let hash = blake3::derive_key("actix-device 2026-11 erased device", id.as_bytes());
        let mut short = [0u8; 16];
        short.copy_from_slice(&hash[..16]);
        Key::Erased(short)
    }

    /// The key whose stored form is `raw`, if it is one of ours.
    pub(crate) fn parse(raw: &[u8]) -> Option<Key> {
        if let Some(rest) = raw.strip_prefix(DEV) {
            return parse_device(rest);
        }
        if let Some(rest) = raw.strip_prefix(SESS) {
            return Some(Key::Session(rest.try_into().ok()?));
        }
        if let Some(rest) = raw.strip_prefix(ERASED) {
            return Some(Key::Erased(rest.try_into().ok()?));
        }
        if let Some(rest) = raw.strip_prefix(AUDIT) {
            return parse_audit(rest);
        }
        let text = |rest: &[u8]| String::from_utf8(rest.to_vec()).ok();
        if let Some(rest) = raw.strip_prefix(UDEV) {
            return Some(Key::UserDevices(text(rest)?));
        }
        if let Some(rest) = raw.strip_prefix(UCART) {
            return Some(Key::UserCart(text(rest)?));
        }
        if let Some(rest) = raw.strip_prefix(FLAG) {
            return Some(Key::Flag(text(rest)?));
        }
        let rest = std::str::from_utf8(raw.strip_prefix(ADDR)?).ok()?;
        let (addr, tail) = rest.split_once('/')?;
        match parse_limit(tail)? {
            Limit::Gcra(name) => Some(Key::AddrLimit(addr.to_owned(), name)),
            Limit::Quota(name, day) => Some(Key::AddrQuota(addr.to_owned(), name, day)),
        }
    }
}

/// The prefix of every key about device `id`.
pub(crate) fn device_prefix(id: &DeviceId) -> Vec<u8> {
    Key::Device(*id).encode()
}

/// The prefix of the session markers of device `id`.
pub(crate) fn device_sessions_prefix(id: &DeviceId) -> Vec<u8> {
    [DEV, id.as_bytes(), b"/sess/"].concat()
}

/// The prefix of `user_id`'s audit log.
pub(crate) fn audit_prefix(user_id: &str) -> Vec<u8> {
    [AUDIT, user_id.as_bytes(), b"/"].concat()
}

/// `{user}/{inverted:8}{nonce:8}`: the user is everything before the last 17 bytes.
fn parse_audit(rest: &[u8]) -> Option<Key> {
    let split = rest.len().checked_sub(17)?;
    let (user, tail) = rest.split_at(split);
    let tail = tail.strip_prefix(b"/")?;
    let inverted = u64::from_be_bytes(tail[..8].try_into().ok()?);
    let nonce = u64::from_be_bytes(tail[8..].try_into().ok()?);
    Some(Key::Audit(
        String::from_utf8(user.to_vec()).ok()?,
        inverted,
        nonce,
    ))
}

/// The prefix of every flag definition.
pub(crate) fn flags_prefix() -> &'static [u8] {
    FLAG
}

fn device_id(raw: &[u8]) -> Option<DeviceId> {
    Some(DeviceId::from_bytes(raw.try_into().ok()?))
}

fn parse_device(rest: &[u8]) -> Option<Key> {
    if rest.len() < 16 {
        return None;
    }
    let (id, tail) = rest.split_at(16);
    let id = device_id(id)?;
    if tail.is_empty() {
        return Some(Key::Device(id));
    }
    if tail == b"/cart" {
        return Some(Key::DeviceCart(id));
    }
    if let Some(hash) = tail.strip_prefix(b"/sess/") {
        return Some(Key::DeviceSession(id, hash.try_into().ok()?));
    }
    match parse_limit(std::str::from_utf8(tail.strip_prefix(b"/")?).ok()?)? {
        Limit::Gcra(name) => Some(Key::DeviceLimit(id, name)),
        Limit::Quota(name, day) => Some(Key::DeviceQuota(id, name, day)),
    }
}

enum Limit {
    Gcra(String),
    Quota(String, u64),
}

/// `rl/{name}` or `quota/{name}/{day}`.
fn parse_limit(tail: &str) -> Option<Limit> {
    if let Some(name) = tail.strip_prefix("rl/") {
        return Some(Limit::Gcra(name.to_owned()));
    }
    let (name, day) = tail.strip_prefix("quota/")?.rsplit_once('/')?;
    Some(Limit::Quota(name.to_owned(), day.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_key_parses_back_to_itself() {
        let id = DeviceId::from_bytes([7; 16]);
        let keys = [
            Key::Device(id),
            Key::DeviceCart(id),
            Key::DeviceSession(id, [9; 32]),
            Key::DeviceLimit(id, "api".into()),
            Key::DeviceQuota(id, "free-tier".into(), 20_000),
            Key::Session([1; 32]),
            Key::UserDevices("alice".into()),
            Key::UserCart("alice".into()),
            Key::Flag("checkout".into()),
            Key::AddrLimit("192.0.2.1".into(), "login".into()),
            Key::AddrQuota("2001:db8::+64".into(), "free".into(), 3),
            Key::erased(&id),
            Key::Audit("alice/x".into(), u64::MAX - 5, 42),
        ];
        for key in keys {
            assert_eq!(Key::parse(&key.encode()), Some(key.clone()), "{key:?}");
        }
        assert!(device_prefix(&id).starts_with(DEV));
        assert!(Key::DeviceSession(id, [9; 32])
            .encode()
            .starts_with(&device_sessions_prefix(&id)));
        assert_eq!(Key::parse(b"other/thing"), None);
        assert_eq!(Key::parse(b"dev/short"), None);
    }
}
