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
//! | [`Mode::Sealed`] | no (AES-256-GCM-SIV) | no | 78 B |
//!
//! The token format is described in [`token`] and specified, with test vectors, in
//! `docs/token-format.md`.
//!
//! # Rotating keys
//!
//! Put the new key first and keep the old one as retired until the cookie's max-age has
//! passed: `Keyring::new(new_key).with_retired(old_key)`. Browsers keep their ids and
//! quietly receive tokens under the new key.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod core;
mod http;
mod identity;

pub use actix_device_store::{Clock, ManualClock, SystemClock};
pub use actix_web::cookie::SameSite;

// The identity layer: the middleware, its configuration and extractors.
pub use identity::client::{ForwardedHeader, RequestInfo, TrustedProxies};
pub use identity::config::{
    CacheControl, ConsentFn, DeviceObserver, DeviceTracking, DeviceTrackingBuilder, ObserverFuture,
    RejectPolicy,
};
pub use identity::cookie::{ConfigError, CookieConfig};
pub use identity::cookie_header::HeaderLimits;
pub use identity::device_id::{
    compare_device_ids, DeviceId, IdGenerator, ParseDeviceIdError, UuidV7,
};
pub use identity::error::DeviceError;
pub use identity::extract::{DeviceContext, DeviceControl, Reissue};
pub use identity::keyring::{Key, KeyError, Keyring, MAX_SECRET_LEN, MIN_SECRET_LEN};
pub use identity::metrics::{Metrics, MetricsSnapshot};
pub use identity::token::{Mode, Rejected};

// The services' shared context and errors, the HTTP extractors and guards.
pub use crate::core::context::ServiceContext;
pub use crate::core::error::ServiceError;
pub use crate::core::sessions::CurrentSession;
pub use http::auth::{Caller, SignedIn};
pub use http::carts::Cart;
pub use http::error::ApiError;
pub use http::flags::DeviceFlags;
pub use http::guard::{require_json, CrossSiteGuard};
pub use http::rate_limit::RateLimit;
pub use http::routes::DeviceApi;
pub use http::sessions::{Sessions, TrustedDevice};

/// The device registry: records, trust, permissions, revocation, event hooks, data
/// rights.
pub mod devices {
    pub use crate::core::audit::{AuditEvent, AuditKind, AuditPage};
    pub use crate::core::data_rights::DataRights;
    pub use crate::core::devices::{Devices, DevicesBuilder};
    pub use crate::core::events::{DeviceEvents, HookError, NoEvents, SessionEvent};
    pub use crate::core::model::{
        DeviceRecord, EvictionPolicy, Permissions, Revocation, RevokeReason,
    };
    pub use crate::http::routes::DeviceApi;
}

/// Login sessions bound to devices.
pub mod sessions {
    pub use crate::core::model::{EndReason, SessionRecord, SessionStatus};
    pub use crate::core::sessions::CurrentSession;
    pub use crate::http::sessions::{Sessions, SessionsBuilder, TrustedDevice};
}

/// Per-device carts that follow the user at login.
pub mod carts {
    pub use crate::core::carts::{CartLine, CartOwner, CartRecord, Carts, CartsBuilder};
    pub use crate::http::carts::Cart;
}

/// Feature flags and A/B experiments with stable bucketing.
pub mod flags {
    pub use crate::core::flags::{
        FlagDefinition, Flags, FlagsBuilder, Override, Subject, FULL_ROLLOUT,
    };
    pub use crate::http::flags::{admin_routes, DeviceFlags};
}

/// Rate limits (GCRA) and daily quotas.
pub mod limits {
    pub use crate::core::limits::{Decision, Limit, Quota};
    pub use crate::http::rate_limit::{RateLimit, RateLimitBuilder};
}

/// The [`Store`](stores::Store) trait and, by cargo feature, the backends: `moka`
/// (`MokaStore`), `sled` (`SledStore`), `redb` (`RedbStore`), `redis` (`RedisStore`, shared
/// by several app instances).
///
/// Moka evicts under memory pressure: it suits development, tests and data you can lose
/// (carts, limits). Do not keep sessions and trusted devices on it in production unless it
/// is sized never to evict: an evicted device record looks like an untrusted device, and
/// its sessions stop passing the check.
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

/// The token codec, for the fuzz targets and the property tests.
#[doc(hidden)]
pub use identity::token;

/// The raw `Cookie` reader, for the fuzz targets and the property tests.
#[doc(hidden)]
pub use identity::cookie_header;

/// Stored records, for the fuzz targets.
#[doc(hidden)]
pub use crate::core::record;

/// Decoders of the private records, for the fuzz targets.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::core::fuzz_private_records as decode_private_records;
}
