//! Writes the committed seed corpus: `cargo run --bin make_seeds` from `fuzz/`.
//! Seeds are named `seed-*` so they stay apart from libFuzzer's hash-named finds.

use std::path::Path;

use actix_device::record::encode;
use actix_device::token::{TokenCodec, TokenContext};
use actix_device::carts::CartRecord;
use actix_device::flags::FlagDefinition;
use actix_device::{DeviceId, Key, Keyring, Mode};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn main() {
    let id = DeviceId::from_bytes(*b"\x01\x9a\x0b\x3c\x7d\x4e\x7f\x00\x8a\x01\x23\x45\x67\x89\xab\xcd");
    let ring = Keyring::new(Key::from_secret(&[9; 32]).unwrap());
    let ctx = TokenContext::new("__Host-device_id", "device");
    let plain = TokenCodec::new(&ring, Mode::Plain, &ctx).encode(id, 1_800_000_000);
    let signed = TokenCodec::new(&ring, Mode::Signed, &ctx).encode(id, 1_800_000_000);
    let sealed_codec = TokenCodec::new(&ring, Mode::Sealed, &ctx);
    // Sealed v2 (AES-256-GCM-SIV) is what encode mints; v1 (XChaCha20-Poly1305) still
    // verifies, so it is seeded too.
    let sealed = sealed_codec.encode(id, 1_800_000_000);
    let body = [&id.as_bytes()[..], &1_800_000_000u64.to_be_bytes(), &[0]].concat();
    let sealed_v1 = sealed_codec
        .seal_body_with(0x02, sealed_codec.primary_key_id(), &[0x5a; 24], &body)
        .unwrap();
    let expiring = TokenCodec::new(&ring, Mode::Signed, &ctx)
        .with_lifetime(Some(std::time::Duration::from_secs(3600)))
        .encode(id, 1_800_000_000);
    for (name, token) in [
        ("plain", &plain),
        ("signed", &signed),
        ("sealed", &sealed),
        ("sealed-v1", &sealed_v1),
        ("signed-expiring", &expiring),
    ] {
        write("token_decode", name, token.as_bytes());
        write("middleware_request", &format!("{name}"), format!("__Host-device_id={token}").as_bytes());
    }
    // token_structured takes arbitrary-derived input: a few byte patterns (the first
    // byte picks the format: signed, sealed v2, sealed v1).
    let patterns = [
        vec![0u8; 32],
        vec![1u8; 40],
        (0..64u8).collect::<Vec<u8>>(),
        vec![0xff; 48],
        [&[2u8][..], &[0u8; 31]].concat(),
        [&[2u8][..], &[7u8; 47]].concat(),
    ];
    for (i, bytes) in patterns.iter().enumerate() {
        write("token_structured", &i.to_string(), bytes);
    }
    let headers = [
        ("browser", format!("_ga=GA1.2.123.456; __Host-device_id={signed}; theme=dark; _gid=GA1.2.789")),
        ("duplicates", format!("__Host-device_id=forged; __Host-device_id={signed}; __Host-device_id={sealed}")),
        ("host-prefix", format!("%5F%5FHost-device_id={signed}; __Host-device_id={signed}")),
        ("quoted", "__Host-device_id=\"quoted\"; a=b".to_owned()),
        ("empty", String::new()),
        ("odd", ";;= ; =x; __Host-device_id; __Host-device_id=; \t __Host-device_id = spaced ".to_owned()),
        ("many", "a=b; ".repeat(200) + "__Host-device_id=late"),
    ];
    for (name, header) in &headers {
        write("cookie_header", name, header.as_bytes());
        write("middleware_request", name, header.as_bytes());
    }
    let mut flag = FlagDefinition::new("checkout");
    flag.variants = vec![("a".into(), 1), ("b".into(), 3)];
    flag.rollout_bp = 2_500;
    flag.allow.push(id);
    write("record_decode", "flag", &encode(&flag));
    write("record_decode", "cart", &encode(&CartRecord::default()));
    write("record_decode", "envelope-plain", &actix_device_store::envelope::encode(b"value", None));
    write("record_decode", "envelope-expiring", &actix_device_store::envelope::encode(b"value", Some(1_900_000_000_000)));
    println!("seeds written under corpus/");
}
