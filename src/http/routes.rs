//! The device-management API: an actix `Scope` the application mounts, for whichever
//! authentication it uses.

use std::fmt;
use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, Scope};
use serde::Deserialize;

use crate::core::devices::Devices;
use crate::core::error::ServiceError;
use crate::core::model::{DeviceRecord, Permissions};
use crate::http::auth::SignedIn;
use crate::http::error::ApiError;
use crate::http::guard::{require_json, CrossSiteGuard};
use crate::http::sessions::{device_context, sessions_of, Sessions, TrustedDevice};
use crate::identity::device_id::DeviceId;

/// The device list and revocation API of the signed-in user, for any authentication:
///
/// | route | does |
/// |---|---|
/// | `GET /` | lists the user's devices, `current: true` on the caller's |
/// | `PATCH /{id}` | `{"name": "...", "permissions": {...}}`: renames or changes permissions |
/// | `DELETE /{id}` | revokes a device (and its sessions) |
/// | `POST /revoke-all` | revokes every other device |
/// | `GET /events?limit=20&after=…` | the user's security audit log, newest first, with a `next` cursor |
/// | `POST /logout` | ends the caller's session (with [`Sessions`] only) |
///
/// Every route is behind the [`CrossSiteGuard`]; `PATCH` takes `application/json` only.
/// Errors are JSON with stable codes: 401 `not_signed_in` (and the other session codes),
/// 403 `forbidden` / `device_not_trusted` / `cross_origin_request`, 404
/// `device_not_found`, 409 `conflict`, 415 `unsupported_media_type`, 422 `invalid_body`.
/// Mount it inside the `DeviceTracking` middleware.
///
/// ```no_run
/// # use actix_device::{DeviceApi, SignedIn};
/// # use actix_device::devices::Devices;
/// # fn app(devices: Devices, my_auth: impl SignedIn) {
/// let api = DeviceApi::new(&devices, my_auth);
/// let app = actix_web::App::new().service(api.scope("/devices"));
/// # }
/// ```
#[derive(Clone)]
pub struct DeviceApi {
    devices: Devices,
    auth: Arc<dyn SignedIn>,
    guard: CrossSiteGuard,
    logout: Option<Sessions>,
}

impl fmt::Debug for DeviceApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceApi")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl DeviceApi {
    /// The API over `devices`, with the signed-in user from `auth`.
    #[must_use]
    pub fn new(devices: &Devices, auth: impl SignedIn) -> Self {
        Self {
            devices: devices.clone(),
            auth: Arc::new(auth),
            guard: CrossSiteGuard::new(),
            logout: None,
        }
    }

    /// The API for this crate's own sessions: the signed-in user from `sessions`, and
    /// `POST /logout`.
    #[must_use]
    pub fn for_sessions(sessions: &Sessions) -> Self {
        Self::new(sessions.devices(), sessions.clone()).with_logout(sessions.clone())
    }

    /// Replaces the cross-site guard (to trust an origin, say).
    #[must_use]
    pub fn cross_site(mut self, guard: CrossSiteGuard) -> Self {
        self.guard = guard;
        self
    }

    /// Adds `POST /logout`, ending the caller's session.
    #[must_use]
    pub fn with_logout(mut self, sessions: Sessions) -> Self {
        self.logout = Some(sessions);
        self
    }

    /// The scope under `path`.
    #[must_use]
    pub fn scope(&self, path: &str) -> Scope {
        let mut scope = web::scope(path)
            .app_data(web::Data::new(self.clone()))
            .route("", web::get().to(list))
            .route("/", web::get().to(list))
            .route("/revoke-all", web::post().to(revoke_all))
            .route("/events", web::get().to(events));
        if self.logout.is_some() {
            scope = scope.route("/logout", web::post().to(logout));
        }
        scope
            .route("/{id}", web::patch().to(patch))
            .route("/{id}", web::delete().to(revoke))
    }

    /// The signed-in user and the acting device, which must be trusted by the user, on a
    /// request the cross-site guard lets through (it passes every safe method). The
    /// acting device is the one the authentication names, else the request's own
    /// (refused when the request carries several device identities).
    pub(crate) async fn caller(
        &self,
        req: &HttpRequest,
    ) -> Result<(String, DeviceRecord), ApiError> {
        self.guard.check(req)?;
        let caller = self
            .auth
            .caller(req)
            .await?
            .ok_or(ServiceError::NotSignedIn)?;
        let device = match caller.device_id {
            Some(id) => id,
            None => {
                let context = device_context(req)?;
                if context.is_ambiguous() {
                    return Err(ServiceError::AmbiguousDevice.into());
                }
                context.id
            }
        };
        let record = self
            .devices
            .is_trusted(&caller.user_id, &device)
            .await?
            .ok_or(ServiceError::DeviceNotTrusted)?;
        Ok((caller.user_id, record))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    permissions: Option<Permissions>,
}

