//! Properties of everything that reads untrusted bytes, each over 10,000 generated cases
//! (`PROPTEST_CASES` overrides). The token codec is checked the way token libraries are:
//! every mode round-trips, and every single-bit flip, truncation, extension, wrong key,
//! wrong context, malformed field, expired or non-canonical token is rejected. Sealed
//! tokens are checked in both formats: the current one (v2, AES-256-GCM-SIV) and the
//! legacy one that still verifies (v1, XChaCha20-Poly1305).

use std::time::Duration;

use actix_device::cookie_header::{values_named, HeaderLimits};
use actix_device::token::{TokenCodec, TokenContext, MAX_TOKEN_LEN};
use actix_device::{DeviceId, Key, Keyring, Mode, Rejected};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn key(seed: u8) -> Key {
    Key::from_secret(&[seed; 32]).unwrap()
}

fn codec(mode: Mode, k: &Key) -> TokenCodec {
    TokenCodec::new(
        &Keyring::new(k.clone()),
        mode,
        &TokenContext::new("device_id", "device"),
    )
}

/// A token format a codec verifies: signed, sealed (v2, what `encode` mints) and the
/// legacy sealed v1 (minted here through the `seal_body_with` test hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Signed,
    Sealed,
    SealedV1,
}

impl Format {
    fn mode(self) -> Mode {
        match self {
            Format::Signed => Mode::Signed,
            Format::Sealed | Format::SealedV1 => Mode::Sealed,
        }
    }
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![
        Just(Format::Signed),
        Just(Format::Sealed),
        Just(Format::SealedV1)
    ]
}

/// `id | issued_at | exp_flag [| expires_at]`.
fn body(id: DeviceId, at: u64, expires_at: Option<u64>) -> Vec<u8> {
    let mut body = id.as_bytes().to_vec();
    body.extend_from_slice(&at.to_be_bytes());
    match expires_at {
        None => body.push(0),
        Some(e) => {
            body.push(1);
            body.extend_from_slice(&e.to_be_bytes());
        }
    }
    body
}

/// Tags or seals `body` under `c`'s primary key in format `f`, with `key_id` in the header.
fn seal(c: &TokenCodec, f: Format, key_id: u32, body: &[u8]) -> String {
    match f {
        Format::SealedV1 => {
            let mut nonce = [0u8; 24];
            nonce[..body.len().min(24)].copy_from_slice(&body[..body.len().min(24)]);
            nonce[23] ^= 0x5a;
            c.seal_body_with(0x02, key_id, &nonce, body).unwrap()
        }
        _ => c.seal_body(key_id, body),
    }
}

/// A token for `id` issued at `at`, as `c` would mint it in format `f`.
fn mint(c: &TokenCodec, f: Format, id: DeviceId, at: u64) -> String {
    match f {
        Format::SealedV1 => seal(c, f, c.primary_key_id(), &body(id, at, None)),
        _ => c.encode(id, at),
    }
}

fn id() -> impl Strategy<Value = DeviceId> {
    any::<[u8; 16]>().prop_map(DeviceId::from_bytes)
}

thread_local! {
    static SIGNED: TokenCodec = codec(Mode::Signed, &key(1));
    static SEALED: TokenCodec = codec(Mode::Sealed, &key(1));
    static PLAIN: TokenCodec = codec(Mode::Plain, &key(1));
}

fn with_codec<T>(mode: Mode, f: impl FnOnce(&TokenCodec) -> T) -> T {
    match mode {
        Mode::Signed => SIGNED.with(f),
        Mode::Sealed => SEALED.with(f),
        _ => PLAIN.with(f),
    }
}

