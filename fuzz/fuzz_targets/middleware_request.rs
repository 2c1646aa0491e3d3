//! A whole request with an arbitrary Cookie header through the DeviceTracking middleware
//! and a handler: never a panic or a 5xx, and any Set-Cookie decodes to the id the
//! handler saw.
#![no_main]

use actix_device::token::{TokenCodec, TokenContext};
use actix_device::{DeviceId, DeviceTracking, Key, Keyring, Mode};
use actix_web::http::header::{HeaderValue, COOKIE, SET_COOKIE};
use actix_web::{test, web, App, HttpResponse};
use libfuzzer_sys::fuzz_target;

const SECRET: [u8; 32] = [9; 32];

async fn whoami(id: DeviceId) -> HttpResponse {
    HttpResponse::Ok().body(id.to_string())
}

thread_local! {
    static RT: actix_web::rt::SystemRunner = actix_web::rt::System::new();
}

fuzz_target!(|data: &[u8]| {
    let Ok(header) = HeaderValue::from_bytes(data) else {
        return; // not a value an HTTP parser would hand over
    };
    RT.with(|rt| {
        rt.block_on(async {
            let keyring = Keyring::new(Key::from_secret(&SECRET).unwrap());
            let app = test::init_service(
                App::new()
                    .wrap(DeviceTracking::new(keyring.clone()))
                    .route("/", web::get().to(whoami)),
            )
            .await;
            let req = test::TestRequest::get().uri("/").insert_header((COOKIE, header)).to_request();
            let res = test::call_service(&app, req).await;
            assert!(!res.status().is_server_error(), "5xx for cookie {data:?}");
            let set: Vec<String> = res
                .headers()
                .get_all(SET_COOKIE)
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            if !res.status().is_success() {
                // A Cookie header past the limits: no id, no cookie (431).
                assert!(set.is_empty(), "a cookie set without an id");
                return;
            }
            let body = test::read_body(res).await;
            let seen: DeviceId = std::str::from_utf8(&body).unwrap().parse().unwrap();
            let codec = TokenCodec::new(&keyring, Mode::Signed, &TokenContext::new("__Host-device_id", "device"));
            for cookie in set {
                let value = cookie.trim_start_matches("__Host-device_id=").split(';').next().unwrap();
                let token = codec.decode(value.as_bytes(), u64::MAX / 4).or_else(|_| {
                    codec.decode(value.as_bytes(), 1)
                });
                let token = token.expect("the issued cookie verifies");
                assert_eq!(token.id, seen, "the cookie carries the id the handler saw");
            }
        })
    });
});
