//! Token codec against the raw primitives doing the same work, and against the `cookie`
//! crate's signed and private jars, in one run. Prints a ratio table at the end.
//! `sealed` is the current sealed format (v2, AES-256-GCM-SIV); `sealed-v1` the legacy
//! XChaCha20-Poly1305 format that still verifies.
//!
//! ```sh
//! cargo bench --bench codec
//! ```

use std::hint::black_box;
use std::time::Duration;

use actix_device::token::{TokenCodec, TokenContext};
use actix_device::{DeviceId, Key, Keyring, Mode};
use aes_gcm_siv::Aes256GcmSiv;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{BenchmarkId, Criterion};
use rand::RngCore;

const NOW: u64 = 1_800_000_000;

fn codec(mode: Mode) -> TokenCodec {
    TokenCodec::new(
        &Keyring::new(Key::from_secret(&[7; 32]).unwrap()),
        mode,
        &TokenContext::new("device_id", "device"),
    )
}

fn benches(c: &mut Criterion) {
    let id = DeviceId::new_v7();
    let mut g = c.benchmark_group("codec");
    for (name, mode) in [
        ("plain", Mode::Plain),
        ("signed", Mode::Signed),
        ("sealed", Mode::Sealed),
    ] {
        let codec = codec(mode);
        let token = codec.encode(id, NOW);
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| codec.encode(black_box(id), NOW))
        });
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| codec.decode(black_box(token.as_bytes()), NOW).unwrap())
        });
    }

    legacy_sealed(&mut g, id);

    // Raw: keyed BLAKE3 over the same bytes a signed token authenticates, plus base64 of
    // the whole token, both ways.
    let key = [9u8; 32];
    let context = b"\\0\\0\\0\\x09device_id\\0\\0\\0\\x06device";
    let signed_raw = URL_SAFE_NO_PAD
        .decode(codec(Mode::Signed).encode(id, NOW))
        .unwrap();
    let signed_text = URL_SAFE_NO_PAD.encode(&signed_raw);
    g.bench_function(BenchmarkId::new("raw", "blake3+b64 decode"), |b| {
        b.iter(|| {
            let raw = URL_SAFE_NO_PAD
                .decode(black_box(signed_text.as_bytes()))
                .unwrap();
            let mut h = blake3::Hasher::new_keyed(&key);
            h.update(context);
            h.update(&raw[..raw.len() - 16]);
            black_box(h.finalize())
        })
    });
    g.bench_function(BenchmarkId::new("raw", "blake3+b64 encode"), |b| {
        b.iter(|| {
            let mut h = blake3::Hasher::new_keyed(&key);
            h.update(context);
            h.update(black_box(&signed_raw[..signed_raw.len() - 16]));
            let tag = h.finalize();
            let mut out = signed_raw[..signed_raw.len() - 16].to_vec();
            out.extend_from_slice(&tag.as_bytes()[..16]);
            URL_SAFE_NO_PAD.encode(out)
        })
    });

    // Raw: XChaCha20-Poly1305 with a cached cipher, same plaintext and AAD sizes.
    let cipher = XChaCha20Poly1305::new(&key.into());
    let nonce = [5u8; 24];
    let body = [1u8; 25];
    let aad = [2u8; 31];
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &body,
                aad: &aad,
            },
        )
        .unwrap();
    g.bench_function(BenchmarkId::new("raw", "xchacha decrypt"), |b| {
        b.iter(|| {
            cipher
                .decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: black_box(&sealed),
                        aad: &aad,
                    },
                )
                .unwrap()
        })
    });
    g.bench_function(BenchmarkId::new("raw", "xchacha decrypt+b64"), |b| {
        let text = URL_SAFE_NO_PAD.encode([&[0u8; 5][..], &nonce, &sealed].concat());
        b.iter(|| {
            let raw = URL_SAFE_NO_PAD.decode(black_box(text.as_bytes())).unwrap();
            cipher
                .decrypt(
                    XNonce::from_slice(&raw[5..29]),
                    Payload {
                        msg: &raw[29..],
                        aad: &aad,
                    },
                )
                .unwrap()
        })
    });
    raw_aes(&mut g, &key);
    g.bench_function(BenchmarkId::new("raw", "uuidv7"), |b| {
        b.iter(DeviceId::new_v7)
    });

    // The cookie crate's jars on a value of the same size as our id's text.
    let jar_key = cookie::Key::from(&[3u8; 64]);
    let value = id.to_string();
    let mut jar = cookie::CookieJar::new();
    jar.signed_mut(&jar_key)
        .add(cookie::Cookie::new("device_id", value.clone()));
    let signed_cookie = jar.get("device_id").unwrap().clone();
    let mut jar = cookie::CookieJar::new();
    jar.private_mut(&jar_key)
        .add(cookie::Cookie::new("device_id", value.clone()));
    let private_cookie = jar.get("device_id").unwrap().clone();
    g.bench_function(BenchmarkId::new("cookie-crate", "signed verify"), |b| {
        b.iter(|| {
            let mut jar = cookie::CookieJar::new();
            jar.add_original(black_box(signed_cookie.clone()));
            jar.signed(&jar_key).get("device_id").unwrap()
        })
    });
    g.bench_function(BenchmarkId::new("cookie-crate", "private decrypt"), |b| {
        b.iter(|| {
            let mut jar = cookie::CookieJar::new();
            jar.add_original(black_box(private_cookie.clone()));
            jar.private(&jar_key).get("device_id").unwrap()
        })
    });
    g.bench_function(BenchmarkId::new("cookie-crate", "private encrypt"), |b| {
        b.iter(|| {
            let mut jar = cookie::CookieJar::new();
            jar.private_mut(&jar_key)
                .add(cookie::Cookie::new("device_id", black_box(value.clone())));
            jar.delta().next().map(|c| c.value().len())
        })
    });
    g.finish();
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// The legacy sealed format (v1, XChaCha20-Poly1305) through the codec: what a browser
/// with a cookie from before v2 costs until its token is re-issued.
fn legacy_sealed(g: &mut Group<'_>, id: DeviceId) {
    let codec = codec(Mode::Sealed);
    let body = [&id.as_bytes()[..], &NOW.to_be_bytes(), &[0]].concat();
    let key_id = codec.primary_key_id();
    let token = codec.seal_body_with(0x02, key_id, &[6; 24], &body).unwrap();
    g.bench_function(BenchmarkId::new("encode", "sealed-v1"), |b| {
        b.iter(|| {
            let mut nonce = [0u8; 24];
            rand::thread_rng().fill_bytes(&mut nonce);
            codec.seal_body_with(0x02, key_id, &nonce, black_box(&body))
        })
    });
    g.bench_function(BenchmarkId::new("decode", "sealed-v1"), |b| {
        b.iter(|| codec.decode(black_box(token.as_bytes()), NOW).unwrap())
    });
}