fn device_json(record: &DeviceRecord, current: &DeviceId) -> serde_json::Value {
    serde_json::json!({
        "id": record.id,
        "name": record.name,
        "current": record.id == *current,
        "first_seen_ms": record.first_seen,
        "last_seen_ms": record.last_seen,
        "bound_at_ms": record.bound_at,
        "user_agent": record.user_agent,
        "last_ip": record.last_ip,
        "trusted": record.trusted,
        "permissions": record.permissions,
        "revoked": record.revoked,
    })
}

/// A path segment that is not a device id names no device: 404, not 400.
fn parse_target(raw: &str) -> Result<DeviceId, ApiError> {
    raw.parse().map_err(|_| ServiceError::DeviceNotFound.into())
}

async fn list(api: web::Data<DeviceApi>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (user, me) = api.caller(&req).await?;
    let devices = api.devices.list(&user).await?;
    let body: Vec<_> = devices.iter().map(|d| device_json(d, &me.id)).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "devices": body })))
}

async fn patch(
    api: web::Data<DeviceApi>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let (user, me) = api.caller(&req).await?;
    let target = parse_target(&path)?;
    let body: PatchBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    if body.name.is_none() && body.permissions.is_none() {
        return Err(ApiError::InvalidBody(
            "give a name, permissions, or both".to_owned(),
        ));
    }
    let record = api
        .devices
        .patch(me.id, &user, target, body.name.as_deref(), body.permissions)
        .await?;
    Ok(HttpResponse::Ok().json(device_json(&record, &me.id)))
}

async fn revoke(
    api: web::Data<DeviceApi>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (user, me) = api.caller(&req).await?;
    let target = parse_target(&path)?;
    let record = api.devices.revoke(me.id, &user, target).await?;
    Ok(HttpResponse::Ok().json(device_json(&record, &me.id)))
}

async fn logout(api: web::Data<DeviceApi>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let sessions = api
        .logout
        .as_ref()
        .ok_or(ApiError::Misconfigured("logout without sessions"))?;
    sessions.logout(&req).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "logged_out": true })))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
    after: Option<String>,
}

async fn events(
    api: web::Data<DeviceApi>,
    req: HttpRequest,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = api.caller(&req).await?;
    let limit = query.limit.unwrap_or(20);
    let page = api
        .devices
        .events(&user, query.after.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn revoke_all(api: web::Data<DeviceApi>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (user, me) = api.caller(&req).await?;
    let revoked = api.devices.revoke_all_others(me.id, &user).await?;
    let ids: Vec<_> = revoked.iter().map(|d| d.id).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked": ids })))
}

impl FromRequest for TrustedDevice {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(api) = req.app_data::<web::Data<DeviceApi>>() {
                let (user_id, device) = api.caller(&req).await?;
                let device = std::sync::Arc::new(device);
                return Ok(TrustedDevice { user_id, device });
            }
            match sessions_of(&req) {
                Some(sessions) => sessions.trusted(&req).await,
                None => Err(ApiError::Misconfigured(
                    "no Sessions or DeviceApi in app data for TrustedDevice",
                )),
            }
        })
    }
}
