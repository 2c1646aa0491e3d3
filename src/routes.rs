//! The device-management API: an actix `Scope` the application mounts.

use actix_web::{web, HttpRequest, HttpResponse, Scope};
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::device_id::DeviceId;
use crate::registry::{DeviceRecord, Permissions};
use crate::sessions::{CurrentSession, Sessions};

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
    raw.parse().map_err(|_| ApiError::DeviceNotFound)
}

async fn list(
    sessions: web::Data<Sessions>,
    session: CurrentSession,
) -> Result<HttpResponse, ApiError> {
    let devices = sessions.devices().list(&session.user_id).await?;
    let body: Vec<_> = devices
        .iter()
        .map(|d| device_json(d, &session.device_id))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "devices": body })))
}

async fn patch(
    sessions: web::Data<Sessions>,
    session: CurrentSession,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let target = parse_target(&path)?;
    let body: PatchBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    if body.name.is_none() && body.permissions.is_none() {
        return Err(ApiError::InvalidBody(
            "give a name, permissions, or both".to_owned(),
        ));
    }
    let actor = session.device_id;
    let record = sessions
        .devices()
        .patch(
            actor,
            &session.user_id,
            target,
            body.name.as_deref(),
            body.permissions,
        )
        .await?;
    Ok(HttpResponse::Ok().json(device_json(&record, &actor)))
}

async fn revoke(
    sessions: web::Data<Sessions>,
    session: CurrentSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let target = parse_target(&path)?;
    let record = sessions
        .devices()
        .revoke(session.device_id, &session.user_id, target)
        .await?;
    Ok(HttpResponse::Ok().json(device_json(&record, &session.device_id)))
}

async fn logout(
    sessions: web::Data<Sessions>,
    _session: CurrentSession,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    sessions.logout(&req).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "logged_out": true })))
}

async fn revoke_all(
    sessions: web::Data<Sessions>,
    session: CurrentSession,
) -> Result<HttpResponse, ApiError> {
    let revoked = sessions
        .devices()
        .revoke_all_others(session.device_id, &session.user_id)
        .await?;
    let ids: Vec<_> = revoked.iter().map(|d| d.id).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked": ids })))
}

impl Sessions {
    /// The device-management API under `path`, for the signed-in user:
    ///
    /// | route | does |
    /// |---|---|
    /// | `GET /` | lists the user's devices, `current: true` on the caller's |
    /// | `PATCH /{id}` | `{"name": "...", "permissions": {...}}`: renames or changes permissions |
    /// | `DELETE /{id}` | revokes a device (and its sessions) |
    /// | `POST /logout` | ends the caller's session |
    /// | `POST /revoke-all` | revokes every other device |
    ///
    /// Errors are JSON with stable codes: 401 `not_signed_in` (and the other session
    /// codes), 403 `forbidden` / `device_not_trusted`, 404 `device_not_found`, 409
    /// `conflict`, 422 `invalid_body`. Mount it inside the `DeviceTracking` middleware.
    ///
    /// ```no_run
    /// # use actix_device::{Devices, Sessions};
    /// # fn app(sessions: Sessions) {
    /// let app = actix_web::App::new().service(sessions.routes("/devices"));
    /// # }
    /// ```
    #[must_use]
    pub fn routes(&self, path: &str) -> Scope {
        web::scope(path)
            .app_data(web::Data::new(self.clone()))
            .route("", web::get().to(list))
            .route("/", web::get().to(list))
            .route("/logout", web::post().to(logout))
            .route("/revoke-all", web::post().to(revoke_all))
            .route("/{id}", web::patch().to(patch))
            .route("/{id}", web::delete().to(revoke))
    }
}
