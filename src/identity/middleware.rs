//! The `DeviceTracking` transform and its service.

use std::future::{ready, Future, Ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderValue, CACHE_CONTROL, COOKIE, SET_COOKIE};
use actix_web::{HttpMessage, HttpResponse, ResponseError};

use crate::identity::client::RequestInfo;
use crate::identity::config::{CacheControl, DeviceTracking, RejectPolicy, Settings};
use crate::identity::cookie_header::visit_values;
use crate::identity::device_id::DeviceId;
use crate::identity::error::DeviceError;
use crate::identity::extract::{
    DeviceAction, DeviceContext, NoConsent, PendingCookies, Reissue, Unreadable,
};
use crate::identity::token::{Rejected, Token};

impl<S, B> Transform<S, ServiceRequest> for DeviceTracking
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = DeviceTrackingService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(DeviceTrackingService {
            service: Rc::new(service),
            settings: Arc::clone(&self.settings),
        }))
    }
}

/// The service [`DeviceTracking`] wraps around an app or scope.
#[doc(hidden)]
pub struct DeviceTrackingService<S> {
    service: Rc<S>,
    settings: Arc<Settings>,
}

impl<S> std::fmt::Debug for DeviceTrackingService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTrackingService")
            .finish_non_exhaustive()
    }
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B> Service<ServiceRequest> for DeviceTrackingService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let settings = Arc::clone(&self.settings);
        Box::pin(async move {
            if !consented(&settings, &req) {
                req.extensions_mut().insert(NoConsent);
                return pass_through(&service, req, settings.cache_control).await;
            }
            let now = settings.now_secs();
            let context = match identify(&settings, &req, now) {
                Identified::Device(context) => context,
                Identified::Refused(reason) => return Ok(refuse(req, reason)),
                Identified::Unreadable => {
                    req.extensions_mut().insert(Unreadable);
                    return pass_through(&service, req, settings.cache_control).await;
                }
            };
            remember(&req, &context);
            notify_returning(&settings, &req, &context).await;

            let mut res = service.call(req).await?;
            let action = res.request().extensions_mut().remove::<DeviceAction>();
            let device_cookie = outgoing_cookie(&settings, &context, action, now).await;
            write_cookies(&mut res, device_cookie, settings.cache_control);
            Ok(res.map_into_left_body())
        })
    }
}

/// Runs the service for a request the middleware does not identify; cookies queued by
/// the services (a session logout, say) still go out.
async fn pass_through<S, B>(
    service: &S,
    req: ServiceRequest,
    cache: CacheControl,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let mut res = service.call(req).await?;
    write_cookies(&mut res, None, cache);
    Ok(res.map_into_left_body())
}

fn consented(settings: &Settings, req: &ServiceRequest) -> bool {
    settings.consent.as_ref().is_none_or(|consent| consent(req))
}

/// Who the browser is, as far as its cookies say.
enum Identified {
    Device(DeviceContext),
    /// The cookie did not verify and the policy is [`RejectPolicy::Refuse`].
    Refused(Rejected),
    /// The `Cookie` header was past the limits and no device token was in the part read.
    Unreadable,
}

/// Reads every device cookie of the request and decides who this browser is: the first
/// token that verifies (others that verify for another id make the identity ambiguous),
/// else a fresh id, unless the header was cut short before anything was found.
fn identify(settings: &Settings, req: &ServiceRequest, now: u64) -> Identified {
    let headers = req.headers().get_all(COOKIE).map(|v| v.as_bytes());
    let mut first: Option<Token> = None;
    let mut others = Vec::new();
    let mut first_rejection = None;
    let name = settings.cookie.name().as_bytes();
    let complete = visit_values(headers, name, settings.limits, |value| {
        match settings.decode(value, now) {
            Ok(token) => match &first {
                None => first = Some(token),
                Some(f) if f.id != token.id && !others.contains(&token.id) => {
                    others.push(token.id);
                }
                Some(_) => {}
            },
            Err(reason) => {
                first_rejection.get_or_insert(reason);
            }
        }
        true
    });
    let client_ip = settings
        .proxies
        .client_ip(req.peer_addr().map(|a| a.ip()), req.headers());
    if let Some(token) = first {
        settings.metrics.accepted();
        return Identified::Device(accepted(settings, token, others, client_ip, now));
    }
    if !complete {
        tracing::warn!(cookie = %settings.cookie.name(), "Cookie header past the limits; no device id minted");
        return Identified::Unreadable;
    }
    match first_rejection {
        Some(reason) => {
            settings.metrics.rejected(reason);
            tracing::warn!(reason = reason.code(), cookie = %settings.cookie.name(), "device cookie rejected");
            match settings.on_rejected {
                RejectPolicy::Refuse => Identified::Refused(reason),
                RejectPolicy::Reissue => {
                    Identified::Device(fresh(settings, Reissue::Rejected(reason), client_ip))
                }
            }
        }
        None => Identified::Device(fresh(settings, Reissue::New, client_ip)),
    }
}

