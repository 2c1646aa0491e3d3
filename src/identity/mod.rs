//! The identity layer: who a browser is.
//!
//! The device id, its token codec and keyring, the raw `Cookie` reader, the
//! [`DeviceTracking`](config::DeviceTracking) middleware, its extractors and counters, and
//! the client's address. It knows nothing of the services built on it: they hear from it
//! through [`DeviceObserver`](config::DeviceObserver).

pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod cookie;
pub mod cookie_header;
pub(crate) mod device_id;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod keyring;
pub(crate) mod memo;
pub(crate) mod metrics;
pub(crate) mod middleware;
pub(crate) mod shards;
pub mod token;
