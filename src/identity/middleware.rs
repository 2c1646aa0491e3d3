//! The `DeviceTracking` transform and its service.

use std::future::{ready, Future, Ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready as ready_poll, Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderValue, CACHE_CONTROL, COOKIE, SET_COOKIE};
use actix_web::{HttpMessage, HttpResponse, ResponseError};

use crate::identity::client::RequestInfo;
use crate::identity::config::{
    CacheControl, DeviceObserver, DeviceTracking, ObserverFuture, RejectPolicy, Settings,
};
use crate::identity::device_id::DeviceId;
use crate::identity::error::DeviceError;
use crate::identity::extract::{
    DeviceAction, DeviceContext, NoConsent, Outgoing, Reissue, Unreadable,
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
            settings: Rc::new(Arc::clone(&self.settings)),
        }))
    }
}

/// The service [`DeviceTracking`] wraps around an app or scope.
#[doc(hidden)]
pub struct DeviceTrackingService<S> {
    service: Rc<S>,
    settings: WorkerSettings,
}

/// The settings as one worker holds them. Each request's future keeps a clone, and a
/// worker's services and futures never leave its thread, so the clone is a plain count
/// rather than the atomic one of the `Arc` the workers share.
type WorkerSettings = Rc<Arc<Settings>>;

impl<S> std::fmt::Debug for DeviceTrackingService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTrackingService")
            .finish_non_exhaustive()
    }
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// What the middleware's future resolves to.
type Outcome<B> = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

impl<S, B> Service<ServiceRequest> for DeviceTrackingService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = DeviceFuture<S::Future, B>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let settings = &self.settings;
        if !consented(settings, &req) {
            req.extensions_mut().insert(NoConsent);
            return self.calling(req, None);
        }
        let now = settings.now_secs();
        let context = match identify(settings, &req, now) {
            Identified::Device(context) => context,
            Identified::Refused(reason) => {
                return DeviceFuture::waiting(Box::pin(ready(Ok(refuse(req, reason)))));
            }
            Identified::Unreadable => {
                req.extensions_mut().insert(Unreadable);
                return self.calling(req, None);
            }
        };
        let tracked = Tracked {
            id: context.id,
            reissue: context.reissue,
            now,
        };
        let due = notify_returning(settings, &req, &context);
        remember(&req, context);
        match due {
            None => self.calling(req, Some(tracked)),
            Some(write) => {
                let service = Rc::clone(&self.service);
                let settings = Rc::clone(&self.settings);
                DeviceFuture::waiting(Box::pin(async move {
                    write.await;
                    DeviceFuture::calling(&*service, &settings, req, Some(tracked)).await
                }))
            }
        }
    }
}

impl<S> DeviceTrackingService<S> {
    fn calling<B>(
        &self,
        req: ServiceRequest,
        tracked: Option<Tracked>,
    ) -> DeviceFuture<S::Future, B>
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    {
        DeviceFuture::calling(&*self.service, &self.settings, req, tracked)
    }
}

/// What the way out needs to know of an identified request.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    id: DeviceId,
    reissue: Option<Reissue>,
    now: u64,
}

pin_project_lite::pin_project! {
    /// The middleware's future: the wrapped service's, polled in place, then the cookies
    /// written on its response. Only a request that waits on the registry (a due device
    /// write, a renewed id) or is refused is boxed, so most requests cost no allocation
    /// here, and the future stays a few words in size.
    #[doc(hidden)]
    pub struct DeviceFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Calling {
            #[pin]
            inner: F,
            settings: WorkerSettings,
            tracked: Option<Tracked>,
        },
        Waiting {
            future: LocalBoxFuture<Outcome<B>>,
        },
    }
}

impl<F, B> DeviceFuture<F, B> {
    /// Calls `service`; the response leaves with `tracked`'s device cookie, if it needs
    /// one, and the cookies the services queued.
    fn calling<S>(
        service: &S,
        settings: &WorkerSettings,
        req: ServiceRequest,
        tracked: Option<Tracked>,
    ) -> Self
    where
        S: Service<ServiceRequest, Future = F>,
    {
        Self {
            state: State::Calling {
                inner: service.call(req),
                settings: Rc::clone(settings),
                tracked,
            },
        }
    }

    fn waiting(future: LocalBoxFuture<Outcome<B>>) -> Self {
        Self {
            state: State::Waiting { future },
        }
    }
}

impl<F, B> Future for DeviceFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody + 'static,
{
    type Output = Outcome<B>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let renewing = match self.as_mut().project().state.project() {
            StateProj::Calling {
                inner,
                settings,
                tracked,
            } => {
                let mut res = ready_poll!(inner.poll(cx))?;
                match finish(settings, tracked.take(), &mut res) {
                    None => return Poll::Ready(Ok(res.map_into_left_body())),
                    Some(renewal) => Box::pin(renewal.finish(res)),
                }
            }
            StateProj::Waiting { future } => return future.as_mut().poll(cx),
        };
        self.as_mut()
            .project()
            .state
            .set(State::Waiting { future: renewing });
        self.poll(cx)
    }
}

