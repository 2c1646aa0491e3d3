//! Shared store for actix-device on Redis (being written).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