fn accepted(
    settings: &Settings,
    token: Token,
    others: Vec<DeviceId>,
    client_ip: Option<IpAddr>,
    now: u64,
) -> DeviceContext {
    let reissue = if token.retired_key {
        Some(Reissue::RetiredKey)
    } else if token.legacy_format {
        Some(Reissue::LegacyFormat)
    } else if token
        .issued_at
        .is_some_and(|at| now.saturating_sub(at) >= settings.refresh_age.as_secs())
    {
        Some(Reissue::Refresh)
    } else {
        None
    };
    DeviceContext {
        id: token.id,
        is_new: false,
        reissue,
        key_id: token.key_id,
        issued_at: token.issued_at.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        others,
        client_ip,
    }
}

fn fresh(settings: &Settings, why: Reissue, client_ip: Option<IpAddr>) -> DeviceContext {
    settings.metrics.issued();
    DeviceContext {
        id: settings.generator.generate(),
        is_new: true,
        reissue: Some(why),
        key_id: Some(settings.codec.primary_key_id()),
        issued_at: None,
        others: Vec::new(),
        client_ip,
    }
}

/// Puts the id and its context where extractors and `web::ReqData` find them.
fn remember(req: &ServiceRequest, context: &DeviceContext) {
    let mut ext = req.extensions_mut();
    ext.insert(context.id);
    ext.insert(context.clone());
}

/// Tells the registry of a returning browser. Only browsers that sent a valid cookie back
/// are counted; the registry logs its own failures and never fails the request.
async fn notify_returning(settings: &Settings, req: &ServiceRequest, context: &DeviceContext) {
    if context.is_new {
        return;
    }
    if let Some(registry) = &settings.registry {
        let headers = req.headers();
        let info = || RequestInfo::new(context.client_ip, headers);
        let write = registry.returning(context, &info);
        if let Some(write) = write {
            write.await;
        }
    }
}

fn refuse<B>(req: ServiceRequest, reason: Rejected) -> ServiceResponse<EitherBody<B>> {
    let response: HttpResponse = DeviceError::Rejected(reason).error_response();
    req.into_response(response).map_into_right_body()
}

/// The device `Set-Cookie` this response needs, if any.
async fn outgoing_cookie(
    settings: &Settings,
    context: &DeviceContext,
    action: Option<DeviceAction>,
    now: u64,
) -> Option<String> {
    let cookie = &settings.cookie;
    match action {
        Some(DeviceAction::Forget) => {
            settings.metrics.forgotten();
            Some(cookie.header(&cookie.removal()))
        }
        Some(DeviceAction::Renew) => {
            settings.metrics.issued();
            let id: DeviceId = settings.generator.generate();
            if let Some(registry) = &settings.registry {
                registry.renewed(context.id, id).await;
            }
            Some(cookie.header(&cookie.build(settings.codec.encode(id, now))))
        }
        None => {
            let reissue = context.reissue?;
            if !matches!(reissue, Reissue::New | Reissue::Rejected(_)) {
                settings.metrics.reissued(reissue);
            }
            Some(cookie.header(&cookie.build(settings.codec.encode(context.id, now))))
        }
    }
}

/// Writes the device cookie and the cookies the services queued. Cookies go on every
/// response, errors included: a first visit that hits a failing handler must still leave
/// with its id. A response that sets a cookie is private to this browser: a shared cache
/// must never hand it to another.
fn write_cookies<B>(
    res: &mut ServiceResponse<B>,
    device_cookie: Option<String>,
    cache: CacheControl,
) {
    let queued = res.request().extensions_mut().remove::<PendingCookies>();
    let headers = res.response_mut().headers_mut();
    let mut wrote = false;
    for cookie in device_cookie
        .into_iter()
        .chain(queued.into_iter().flat_map(|q| q.0))
    {
        match HeaderValue::try_from(cookie) {
            Ok(value) => {
                headers.append(SET_COOKIE, value);
                wrote = true;
            }
            Err(e) => tracing::error!(error = %e, "could not write a cookie"),
        }
    }
    if wrote {
        mark_private(headers, cache);
    }
}

/// `Cache-Control: private` (or `no-store`), unless the handler already said `private` or
/// `no-store`.
fn mark_private(headers: &mut HeaderMap, cache: CacheControl) {
    let already = headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("private") || v.contains("no-store"));
    if !already {
        let value = match cache {
            CacheControl::Private => "private",
            CacheControl::NoStore => "no-store",
        };
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(value));
    }
}
