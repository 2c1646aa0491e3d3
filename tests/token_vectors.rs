//! The token test vectors in `tests/vectors/tokens.json`: every mode, every format and
//! every rejection reason, with the keys, context and clock that produce them.
//!
//! This test rebuilds the vectors from the codec (fixed keys, ids and nonces, so the file
//! is reproducible byte for byte), asserts that each one gives the outcome it was written
//! for, and fails if the committed file differs: the vectors cannot drift from the code.
//! It also reads the committed file back and decodes every token it holds. After a
//! deliberate format change, regenerate with
//!
//! ```sh
//! UPDATE_TOKEN_VECTORS=1 cargo test --test token_vectors
//! ```
//!
//! `tools/verify_tokens.py` checks the same file from `docs/token-format.md` alone.

use std::path::PathBuf;
use std::time::Duration;

use actix_device::token::MAX_TOKEN_LEN;
use actix_device::token::{Token, TokenCodec, TokenContext};
use actix_device::{DeviceId, Key, Keyring, Mode, Rejected};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

const NOW: u64 = 1_800_000_000;
const ISSUED: u64 = NOW - 3_600;
const NAME: &str = "device_id";
const PURPOSE: &str = "device";

/// The whole file.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct VectorFile {
    description: String,
    derivations: Vec<Derivation>,
    vectors: Vec<Vector>,
}

/// A key's id and sub-keys for one purpose: the intermediate values of the key schedule.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Derivation {
    secret: String,
    purpose: String,
    key_id: u32,
    signed_subkey: String,
    sealed_v1_subkey: String,
    sealed_v2_subkey: String,
}

/// One token and what a verifier configured this way must answer.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Vector {
    name: String,
    mode: String,
    /// Hex secret of the primary key, then of each retired key, in the order tried.
    keys: Vec<String>,
    cookie_name: String,
    purpose: String,
    /// The verifier's lifetime setting in seconds, if it has one.
    lifetime: Option<u64>,
    now: u64,
    token: String,
    expect: Expect,
}

/// Accepted with these fields, or rejected with this reason.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
enum Expect {
    Accept {
        id: String,
        key_id: Option<u32>,
        issued_at: Option<u64>,
        expires_at: Option<u64>,
        retired_key: bool,
        legacy_format: bool,
    },
    Reject {
        reason: String,
    },
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/tokens.json")
}

fn secret(seed: u8) -> Vec<u8> {
    (0..32u8)
        .map(|i| i.wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn key(seed: u8) -> Key {
    Key::from_secret(&secret(seed)).unwrap()
}

fn id(seed: u8) -> DeviceId {
    let mut bytes = [seed; 16];
    // A UUIDv7 shape: a time prefix, version 7, variant 10.
    bytes[..6].copy_from_slice(&[0x01, 0x93, 0x5a, 0x6b, 0x7c, seed]);
    bytes[6] = 0x70 | (seed & 0x0f);
    bytes[8] = 0x80 | (seed & 0x3f);
    DeviceId::from_bytes(bytes)
}

fn body(id: DeviceId, issued_at: u64, expires_at: Option<u64>) -> Vec<u8> {
    let mut body = [&id.as_bytes()[..], &issued_at.to_be_bytes()].concat();
    match expires_at {
        None => body.push(0),
        Some(at) => {
            body.push(1);
            body.extend_from_slice(&at.to_be_bytes());
        }
    }
    body
}

/// The sub-key of `docs/token-format.md` §Keys, computed here from the spec.
fn subkey(context: &str, purpose: &str, secret: &[u8]) -> [u8; 32] {
    let mut material = (purpose.len() as u64).to_be_bytes().to_vec();
    material.extend_from_slice(purpose.as_bytes());
    material.extend_from_slice(secret);
    blake3::derive_key(context, &material)
}

/// How one vector's verifier is set up.
#[derive(Clone)]
struct Setup {
    mode: Mode,
    keys: Vec<u8>,
    cookie_name: &'static str,
    purpose: &'static str,
    lifetime: Option<u64>,
    now: u64,
}

impl Setup {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            keys: vec![1],
            cookie_name: NAME,
            purpose: PURPOSE,
            lifetime: None,
            now: NOW,
        }
    }

    fn keys(mut self, keys: &[u8]) -> Self {
        self.keys = keys.to_vec();
        self
    }

    fn context(mut self, cookie_name: &'static str, purpose: &'static str) -> Self {
        self.cookie_name = cookie_name;
        self.purpose = purpose;
        self
    }

    fn lifetime(mut self, secs: u64) -> Self {
        self.lifetime = Some(secs);
        self
    }

    fn now(mut self, now: u64) -> Self {
        self.now = now;
        self
    }

    fn codec(&self) -> TokenCodec {
        let mut ring = Keyring::new(key(self.keys[0]));
        for &k in &self.keys[1..] {
            ring = ring.with_retired(key(k));
        }
        TokenCodec::new(
            &ring,
            self.mode,
            &TokenContext::new(self.cookie_name, self.purpose),
        )
        .with_lifetime(self.lifetime.map(Duration::from_secs))
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Plain => "plain",
        Mode::Signed => "signed",
        _ => "sealed",
    }
}

