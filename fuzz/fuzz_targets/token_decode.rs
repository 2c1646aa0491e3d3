//! Arbitrary bytes as a cookie value, in every mode. Never a panic; and since this
//! process's keys are random and it mints nothing, no input may ever verify in signed or
//! sealed mode (a forgery). In plain mode only a canonical id is accepted, and it is
//! exactly its own text.
#![no_main]

use std::sync::OnceLock;

use actix_device::token::{TokenCodec, TokenContext};
use actix_device::{Key, Keyring, Mode};
use libfuzzer_sys::fuzz_target;

struct Codecs {
    plain: TokenCodec,
    signed: TokenCodec,
    sealed: TokenCodec,
}

fn codecs() -> &'static Codecs {
    static C: OnceLock<Codecs> = OnceLock::new();
    C.get_or_init(|| {
        let ring = Keyring::new(Key::generate()).with_retired(Key::generate());
        let ctx = TokenContext::new("device_id", "device");
        Codecs {
            plain: TokenCodec::new(&ring, Mode::Plain, &ctx),
            signed: TokenCodec::new(&ring, Mode::Signed, &ctx),
            sealed: TokenCodec::new(&ring, Mode::Sealed, &ctx),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let c = codecs();
    let now = 1_800_000_000;
    assert!(c.signed.decode(data, now).is_err(), "forged signed token verified");
    assert!(c.sealed.decode(data, now).is_err(), "forged sealed token verified");
    if let Ok(token) = c.plain.decode(data, now) {
        assert_eq!(token.id.to_string().as_bytes(), data, "plain accepted a non-canonical id");
    }
});
