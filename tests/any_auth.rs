//! Device management and trust under an app that signs users in its own way (here an
//! authenticating proxy's `X-User` header), not with this crate's sessions: the same
//! routes list, rename and revoke devices, and `TrustedDevice` guards a route.
#![cfg(all(feature = "moka", feature = "redb", feature = "sled"))]

mod support;

use actix_device::devices::{Devices, Permissions};
use actix_device::{
    ApiError, Caller, DeviceApi, DeviceContext, DeviceTracking, Key, Keyring, RequestInfo,
    ServiceContext, SignedIn, TrustedDevice,
};
use actix_web::http::header::{COOKIE, SET_COOKIE};
use actix_web::http::StatusCode;
use actix_web::{test, web, App, HttpRequest, HttpResponse};
use serde_json::Value;

/// Trusts the `X-User` header, as behind an authenticating proxy.
struct ProxyAuth;

#[async_trait::async_trait(?Send)]
impl SignedIn for ProxyAuth {
    async fn caller(&self, req: &HttpRequest) -> Result<Option<Caller>, ApiError> {
        Ok(req
            .headers()
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(Caller::user))
    }
}

/// The app's own sign-in: after its check, it binds the device to the user.
async fn sign_in(
    devices: web::Data<Devices>,
    ctx: DeviceContext,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let user = req
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    devices
        .bind(
            ctx.id,
            &user,
            &RequestInfo::new(ctx.client_ip, req.headers()),
        )
        .await?;
    Ok(HttpResponse::Ok().finish())
}

async fn secret(t: TrustedDevice) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} on {}", t.user_id, t.device.id))
}

#[actix_web::test]
async fn management_routes_and_trust_work_with_another_authentication() {
    for (backend, store, _dir) in support::backends() {
        eprintln!("-- on {backend}");
        let devices = Devices::new(&ServiceContext::new(store));
        let api = DeviceApi::new(&devices, ProxyAuth);
        let tracking = DeviceTracking::builder(Keyring::new(Key::from_secret(&[4; 32]).unwrap()))
            .cookie_secure(false)
            .registry(devices.clone())
            .build()
            .unwrap();
        let app = test::init_service(
            App::new()
                .wrap(tracking)
                .app_data(web::Data::new(devices.clone()))
                .app_data(web::Data::new(api.clone()))
                .route("/", web::get().to(HttpResponse::Ok))
                .route("/sign-in", web::post().to(sign_in))
                .route("/secret", web::get().to(secret))
                .service(api.scope("/devices")),
        )
        .await;
        // Two browsers of alice's, signed in by the app itself.
        let mut jars = Vec::new();
        for _ in 0..2 {
            let res =
                test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
            let cookie = res
                .headers()
                .get(SET_COOKIE)
                .unwrap()
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            jars.push(cookie);
        }
        let req = |method: &str, path: &str, jar: &str, user: Option<&str>| {
            let mut r = test::TestRequest::default()
                .method(method.parse().unwrap())
                .uri(path)
                .insert_header((COOKIE, jar.to_owned()));
            if let Some(u) = user {
                r = r.insert_header(("x-user", u.to_owned()));
            }
            r
        };
        for jar in &jars {
            let res = test::call_service(
                &app,
                req("POST", "/sign-in", jar, Some("alice")).to_request(),
            )
            .await;
            assert_eq!(res.status(), StatusCode::OK);
        }
        let (first, second) = (&jars[0], &jars[1]);
        assert_eq!(
            test::call_service(
                &app,
                req("GET", "/secret", second, Some("alice")).to_request()
            )
            .await
            .status(),
            StatusCode::OK
        );
        assert_eq!(
            test::call_service(&app, req("GET", "/secret", second, None).to_request())
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        // The list, from the first device.
        let body: Value = test::call_and_read_body_json(
            &app,
            req("GET", "/devices", first, Some("alice")).to_request(),
        )
        .await;
        let list = body["devices"].as_array().unwrap().clone();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0]["permissions"],
            serde_json::json!(Permissions::ALL),
            "the first device ever bound"
        );
        let other = list
            .iter()
            .find(|d| d["current"] == Value::Bool(false))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Rename and revoke the other device.
        let rename = req("PATCH", &format!("/devices/{other}"), first, Some("alice"))
            .insert_header(("content-type", "application/json"))
            .set_payload(r#"{"name":"old phone"}"#);
        let body: Value = test::call_and_read_body_json(&app, rename.to_request()).await;
        assert_eq!(body["name"], "old phone");
        let res = test::call_service(
            &app,
            req("DELETE", &format!("/devices/{other}"), first, Some("alice")).to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        // The revoked device is no longer trusted, whatever the proxy says.
        let res = test::call_service(
            &app,
            req("GET", "/secret", second, Some("alice")).to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let body: Value = test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], "device_not_trusted");
    }
}
