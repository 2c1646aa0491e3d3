use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

/// A browser's persistent identity: 16 bytes, shown as a hyphenated UUID.
///
/// Fresh ids are UUIDv7 (time-ordered, 74 random bits) unless the middleware was given
/// another [`IdGenerator`]. Parsing is strict: only the canonical lowercase hyphenated
/// form (`0190a5e2-7c3b-7d4e-8f00-0123456789ab`) is accepted, so every id has exactly one
/// text form and ids can be compared as strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId([u8; 16]);

impl DeviceId {
    /// Length of the canonical text form.
    pub const TEXT_LEN: usize = 36;

    /// A new UUIDv7: the current Unix time in milliseconds and 74 random bits from the
    /// thread-local CSPRNG (ChaCha, seeded and periodically reseeded from the OS), which
    /// avoids a system call per id.
    #[must_use]
    pub fn new_v7() -> Self {
        use rand::RngCore;
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut random = [0u8; 10];
        rand::thread_rng().fill_bytes(&mut random);
        Self(
            *uuid::Builder::from_unix_timestamp_millis(millis, &random)
                .as_uuid()
                .as_bytes(),
        )
    }

    /// The id made of these 16 bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes of the id.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The id as a [`uuid::Uuid`].
    #[must_use]
    pub fn to_uuid(&self) -> uuid::Uuid {
        uuid::Uuid::from_bytes(self.0)
    }

    /// Compares two ids in constant time; use it where one side is a secret held by the
    /// server (an id stored for a session, say) so timing does not reveal how much matched.
    #[must_use]
    pub fn ct_eq(&self, other: &DeviceId) -> bool {
        // One 128-bit difference, folded to 64 bits for `subtle`'s branch-free compare: a
        // byte-at-a-time loop costs ten times as much on every signed-in request.
        let diff = u128::from_ne_bytes(self.0) ^ u128::from_ne_bytes(other.0);
        ((diff as u64) | ((diff >> 64) as u64)).ct_eq(&0).into()
    }

    /// Writes the canonical text form into `out`.
    fn write_text(&self, out: &mut [u8; 36]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut at = 0;
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out[at] = b'-';
                at += 1;
            }
            out[at] = HEX[usize::from(byte >> 4)];
            out[at + 1] = HEX[usize::from(byte & 0x0f)];
            at += 2;
        }
    }

    /// Parses the canonical text form from bytes.
    pub fn parse_bytes(text: &[u8]) -> Result<Self, ParseDeviceIdError> {
        let Ok(text) = <&[u8; Self::TEXT_LEN]>::try_from(text) else {
            return Err(ParseDeviceIdError::Length(text.len()));
        };
        // Every digit through one table, the errors folded into one check: a plain cookie
        // the token memo has not seen and every id read from JSON parse here, and a
        // branch per character made a plain decode cost 899 instructions (now 259).
        let mut bytes = [0u8; 16];
        let mut invalid = 0;
        for (byte, at) in bytes.iter_mut().zip(DIGIT_PAIRS) {
            let high = HEX_VALUE[usize::from(text[at])];
            let low = HEX_VALUE[usize::from(text[at + 1])];
            invalid |= high | low;
            *byte = (high << 4) | low;
        }
        if invalid & NOT_HEX != 0 || HYPHENS.iter().any(|&at| text[at] != b'-') {
            return Err(ParseDeviceIdError::Character(first_misplaced(text)));
        }
        Ok(Self(bytes))
    }
}

/// Where the hyphens of the canonical text form are.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// Where each byte's two hex digits start in the canonical text form.
const DIGIT_PAIRS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/// The `HEX_VALUE` of a byte that is not a lowercase hex digit.
const NOT_HEX: u8 = 0x80;

/// Each byte's value as a lowercase hex digit, or `NOT_HEX`.
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        table[b"0123456789abcdef"[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
};

/// The first position of `text` that breaks the canonical form (one is known to).
fn first_misplaced(text: &[u8; DeviceId::TEXT_LEN]) -> usize {
    text.iter()
        .enumerate()
        .position(|(at, &c)| {
            if HYPHENS.contains(&at) {
                c != b'-'
            } else {
                HEX_VALUE[usize::from(c)] == NOT_HEX
            }
        })
        .unwrap_or(0)
}

/// Compares two device ids, given in any form, in constant time with respect to their
/// contents. Total: inputs of any length or content give `false` rather than a panic,
/// and only equal byte strings give `true`.
#[must_use]
pub fn compare_device_ids(a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> bool {
    a.as_ref().ct_eq(b.as_ref()).into()
}

/// Why a string is not a device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseDeviceIdError {
    /// The text is not 36 bytes long.
    #[error("a device id is 36 characters, got {0}")]
    Length(usize),
    /// A byte at this position is not a lowercase hex digit or a hyphen where one belongs.
    #[error("unexpected character at position {0} (want lowercase hex, hyphenated 8-4-4-4-12)")]
    Character(usize),
}

impl FromStr for DeviceId {
    type Err = ParseDeviceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_bytes(s.as_bytes())
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 36];
        self.write_text(&mut out);
        // Only ASCII hex digits and hyphens were written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

impl From<uuid::Uuid> for DeviceId {
    fn from(u: uuid::Uuid) -> Self {
        Self(*u.as_bytes())
    }
}

impl Serialize for DeviceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = DeviceId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a canonical hyphenated device id or 16 bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DeviceId, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<DeviceId, E> {
                <[u8; 16]>::try_from(v)
                    .map(DeviceId)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(IdVisitor)
        } else {
            d.deserialize_bytes(IdVisitor)
        }
    }
}

