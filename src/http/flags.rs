//! Flags over HTTP: the `DeviceFlags` extractor and the admin routes.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, Scope};

use crate::core::error::ServiceError;
use crate::core::flags::{FlagDefinition, Flags, Override, Subject};
use crate::http::error::ApiError;
use crate::http::guard::require_json;
use crate::http::sessions::{device_id, sessions_of};
use crate::identity::device_id::DeviceId;

/// The admin API of `flags` under `path` (mount it behind your own authentication):
/// `GET /` lists, `PUT /{key}` creates or replaces (body: a [`FlagDefinition`]),
/// `DELETE /{key}` deletes, `PUT /{key}/overrides/{device}` (body: `"on"`, `"off"` or
/// `{"variant":"name"}`) and `DELETE /{key}/overrides/{device}` manage overrides. Bodies
/// are `application/json` only.
#[must_use]
pub fn admin_routes(flags: &Flags, path: &str) -> Scope {
    web::scope(path)
        .app_data(web::Data::new(flags.clone()))
        .route("", web::get().to(admin_list))
        .route("/", web::get().to(admin_list))
        .route("/{key}", web::put().to(admin_put))
        .route("/{key}", web::delete().to(admin_delete))
        .route("/{key}/overrides/{device}", web::put().to(admin_override))
        .route(
            "/{key}/overrides/{device}",
            web::delete().to(admin_clear_override),
        )
}

async fn admin_list(flags: web::Data<Flags>) -> Result<HttpResponse, ApiError> {
    flags.reload().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "flags": flags.list() })))
}

async fn admin_put(
    flags: web::Data<Flags>,
    req: HttpRequest,
    key: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let def: FlagDefinition =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    if def.key != *key {
        return Err(ApiError::InvalidBody(
            "the body's key differs from the path's".to_owned(),
        ));
    }
    flags.upsert(def.clone()).await?;
    Ok(HttpResponse::Ok().json(def))
}

async fn admin_delete(
    flags: web::Data<Flags>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if flags.delete(&key).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ServiceError::FlagNotFound.into())
    }
}

fn parse_device(raw: &str) -> Result<DeviceId, ApiError> {
    raw.parse().map_err(|_| ServiceError::DeviceNotFound.into())
}

async fn admin_override(
    flags: web::Data<Flags>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let (key, device) = path.into_inner();
    let device = parse_device(&device)?;
    let value: Override =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    let def = flags.set_override(&key, device, Some(value)).await?;
    Ok(HttpResponse::Ok().json(def))
}

async fn admin_clear_override(
    flags: web::Data<Flags>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (key, device) = path.into_inner();
    let device = parse_device(&device)?;
    let def = flags.set_override(&key, device, None).await?;
    Ok(HttpResponse::Ok().json(def))
}

/// The flags of the request, evaluated from the cache. Needs `web::Data<Flags>` in app
/// data and the `DeviceTracking` middleware; without a device every flag is off. When a
/// user is signed in (through `Sessions` in app data, read from the request's one session
/// check) buckets follow the user, so every device of theirs sees one variant and
/// dropping the device cookie re-rolls nothing.
#[derive(Debug, Clone)]
pub struct DeviceFlags {
    device: Option<DeviceId>,
    user: Option<String>,
    flags: Flags,
}

impl DeviceFlags {
    /// Whether flag `key` is on for this request.
    #[must_use]
    pub fn is_enabled(&self, key: &str) -> bool {
        self.variant(key).is_some()
    }

    /// The variant of `key` for this request (`"on"` for flags without variants), or
    /// `None` when off.
    #[must_use]
    pub fn variant(&self, key: &str) -> Option<String> {
        let device = self.device.as_ref()?;
        let subject = Subject {
            device,
            user: self.user.as_deref(),
        };
        self.flags.evaluate_for(key, subject)
    }
}

impl FromRequest for DeviceFlags {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let flags = req
                .app_data::<web::Data<Flags>>()
                .map(|f| Flags::clone(f))
                .ok_or(ApiError::Misconfigured(
                    "no Flags in app data: add .app_data(web::Data::new(flags))",
                ))?;
            if let Err(e) = flags.refresh_if_stale().await {
                // A store hiccup keeps the last good definitions rather than failing requests.
                tracing::error!(error = %e, "flag definitions could not be refreshed");
            }
            let user = match (flags.buckets_by_user(), sessions_of(&req)) {
                (true, Some(sessions)) => sessions
                    .current(&req)
                    .await
                    .ok()
                    .map(|s| s.user_id().to_owned()),
                _ => None,
            };
            Ok(DeviceFlags {
                device: device_id(&req).ok(),
                user,
                flags,
            })
        })
    }
}
