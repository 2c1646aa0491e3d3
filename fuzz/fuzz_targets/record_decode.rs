//! Arbitrary bytes as a stored record of every type: an error, never a panic; and a
//! record that decodes re-encodes to exactly the same bytes (one stored form per record).
//! To cover a new record type, add one line to `check_all!`.
#![no_main]

use actix_device::record::{decode, encode, Record};
use libfuzzer_sys::fuzz_target;

fn check<T: Record>(bytes: &[u8]) {
    if let Ok(record) = decode::<T>(b"fuzz/key", bytes) {
        assert_eq!(encode(&record), bytes, "{} record is not canonical", T::KIND);
    }
}

macro_rules! check_all {
    ($bytes:expr; $($t:ty),* $(,)?) => { $( check::<$t>($bytes); )* };
}

fuzz_target!(|data: &[u8]| {
    // Every record the services store, the private ones too (user device lists,
    // limiter state, counters): the same two checks, inside the library.
    actix_device::fuzzing::decode_private_records(data);
    check_all!(data;
        actix_device::devices::DeviceRecord,
        actix_device::sessions::SessionRecord,
        actix_device::carts::CartRecord,
        actix_device::flags::FlagDefinition,
    );
    if let Ok(env) = actix_device_store::envelope::decode(b"fuzz/key", data) {
        assert_eq!(actix_device_store::envelope::encode(env.value, env.expires_at), data);
    }
});
