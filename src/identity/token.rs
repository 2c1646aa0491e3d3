//! The cookie token format: versioned, bound to its cookie and purpose, canonical.
//!
//! ```text
//! plain      the id's canonical text (36 characters); development only
//! signed     b64url( 0x01 | key_id:4 | id:16 | issued_at:8 | exp_flag:1 [| expires_at:8] | tag:16 )
//! sealed v2  b64url( 0x03 | key_id:4 | nonce:12 | AES-256-GCM-SIV(id | issued_at | exp_flag [| expires_at]) )
//! sealed v1  b64url( 0x02 | key_id:4 | nonce:24 | XChaCha20-Poly1305(same body) )   verified, never minted
//! ```
//!
//! Integers are big-endian; times are seconds since the Unix epoch. `exp_flag` is 0 (no
//! expiry, nothing follows) or 1 (an 8-byte expiry follows); any other value is a
//! rejection. The signed tag is keyed BLAKE3, truncated to 128 bits, over
//! `context | version | key_id | body`; the sealed AEAD's associated data is
//! `context | version | key_id`. `context` is the length-prefixed cookie name and purpose,
//! so a token minted for one cookie or purpose never verifies for another. Each mode,
//! cipher and purpose uses its own sub-key derived from the [`crate::Key`] with
//! `blake3::derive_key`. The base64 is URL-safe without padding, and only its canonical
//! form decodes (no stray trailing bits). The full specification, with test vectors, is
//! `docs/token-format.md`.
//!
//! Sealed tokens are minted with AES-256-GCM-SIV (RFC 8452) under a random 96-bit nonce:
//! it is misuse resistant (two tokens that happen to share a nonce reveal only whether
//! their plaintexts are equal, never the key), and with AES instructions it is several
//! times faster on a 25-byte body than the XChaCha20-Poly1305 of version 1, whose
//! Poly1305 set-up dominates such short messages. Version 1 tokens still verify, keep
//! their id, and are re-issued in version 2 ([`Token::legacy_format`]).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use aes_gcm_siv::Aes256GcmSiv;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
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
    /// The id encrypted with AES-256-GCM-SIV: neither readable nor forgeable. Tokens of
    /// the older XChaCha20-Poly1305 format still verify and are re-issued.
    Sealed,
}

/// The binary formats, one per version byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Signed,
    /// XChaCha20-Poly1305, 24-byte nonce: verified, never minted.
    SealedV1,
    /// AES-256-GCM-SIV, 12-byte nonce.
    SealedV2,
}

impl Format {
    fn from_version(version: u8) -> Option<Self> {
        match version {
            VERSION_SIGNED => Some(Format::Signed),
            VERSION_SEALED_V1 => Some(Format::SealedV1),
            VERSION_SEALED_V2 => Some(Format::SealedV2),
            _ => None,
        }
    }

    fn mode(self) -> Mode {
        match self {
            Format::Signed => Mode::Signed,
            Format::SealedV1 | Format::SealedV2 => Mode::Sealed,
        }
    }

    fn nonce_len(self) -> usize {
        match self {
            Format::Signed => 0,
            Format::SealedV1 => 24,
            Format::SealedV2 => 12,
        }
    }

    /// The two lengths a decoded token may have: without and with an expiry.
    fn valid_length(self, len: usize) -> bool {
        let without = HEADER_LEN + self.nonce_len() + BODY_LEN + TAG_LEN;
        len == without || len == without + EXPIRY_LEN
    }
}

const VERSION_SIGNED: u8 = 0x01;
const VERSION_SEALED_V1: u8 = 0x02;
const VERSION_SEALED_V2: u8 = 0x03;
const HEADER_LEN: usize = 5;
const TAG_LEN: usize = 16;
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
    /// Whether it is in an older format of its mode (sealed version 1, XChaCha20-Poly1305):
    /// it should be re-issued in the current one.
    pub legacy_format: bool,
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
    Sealed(Box<SealedCiphers>),
}

/// The cipher that mints (v2) and the legacy one that only verifies (v1), each under its
/// own sub-key.
struct SealedCiphers {
    v2: Aes256GcmSiv,
    v1: XChaCha20Poly1305,
    /// `context | header` of this key's v2 and v1 tokens, made once.
    aad_v2: Vec<u8>,
    aad_v1: Vec<u8>,
}

