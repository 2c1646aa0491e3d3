//! The storage contract behind [actix-device](https://docs.rs/actix-device).
//!
//! Everything actix-device remembers about a device — its registry entry, its cart, its
//! login sessions, feature-flag definitions — is a record under a byte key in a [`Store`].
//! This crate holds the trait, its error type, the [`Clock`] every backend reads time
//! from, the value [`envelope`] the embedded backends share, and (behind the `testkit`
//! feature) the conformance suite that defines what "a correct store" means.
//!
//! # Choosing a backend
//!
//! | crate | engine | survives restart | shared by processes |
//! |---|---|---|---|
//! | `actix-device-moka` | moka (memory) | no | no |
//! | `actix-device-sled` | sled 0.34 | after `flush` | no |
//! | `actix-device-redb` | redb 4 | yes, every acknowledged write | no |
//!
//! # Writing your own
//!
//! See the [`Store`] trait's documentation, then run
//! [`testkit::run_suite`](crate::testkit) (feature `testkit`) against it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod clock;
pub mod envelope;
mod error;
pub mod read_cache;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{KeyName, StoreError};
pub use read_cache::{
    Lookup, ReadCache, ReadCacheConfig, ReadCacheStats, ReadTicket, Watch, WatchSource, WriteGuard,
};
pub use store::{
    check_key, check_scan_limit, check_value, BatchOp, CasOutcome, Peek, ScanPage, Store,
    MAX_KEY_LEN, MAX_SCAN_LIMIT, MAX_VALUE_LEN,
};

/// Re-exported so implementers write `#[actix_device_store::async_trait]` without a
/// direct dependency.
pub use async_trait::async_trait;
