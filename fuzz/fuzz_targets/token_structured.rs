//! Structure-aware: a real token, minted here (signed, sealed v2, or legacy sealed v1),
//! then changed field by field (version, key id, nonce, body, tag, length). A token that is changed in any way must be rejected; an
//! unchanged one must verify to the same id, and a signed one re-encodes to the same bytes.
#![no_main]

use std::sync::OnceLock;

use actix_device::token::{TokenCodec, TokenContext};
use actix_device::{DeviceId, Key, Keyring, Mode};
use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Change {
    None,
    Version(u8),
    KeyId([u8; 4]),
    Xor { at: u8, mask: u8 },
    Truncate(u8),
    Append(Vec<u8>),
    ReplaceTail(Vec<u8>),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Format {
    Signed,
    Sealed,
    SealedV1,
}

#[derive(Debug, Arbitrary)]
struct Input {
    format: Format,
    id: [u8; 16],
    issued_at: u32,
    change: Change,
}

fn codecs() -> &'static (TokenCodec, TokenCodec) {
    static C: OnceLock<(TokenCodec, TokenCodec)> = OnceLock::new();
    C.get_or_init(|| {
        let ring = Keyring::new(Key::from_secret(&[42; 32]).unwrap());
        let ctx = TokenContext::new("device_id", "device");
        (
            TokenCodec::new(&ring, Mode::Signed, &ctx),
            TokenCodec::new(&ring, Mode::Sealed, &ctx),
        )
    })
}

fuzz_target!(|input: Input| {
    let (signed, sealed) = codecs();
    let codec = if matches!(input.format, Format::Signed) { signed } else { sealed };
    let id = DeviceId::from_bytes(input.id);
    let now = u64::from(input.issued_at);
    let text = match input.format {
        Format::SealedV1 => {
            let body = [&input.id[..], &now.to_be_bytes(), &[0]].concat();
            let nonce = [&input.id[..], &input.id[..8]].concat();
            codec.seal_body_with(0x02, codec.primary_key_id(), &nonce, &body).unwrap()
        }
        _ => codec.encode(id, now),
    };
    let original = URL_SAFE_NO_PAD.decode(&text).unwrap();
    let mut raw = original.clone();
    match &input.change {
        Change::None => {}
        Change::Version(v) => raw[0] = *v,
        Change::KeyId(k) => raw[1..5].copy_from_slice(k),
        Change::Xor { at, mask } => {
            let i = usize::from(*at) % raw.len();
            raw[i] ^= *mask;
        }
        Change::Truncate(n) => raw.truncate(usize::from(*n) % raw.len()),
        Change::Append(extra) => raw.extend_from_slice(extra),
        Change::ReplaceTail(tail) => {
            let keep = raw.len().saturating_sub(tail.len());
            raw.truncate(keep);
            raw.extend_from_slice(tail);
        }
    }
    let mutated = URL_SAFE_NO_PAD.encode(&raw);
    let result = codec.decode(mutated.as_bytes(), now);
    if raw == original {
        let token = result.expect("an unchanged token verifies");
        assert_eq!(token.id, id);
        assert_eq!(token.issued_at, Some(now));
        assert_eq!(token.legacy_format, matches!(input.format, Format::SealedV1));
        if matches!(input.format, Format::Signed) {
            assert_eq!(codec.encode(token.id, now), mutated, "canonical: re-encodes identically");
        }
    } else {
        assert!(result.is_err(), "a changed token verified: {:?}", input.change);
    }
});
