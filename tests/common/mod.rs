//! Store backends every integration test runs on: real stores, fresh for each test.

#![allow(dead_code)]

use std::sync::Arc;

use actix_device::stores::Store;

/// A fresh store of each backend, with what keeps it alive (a temp dir).
#[allow(unused_mut)] // mutated only when a backend feature is on
pub fn backends() -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let mut out: Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> = Vec::new();
    #[cfg(feature = "moka")]
    out.push((
        "moka",
        Arc::new(actix_device::stores::MokaStore::new()),
        None,
    ));
    #[cfg(feature = "redb")]
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = actix_device::stores::RedbStore::open(dir.path().join("test.redb"))
            .expect("redb opens");
        out.push(("redb", Arc::new(store), Some(dir)));
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
                let all = common::backends();
                assert!(!all.is_empty(), "enable the moka and/or redb features");
                for (backend, $store, _dir) in all {
                    eprintln!("-- {} on {backend}", stringify!($name));
                    $body
                }
            }
        )*
    };
}
