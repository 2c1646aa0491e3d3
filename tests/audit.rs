//! The security audit log over HTTP, on every store backend: events in order, newest
//! first, paged without loss or repetition; in the device's export; gone with its erasure.
#![cfg(all(feature = "moka", feature = "redb", feature = "sled"))]

mod support;

use std::time::Duration;

use actix_device::devices::{DataRights, Devices, Permissions};
use actix_device::{
    ApiError, DeviceApi, DeviceTracking, Key, Keyring, ManualClock, ServiceContext, Sessions,
};
use actix_web::http::header::{COOKIE, SET_COOKIE};
use actix_web::http::StatusCode;
use actix_web::{test, web, App, HttpRequest, HttpResponse};
use serde_json::{json, Value};

async fn login(s: web::Data<Sessions>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    s.login(&req, "alice").await?;
    Ok(HttpResponse::Ok().finish())
}

#[actix_web::test]
async fn events_are_newest_first_paged_exported_and_erased() {
    let clock = ManualClock::new(1_800_000_000_000);
    for (backend, store, _dir) in support::backends_with_clock(clock.clone()) {
        eprintln!("-- on {backend}");
        let context = ServiceContext::new(store).clock(clock.clone());
        let devices = Devices::builder(&context)
            .default_permissions(Permissions::ALL)
            .build();
        let sessions = Sessions::builder(&devices)
            .cookie_secure(false)
            .build()
            .unwrap();
        let tracking = DeviceTracking::builder(Keyring::new(Key::from_secret(&[8; 32]).unwrap()))
            .cookie_secure(false)
            .clock(clock.clone())
            .registry(sessions.clone())
            .build()
            .unwrap();
        let app = test::init_service(
            App::new()
                .wrap(tracking)
                .app_data(web::Data::new(sessions.clone()))
                .route("/", web::get().to(HttpResponse::Ok))
                .route("/login", web::post().to(login))
                .service(DeviceApi::for_sessions(&sessions).scope("/devices")),
        )
        .await;
        let call = |method: &str, path: &str, jar: &str| {
            test::TestRequest::default()
                .method(method.parse().unwrap())
                .uri(path)
                .insert_header((COOKIE, jar.to_owned()))
                .insert_header(("content-type", "application/json"))
        };
        let mut jars = Vec::new();
        for _ in 0..2 {
            let res =
                test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
            let device = res
                .headers()
                .get(SET_COOKIE)
                .unwrap()
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            clock.advance(Duration::from_secs(1));
            let res = test::call_service(&app, call("POST", "/login", &device).to_request()).await;
            assert_eq!(res.status(), StatusCode::OK);
            let session = res
                .headers()
                .get(SET_COOKIE)
                .unwrap()
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            jars.push(format!("{device}; {session}"));
        }
        let (phone, laptop) = (&jars[0], &jars[1]);
        let list: Value =
            test::call_and_read_body_json(&app, call("GET", "/devices", phone).to_request()).await;
        let laptop_id = list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["current"] == json!(false))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        clock.advance(Duration::from_secs(1));
        let rename = call("PATCH", &format!("/devices/{laptop_id}"), phone)
            .set_payload(r#"{"name":"laptop"}"#);
        assert_eq!(
            test::call_service(&app, rename.to_request()).await.status(),
            StatusCode::OK
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            test::call_service(
                &app,
                call("DELETE", &format!("/devices/{laptop_id}"), phone).to_request()
            )
            .await
            .status(),
            StatusCode::OK
        );
        let _ = laptop;

        // Newest first, all of them.
        let all: Value = test::call_and_read_body_json(
            &app,
            call("GET", "/devices/events?limit=100", phone).to_request(),
        )
        .await;
        let kinds: Vec<&str> = all["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "revoked",
                "renamed",
                "sign_in",
                "device_bound",
                "sign_in",
                "device_bound"
            ],
            "newest first"
        );
        assert!(all["next"].is_null());
        // Two at a time: the same events, none twice, none lost.
        let mut paged = Vec::new();
        let mut path = "/devices/events?limit=2".to_owned();
        loop {
            let page: Value =
                test::call_and_read_body_json(&app, call("GET", &path, phone).to_request()).await;
            paged.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => path = format!("/devices/events?limit=2&after={next}"),
                None => break,
            }
        }
        assert_eq!(Value::Array(paged), all["events"]);

        // The laptop's export carries the events that mention it; erasing it removes them.
        let rights = DataRights::new(&devices);
        let laptop_id = laptop_id.parse().unwrap();
        let export = rights.export(laptop_id).await.unwrap();
        assert_eq!(export["audit"].as_array().unwrap().len(), 4, "{export}");
        rights.erase(laptop_id).await.unwrap();
        let after = devices.events("alice", None, 100).await.unwrap().events;
        assert!(after.iter().all(|e| !e.mentions(&laptop_id)));
        assert_eq!(after.len(), 3, "the phone's two events and the erasure");
    }
}
