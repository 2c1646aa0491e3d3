//! Cross-site request protection in the spirit of Fetch Metadata: a browser tells the
//! server where a request comes from, and unsafe requests from other sites are refused
//! before any handler runs.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, CONTENT_TYPE, HOST, ORIGIN};
use actix_web::http::Method;
use actix_web::{HttpRequest, ResponseError};

use crate::http::error::ApiError;

/// Refuses unsafe requests (anything but GET, HEAD, OPTIONS, TRACE) that come from
/// another site:
///
/// 1. an `Origin` in the trusted list passes;
/// 2. `Sec-Fetch-Site: cross-site` is refused, and `same-site` too unless allowed;
///    `same-origin` and `none` (typed in the address bar) pass;
/// 3. without `Sec-Fetch-Site` (older browsers), an `Origin` whose host differs from the
///    request's `Host` is refused (`Origin: null` included);
/// 4. a request with neither header passes: it is not from a browser (curl, a server),
///    and such a client holds no victim's cookies.
///
/// Refusals are 403 `{"error":{"code":"cross_origin_request",...}}`. The device routes,
/// login and logout check it by default; wrap your own scopes with it:
///
/// ```
/// use actix_web::{web, App};
/// use actix_device::CrossSiteGuard;
/// let app = App::new().service(web::scope("/api").wrap(CrossSiteGuard::new()));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct CrossSiteGuard {
    trusted: Arc<Vec<String>>,
    allow_same_site: bool,
}

impl CrossSiteGuard {
    /// The guard with no trusted origin, refusing same-site requests too.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets unsafe requests from `origin` (`https://admin.example.com`) through.
    pub fn trust_origin(mut self, origin: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.trusted).push(origin.into().trim_end_matches('/').to_owned());
        self
    }

    /// Lets `Sec-Fetch-Site: same-site` requests (sibling subdomains) through.
    pub fn allow_same_site(mut self, allow: bool) -> Self {
        self.allow_same_site = allow;
        self
    }

    /// Whether `req` may proceed.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.check_parts(req.method(), req.headers())
    }

    fn check_parts(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return Ok(());
        }
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let origin = text(ORIGIN.as_str());
        if origin.is_some_and(|o| self.trusted.iter().any(|t| t == o)) {
            return Ok(());
        }
        match text("sec-fetch-site") {
            Some("cross-site") => return Err(refused(origin)),
            Some("same-site") if !self.allow_same_site => return Err(refused(origin)),
            Some(_) => return Ok(()),
            None => {}
        }
        match origin {
            Some(o) if origin_host(o) != text(HOST.as_str()) => Err(refused(Some(o))),
            _ => Ok(()),
        }
    }
}

fn refused(origin: Option<&str>) -> ApiError {
    tracing::warn!(origin = origin.unwrap_or("-"), "cross-site request refused");
    metrics::counter!("actix_device_cross_site_refusals_total").increment(1);
    ApiError::CrossOrigin
}

/// `host[:port]` of an origin (`https://example.com:8443` → `example.com:8443`).
fn origin_host(origin: &str) -> Option<&str> {
    origin
        .split_once("://")
        .map(|(_, host)| host.trim_end_matches('/'))
}

/// Refuses a JSON endpoint's body unless it is declared `application/json`: an HTML form
/// cannot send that type across sites without a CORS preflight.
pub fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

impl<S, B> Transform<S, ServiceRequest> for CrossSiteGuard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = CrossSiteGuardService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CrossSiteGuardService {
            service: Rc::new(service),
            guard: self.clone(),
        }))
    }
}

/// The service [`CrossSiteGuard`] wraps.
#[doc(hidden)]
#[derive(Debug)]
pub struct CrossSiteGuardService<S> {
    service: Rc<S>,
    guard: CrossSiteGuard,
}

impl<S, B> Service<ServiceRequest> for CrossSiteGuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if let Err(e) = self.guard.check_parts(req.method(), req.headers()) {
            let res = e.error_response();
            return Box::pin(ready(Ok(req.into_response(res).map_into_right_body())));
        }
        let service = Rc::clone(&self.service);
        Box::pin(async move { Ok(service.call(req).await?.map_into_left_body()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_rules_in_order() {
        let guard = CrossSiteGuard::new().trust_origin("https://admin.example.com/");
        let post = Method::POST;
        let host = ("host", "shop.example.com");
        let cases: [(&[(&str, &str)], bool); 8] = [
            (&[host], true),
            (&[host, ("sec-fetch-site", "same-origin")], true),
            (&[host, ("sec-fetch-site", "cross-site")], false),
            (&[host, ("sec-fetch-site", "same-site")], false),
            (&[host, ("origin", "https://shop.example.com")], true),
            (&[host, ("origin", "http://evil.example")], false),
            (&[host, ("origin", "null")], false),
            (
                &[
                    host,
                    ("origin", "https://admin.example.com"),
                    ("sec-fetch-site", "cross-site"),
                ],
                true,
            ),
        ];
        for (pairs, ok) in cases {
            assert_eq!(
                guard.check_parts(&post, &headers(pairs)).is_ok(),
                ok,
                "{pairs:?}"
            );
        }
        let cross = headers(&[("sec-fetch-site", "cross-site")]);
        assert!(guard.check_parts(&Method::GET, &cross).is_ok());
        let same_site = headers(&[("sec-fetch-site", "same-site")]);
        assert!(guard
            .clone()
            .allow_same_site(true)
            .check_parts(&post, &same_site)
            .is_ok());
    }
}
