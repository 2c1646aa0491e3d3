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

/// What the middleware leaves beside the id, in a struct of `DeviceContext`'s shape (its
/// own fields are the crate's), for the floor variants.
struct FloorContext {
    _id: actix_device::DeviceId,
    _is_new: bool,
    _reissue: Option<u16>,
    _key_id: Option<u32>,
    _issued_at: Option<std::time::SystemTime>,
    _others: Vec<actix_device::DeviceId>,
    _client_ip: Option<std::net::IpAddr>,
}

/// The floor variants' whole work: a fixed id and (unless `id_only`) a context put in the
/// request's extensions, as a middleware that hands handlers `web::ReqData<DeviceId>` and
/// a context must at least do. No cookie is read.
pub fn put_floor(req: &actix_web::dev::ServiceRequest, id_only: bool) {
    use actix_web::HttpMessage as _;
    const ID: actix_device::DeviceId = actix_device::DeviceId::from_bytes([0x42; 16]);
    let mut ext = req.extensions_mut();
    ext.insert(ID);
    if !id_only {
        ext.insert(FloorContext {
            _id: ID,
            _is_new: false,
            _reissue: None,
            _key_id: Some(1),
            _issued_at: None,
            _others: Vec::new(),
            _client_ip: None,
        });
    }
}
