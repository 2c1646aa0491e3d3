//! The cookie token format: versioned, bound to its cookie and purpose, canonical.
//!
//! ```text
//! plain   the id's canonical text (36 characters); development only
//! signed  b64url( 0x01 | key_id:4 | id:16 | issued_at:8 | exp_flag:1 [| expires_at:8] | tag:16 )
//! sealed  b64url( 0x02 | key_id:4 | nonce:24 | XChaCha20-Poly1305(id | issued_at | exp_flag [| expires_at]) )
//! ```
//!
//! Integers are big-endian; times are seconds since the Unix epoch. `exp_flag` is 0 (no
//! expiry, nothing follows) or 1 (an 8-byte expiry follows); any other value is a
//! rejection. The signed tag is keyed BLAKE3, truncated to 128 bits, over
//! `context | version | key_id | body`; the sealed AEAD's associated data is
//! `context | version | key_id`. `context` is the length-prefixed cookie name and purpose,
//! so a token minted for one cookie or purpose never verifies for another. Each mode and
//! purpose uses its own sub-key derived from the [`Key`](crate::Key) with
//! `blake3::derive_key`. The base64 is URL-safe without padding, and only its canonical
//! form decodes (no stray trailing bits).

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::identity::device_id::DeviceId;
use crate::identity::keyring::{Key, Keyring};

/// How the device id is carried in the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Mode {
    /// The id in clear, unauthenticated: anyone can pick any id. Development only.
    Plain,
    /// The id in clear with a keyed BLAKE3 tag: readable by the client, not forgeable.
    /// The default.
    #[default]
    Signed,
    /// The id encrypted with XChaCha20-Poly1305: neither readable nor forgeable.
    Sealed,
}

impl Mode {
    fn version(self) -> Option<u8> {
        match self {
            Mode::Plain => None,
            Mode::Signed => Some(VERSION_SIGNED),
            Mode::Sealed => Some(VERSION_SEALED),
        }
    }
}

const VERSION_SIGNED: u8 = 0x01;
const VERSION_SEALED: u8 = 0x02;
const HEADER_LEN: usize = 5;
const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const BODY_LEN: usize = 16 + 8 + 1;
const EXPIRY_LEN: usize = 8;
/// The longest cookie value the codec will look at, in bytes; longer is rejected unread.
pub const MAX_TOKEN_LEN: usize = 256;

/// A verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Token {
    /// The device id it carries.
    pub id: DeviceId,
    /// The mode it was minted in.
    pub mode: Mode,
    /// The id of the key that verified it (`None` in plain mode).
    pub key_id: Option<u32>,
    /// When it was minted, in seconds since the epoch (`None` in plain mode).
    pub issued_at: Option<u64>,
    /// Its absolute expiry, in seconds since the epoch, if it has one.
    pub expires_at: Option<u64>,
    /// Whether a retired (verify-only) key verified it: it should be re-issued.
    pub retired_key: bool,
}

/// Why a cookie value was not accepted. The reason is logged and counted; the value
/// itself never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token too long")]
    TooLong,
    /// Not canonical base64url, wrong length, or a malformed field.
    #[error("malformed token")]
    Malformed,
    /// A version byte this build does not know.
    #[error("unknown token version")]
    UnknownVersion,
    /// A well-formed token of another mode (a plain id sent to a signed cookie, say).
    #[error("token of another mode")]
    WrongMode,
    /// No key in the keyring has the token's key id.
    #[error("unknown key id")]
    UnknownKey,
    /// The tag does not verify: tampered, forged, wrong key, or another cookie or purpose.
    #[error("bad tag")]
    BadTag,
    /// Past its absolute expiry.
    #[error("expired")]
    Expired,
}

impl Rejected {
    /// Every reason, in a fixed order (for counters).
    pub const ALL: [Rejected; 7] = [
        Rejected::TooLong,
        Rejected::Malformed,
        Rejected::UnknownVersion,
        Rejected::WrongMode,
        Rejected::UnknownKey,
        Rejected::BadTag,
        Rejected::Expired,
    ];

