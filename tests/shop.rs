//! The shop's own defences over HTTP: sign-in limited per address and per account, posts
//! from other sites refused, JSON endpoints requiring JSON.
#![cfg(feature = "redb")]

#[allow(dead_code)]
#[path = "../examples/shop/app.rs"]
mod app;

use actix_web::http::StatusCode;
use actix_web::{test, App};
use serde_json::json;

fn login(user: &str, password: &str, ip: &str) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/api/login")
        .peer_addr(format!("{ip}:5000").parse().unwrap())
        .set_json(json!({ "username": user, "password": password }))
}

#[actix_web::test]
async fn sign_in_is_limited_per_address_and_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let shop = app::open(dir.path(), false).await.unwrap();
    let app = test::init_service(
        App::new()
            .configure(|c| shop.configure(c))
            .wrap(shop.tracking()),
    )
    .await;
    // Unknown accounts, so no password hash is checked and the attempts come faster than
    // the limits refill (one attempt per 6 s): the counts below do not depend on timing.
    // Cookie-less guessing from one address: 10 answers, then 429.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let user = format!("nobody-{i}");
        statuses.push(
            test::call_service(&app, login(&user, "guess", "198.51.100.1").to_request())
                .await
                .status(),
        );
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        10
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2
    );
    // One account from ever new addresses: its own limit stops the 11th attempt.
    let mut statuses = Vec::new();
    for i in 0..11 {
        let ip = format!("198.51.100.{}", 10 + i);
        statuses.push(
            test::call_service(&app, login("mallory", "guess", &ip).to_request())
                .await
                .status(),
        );
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        10
    );
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    // Another account from another address is untouched.
    let res = test::call_service(&app, login("bob", "builder", "198.51.100.3").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[actix_web::test]
async fn cross_site_and_non_json_posts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shop = app::open(dir.path(), false).await.unwrap();
    let app = test::init_service(
        App::new()
            .configure(|c| shop.configure(c))
            .wrap(shop.tracking()),
    )
    .await;
    let forged =
        login("bob", "builder", "198.51.100.4").insert_header(("sec-fetch-site", "cross-site"));
    let res = test::call_service(&app, forged.to_request()).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body["error"]["code"], "cross_origin_request");
    let form = test::TestRequest::post()
        .uri("/api/login")
        .peer_addr("198.51.100.4:5000".parse().unwrap())
        .insert_header(("content-type", "text/plain"))
        .set_payload(r#"{"username":"bob","password":"builder"}"#);
    assert_eq!(
        test::call_service(&app, form.to_request()).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}
