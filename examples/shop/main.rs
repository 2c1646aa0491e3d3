//! A single-binary shop on embedded redb: device ids, carts, flags, login sessions,
//! device management and rate limits, with a web page.
//!
//! ```sh
//! cargo run --example shop --features redb     # then open http://127.0.0.1:8080/
//! ```
//!
//! `BIND` (default `127.0.0.1:8080`) and `DATA_DIR` (default `./data`) as in the
//! quickstart. Demo users: alice / wonderland (also the demo flag admin), bob / builder,
//! carol / singer. The page is served over plain http on loopback, so cookies are sent
//! without `Secure` unless `SECURE_COOKIES=1` (set it behind TLS; production keeps the
//! library's default, Secure).

mod app;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_target(false).init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let data_dir = std::env::var("DATA_DIR").unwrap_or_else(|_| "data".to_owned());
    let secure = std::env::var("SECURE_COOKIES").is_ok_and(|v| v == "1");
    app::run(&bind, data_dir.into(), secure).await
}