    /// A stable machine-readable name (`bad_tag`, `expired`, ...).
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Rejected::TooLong => "too_long",
            Rejected::Malformed => "malformed",
            Rejected::UnknownVersion => "unknown_version",
            Rejected::WrongMode => "wrong_mode",
            Rejected::UnknownKey => "unknown_key",
            Rejected::BadTag => "bad_tag",
            Rejected::Expired => "expired",
        }
    }

    pub(crate) fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// What a token is bound to: the cookie it travels in and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenContext {
    /// The cookie name, exactly as set.
    pub cookie_name: String,
    /// What the token is for (`"device"`, `"session"`, ...).
    pub purpose: String,
}

impl TokenContext {
    /// A context for `cookie_name` and `purpose`.
    #[must_use]
    pub fn new(cookie_name: impl Into<String>, purpose: impl Into<String>) -> Self {
        Self {
            cookie_name: cookie_name.into(),
            purpose: purpose.into(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [&self.cookie_name, &self.purpose] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

// One per key, built once: the pre-keyed hasher stays inline, so each request clones it
// without chasing a pointer.
#[allow(clippy::large_enum_variant)]
enum Material {
    Plain,
    Signed(blake3::Hasher),
    Sealed(Box<XChaCha20Poly1305>),
}

struct CodecKey {
    id: u32,
    retired: bool,
    material: Material,
}

/// Mints and verifies tokens for one mode, keyring and context. Build it once (sub-keys
/// are derived and ciphers set up here) and share it.
pub struct TokenCodec {
    mode: Mode,
    context: Vec<u8>,
    keys: Vec<CodecKey>,
    lifetime: Option<Duration>,
}

impl fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCodec")
            .field("mode", &self.mode)
            .field(
                "key_ids",
                &self.keys.iter().map(|k| k.id).collect::<Vec<_>>(),
            )
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl TokenCodec {
    /// A codec minting under `keyring`'s primary key and verifying under all its keys.
    #[must_use]
    pub fn new(keyring: &Keyring, mode: Mode, context: &TokenContext) -> Self {
        let context_bytes = context.bytes();
        let make = |key: &Key, retired: bool| CodecKey {
            id: key.id(),
            retired,
            material: match mode {
                Mode::Plain => Material::Plain,
                Mode::Signed => {
                    let sub = key.derive("actix-device 2026-11 signed token v1", &context.purpose);
                    let mut hasher = blake3::Hasher::new_keyed(&sub);
                    hasher.update(&context_bytes);
                    Material::Signed(hasher)
                }
                Mode::Sealed => {
                    let sub = key.derive("actix-device 2026-11 sealed token v1", &context.purpose);
                    Material::Sealed(Box::new(XChaCha20Poly1305::new(&sub.into())))
                }
            },
        };
        let mut keys = vec![make(keyring.primary(), false)];
        keys.extend(keyring.retired().iter().map(|k| make(k, true)));
        Self {
            mode,
            context: context_bytes,
            keys,
            lifetime: None,
        }
    }

    /// Gives every minted token an absolute expiry `lifetime` after issue, and rejects
    /// tokens older than that even if they carry no expiry (or a later one).
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The primary key's id.
    #[must_use]
    pub fn primary_key_id(&self) -> u32 {
        self.keys[0].id
    }

    /// Mints a token for `id`, issued at `now` (seconds since the epoch).
    #[must_use]
    pub fn encode(&self, id: DeviceId, now: u64) -> String {
        let expires_at = self
            .lifetime
            .map(|l| now.saturating_add(l.as_secs().max(1)));
        let primary = &self.keys[0];
        let mut body = Vec::with_capacity(BODY_LEN + EXPIRY_LEN);
        body.extend_from_slice(id.as_bytes());
        body.extend_from_slice(&now.to_be_bytes());
        match expires_at {
            None => body.push(0),
            Some(at) => {
                body.push(1);
                body.extend_from_slice(&at.to_be_bytes());
            }
        }
        if let Material::Plain = primary.material {
            return id.to_string();
        }
        self.seal_body(primary.id, &body)
    }

    /// Authenticates (signed) or encrypts (sealed) an arbitrary `body` under the primary
    /// key with `key_id` written in the header: a test hook for property tests and fuzzing
    /// of the fields behind the tag (a malformed expiry with a valid tag, say). Plain mode
    /// has no body and returns an empty string.
    #[doc(hidden)]
    #[must_use]
    pub fn seal_body(&self, key_id: u32, body: &[u8]) -> String {
        let primary = &self.keys[0];
        let header = |version: u8| {
            let mut h = [version, 0, 0, 0, 0];
            h[1..].copy_from_slice(&key_id.to_be_bytes());
            h
        };
        match &primary.material {
            Material::Plain => String::new(),
            Material::Signed(keyed) => {
                let head = header(VERSION_SIGNED);
                let mut raw = Vec::with_capacity(HEADER_LEN + body.len() + TAG_LEN);
                raw.extend_from_slice(&head);
                raw.extend_from_slice(body);
                let tag = signed_tag(keyed, &raw);
                raw.extend_from_slice(&tag);
                URL_SAFE_NO_PAD.encode(raw)
            }
            Material::Sealed(cipher) => {
                let head = header(VERSION_SEALED);
                let mut nonce = [0u8; NONCE_LEN];
                rand::thread_rng().fill_bytes(&mut nonce);
                let aad = [&self.context[..], &head].concat();
                let sealed = cipher
                    .encrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: body,
                            aad: &aad,
                        },
                    )
                    .unwrap_or_else(|_| unreachable!("encryption of a short body cannot fail"));
                let mut raw = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
                raw.extend_from_slice(&head);
                raw.extend_from_slice(&nonce);
                raw.extend_from_slice(&sealed);
                URL_SAFE_NO_PAD.encode(raw)
            }
        }
    }

    /// Verifies a cookie value at `now` (seconds since the epoch).
    pub fn decode(&self, value: &[u8], now: u64) -> Result<Token, Rejected> {
        if value.len() > MAX_TOKEN_LEN {
            return Err(Rejected::TooLong);
        }
        let Some(want_version) = self.mode.version() else {
            return DeviceId::parse_bytes(value)
                .map(|id| Token {
                    id,
                    mode: Mode::Plain,
                    key_id: None,
                    issued_at: None,
                    expires_at: None,
                    retired_key: false,
                })
                .map_err(|_| Rejected::Malformed);
        };
        if DeviceId::parse_bytes(value).is_ok() {
            return Err(Rejected::WrongMode);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| Rejected::Malformed)?;
        let (&version, rest) = raw.split_first().ok_or(Rejected::Malformed)?;
        match version {
            VERSION_SIGNED | VERSION_SEALED if version != want_version => {
                return Err(Rejected::WrongMode)
            }
            VERSION_SIGNED | VERSION_SEALED => {}
            _ => return Err(Rejected::UnknownVersion),
        }
        if !valid_length(self.mode, raw.len()) {
            return Err(Rejected::Malformed);
        }
        let (key_id, _) = rest.split_first_chunk::<4>().ok_or(Rejected::Malformed)?;
        let key_id = u32::from_be_bytes(*key_id);
        let mut candidates = self.keys.iter().filter(|k| k.id == key_id).peekable();
        if candidates.peek().is_none() {
            return Err(Rejected::UnknownKey);
        }
        // Several keys may share a 32-bit id (by chance): try each.
        let (body, retired) = candidates
            .find_map(|key| self.open(key, &raw).map(|body| (body, key.retired)))
            .ok_or(Rejected::BadTag)?;
        let (id, issued_at, expires_at) = parse_body(&body)?;
        let expired = expires_at.is_some_and(|at| now >= at)
            || self
                .lifetime
                .is_some_and(|l| now >= issued_at.saturating_add(l.as_secs().max(1)));
        if expired {
            return Err(Rejected::Expired);
        }
        Ok(Token {
            id,
            mode: self.mode,
            key_id: Some(key_id),
            issued_at: Some(issued_at),
            expires_at,
            retired_key: retired,
        })
    }

    /// Checks `raw`'s tag under `key` and returns the body; `raw` has a valid length.
    fn open(&self, key: &CodecKey, raw: &[u8]) -> Option<Vec<u8>> {
        match &key.material {
            Material::Plain => None,
            Material::Signed(keyed) => {
                let (signed, tag) = raw.split_at(raw.len() - TAG_LEN);
                bool::from(signed_tag(keyed, signed).ct_eq(tag))
                    .then(|| signed[HEADER_LEN..].to_vec())
            }
            Material::Sealed(cipher) => {
                let (head, rest) = raw.split_at(HEADER_LEN);
                let (nonce, sealed) = rest.split_at(NONCE_LEN);
                let aad = [&self.context[..], head].concat();
                cipher
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: sealed,
                            aad: &aad,
                        },
                    )
                    .ok()
            }
        }
    }
}