proptest! {
    #![proptest_config(cases())]

    /// 1. Every mode round-trips any id and issue time.
    #[test]
    fn every_mode_round_trips(id in id(), at in 0u64..u64::MAX / 2, m in prop_oneof![Just(Mode::Plain), Just(Mode::Signed), Just(Mode::Sealed)]) {
        with_codec(m, |c| {
            let token = c.encode(id, at);
            let got = c.decode(token.as_bytes(), at).unwrap();
            prop_assert_eq!(got.id, id);
            if m != Mode::Plain {
                prop_assert_eq!(got.issued_at, Some(at));
            }
            prop_assert!(token.len() <= MAX_TOKEN_LEN);
            Ok(())
        })?;
    }

    /// 1b. Sealed v1 tokens verify, keep their id and time, and ask to be re-issued;
    /// v2 and signed tokens do not.
    #[test]
    fn legacy_sealed_tokens_verify_and_ask_for_reissue(id in id(), at in 0u64..u64::MAX / 2, f in format()) {
        with_codec(f.mode(), |c| {
            let got = c.decode(mint(c, f, id, at).as_bytes(), at).unwrap();
            prop_assert_eq!((got.id, got.issued_at), (id, Some(at)));
            prop_assert_eq!(got.legacy_format, f == Format::SealedV1);
            prop_assert!(!got.retired_key);
            Ok(())
        })?;
    }

    /// 2. Every single-bit flip of the token's bytes is rejected (all bits, not a sample).
    #[test]
    fn every_single_bit_flip_is_rejected(id in id(), f in format()) {
        with_codec(f.mode(), |c| {
            let raw = URL_SAFE_NO_PAD.decode(mint(c, f, id, NOW)).unwrap();
            for bit in 0..raw.len() * 8 {
                let mut flipped = raw.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let text = URL_SAFE_NO_PAD.encode(&flipped);
                prop_assert!(c.decode(text.as_bytes(), NOW).is_err(), "bit {} accepted", bit);
            }
            Ok(())
        })?;
    }

    /// 3. Every truncation is rejected, of the bytes and of the text.
    #[test]
    fn every_truncation_is_rejected(id in id(), f in format()) {
        with_codec(f.mode(), |c| {
            let text = mint(c, f, id, NOW);
            let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
            for len in 0..raw.len() {
                let t = URL_SAFE_NO_PAD.encode(&raw[..len]);
                prop_assert!(c.decode(t.as_bytes(), NOW).is_err());
            }
            for len in 0..text.len() {
                prop_assert!(c.decode(&text.as_bytes()[..len], NOW).is_err());
            }
            Ok(())
        })?;
    }

    /// 4. Any appended byte is rejected.
    #[test]
    fn any_appended_byte_is_rejected(id in id(), f in format(), extra in any::<u8>(), more in proptest::collection::vec(any::<u8>(), 0..8)) {
        with_codec(f.mode(), |c| {
            let mut raw = URL_SAFE_NO_PAD.decode(mint(c, f, id, NOW)).unwrap();
            raw.push(extra);
            raw.extend_from_slice(&more);
            let t = URL_SAFE_NO_PAD.encode(&raw);
            prop_assert!(c.decode(t.as_bytes(), NOW).is_err());
            Ok(())
        })?;
    }

    /// 5. A token under another key is rejected.
    #[test]
    fn wrong_key_is_rejected(id in id(), f in format(), seed in 2u8..=255) {
        let other = codec(f.mode(), &key(seed));
        let token = mint(&other, f, id, NOW);
        with_codec(f.mode(), |c| {
            let err = c.decode(token.as_bytes(), NOW).unwrap_err();
            prop_assert!(matches!(err, Rejected::UnknownKey | Rejected::BadTag), "{:?}", err);
            Ok(())
        })?;
    }

    /// 6. A token for another cookie name or purpose is rejected.
    #[test]
    fn other_cookie_or_purpose_is_rejected(id in id(), f in format(), name in "[a-z_]{1,12}", purpose in "[a-z]{1,10}") {
        prop_assume!(name != "device_id" || purpose != "device");
        let other = TokenCodec::new(&Keyring::new(key(1)), f.mode(), &TokenContext::new(name, purpose));
        let token = mint(&other, f, id, NOW);
        with_codec(f.mode(), |c| {
            prop_assert_eq!(c.decode(token.as_bytes(), NOW), Err(Rejected::BadTag));
            Ok(())
        })?;
    }

    /// 7. A retired key's token is accepted (and marked for re-issue); once the key is
    /// removed it is rejected.
    #[test]
    fn retired_key_accepted_removed_key_rejected(id in id(), f in format(), seed in 2u8..=255) {
        let old = mint(&codec(f.mode(), &key(seed)), f, id, NOW);
        let rotated = TokenCodec::new(&Keyring::new(key(1)).with_retired(key(seed)), f.mode(), &TokenContext::new("device_id", "device"));
        let token = rotated.decode(old.as_bytes(), NOW).unwrap();
        prop_assert_eq!(token.id, id);
        prop_assert!(token.retired_key);
        let fresh = rotated.decode(rotated.encode(id, NOW).as_bytes(), NOW).unwrap();
        prop_assert!(!fresh.retired_key && !fresh.legacy_format);
        with_codec(f.mode(), |c| {
            prop_assert!(c.decode(old.as_bytes(), NOW).is_err());
            Ok(())
        })?;
    }

    /// 8. A malformed expiry field behind a valid tag is rejected, never read as absent;
    /// an unknown key id is rejected.
    #[test]
    fn malformed_expiry_or_key_id_is_rejected(id in id(), f in format(), flag in 2u8..=255, cut in 1usize..8, key_id in any::<u32>()) {
        with_codec(f.mode(), |c| {
            let mut body = id.as_bytes().to_vec();
            body.extend_from_slice(&NOW.to_be_bytes());
            let primary = c.primary_key_id();
            // flag byte out of range
            let mut bad = body.clone();
            bad.push(flag);
            prop_assert_eq!(c.decode(seal(c, f, primary, &bad).as_bytes(), NOW), Err(Rejected::Malformed));
            // flag 1 with a short expiry
            let mut short = body.clone();
            short.push(1);
            short.extend_from_slice(&vec![0xff; 8 - cut]);
            prop_assert!(c.decode(seal(c, f, primary, &short).as_bytes(), NOW).is_err());
            // flag 0 followed by an expiry
            let mut extra = body.clone();
            extra.push(0);
            extra.extend_from_slice(&[0; 8]);
            prop_assert_eq!(c.decode(seal(c, f, primary, &extra).as_bytes(), NOW), Err(Rejected::Malformed));
            // a well-formed body under a key id the keyring lacks
            prop_assume!(key_id != primary);
            let mut good = body.clone();
            good.push(0);
            prop_assert_eq!(c.decode(seal(c, f, key_id, &good).as_bytes(), NOW), Err(Rejected::UnknownKey));
            Ok(())
        })?;
    }

    /// 9. An expired token is rejected, whether by its own expiry or by the lifetime.
    #[test]
    fn expired_is_rejected(id in id(), f in format(), life in 1u64..1_000_000, late in 0u64..1_000_000) {
        let c = codec(f.mode(), &key(1)).with_lifetime(Some(Duration::from_secs(life)));
        let token = mint(&c, f, id, NOW);
        prop_assert!(c.decode(token.as_bytes(), NOW + life - 1).is_ok());
        prop_assert_eq!(c.decode(token.as_bytes(), NOW + life + late), Err(Rejected::Expired));
        let body = body(id, NOW, Some(NOW + life));
        with_codec(f.mode(), |plain_life| {
            let t = seal(plain_life, f, plain_life.primary_key_id(), &body);
            prop_assert_eq!(plain_life.decode(t.as_bytes(), NOW + life + late), Err(Rejected::Expired));
            Ok(())
        })?;
    }

    /// 10. Non-canonical base64 of a valid token is rejected: stray trailing bits, padding,
    /// the standard alphabet.
    #[test]
    fn non_canonical_base64_is_rejected(id in id(), f in format(), trailing in 1u8..16) {
        with_codec(f.mode(), |c| {
            let text = mint(c, f, id, NOW);
            let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
            // The last character carries unused low bits when 8*len is not a multiple of 6.
            let unused = (6 - (raw.len() * 8) % 6) % 6;
            if unused > 0 {
                let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let mut bytes = text.clone().into_bytes();
                let last = bytes.len() - 1;
                let pos = alphabet.iter().position(|&b| b == bytes[last]).unwrap();
                let mask = (1u8 << unused) - 1;
                let tweaked = (pos as u8 & !mask) | (trailing & mask).max(1);
                bytes[last] = alphabet[usize::from(tweaked)];
                prop_assert!(c.decode(&bytes, NOW).is_err(), "stray trailing bits accepted");
            }
            let padded = URL_SAFE.encode(&raw);
            if padded != text {
                prop_assert!(c.decode(padded.as_bytes(), NOW).is_err(), "padding accepted");
            }
            let standard = STANDARD.encode(&raw).trim_end_matches('=').to_owned();
            if standard != text {
                prop_assert!(c.decode(standard.as_bytes(), NOW).is_err(), "standard alphabet accepted");
            }
            Ok(())
        })?;
    }

    /// 11. Plain tokens are rejected in signed and sealed mode, and tokens of those modes
    /// in plain mode; signed and sealed reject each other.
    #[test]
    fn tokens_of_another_mode_are_rejected(id in id()) {
        let plain = PLAIN.with(|c| c.encode(id, NOW));
        let signed = SIGNED.with(|c| c.encode(id, NOW));
        let sealed = SEALED.with(|c| c.encode(id, NOW));
        let sealed_v1 = SEALED.with(|c| mint(c, Format::SealedV1, id, NOW));
        prop_assert_eq!(SIGNED.with(|c| c.decode(sealed_v1.as_bytes(), NOW)), Err(Rejected::WrongMode));
        prop_assert!(PLAIN.with(|c| c.decode(sealed_v1.as_bytes(), NOW)).is_err());
        prop_assert_eq!(SIGNED.with(|c| c.decode(plain.as_bytes(), NOW)), Err(Rejected::WrongMode));
        prop_assert_eq!(SEALED.with(|c| c.decode(plain.as_bytes(), NOW)), Err(Rejected::WrongMode));
        prop_assert_eq!(SIGNED.with(|c| c.decode(sealed.as_bytes(), NOW)), Err(Rejected::WrongMode));
        prop_assert_eq!(SEALED.with(|c| c.decode(signed.as_bytes(), NOW)), Err(Rejected::WrongMode));
        prop_assert!(PLAIN.with(|c| c.decode(signed.as_bytes(), NOW)).is_err());
        prop_assert!(PLAIN.with(|c| c.decode(sealed.as_bytes(), NOW)).is_err());
    }

    /// 12. No decode entry point panics on arbitrary input, and nothing arbitrary verifies.
    #[test]
    fn arbitrary_input_never_panics_nor_verifies(bytes in proptest::collection::vec(any::<u8>(), 0..300), text in ".{0,120}") {
        for m in [Mode::Signed, Mode::Sealed] {
            prop_assert!(with_codec(m, |c| c.decode(&bytes, NOW)).is_err());
            prop_assert!(with_codec(m, |c| c.decode(text.as_bytes(), NOW)).is_err());
        }
        if let Ok(t) = PLAIN.with(|c| c.decode(&bytes, NOW)) {
            prop_assert_eq!(t.id.to_string().into_bytes(), bytes.clone());
        }
        let _ = DeviceId::parse_bytes(&bytes);
        let _ = text.parse::<DeviceId>();
        let _ = Key::from_text(&text, "prop");
        actix_device::fuzzing::decode_private_records(&bytes);
        let _ = actix_device::stores::envelope::decode(b"k", &bytes);
        let n = values_named([&bytes[..]], b"device_id", HeaderLimits::default()).values.len();
        prop_assert!(n <= HeaderLimits::default().max_values);
    }

    /// 13. The Cookie reader finds a cookie exactly when its name is present byte for byte
    /// within the limits, and percent-encoded names never match.
    #[test]
    fn cookie_reader_matches_names_exactly(before in proptest::collection::vec("[a-z]{1,6}=[a-z0-9]{0,6}", 0..10), value in "[A-Za-z0-9_-]{1,20}") {
        let mut pairs = before.clone();
        pairs.push("%5F%5FHost-id=evil".to_owned());
        pairs.push(format!("__Host-id={value}"));
        let header = pairs.join("; ");
        let found: Vec<&[u8]> = values_named([header.as_bytes()], b"__Host-id", HeaderLimits::default()).values;
        prop_assert_eq!(found, vec![value.as_bytes()]);
    }
}