fn expect_of(result: Result<Token, Rejected>) -> Expect {
    match result {
        Ok(t) => Expect::Accept {
            id: t.id.to_string(),
            key_id: t.key_id,
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            retired_key: t.retired_key,
            legacy_format: t.legacy_format,
        },
        Err(reason) => Expect::Reject {
            reason: reason.code().to_owned(),
        },
    }
}

/// Collects vectors, asserting as it goes that each gives the outcome it was made for.
struct Builder {
    vectors: Vec<Vector>,
}

impl Builder {
    fn push(&mut self, name: &str, setup: &Setup, token: String, want: Result<DeviceId, Rejected>) {
        let got = setup.codec().decode(token.as_bytes(), setup.now);
        match (want, &got) {
            (Ok(id), Ok(t)) => assert_eq!(t.id, id, "{name}"),
            (Err(reason), Err(r)) => assert_eq!(*r, reason, "{name}"),
            _ => panic!("{name}: wanted {want:?}, got {got:?}"),
        }
        self.vectors.push(Vector {
            name: name.to_owned(),
            mode: mode_name(setup.mode).to_owned(),
            keys: setup.keys.iter().map(|&k| hex::encode(secret(k))).collect(),
            cookie_name: setup.cookie_name.to_owned(),
            purpose: setup.purpose.to_owned(),
            lifetime: setup.lifetime,
            now: setup.now,
            token,
            expect: expect_of(got),
        });
    }
}

/// A token of `setup`'s mode over `body` with a fixed nonce: `version` 0x01 signed,
/// 0x02 sealed v1, 0x03 sealed v2.
fn mint(setup: &Setup, version: u8, key_id: u32, body: &[u8]) -> String {
    let nonce: Vec<u8> = match version {
        0x02 => (0..24).map(|i| 0xa0 ^ i).collect(),
        0x03 => (0..12).map(|i| 0x50 ^ i).collect(),
        _ => Vec::new(),
    };
    setup
        .codec()
        .seal_body_with(version, key_id, &nonce, body)
        .unwrap()
}

