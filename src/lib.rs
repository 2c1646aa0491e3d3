//! Persistent, tamper-proof device identity for [Actix-web](https://actix.rs).
//!
//! Wrap an app in [`DeviceTracking`] and every browser gets a device id (a UUIDv7) in a
//! signed cookie; handlers take it as [`DeviceId`] or `web::ReqData<DeviceId>`.
//!
//! # Getting started
//!
//! ```no_run
//! use actix_web::{get, web, App, HttpServer, Responder};
//! use actix_device::{DeviceContext, DeviceTracking, Key, Keyring};
//!
//! #[get("/")]
//! async fn index(device: DeviceContext) -> impl Responder {
//!     web::Json(serde_json::json!({ "device_id": device.id, "new": device.is_new }))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     // Kept in a file so ids survive restarts; in production use Key::from_env.
//!     let key = Key::load_or_create("data/device.key").expect("key file");
//!     let tracking = DeviceTracking::new(Keyring::new(key));
//!     HttpServer::new(move || App::new().wrap(tracking.clone()).service(index))
//!         .bind(("127.0.0.1", 8080))?
//!         .run()
//!         .await
//! }
//! ```
//!
//! # Choosing a mode
//!
//! | mode | client can read the id | client can forge an id | cookie size |
//! |---|---|---|---|
//! | [`Mode::Plain`] | yes | **yes** (development only) | 36 B |
//! | [`Mode::Signed`] (default) | yes (base64) | no (keyed BLAKE3, 128-bit tag) | 62 B |
//! | [`Mode::Sealed`] | no (XChaCha20-Poly1305) | no | 94 B |
//!
//! The token format is described in [`token`].
//!
//! # Rotating keys
//!
//! Put the new key first and keep the old one as retired until the cookie's max-age has
//! passed: `Keyring::new(new_key).with_retired(old_key)`. Browsers keep their ids and
//! quietly receive tokens under the new key.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod api_error;
mod carts;
mod client_ip;
mod config;
pub mod cookie_header;
mod data_rights;
mod device_id;
mod events;
mod extract;
mod flags;
mod keyring;
mod metrics;
mod middleware;
mod rate_limit;
pub mod record;
mod registry;
mod routes;
mod sessions;
pub mod token;

pub use actix_device_store::{Clock, ManualClock, SystemClock};
pub use actix_web::cookie::SameSite;
pub use api_error::ApiError;
pub use carts::{Cart, CartLine, CartOwner, CartRecord, Carts, CartsBuilder};
pub use client_ip::{client_ip, TrustedProxies};
pub use config::{ConfigError, ConsentFn, DeviceTracking, DeviceTrackingBuilder, RejectPolicy};
pub use data_rights::DataRights;
pub use device_id::{compare_device_ids, DeviceId, IdGenerator, ParseDeviceIdError, UuidV7};
pub use events::{DeviceEvents, HookError, NoEvents, SessionEvent};
pub use extract::{DeviceContext, DeviceControl, DeviceError, Reissue};
pub use flags::{DeviceFlags, FlagDefinition, Flags, Override, FULL_ROLLOUT};
pub use keyring::{Key, KeyError, Keyring, MIN_SECRET_LEN};
pub use metrics::{Metrics, MetricsSnapshot};
pub use rate_limit::{Decision, Quota, RateLimit};
pub use registry::{
    DeviceRecord, Devices, DevicesBuilder, EvictionPolicy, Permissions, RequestInfo, Revocation,
    RevokeReason,
};
pub use sessions::{
    CurrentSession, EndReason, SessionRecord, SessionStatus, Sessions, SessionsBuilder,
    TrustedDevice,
};
pub use token::{Mode, Rejected, Token, TokenCodec, TokenContext};

/// The [`Store`](stores::Store) trait and, by cargo feature, the backends: `moka`
/// (`MokaStore`), `sled` (`SledStore`), `redb` (`RedbStore`), `redis` (`RedisStore`, shared
/// by several app instances).
pub mod stores {
    #[cfg(feature = "moka")]
    pub use actix_device_moka::{MokaConfig, MokaStore};
    #[cfg(feature = "postgres")]
    pub use actix_device_postgres::{PostgresConfig, PostgresStore};
    #[cfg(feature = "redb")]
    pub use actix_device_redb::{RedbConfig, RedbStore};
    #[cfg(feature = "redis")]
    pub use actix_device_redis::{RedisConfig, RedisStore};
    #[cfg(feature = "sled")]
    pub use actix_device_sled::{SledConfig, SledStore};
    pub use actix_device_store::*;
}