/// The two lengths a decoded token of `mode` may have: without and with an expiry.
fn valid_length(mode: Mode, len: usize) -> bool {
    let without = match mode {
        Mode::Plain => return false,
        Mode::Signed => HEADER_LEN + BODY_LEN + TAG_LEN,
        Mode::Sealed => HEADER_LEN + NONCE_LEN + BODY_LEN + TAG_LEN,
    };
    len == without || len == without + EXPIRY_LEN
}

fn signed_tag(keyed: &blake3::Hasher, signed: &[u8]) -> [u8; TAG_LEN] {
    let mut hasher = keyed.clone();
    hasher.update(signed);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&hasher.finalize().as_bytes()[..TAG_LEN]);
    tag
}

/// `id | issued_at | exp_flag [| expires_at]`: anything else is malformed, never "no expiry".
fn parse_body(body: &[u8]) -> Result<(DeviceId, u64, Option<u64>), Rejected> {
    let (id, rest) = body.split_first_chunk::<16>().ok_or(Rejected::Malformed)?;
    let (issued_at, rest) = rest.split_first_chunk::<8>().ok_or(Rejected::Malformed)?;
    let expires_at = match rest {
        [0] => None,
        [1, at @ ..] => Some(u64::from_be_bytes(
            <[u8; 8]>::try_from(at).map_err(|_| Rejected::Malformed)?,
        )),
        _ => return Err(Rejected::Malformed),
    };
    Ok((
        DeviceId::from_bytes(*id),
        u64::from_be_bytes(*issued_at),
        expires_at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(mode: Mode, key: &Key) -> TokenCodec {
        TokenCodec::new(
            &Keyring::new(key.clone()),
            mode,
            &TokenContext::new("device_id", "device"),
        )
    }

    #[test]
    fn every_mode_round_trips() {
        let key = Key::generate();
        for mode in [Mode::Plain, Mode::Signed, Mode::Sealed] {
            let c = codec(mode, &key);
            let id = DeviceId::new_v7();
            let text = c.encode(id, 1_000);
            let token = c.decode(text.as_bytes(), 1_001).unwrap();
            assert_eq!(token.id, id);
            assert_eq!(token.mode, mode);
            assert!(text.len() <= MAX_TOKEN_LEN);
        }
    }

    #[test]
    fn sealed_tokens_hide_the_id() {
        let c = codec(Mode::Sealed, &Key::generate());
        let id = DeviceId::new_v7();
        let raw = URL_SAFE_NO_PAD.decode(c.encode(id, 5)).unwrap();
        assert!(!raw.windows(16).any(|w| w == id.as_bytes()));
        assert_ne!(c.encode(id, 5), c.encode(id, 5), "nonces are fresh");
    }

    #[test]
    fn malformed_expiry_flag_is_rejected_not_absent() {
        assert_eq!(parse_body(&[0; 25]).map(|b| b.2), Ok(None));
        let mut body = [0u8; 25];
        body[24] = 2;
        assert_eq!(parse_body(&body), Err(Rejected::Malformed));
        let mut body = vec![0u8; 25];
        body[24] = 1;
        assert_eq!(parse_body(&body), Err(Rejected::Malformed));
        body.extend_from_slice(&[0; 7]);
        assert_eq!(parse_body(&body), Err(Rejected::Malformed));
        body.push(9);
        assert_eq!(parse_body(&body).map(|b| b.2), Ok(Some(9)));
    }

    #[test]
    fn lifetime_sets_and_enforces_expiry() {
        let c = codec(Mode::Signed, &Key::generate()).with_lifetime(Some(Duration::from_secs(60)));
        let text = c.encode(DeviceId::new_v7(), 1_000);
        assert_eq!(
            c.decode(text.as_bytes(), 1_059).unwrap().expires_at,
            Some(1_060)
        );
        assert_eq!(c.decode(text.as_bytes(), 1_060), Err(Rejected::Expired));
    }
}
