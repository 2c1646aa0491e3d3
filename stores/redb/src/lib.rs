//! Durable embedded store for actix-device on redb 4, with group commit.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