fn edit(token: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    f(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The same bytes with the last character's unused low bits set: not canonical.
fn stray_bits(token: &str) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = token.as_bytes().to_vec();
    let last = bytes.len() - 1;
    let pos = alphabet.iter().position(|&b| b == bytes[last]).unwrap();
    bytes[last] = alphabet[pos | 1];
    assert_ne!(
        bytes,
        token.as_bytes(),
        "the token has unused trailing bits"
    );
    String::from_utf8(bytes).unwrap()
}

fn plain_vectors(b: &mut Builder) {
    let s = Setup::new(Mode::Plain);
    b.push("plain: canonical id", &s, id(1).to_string(), Ok(id(1)));
    let upper = id(1).to_string().to_uppercase();
    b.push("plain: uppercase hex", &s, upper, Err(Rejected::Malformed));
    let braces = format!("{{{}}}", id(1));
    b.push("plain: braces", &s, braces, Err(Rejected::Malformed));
    let long = "a".repeat(MAX_TOKEN_LEN + 1);
    b.push("plain: over 256 bytes", &s, long, Err(Rejected::TooLong));
    let signed = Setup::new(Mode::Signed);
    let token = signed.codec().encode(id(1), ISSUED);
    b.push("plain: a signed token", &s, token, Err(Rejected::Malformed));
}

/// Accepted tokens and every rejection for one format (`version` 0x01, 0x02 or 0x03).
fn format_vectors(b: &mut Builder, mode: Mode, version: u8, label: &str) {
    let s = Setup::new(mode);
    let k1 = key(1).id();
    let at = |body: &[u8]| mint(&s, version, k1, body);
    let n = |what: &str| format!("{label}: {what}");
    let good = at(&body(id(2), ISSUED, None));
    b.push(&n("accepted"), &s, good.clone(), Ok(id(2)));
    let expiring = at(&body(id(3), ISSUED, Some(NOW + 60)));
    b.push(
        &n("accepted, with an expiry"),
        &s,
        expiring.clone(),
        Ok(id(3)),
    );
    b.push(
        &n("expired (now = expires_at)"),
        &s.clone().now(NOW + 60),
        expiring,
        Err(Rejected::Expired),
    );
    let old_key = Setup::new(mode).keys(&[9]);
    let retired = mint(&old_key, version, key(9).id(), &body(id(4), ISSUED, None));
    b.push(
        &n("accepted under a retired key"),
        &s.clone().keys(&[1, 9]),
        retired.clone(),
        Ok(id(4)),
    );
    b.push(
        &n("key removed from the keyring"),
        &s,
        retired,
        Err(Rejected::UnknownKey),
    );
    let life = s.clone().lifetime(3_600);
    b.push(
        &n("lifetime: one second left"),
        &life.clone().now(NOW - 1),
        good.clone(),
        Ok(id(2)),
    );
    b.push(
        &n("lifetime: expired (now = issued_at + lifetime)"),
        &life,
        good.clone(),
        Err(Rejected::Expired),
    );
    let foreign = at(&body(id(2), ISSUED, None));
    b.push(
        &n("another cookie name"),
        &s.clone().context("session_id", PURPOSE),
        foreign.clone(),
        Err(Rejected::BadTag),
    );
    b.push(
        &n("another purpose"),
        &s.clone().context(NAME, "session"),
        foreign,
        Err(Rejected::BadTag),
    );
    let flipped = edit(&good, |raw| *raw.last_mut().unwrap() ^= 0x01);
    b.push(
        &n("last tag bit flipped"),
        &s,
        flipped,
        Err(Rejected::BadTag),
    );
    let flipped = edit(&good, |raw| raw[6] ^= 0x80);
    b.push(
        &n("a bit of byte 6 flipped"),
        &s,
        flipped,
        Err(Rejected::BadTag),
    );
    let unknown = mint(&s, version, k1 ^ 0xffff_ffff, &body(id(2), ISSUED, None));
    b.push(
        &n("key id not in the keyring"),
        &s,
        unknown,
        Err(Rejected::UnknownKey),
    );
    let flag2 = at(&[&body(id(2), ISSUED, None)[..24], &[2]].concat());
    b.push(
        &n("expiry flag 2 behind a valid tag"),
        &s,
        flag2,
        Err(Rejected::Malformed),
    );
    let flag0 = at(&[&body(id(2), ISSUED, None)[..], &[0; 8]].concat());
    b.push(
        &n("expiry flag 0 followed by 8 bytes, valid tag"),
        &s,
        flag0,
        Err(Rejected::Malformed),
    );
    let short = edit(&good, |raw| {
        raw.pop();
    });
    b.push(&n("one byte short"), &s, short, Err(Rejected::Malformed));
    let long = edit(&good, |raw| raw.push(0));
    b.push(&n("one byte long"), &s, long, Err(Rejected::Malformed));
    b.push(
        &n("stray trailing bits"),
        &s,
        stray_bits(&good),
        Err(Rejected::Malformed),
    );
    let padded = format!("{good}==");
    b.push(&n("padded"), &s, padded, Err(Rejected::Malformed));
    let mut plus = good.clone().into_bytes();
    plus[10] = b'+';
    let plus = String::from_utf8(plus).unwrap();
    b.push(
        &n("a character of the standard alphabet"),
        &s,
        plus,
        Err(Rejected::Malformed),
    );
    let unknown_version = edit(&good, |raw| raw[0] = 0x04);
    b.push(
        &n("version 0x04"),
        &s,
        unknown_version,
        Err(Rejected::UnknownVersion),
    );
    let zero_version = edit(&good, |raw| raw[0] = 0x00);
    b.push(
        &n("version 0x00"),
        &s,
        zero_version,
        Err(Rejected::UnknownVersion),
    );
    b.push(
        &n("a plain id"),
        &s,
        id(2).to_string(),
        Err(Rejected::WrongMode),
    );
    let long = "A".repeat(MAX_TOKEN_LEN + 1);
    b.push(&n("over 256 bytes"), &s, long, Err(Rejected::TooLong));
    b.push(&n("empty"), &s, String::new(), Err(Rejected::Malformed));
}

fn cross_mode_vectors(b: &mut Builder) {
    let signed = Setup::new(Mode::Signed);
    let sealed = Setup::new(Mode::Sealed);
    let k1 = key(1).id();
    let body = body(id(5), ISSUED, None);
    let v1 = mint(&sealed, 0x02, k1, &body);
    let v2 = mint(&sealed, 0x03, k1, &body);
    let s1 = mint(&signed, 0x01, k1, &body);
    b.push(
        "signed: a sealed v2 token",
        &signed,
        v2.clone(),
        Err(Rejected::WrongMode),
    );
    b.push(
        "signed: a sealed v1 token",
        &signed,
        v1.clone(),
        Err(Rejected::WrongMode),
    );
    b.push(
        "sealed: a signed token",
        &sealed,
        s1,
        Err(Rejected::WrongMode),
    );
    let relabelled = edit(&v1, |raw| raw[0] = 0x03);
    b.push(
        "sealed: a v1 token relabelled v2 (length)",
        &sealed,
        relabelled,
        Err(Rejected::Malformed),
    );
    let relabelled = edit(&v2, |raw| raw[0] = 0x02);
    b.push(
        "sealed: a v2 token relabelled v1 (length)",
        &sealed,
        relabelled,
        Err(Rejected::Malformed),
    );
    let padded = edit(&v2, |raw| {
        raw[0] = 0x02;
        raw.extend_from_slice(&[0; 12]);
    });
    b.push(
        "sealed: a v2 token relabelled v1, padded to length",
        &sealed,
        padded,
        Err(Rejected::BadTag),
    );
}

fn derivations() -> Vec<Derivation> {
    [(1u8, PURPOSE), (1, "session"), (9, PURPOSE)]
        .into_iter()
        .map(|(seed, purpose)| {
            let s = secret(seed);
            let sub = |context| hex::encode(subkey(context, purpose, &s));
            Derivation {
                secret: hex::encode(&s),
                purpose: purpose.to_owned(),
                key_id: key(seed).id(),
                signed_subkey: sub("actix-device 2026-11 signed token v1"),
                sealed_v1_subkey: sub("actix-device 2026-11 sealed token v1"),
                sealed_v2_subkey: sub("actix-device 2026-11 sealed token v2"),
            }
        })
        .collect()
}

fn build() -> VectorFile {
    let mut b = Builder {
        vectors: Vec::new(),
    };
    plain_vectors(&mut b);
    format_vectors(&mut b, Mode::Signed, 0x01, "signed");
    format_vectors(&mut b, Mode::Sealed, 0x03, "sealed v2");
    format_vectors(&mut b, Mode::Sealed, 0x02, "sealed v1 (legacy)");
    cross_mode_vectors(&mut b);
    VectorFile {
        description: "actix-device token test vectors; see docs/token-format.md. Generated by \
                      tests/token_vectors.rs (UPDATE_TOKEN_VECTORS=1); do not edit by hand."
            .to_owned(),
        derivations: derivations(),
        vectors: b.vectors,
    }
}

fn rendered(file: &VectorFile) -> String {
    serde_json::to_string_pretty(file).unwrap() + "\n"
}

#[test]
fn committed_vectors_match_the_codec() {
    let built = build();
    let text = rendered(&built);
    if std::env::var_os("UPDATE_TOKEN_VECTORS").is_some() {
        std::fs::create_dir_all(path().parent().unwrap()).unwrap();
        std::fs::write(path(), &text).unwrap();
    }
    let committed = std::fs::read_to_string(path()).expect("tests/vectors/tokens.json");
    assert!(
        committed == text,
        "tests/vectors/tokens.json differs from what the codec produces; if the format \
         changed on purpose, run UPDATE_TOKEN_VECTORS=1 cargo test --test token_vectors"
    );
}

#[test]
fn every_committed_vector_decodes_as_recorded() {
    let text = std::fs::read_to_string(path()).expect("tests/vectors/tokens.json");
    let file: VectorFile = serde_json::from_str(&text).unwrap();
    for v in &file.vectors {
        let mode = match v.mode.as_str() {
            "plain" => Mode::Plain,
            "signed" => Mode::Signed,
            _ => Mode::Sealed,
        };
        let secrets: Vec<Key> = v
            .keys
            .iter()
            .map(|k| Key::from_secret(&hex::decode(k).unwrap()).unwrap())
            .collect();
        let ring = secrets[1..]
            .iter()
            .fold(Keyring::new(secrets[0].clone()), |r, k| {
                r.with_retired(k.clone())
            });
        let codec = TokenCodec::new(&ring, mode, &TokenContext::new(&v.cookie_name, &v.purpose))
            .with_lifetime(v.lifetime.map(Duration::from_secs));
        let got = expect_of(codec.decode(v.token.as_bytes(), v.now));
        assert_eq!(got, v.expect, "{}", v.name);
    }
}

#[test]
fn vectors_cover_every_mode_format_and_rejection() {
    let file = build();
    for reason in Rejected::ALL {
        for mode in ["signed", "sealed"] {
            assert!(
                file.vectors.iter().any(|v| v.mode == mode
                    && v.expect
                        == Expect::Reject {
                            reason: reason.code().to_owned()
                        }),
                "no {mode} vector rejected as {}",
                reason.code()
            );
        }
    }
    for prefix in ["plain:", "signed:", "sealed v2:", "sealed v1 (legacy):"] {
        assert!(file
            .vectors
            .iter()
            .any(|v| v.name.starts_with(prefix) && matches!(v.expect, Expect::Accept { .. })));
    }
    let legacy = |v: &&Vector| {
        matches!(
            v.expect,
            Expect::Accept {
                legacy_format: true,
                ..
            }
        )
    };
    assert!(file
        .vectors
        .iter()
        .filter(legacy)
        .all(|v| v.name.starts_with("sealed v1")));
}
