//! The value envelope and expiry index shared by the embedded backends.
//!
//! Engines without per-entry expiry (sled, redb) store each value as an envelope that
//! carries its absolute expiry, and keep a second index keyed by
//! `expires_at (u64 big-endian) || key` so that purging walks only expired entries.
//!
//! Envelope layout: a tag byte, then for tag `1` the expiry in epoch milliseconds as a
//! big-endian `u64`, then the value.
//!
//! | tag | meaning |
//! |---|---|
//! | `0` | no expiry: `0x00 ‖ value` |
//! | `1` | expires: `0x01 ‖ expires_at_ms (8 bytes BE) ‖ value` |

use crate::error::{KeyName, StoreError};

const NO_EXPIRY: u8 = 0;
const EXPIRES: u8 = 1;

/// Wraps `value` with its absolute expiry (epoch milliseconds), if any.
#[must_use]
pub fn encode(value: &[u8], expires_at: Option<u64>) -> Vec<u8> {
    match expires_at {
        None => {
            let mut out = Vec::with_capacity(1 + value.len());
            out.push(NO_EXPIRY);
            out.extend_from_slice(value);
            out
        }
        Some(at) => {
            let mut out = Vec::with_capacity(9 + value.len());
            out.push(EXPIRES);
            out.extend_from_slice(&at.to_be_bytes());
            out.extend_from_slice(value);
            out
        }
    }
}

/// A decoded envelope: the value and its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Absolute expiry in epoch milliseconds, if any.
    pub expires_at: Option<u64>,
    /// The stored value.
    pub value: &'a [u8],
}

impl Envelope<'_> {
    /// Whether the entry is expired at `now` (epoch milliseconds).
    #[must_use]
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Reads an envelope stored under `key`; a bad tag or a short buffer is
/// [`StoreError::Corrupt`] naming the key.
pub fn decode<'a>(key: &[u8], raw: &'a [u8]) -> Result<Envelope<'a>, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: KeyName::new(key),
        reason: reason.to_owned(),
    };
    match raw.split_first() {
        Some((&NO_EXPIRY, value)) => Ok(Envelope {
            expires_at: None,
            value,
        }),
        Some((&EXPIRES, rest)) => {
            let (at, value) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| corrupt("envelope shorter than its expiry field"))?;
            Ok(Envelope {
                expires_at: Some(u64::from_be_bytes(*at)),
                value,
            })
        }
        Some((tag, _)) => Err(corrupt(&format!("unknown envelope tag {tag}"))),
        None => Err(corrupt("empty envelope")),
    }
}

/// The expiry-index key for `key` expiring at `expires_at`.
#[must_use]
pub fn index_key(expires_at: u64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&expires_at.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits an expiry-index key into `(expires_at, key)`; `None` if shorter than 8 bytes.
#[must_use]
pub fn split_index_key(raw: &[u8]) -> Option<(u64, &[u8])> {
    let (at, key) = raw.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*at), key))
}

/// The exclusive upper bound of the index keys expired at `now`: every index key below
/// it has `expires_at <= now`.
#[must_use]
pub fn index_upper_bound(now: u64) -> Vec<u8> {
    match now.checked_add(1) {
        Some(n) => n.to_be_bytes().to_vec(),
        None => vec![0xff; 9],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        for (value, at) in [
            (&b""[..], None),
            (b"v", Some(7)),
            (b"\x00\x01", Some(u64::MAX)),
        ] {
            let raw = encode(value, at);
            let env = decode(b"k", &raw).unwrap();
            assert_eq!(env.value, value);
            assert_eq!(env.expires_at, at);
        }
    }

    #[test]
    fn corrupt_envelopes_are_errors_naming_the_key() {
        for raw in [&b""[..], b"\x01\x00\x00", b"\x07abc"] {
            let err = decode(b"dev/1", raw).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("dev/1"));
        }
    }

    #[test]
    fn index_keys_sort_by_expiry() {
        let a = index_key(5, b"zzz");
        let b = index_key(6, b"aaa");
        assert!(a < b);
        assert!(b < index_upper_bound(6));
        assert!(index_upper_bound(5) <= b);
        assert_eq!(split_index_key(&a), Some((5, &b"zzz"[..])));
    }
}