impl SealedCiphers {
    /// The associated data for a token with header `head`: `context | head`, from the
    /// cache when `head` is this key's own.
    fn aad<'a>(&'a self, context: &[u8], head: &[u8]) -> Cow<'a, [u8]> {
        let cached = match head.first() {
            Some(&VERSION_SEALED_V1) => &self.aad_v1,
            _ => &self.aad_v2,
        };
        if cached.len() == context.len() + head.len() && cached.ends_with(head) {
            Cow::Borrowed(cached)
        } else {
            Cow::Owned([context, head].concat())
        }
    }
}

/// A token body (at most `BODY_LEN + EXPIRY_LEN` bytes) on the stack.
struct Body {
    bytes: [u8; BODY_LEN + EXPIRY_LEN],
    len: usize,
}

impl Body {
    /// A copy of `src`, which is no longer than a body with an expiry.
    fn copy(src: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; BODY_LEN + EXPIRY_LEN];
        bytes.get_mut(..src.len())?.copy_from_slice(src);
        Some(Self {
            bytes,
            len: src.len(),
        })
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
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
                    let v1 = key.derive("actix-device 2026-11 sealed token v1", &context.purpose);
                    let v2 = key.derive("actix-device 2026-11 sealed token v2", &context.purpose);
                    let aad = |version: u8| {
                        [&context_bytes[..], &[version], &key.id().to_be_bytes()].concat()
                    };
                    Material::Sealed(Box::new(SealedCiphers {
                        v2: Aes256GcmSiv::new(&v2.into()),
                        v1: XChaCha20Poly1305::new(&v1.into()),
                        aad_v2: aad(VERSION_SEALED_V2),
                        aad_v1: aad(VERSION_SEALED_V1),
                    }))
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
        if let Material::Plain = primary.material {
            return id.to_string();
        }
        let mut body = Body {
            bytes: [0; BODY_LEN + EXPIRY_LEN],
            len: BODY_LEN,
        };
        body.bytes[..16].copy_from_slice(id.as_bytes());
        body.bytes[16..24].copy_from_slice(&now.to_be_bytes());
        if let Some(at) = expires_at {
            body.bytes[24] = 1;
            body.bytes[25..].copy_from_slice(&at.to_be_bytes());
            body.len += EXPIRY_LEN;
        }
        self.seal_body(primary.id, body.as_slice())
    }

    /// Authenticates (signed) or encrypts (sealed, current version, fresh random nonce) an
    /// arbitrary `body` under the primary key with `key_id` written in the header: a test
    /// hook for property tests and fuzzing of the fields behind the tag (a malformed expiry
    /// with a valid tag, say). Plain mode has no body and returns an empty string.
    #[doc(hidden)]
    #[must_use]
    pub fn seal_body(&self, key_id: u32, body: &[u8]) -> String {
        let (version, format) = match self.mode {
            Mode::Plain => return String::new(),
            Mode::Signed => (VERSION_SIGNED, Format::Signed),
            Mode::Sealed => (VERSION_SEALED_V2, Format::SealedV2),
        };
        let mut nonce = [0u8; 24];
        let nonce = &mut nonce[..format.nonce_len()];
        rand::thread_rng().fill_bytes(nonce);
        self.seal_body_with(version, key_id, nonce, body)
            .unwrap_or_default()
    }

    /// Like [`TokenCodec::seal_body`], with the version byte and nonce given: a test hook
    /// for deterministic test vectors and for minting legacy (sealed v1) tokens. `None` if
    /// `version` is not a format of this codec's mode or `nonce` has the wrong length (it
    /// is empty for signed tokens).
    #[doc(hidden)]
    #[must_use]
    pub fn seal_body_with(
        &self,
        version: u8,
        key_id: u32,
        nonce: &[u8],
        body: &[u8],
    ) -> Option<String> {
        let format = Format::from_version(version).filter(|f| f.mode() == self.mode)?;
        if nonce.len() != format.nonce_len() {
            return None;
        }
        let mut raw = Vec::with_capacity(HEADER_LEN + nonce.len() + body.len() + TAG_LEN);
        raw.push(version);
        raw.extend_from_slice(&key_id.to_be_bytes());
        raw.extend_from_slice(nonce);
        let body_start = raw.len();
        raw.extend_from_slice(body);
        let tag: [u8; TAG_LEN] = match &self.keys[0].material {
            Material::Plain => return None,
            Material::Signed(keyed) => signed_tag(keyed, &raw),
            Material::Sealed(ciphers) => {
                let aad = ciphers.aad(&self.context, &raw[..HEADER_LEN]);
                let (head, msg) = raw.split_at_mut(body_start);
                let nonce = &head[HEADER_LEN..];
                let sealed = match format {
                    Format::SealedV1 => {
                        ciphers
                            .v1
                            .encrypt_in_place_detached(XNonce::from_slice(nonce), &aad, msg)
                    }
                    _ => ciphers.v2.encrypt_in_place_detached(
                        aes_gcm_siv::Nonce::from_slice(nonce),
                        &aad,
                        msg,
                    ),
                };
                sealed.ok()?.into()
            }
        };
        raw.extend_from_slice(&tag);
        Some(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Verifies a cookie value at `now` (seconds since the epoch).
    ///
    /// The checks run in this order, and the first that fails is the reason: length,
    /// plain id (the only thing plain mode accepts; a wrong mode elsewhere), canonical
    /// base64url, known version byte, version of this mode, length of that version, known
    /// key id, tag, body fields, expiry.
    pub fn decode(&self, value: &[u8], now: u64) -> Result<Token, Rejected> {
        if value.len() > MAX_TOKEN_LEN {
            return Err(Rejected::TooLong);
        }
        if self.mode == Mode::Plain {
            return DeviceId::parse_bytes(value)
                .map(Token::plain)
                .map_err(|_| Rejected::Malformed);
        }
        if DeviceId::parse_bytes(value).is_ok() {
            return Err(Rejected::WrongMode);
        }
        // Decoded on the stack: 256 characters are at most 192 bytes.
        let mut buf = [0u8; MAX_TOKEN_LEN];
        let len = URL_SAFE_NO_PAD
            .decode_slice(value, &mut buf)
            .map_err(|_| Rejected::Malformed)?;
        let raw = &buf[..len];
        let (&version, rest) = raw.split_first().ok_or(Rejected::Malformed)?;
        let format = Format::from_version(version).ok_or(Rejected::UnknownVersion)?;
        if format.mode() != self.mode {
            return Err(Rejected::WrongMode);
        }
        if !format.valid_length(raw.len()) {
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
            .find_map(|key| self.open(key, format, raw).map(|body| (body, key.retired)))
            .ok_or(Rejected::BadTag)?;
        let (id, issued_at, expires_at) = parse_body(body.as_slice())?;
        self.check_time(
            Token {
                id,
                mode: self.mode,
                key_id: Some(key_id),
                issued_at: Some(issued_at),
                expires_at,
                retired_key: retired,
                legacy_format: format == Format::SealedV1,
            },
            now,
        )
    }

    /// The part of [`decode`](Self::decode) that depends on the time: a token verified
    /// earlier is still good at `now` only if neither its expiry nor the codec's lifetime
    /// has passed.
    pub fn check_time(&self, token: Token, now: u64) -> Result<Token, Rejected> {
        let Some(issued_at) = token.issued_at else {
            return Ok(token); // plain ids carry no dates
        };
        let expired = token.expires_at.is_some_and(|at| now >= at)
            || self
                .lifetime
                .is_some_and(|l| now >= issued_at.saturating_add(l.as_secs().max(1)));
        if expired {
            return Err(Rejected::Expired);
        }
        Ok(token)
    }

    /// Checks `raw`'s tag under `key` and returns the body; `raw` is of `format` (whose
    /// mode is this codec's) and has a valid length.
    fn open(&self, key: &CodecKey, format: Format, raw: &[u8]) -> Option<Body> {
        match &key.material {
            Material::Plain => None,
            Material::Signed(keyed) => {
                let (signed, tag) = raw.split_at(raw.len() - TAG_LEN);
                if bool::from(signed_tag(keyed, signed).ct_eq(tag)) {
                    Body::copy(&signed[HEADER_LEN..])
                } else {
                    None
                }
            }
            Material::Sealed(ciphers) => {
                let (head, rest) = raw.split_at(HEADER_LEN);
                let (nonce, sealed) = rest.split_at(format.nonce_len());
                let (msg, tag) = sealed.split_at(sealed.len() - TAG_LEN);
                let aad = ciphers.aad(&self.context, head);
                // A copy per key tried, so a failed attempt leaves nothing behind.
                let mut body = Body::copy(msg)?;
                let opened = match format {
                    Format::SealedV1 => ciphers.v1.decrypt_in_place_detached(
                        XNonce::from_slice(nonce),
                        &aad,
                        body.as_mut_slice(),
                        aes_gcm_siv::Tag::from_slice(tag),
                    ),
                    _ => ciphers.v2.decrypt_in_place_detached(
                        aes_gcm_siv::Nonce::from_slice(nonce),
                        &aad,
                        body.as_mut_slice(),
                        aes_gcm_siv::Tag::from_slice(tag),
                    ),
                };
                opened.ok().map(|()| body)
            }
        }
    }
}

impl Token {
    fn plain(id: DeviceId) -> Self {
        Token {
            id,
            mode: Mode::Plain,
            key_id: None,
            issued_at: None,
            expires_at: None,
            retired_key: false,
            legacy_format: false,
        }
    }
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

    fn body(id: DeviceId, at: u64) -> Vec<u8> {
        [&id.as_bytes()[..], &at.to_be_bytes(), &[0]].concat()
    }

    #[test]
    fn sealed_tokens_are_minted_in_v2_and_v1_still_verifies() {
        let c = codec(Mode::Sealed, &Key::generate());
        let id = DeviceId::new_v7();
        let v2 = c.encode(id, 7);
        assert_eq!(v2.len(), 78, "5 + 12 + 25 + 16 bytes in base64url");
        assert_eq!(URL_SAFE_NO_PAD.decode(&v2).unwrap()[0], VERSION_SEALED_V2);
        let token = c.decode(v2.as_bytes(), 8).unwrap();
        assert!(!token.legacy_format);

        let v1 = c
            .seal_body_with(
                VERSION_SEALED_V1,
                c.primary_key_id(),
                &[4; 24],
                &body(id, 7),
            )
            .unwrap();
        assert_eq!(v1.len(), 94);
        let token = c.decode(v1.as_bytes(), 8).unwrap();
        assert_eq!((token.id, token.issued_at), (id, Some(7)));
        assert!(token.legacy_format && !token.retired_key);
    }

    #[test]
    fn sealed_versions_do_not_verify_as_each_other() {
        let c = codec(Mode::Sealed, &Key::generate());
        let id = DeviceId::new_v7();
        // A v1 token relabelled v2 has the wrong length for v2; a v2 token's bytes
        // under a v1 header of the right length fail the tag.
        let v1 = c
            .seal_body_with(
                VERSION_SEALED_V1,
                c.primary_key_id(),
                &[4; 24],
                &body(id, 7),
            )
            .unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&v1).unwrap();
        raw[0] = VERSION_SEALED_V2;
        let relabelled = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(c.decode(relabelled.as_bytes(), 8), Err(Rejected::Malformed));
        let mut raw = URL_SAFE_NO_PAD.decode(c.encode(id, 7)).unwrap();
        raw[0] = VERSION_SEALED_V1;
        raw.extend_from_slice(&[0; 12]);
        let relabelled = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(c.decode(relabelled.as_bytes(), 8), Err(Rejected::BadTag));
    }

    #[test]
    fn versions_of_another_mode_are_wrong_mode() {
        let key = Key::generate();
        let (signed, sealed) = (codec(Mode::Signed, &key), codec(Mode::Sealed, &key));
        let id = DeviceId::new_v7();
        let v1 = sealed
            .seal_body_with(
                VERSION_SEALED_V1,
                sealed.primary_key_id(),
                &[1; 24],
                &body(id, 1),
            )
            .unwrap();
        for token in [sealed.encode(id, 1), v1] {
            assert_eq!(signed.decode(token.as_bytes(), 2), Err(Rejected::WrongMode));
        }
        let token = signed.encode(id, 1);
        assert_eq!(sealed.decode(token.as_bytes(), 2), Err(Rejected::WrongMode));
        assert_eq!(
            sealed.decode(id.to_string().as_bytes(), 2),
            Err(Rejected::WrongMode)
        );
    }

    #[test]
    fn seal_body_with_refuses_other_modes_and_bad_nonces() {
        let key = Key::generate();
        let (signed, sealed) = (codec(Mode::Signed, &key), codec(Mode::Sealed, &key));
        let b = body(DeviceId::new_v7(), 1);
        assert!(signed
            .seal_body_with(VERSION_SEALED_V2, 1, &[0; 12], &b)
            .is_none());
        assert!(signed
            .seal_body_with(VERSION_SIGNED, 1, &[0; 1], &b)
            .is_none());
        assert!(sealed.seal_body_with(VERSION_SIGNED, 1, &[], &b).is_none());
        assert!(sealed
            .seal_body_with(VERSION_SEALED_V2, 1, &[0; 24], &b)
            .is_none());
        assert!(sealed.seal_body_with(0x04, 1, &[0; 12], &b).is_none());
        assert!(signed.seal_body_with(VERSION_SIGNED, 1, &[], &b).is_some());
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
