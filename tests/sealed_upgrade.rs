//! A browser holding a sealed token of the legacy format (v1, XChaCha20-Poly1305) keeps its
//! id and is handed a v2 (AES-256-GCM-SIV) token on the same response, through the real
//! middleware; after that the browser's token is current and not re-issued again.

use actix_device::token::{TokenCodec, TokenContext};
use actix_device::{
    DeviceContext, DeviceId, DeviceTracking, Key, Keyring, ManualClock, Mode, Reissue,
};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{COOKIE, SET_COOKIE};
use actix_web::{test, web, App, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

const NOW_MS: u64 = 1_800_000_000_000;
const NOW: u64 = NOW_MS / 1000;

async fn whoami(ctx: DeviceContext) -> HttpResponse {
    let reissue = ctx.reissue.map(|r| format!("{r:?}")).unwrap_or_default();
    HttpResponse::Ok()
        .json(serde_json::json!({ "id": ctx.id, "new": ctx.is_new, "reissue": reissue }))
}

fn keyring() -> Keyring {
    Keyring::new(Key::from_secret(&[3; 32]).unwrap())
}

/// The device cookie's value in this response, if one was set.
fn set_value<B>(res: &ServiceResponse<B>) -> Option<String> {
    let header = res.headers().get(SET_COOKIE)?.to_str().ok()?;
    let cookie = actix_web::cookie::Cookie::parse(header.to_owned()).ok()?;
    Some(cookie.value().to_owned())
}

#[actix_web::test]
async fn legacy_sealed_token_keeps_its_id_and_is_reissued_as_v2() {
    let tracking = DeviceTracking::builder(keyring())
        .mode(Mode::Sealed)
        .clock(ManualClock::new(NOW_MS))
        .build()
        .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(tracking.clone())
            .route("/", web::get().to(whoami)),
    )
    .await;
    let codec = TokenCodec::new(
        &keyring(),
        Mode::Sealed,
        &TokenContext::new("__Host-device_id", "device"),
    );
    let id = DeviceId::new_v7();
    let body = [&id.as_bytes()[..], &(NOW - 60).to_be_bytes(), &[0]].concat();
    let legacy = codec
        .seal_body_with(0x02, codec.primary_key_id(), &[7; 24], &body)
        .unwrap();

    let req = test::TestRequest::get()
        .uri("/")
        .insert_header((COOKIE, format!("__Host-device_id={legacy}")));
    let res = test::call_service(&app, req.to_request()).await;
    let upgraded = set_value(&res).expect("the legacy token is re-issued");
    let json: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(json["id"], id.to_string());
    assert_eq!(json["new"], false);
    assert_eq!(json["reissue"], format!("{:?}", Reissue::LegacyFormat));
    assert_eq!(URL_SAFE_NO_PAD.decode(&upgraded).unwrap()[0], 0x03);
    assert_eq!(upgraded.len(), 78);
    assert_eq!(tracking.metrics().reissued, 1);

    let req = test::TestRequest::get()
        .uri("/")
        .insert_header((COOKIE, format!("__Host-device_id={upgraded}")));
    let res = test::call_service(&app, req.to_request()).await;
    assert_eq!(set_value(&res), None, "a current token is not re-issued");
    let json: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(json["id"], id.to_string());
    assert_eq!(tracking.metrics().reissued, 1);
}
