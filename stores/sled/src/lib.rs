//! Embedded store for actix-device on sled 0.34.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