/// Makes fresh device ids. The default is [`UuidV7`]; any `Fn() -> DeviceId` works too.
///
/// ```
/// use actix_device::{DeviceId, IdGenerator};
/// let counter = std::sync::atomic::AtomicU64::new(1);
/// let gen = move || {
///     let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///     let mut bytes = [0u8; 16];
///     bytes[8..].copy_from_slice(&n.to_be_bytes());
///     DeviceId::from_bytes(bytes)
/// };
/// assert_ne!(gen.generate(), gen.generate());
/// ```
pub trait IdGenerator: Send + Sync + 'static {
    /// A new, unique id.
    fn generate(&self) -> DeviceId;
}

impl<F: Fn() -> DeviceId + Send + Sync + 'static> IdGenerator for F {
    fn generate(&self) -> DeviceId {
        self()
    }
}

/// The default generator: UUIDv7 (RFC 9562), time-ordered with 74 random bits.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn generate(&self) -> DeviceId {
        DeviceId::new_v7()
    }
}

pub(crate) type SharedGenerator = Arc<dyn IdGenerator>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for _ in 0..100 {
            let id = DeviceId::new_v7();
            let text = id.to_string();
            assert_eq!(text, id.to_uuid().hyphenated().to_string());
            assert_eq!(text.parse::<DeviceId>(), Ok(id));
        }
    }

    #[test]
    fn parse_accepts_only_the_canonical_form() {
        let id = DeviceId::new_v7();
        let text = id.to_string();
        assert!(text.to_uppercase().parse::<DeviceId>().is_err());
        assert!(text.replace('-', "").parse::<DeviceId>().is_err());
        assert!(format!("{{{text}}}").parse::<DeviceId>().is_err());
        assert!(format!("urn:uuid:{text}").parse::<DeviceId>().is_err());
        assert!(format!(" {text}").parse::<DeviceId>().is_err());
        assert!("".parse::<DeviceId>().is_err());
        let mut moved = text.clone().into_bytes();
        moved.swap(8, 9);
        assert!(DeviceId::parse_bytes(&moved).is_err());
        // 36 bytes that are not ASCII at all.
        assert!(DeviceId::parse_bytes(&[0xff; 36]).is_err());
    }

    /// The parser as the canonical form reads, one character at a time.
    fn parse_by_the_book(text: &[u8]) -> Result<DeviceId, ParseDeviceIdError> {
        if text.len() != DeviceId::TEXT_LEN {
            return Err(ParseDeviceIdError::Length(text.len()));
        }
        let mut digits = Vec::new();
        for (at, &c) in text.iter().enumerate() {
            match (HYPHENS.contains(&at), c) {
                (true, b'-') => {}
                (false, b'0'..=b'9') => digits.push(c - b'0'),
                (false, b'a'..=b'f') => digits.push(c - b'a' + 10),
                _ => return Err(ParseDeviceIdError::Character(at)),
            }
        }
        let mut bytes = [0u8; 16];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            *byte = (pair[0] << 4) | pair[1];
        }
        Ok(DeviceId(bytes))
    }

    #[test]
    fn the_table_parser_agrees_with_the_book_on_every_one_byte_change() {
        let text = DeviceId::new_v7().to_string().into_bytes();
        assert_eq!(DeviceId::parse_bytes(&text), parse_by_the_book(&text));
        for at in 0..text.len() {
            for c in 0..=u8::MAX {
                let mut changed = text.clone();
                changed[at] = c;
                assert_eq!(
                    DeviceId::parse_bytes(&changed),
                    parse_by_the_book(&changed),
                    "byte {c:#04x} at {at}"
                );
            }
        }
        for len in [0, 35, 37, 64] {
            assert_eq!(
                DeviceId::parse_bytes(&vec![b'a'; len]),
                Err(ParseDeviceIdError::Length(len))
            );
        }
    }

    #[test]
    fn v7_ids_are_time_ordered_and_versioned() {
        let a = DeviceId::new_v7();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = DeviceId::new_v7();
        assert!(a < b);
        assert_eq!(a.to_uuid().get_version_num(), 7);
    }

    #[test]
    fn compare_is_total() {
        let id = DeviceId::new_v7().to_string();
        assert!(compare_device_ids(&id, id.clone()));
        assert!(!compare_device_ids(&id, ""));
        assert!(!compare_device_ids("", &id));
        assert!(compare_device_ids("", ""));
        assert!(!compare_device_ids(&id, &id[..35]));
        assert!(!compare_device_ids([0xffu8; 3], "\u{0}"));
        let a = DeviceId::new_v7();
        assert!(a.ct_eq(&a));
        assert!(!a.ct_eq(&DeviceId::new_v7()));
        for bit in 0..128 {
            let mut bytes = *a.as_bytes();
            bytes[bit / 8] ^= 1 << (bit % 8);
            assert!(!a.ct_eq(&DeviceId::from_bytes(bytes)), "bit {bit} ignored");
        }
    }

    #[test]
    fn serde_uses_text_for_json() {
        let id = DeviceId::new_v7();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<DeviceId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<DeviceId>("\"nope\"").is_err());
    }
}
