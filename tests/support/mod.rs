//! Store backends every integration test runs on: real stores, fresh for each test.

#![allow(dead_code)]

use std::sync::Arc;

use actix_device::stores::Store;

type Backend = (&'static str, Arc<dyn Store>, Option<tempfile::TempDir>);

/// A fresh store of each backend on the system clock, with what keeps it alive (a temp dir).
pub fn backends() -> Vec<Backend> {
    backends_with_clock(actix_device::SystemClock)
}

/// A fresh store of each backend measuring expiry by `clock`.
#[allow(unused_mut, unused_variables)] // used only when a backend feature is on
pub fn backends_with_clock(clock: impl actix_device::Clock + Clone) -> Vec<Backend> {
    let mut out: Vec<Backend> = Vec::new();
    #[cfg(feature = "moka")]
    out.push((
        "moka",
        Arc::new(
            actix_device::stores::MokaStore::builder()
                .clock(clock.clone())
                .build(),
        ),
        None,
    ));
    #[cfg(feature = "redb")]
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = actix_device::stores::RedbStore::builder(dir.path().join("test.redb"))
            .clock(clock.clone())
            .open()
            .expect("redb opens");
        out.push(("redb", Arc::new(store), Some(dir)));
    }
    #[cfg(feature = "sled")]
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = actix_device::stores::SledStore::builder(dir.path().join("test.sled"))
            .clock(clock.clone())
            .open()
            .expect("sled opens");
        out.push(("sled", Arc::new(store), Some(dir)));
    }
    out
}

/// Defines one `#[tokio::test]` per backend and test body: `name_moka`, `name_redb`, ...
#[macro_export]
macro_rules! backend_tests {
    ($(async fn $name:ident($store:ident) $body:block)*) => {
        $(
            #[actix_web::test]
            async fn $name() {
                let all = support::backends();
                assert!(!all.is_empty(), "enable the moka, redb and/or sled features");
                for (backend, $store, _dir) in all {
                    eprintln!("-- {} on {backend}", stringify!($name));
                    $body
                }
            }
        )*
    };
}
