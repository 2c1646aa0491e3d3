//! The HTTP layer: the only place the services meet actix. The one `ResponseError`
//! ([`ApiError`](error::ApiError)), the extractors (the session check runs once per
//! request), the routes, the cross-site guard and the rate-limit middleware.

pub(crate) mod auth;
pub(crate) mod carts;
pub(crate) mod error;
pub(crate) mod flags;
pub(crate) mod guard;
pub(crate) mod rate_limit;
pub(crate) mod routes;
pub(crate) mod sessions;