/// Sealed tokens of one id never repeat: 10^6 encryptions, 10^6 distinct nonces (fresh
/// random 96-bit nonces; a repeat would be a broken generator, not bad luck: the chance
/// is about 2^-57).
#[test]
fn sealed_nonces_never_repeat_over_a_million_encryptions() {
    let n: usize = std::env::var("NONCE_ENCRYPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let c = codec(Mode::Sealed, &key(1));
    let id = DeviceId::new_v7();
    let mut seen = std::collections::HashSet::with_capacity(n);
    for _ in 0..n {
        let raw = URL_SAFE_NO_PAD.decode(c.encode(id, NOW)).unwrap();
        assert_eq!(raw[0], 0x03, "minted in sealed v2");
        let nonce: [u8; 12] = raw[5..17].try_into().unwrap();
        assert!(seen.insert(nonce), "a nonce repeated");
    }
    assert_eq!(seen.len(), n);
}

/// Limits: 3,000 cookies of other names do not hide ours (only bytes count); a 128 KiB
/// Cookie header is read only up to the byte bound, and says it was cut short; over-long
/// values are rejected before any decoding.
#[test]
fn huge_cookie_headers_are_read_within_bounds() {
    let limits = HeaderLimits::default();
    let many = "a=b; ".repeat(2_999) + "device_id=late";
    assert_eq!(many.split(';').count(), 3_000);
    let crowded = values_named([many.as_bytes()], b"device_id", limits);
    assert_eq!(
        (crowded.values.len(), crowded.complete),
        (1, true),
        "other names are free"
    );
    let big = format!("{}=x; device_id=late", "k".repeat(128 * 1024));
    assert!(big.len() > 128 * 1024);
    let cut = values_named([big.as_bytes()], b"device_id", limits);
    assert_eq!(
        (cut.values.len(), cut.complete),
        (0, false),
        "the scan stopped at the byte limit and says so"
    );
    let c = codec(Mode::Signed, &key(1));
    assert_eq!(
        c.decode(&vec![b'A'; MAX_TOKEN_LEN + 1], NOW),
        Err(Rejected::TooLong)
    );
    assert_eq!(
        c.decode(&vec![b'A'; 100 * 1024], NOW),
        Err(Rejected::TooLong)
    );
}

/// The tag comparison is constant-time: the code that checks tags uses `ct_eq`, and no
/// byte `==` on a tag appears in the codec. (Fails if someone "simplifies" it.)
#[test]
fn tag_comparison_is_constant_time() {
    let source = include_str!("../src/identity/token.rs");
    let open = source
        .split("fn open(")
        .nth(1)
        .expect("the open function")
        .split("\nfn ")
        .next()
        .unwrap();
    assert!(
        open.contains(".ct_eq(tag)"),
        "signed tags must be compared with subtle's ct_eq"
    );
    for line in source.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let l = line.replace(' ', "");
        assert!(
            !l.contains("==tag") && !l.contains("tag==") && !l.contains("tag.eq("),
            "byte comparison of a tag: {line}"
        );
    }
}
