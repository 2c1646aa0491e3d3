//! The shortest useful server: every browser gets a persistent device id.
//!
//! ```sh
//! cargo run --example quickstart
//! curl -c jar -b jar http://127.0.0.1:8080/   # {"device_id":"…","new":true}
//! curl -c jar -b jar http://127.0.0.1:8080/   # same id, "new":false
//! ```
//!
//! `BIND` sets the address (default `127.0.0.1:8080`), `DATA_DIR` where the key is kept
//! (default `./data`). The key file is created on first start with mode 0600, so a restart
//! keeps every id.

use actix_device::{DeviceContext, DeviceTracking, Key, Keyring};
use actix_web::{get, web, App, HttpServer, Responder};

#[get("/")]
async fn index(device: DeviceContext) -> impl Responder {
    web::Json(serde_json::json!({ "device_id": device.id, "new": device.is_new }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_target(false).init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let data_dir = std::env::var("DATA_DIR").unwrap_or_else(|_| "data".to_owned());
    let key_path = std::path::Path::new(&data_dir).join("device.key");
    let key = Key::load_or_create(&key_path).map_err(std::io::Error::other)?;

    let tracking = DeviceTracking::builder(Keyring::new(key))
        // This example serves plain http on loopback so that `curl -c jar -b jar` works
        // (curl, unlike browsers, never sends Secure cookies over http, even to
        // localhost), and so without the __Host- prefix (which requires Secure).
        // Production keeps the default, Secure with the prefix, behind TLS.
        .cookie_secure(false)
        .build()
        .map_err(std::io::Error::other)?;

    tracing::info!(%bind, key = %key_path.display(), "quickstart listening");
    HttpServer::new(move || App::new().wrap(tracking.clone()).service(index))
        .bind(&bind)?
        .run()
        .await
}