/// Raw AES-256-GCM-SIV (what sealed v2 uses) and AES-256-GCM (what the `cookie` crate's
/// private jar uses), cached ciphers, the sealed token's plaintext and AAD sizes.
fn raw_aes(g: &mut Group<'_>, key: &[u8; 32]) {
    let body = [1u8; 25];
    let aad = [2u8; 31];
    let nonce = [5u8; 12];
    let payload = || Payload {
        msg: &body,
        aad: &aad,
    };
    let siv = Aes256GcmSiv::new(key.into());
    let siv_sealed = siv
        .encrypt(aes_gcm_siv::Nonce::from_slice(&nonce), payload())
        .unwrap();
    let gcm = aes_gcm::Aes256Gcm::new(key.into());
    let gcm_sealed = gcm
        .encrypt(aes_gcm::Nonce::from_slice(&nonce), payload())
        .unwrap();
    g.bench_function(BenchmarkId::new("raw", "aes-gcm-siv decrypt"), |b| {
        b.iter(|| {
            let msg = black_box(&siv_sealed[..]);
            siv.decrypt(
                aes_gcm_siv::Nonce::from_slice(&nonce),
                Payload { msg, aad: &aad },
            )
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::new("raw", "aes-gcm-siv decrypt+b64"), |b| {
        let text = URL_SAFE_NO_PAD.encode([&[0u8; 5][..], &nonce, &siv_sealed].concat());
        b.iter(|| {
            let raw = URL_SAFE_NO_PAD.decode(black_box(text.as_bytes())).unwrap();
            siv.decrypt(
                aes_gcm_siv::Nonce::from_slice(&raw[5..17]),
                Payload {
                    msg: &raw[17..],
                    aad: &aad,
                },
            )
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::new("raw", "aes-gcm-siv encrypt"), |b| {
        b.iter(|| {
            let msg = black_box(&body[..]);
            siv.encrypt(
                aes_gcm_siv::Nonce::from_slice(&nonce),
                Payload { msg, aad: &aad },
            )
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::new("raw", "aes-256-gcm decrypt"), |b| {
        b.iter(|| {
            let msg = black_box(&gcm_sealed[..]);
            gcm.decrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload { msg, aad: &aad },
            )
            .unwrap()
        })
    });
}

/// Median estimate (ns) of a finished benchmark, from criterion's saved estimates.
fn median_ns(id: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let path = format!("{dir}/criterion/codec/{id}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn print_ratios() {
    let rows = [
        (
            "signed decode / raw blake3+b64 decode",
            "decode/signed",
            "raw/blake3+b64 decode",
            1.5,
        ),
        (
            "signed encode / raw blake3+b64 encode",
            "encode/signed",
            "raw/blake3+b64 encode",
            1.5,
        ),
        (
            "sealed decode / raw aes-gcm-siv decrypt",
            "decode/sealed",
            "raw/aes-gcm-siv decrypt",
            1.2,
        ),
        (
            "sealed decode / raw aes-gcm-siv decrypt+b64",
            "decode/sealed",
            "raw/aes-gcm-siv decrypt+b64",
            1.2,
        ),
        (
            "sealed decode / sealed-v1 decode",
            "decode/sealed",
            "decode/sealed-v1",
            1.0,
        ),
        (
            "sealed encode / sealed-v1 encode",
            "encode/sealed",
            "encode/sealed-v1",
            1.0,
        ),
        (
            "sealed decode / raw aes-256-gcm decrypt",
            "decode/sealed",
            "raw/aes-256-gcm decrypt",
            f64::NAN,
        ),
        (
            "sealed-v1 decode / raw xchacha decrypt",
            "decode/sealed-v1",
            "raw/xchacha decrypt",
            1.2,
        ),
        (
            "sealed-v1 decode / raw xchacha decrypt+b64",
            "decode/sealed-v1",
            "raw/xchacha decrypt+b64",
            1.2,
        ),
        (
            "signed decode / cookie signed verify",
            "decode/signed",
            "cookie-crate/signed verify",
            1.0,
        ),
        (
            "sealed decode / cookie private decrypt",
            "decode/sealed",
            "cookie-crate/private decrypt",
            1.0,
        ),
        (
            "sealed encode / cookie private encrypt",
            "encode/sealed",
            "cookie-crate/private encrypt",
            1.0,
        ),
        (
            "plain decode / raw uuidv7 generation",
            "decode/plain",
            "raw/uuidv7",
            f64::NAN,
        ),
        (
            "signed decode / plain decode",
            "decode/signed",
            "decode/plain",
            f64::NAN,
        ),
    ];
    println!(
        "\n{:<44} {:>10} {:>10} {:>7} {:>6}",
        "ratio (medians)", "ours ns", "base ns", "ratio", "goal"
    );
    for (label, ours, base, goal) in rows {
        let (Some(a), Some(b)) = (median_ns(ours), median_ns(base)) else {
            println!("{label:<44} (missing estimates)");
            continue;
        };
        let goal = if goal.is_nan() {
            "-".to_owned()
        } else {
            format!("≤{goal}")
        };
        println!("{label:<44} {a:>10.1} {b:>10.1} {:>7.2} {goal:>6}", a / b);
    }
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    benches(&mut c);
    c.final_summary();
    print_ratios();
}
