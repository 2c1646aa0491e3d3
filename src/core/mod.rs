//! The service core: devices, sessions, carts, flags, limits and data rights over one
//! shared [`ServiceContext`](context::ServiceContext), with the key layout in one table
//! and their own error type. Nothing here knows actix: the `http` layer reads requests
//! and answers responses.

pub(crate) mod audit;
pub(crate) mod carts;
pub(crate) mod context;
pub(crate) mod data_rights;
pub(crate) mod devices;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod flags;
pub(crate) mod keys;
pub(crate) mod limits;
pub(crate) mod metered;
pub(crate) mod model;
pub mod record;
pub(crate) mod session_records;
pub(crate) mod sessions;

/// Decodes `bytes` as every kind of record the services store, private ones included
/// (user device lists, limiter state, counters), for the fuzz targets: each decode must
/// answer, never panic, and a record that decodes must re-encode to the same bytes.
#[doc(hidden)]
pub fn fuzz_private_records(bytes: &[u8]) {
    use crate::core::record::{decode, encode, Record};
    fn check<T: Record>(bytes: &[u8]) {
        if let Ok(record) = decode::<T>(b"fuzz", bytes) {
            assert_eq!(
                encode(&record),
                bytes,
                "{} records decode canonically",
                T::KIND
            );
        }
    }
    check::<model::UserDevices>(bytes);
    check::<model::DeviceRecord>(bytes);
    check::<model::SessionRecord>(bytes);
    check::<limits::Tat>(bytes);
    check::<limits::Count>(bytes);
    check::<carts::CartRecord>(bytes);
    check::<flags::FlagDefinition>(bytes);
    check::<audit::AuditEvent>(bytes);
}
