//! Reopening a sled directory right after dropping the store that held it.
//!
//! sled 0.34 releases its directory lock from a background thread after `Db` is dropped
//! (spacejam/sled#1289), so an immediate reopen can fail with "could not acquire lock"
//! while nothing else holds the directory. Tests that reopen retry on that error alone.

use actix_device_sled::{SledConfig, SledStore};

/// Opens `config()`, retrying (up to 100 times, 20 ms apart) while sled reports that the
/// lock of the previous handle is not released yet. Any other error panics at once.
pub async fn open_after_drop(config: impl Fn() -> SledConfig) -> SledStore {
    let mut attempts = 0;
    loop {
        match config().open() {
            Ok(store) => return store,
            Err(e) if attempts < 100 && e.to_string().contains("could not acquire lock") => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("sled reopens: {e}"),
        }
    }
}
