//! What the bench binaries share: settings from the environment, medians.
//! Each bench uses part of it.
#![allow(dead_code)]

use std::str::FromStr;

/// The environment variable `name` as a number, else `default`.
pub fn env_num<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `v` (the upper one of an even count); `v` must not be empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
