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

/// `cookie` behind twenty analytics cookies (`_ga_00` to `_ga_19`, about 740 bytes): the
/// header of a browser on a site with the usual trackers.
pub fn behind_analytics(cookie: &str) -> String {
    let mut header: String = (0..20)
        .map(|i| format!("_ga_{i:02}=GS1.1.1733212345.12.1.1733212399.0; "))
        .collect();
    header.push_str(cookie);
    header
}
