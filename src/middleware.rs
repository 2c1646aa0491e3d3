//! The `DeviceTracking` transform and its service.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{time, Cookie};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::COOKIE;
use actix_web::{HttpMessage, HttpResponse, ResponseError};

use crate::config::{CookieSettings, DeviceTracking, RejectPolicy, Settings};
use crate::cookie_header::values_named;
use crate::device_id::DeviceId;
use crate::extract::{DeviceAction, DeviceContext, DeviceError, NoConsent, Reissue};
use crate::registry::Devices;
use crate::sessions::{request_info, PendingCookies};
use crate::token::{Rejected, Token};

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
                return service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body);
            }
            let now = settings.now_secs();
            let context = match identify(&settings, &req, now) {
                Ok(context) => context,
                Err(reason) => return Ok(refuse(req, reason)),
            };
            {
                let mut ext = req.extensions_mut();
                ext.insert(context.id);
                ext.insert(context.clone());
            }
            if let Some(devices) = &settings.registry {
                touch_registry(devices, &req, &context).await;
            }

            let mut res = service.call(req).await?;
            let action = res.request().extensions_mut().remove::<DeviceAction>();
            let queued = res.request().extensions_mut().remove::<PendingCookies>();
            let device_cookie = outgoing_cookie(&settings, &context, action, now);
            // Cookies go on every response, errors included: a first visit that hits a
            // failing handler must still leave with its id.
            for cookie in device_cookie
                .into_iter()
                .chain(queued.into_iter().flat_map(|q| q.0))
            {
                if let Err(e) = res.response_mut().add_cookie(&cookie) {
                    tracing::error!(error = %e, cookie = cookie.name(), "could not write a cookie");
                }
            }
            Ok(res.map_into_left_body())
        })
    }
}

/// Counts the request in the device registry. Only browsers that sent a valid cookie back
/// are counted; a store failure is logged and never fails the request.
async fn touch_registry(devices: &Devices, req: &ServiceRequest, context: &DeviceContext) {
    if context.is_new {
        return;
    }
    let info = request_info(devices, req.request());
    if let Err(error) = devices.touch(context.id, &info).await {
        tracing::error!(%error, "device registry touch failed");
    }
}

fn consented(settings: &Settings, req: &ServiceRequest) -> bool {
    settings.consent.as_ref().is_none_or(|consent| consent(req))
}

/// Reads the device cookie and decides who this browser is. `Err` only under
/// [`RejectPolicy::Refuse`].
fn identify(
    settings: &Settings,
    req: &ServiceRequest,
    now: u64,
) -> Result<DeviceContext, Rejected> {
    match read_token(settings, req, now) {
        Some(Ok(token)) => {
            settings.metrics.accepted();
            Ok(accepted(settings, token, now))
        }
        Some(Err(reason)) => {
            settings.metrics.rejected(reason);
            tracing::warn!(reason = reason.code(), cookie = %settings.cookie.name, "device cookie rejected");
            match settings.on_rejected {
                RejectPolicy::Refuse => Err(reason),
                RejectPolicy::Reissue => Ok(fresh(settings, Reissue::Rejected(reason))),
            }
        }
        None => Ok(fresh(settings, Reissue::New)),
    }
}

/// The first cookie of our name that verifies; failing that, the first one's rejection;
/// `None` if the browser sent no such cookie.
fn read_token(
    settings: &Settings,
    req: &ServiceRequest,
    now: u64,
) -> Option<Result<Token, Rejected>> {
    let headers = req.headers().get_all(COOKIE).map(|v| v.as_bytes());
    let mut first_rejection = None;
    for value in values_named(headers, settings.cookie.name.as_bytes(), settings.limits) {
        match settings.codec.decode(value, now) {
            Ok(token) => return Some(Ok(token)),
            Err(reason) => {
                first_rejection.get_or_insert(reason);
            }
        }
    }
    first_rejection.map(Err)
}

fn accepted(settings: &Settings, token: Token, now: u64) -> DeviceContext {
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
    }
}

fn fresh(settings: &Settings, why: Reissue) -> DeviceContext {
    settings.metrics.issued();
    DeviceContext {
        id: settings.generator.generate(),
        is_new: true,
        reissue: Some(why),
        key_id: Some(settings.codec.primary_key_id()),
        issued_at: None,
    }
}

fn refuse<B>(req: ServiceRequest, reason: Rejected) -> ServiceResponse<EitherBody<B>> {
    let response: HttpResponse = DeviceError::Rejected(reason).error_response();
    req.into_response(response).map_into_right_body()
}

/// The `Set-Cookie` this response needs, if any.
fn outgoing_cookie(
    settings: &Settings,
    context: &DeviceContext,
    action: Option<DeviceAction>,
    now: u64,
) -> Option<Cookie<'static>> {
    match action {
        Some(DeviceAction::Forget) => {
            settings.metrics.forgotten();
            let mut cookie = device_cookie(settings, String::new());
            cookie.make_removal();
            Some(cookie)
        }
        Some(DeviceAction::Renew) => {
            settings.metrics.issued();
            let id: DeviceId = settings.generator.generate();
            Some(device_cookie(settings, settings.codec.encode(id, now)))
        }
        None => {
            let reissue = context.reissue?;
            if matches!(
                reissue,
                Reissue::RetiredKey | Reissue::LegacyFormat | Reissue::Refresh
            ) {
                settings.metrics.reissued();
            }
            Some(device_cookie(
                settings,
                settings.codec.encode(context.id, now),
            ))
        }
    }
}

/// The device cookie with every configured attribute.
fn device_cookie(settings: &Settings, value: String) -> Cookie<'static> {
    build_cookie(&settings.cookie, value)
}

/// A cookie with every attribute of `c`.
pub(crate) fn build_cookie(c: &CookieSettings, value: String) -> Cookie<'static> {
    let max_age = i64::try_from(c.max_age.as_secs()).unwrap_or(i64::MAX);
    let mut builder = Cookie::build(c.name.clone(), value)
        .path(c.path.clone())
        .secure(c.secure)
        .http_only(c.http_only)
        .same_site(c.same_site)
        .max_age(time::Duration::seconds(max_age));
    if let Some(domain) = &c.domain {
        builder = builder.domain(domain.clone());
    }
    if let Some(expires) = c.expires {
        builder = builder.expires(expires);
    }
    builder.finish()
}