/// A renewal a handler asked for, which the registry must hear of before its cookie goes
/// out.
struct Renewal {
    settings: Arc<Settings>,
    registry: Arc<dyn DeviceObserver>,
    tracked: Tracked,
    /// The cookies the services queued, which go out with the new one.
    queued: Vec<String>,
}

impl Renewal {
    async fn finish<B: MessageBody>(self, mut res: ServiceResponse<B>) -> Outcome<B> {
        let (id, cookie) = fresh_cookie(&self.settings, self.tracked.now);
        self.registry.renewed(self.tracked.id, id).await;
        write_cookies(
            &mut res,
            Some(cookie),
            self.queued,
            self.settings.cache_control,
        );
        Ok(res.map_into_left_body())
    }
}

/// Puts the device cookie (if `tracked` needs one) and the cookies the services queued on
/// the wrapped service's response, unless a renewal must wait on the registry first.
fn finish<B>(
    settings: &Arc<Settings>,
    tracked: Option<Tracked>,
    res: &mut ServiceResponse<B>,
) -> Option<Renewal> {
    let Outgoing { action, cookies } = res
        .request()
        .extensions_mut()
        .remove::<Outgoing>()
        .unwrap_or_default();
    let cache = settings.cache_control;
    // Most responses carry nothing: a returning browser whose cookie stays as it is.
    if action.is_none() && cookies.is_empty() && tracked.is_none_or(|t| t.reissue.is_none()) {
        return None;
    }
    let Some(tracked) = tracked else {
        write_cookies(res, None, cookies, cache);
        return None;
    };
    if let (Some(DeviceAction::Renew), Some(registry)) = (action, &settings.registry) {
        return Some(Renewal {
            settings: Arc::clone(settings),
            registry: Arc::clone(registry),
            tracked,
            queued: cookies,
        });
    }
    write_cookies(
        res,
        outgoing_cookie(settings, tracked, action),
        cookies,
        cache,
    );
    None
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
    let complete = settings
        .cookie_name
        .visit(headers, settings.limits, |value| {
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
fn remember(req: &ServiceRequest, context: DeviceContext) {
    let mut ext = req.extensions_mut();
    ext.insert(context.id);
    ext.insert(context);
}

/// Tells the registry of a returning browser. Only browsers that sent a valid cookie back
/// are counted; the registry logs its own failures and never fails the request. Returns
/// the write the registry wants awaited before the handler runs, if one is due.
fn notify_returning(
    settings: &Settings,
    req: &ServiceRequest,
    context: &DeviceContext,
) -> Option<ObserverFuture> {
    if context.is_new {
        return None;
    }
    let registry = settings.registry.as_ref()?;
    let headers = req.headers();
    registry.returning(context, &|| RequestInfo::new(context.client_ip, headers))
}

fn refuse<B>(req: ServiceRequest, reason: Rejected) -> ServiceResponse<EitherBody<B>> {
    let response: HttpResponse = DeviceError::Rejected(reason).error_response();
    req.into_response(response).map_into_right_body()
}

/// The device `Set-Cookie` this response needs, if any. A renewal here has no registry to
/// tell (`finish` handles the one that has).
fn outgoing_cookie(
    settings: &Settings,
    tracked: Tracked,
    action: Option<DeviceAction>,
) -> Option<String> {
    let cookie = &settings.cookie;
    match action {
        Some(DeviceAction::Forget) => {
            settings.metrics.forgotten();
            Some(cookie.header(&cookie.removal()))
        }
        Some(DeviceAction::Renew) => Some(fresh_cookie(settings, tracked.now).1),
        None => {
            let reissue = tracked.reissue?;
            if !matches!(reissue, Reissue::New | Reissue::Rejected(_)) {
                settings.metrics.reissued(reissue);
            }
            Some(cookie.header(&cookie.build(settings.codec.encode(tracked.id, tracked.now))))
        }
    }
}

/// A fresh id for a handler's renewal, and its cookie.
fn fresh_cookie(settings: &Settings, now: u64) -> (DeviceId, String) {
    settings.metrics.issued();
    let id: DeviceId = settings.generator.generate();
    let cookie = &settings.cookie;
    (
        id,
        cookie.header(&cookie.build(settings.codec.encode(id, now))),
    )
}

/// Writes the device cookie and the cookies the services queued. Cookies go on every
/// response, errors included: a first visit that hits a failing handler must still leave
/// with its id. A response that sets a cookie is private to this browser: a shared cache
/// must never hand it to another.
fn write_cookies<B>(
    res: &mut ServiceResponse<B>,
    device_cookie: Option<String>,
    queued: Vec<String>,
    cache: CacheControl,
) {
    let headers = res.response_mut().headers_mut();
    let mut wrote = false;
    for cookie in device_cookie.into_iter().chain(queued) {
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
