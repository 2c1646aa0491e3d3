//! In-memory store for actix-device (moka); keeps nothing across restarts.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
