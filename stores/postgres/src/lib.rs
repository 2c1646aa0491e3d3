//! Shared store for actix-device on PostgreSQL (work in progress).
