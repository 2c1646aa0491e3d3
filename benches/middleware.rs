//! The middleware in-process (no sockets): one request through `actix_web::test` with
//! and without `DeviceTracking`, so the per-request cost of the middleware itself is
//! visible without the noise of a network stack.
//!
//! ```sh
//! cargo bench --bench middleware
//! ```

use std::time::Duration;

use actix_device::{DeviceId, DeviceTracking, Key, Keyring, Mode};
use actix_web::http::header::COOKIE;
use actix_web::{test, web, App, HttpResponse};
use criterion::{BenchmarkId, Criterion};

async fn bare() -> HttpResponse {
    const ID: DeviceId = DeviceId::from_bytes([0x42; 16]);
    HttpResponse::Ok().body(format!("hello {ID}"))
}

async fn device(id: DeviceId) -> HttpResponse {
    HttpResponse::Ok().body(format!("hello {id}"))
}

fn tracking(mode: Mode) -> DeviceTracking {
    DeviceTracking::builder(Keyring::new(Key::from_secret(&[7; 32]).unwrap()))
        .mode(mode)
        .build()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = actix_web::rt::System::new();
    let mut g = c.benchmark_group("request");
    let bare_app = rt.block_on(test::init_service(
        App::new().route("/", web::get().to(bare)),
    ));
    let signed_cookie = {
        let app = rt.block_on(test::init_service(
            App::new()
                .wrap(tracking(Mode::Signed))
                .route("/", web::get().to(device)),
        ));
        let res = rt.block_on(test::call_service(
            &app,
            test::TestRequest::get().uri("/").to_request(),
        ));
        res.response()
            .cookies()
            .next()
            .map(|c| format!("device_id={}", c.value()))
            .unwrap()
    };
    g.bench_function(BenchmarkId::new("returning", "bare"), |b| {
        b.iter(|| {
            rt.block_on(test::call_service(
                &bare_app,
                test::TestRequest::get()
                    .uri("/")
                    .insert_header((COOKIE, signed_cookie.clone()))
                    .to_request(),
            ))
        })
    });
    for (name, mode) in [
        ("plain", Mode::Plain),
        ("signed", Mode::Signed),
        ("sealed", Mode::Sealed),
    ] {
        let app = rt.block_on(test::init_service(
            App::new()
                .wrap(tracking(mode))
                .route("/", web::get().to(device)),
        ));
        let first = rt.block_on(test::call_service(
            &app,
            test::TestRequest::get().uri("/").to_request(),
        ));
        let cookie = first
            .response()
            .cookies()
            .next()
            .map(|c| format!("device_id={}", c.value()))
            .unwrap();
        g.bench_function(BenchmarkId::new("returning", name), |b| {
            b.iter(|| {
                let res = rt.block_on(test::call_service(
                    &app,
                    test::TestRequest::get()
                        .uri("/")
                        .insert_header((COOKIE, cookie.clone()))
                        .to_request(),
                ));
                assert!(res.headers().get("set-cookie").is_none());
                res
            })
        });
        g.bench_function(BenchmarkId::new("first-visit", name), |b| {
            b.iter(|| {
                rt.block_on(test::call_service(
                    &app,
                    test::TestRequest::get().uri("/").to_request(),
                ))
            })
        });
    }
    g.finish();
}

fn median_ns(id: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let text =
        std::fs::read_to_string(format!("{dir}/criterion/request/{id}/new/estimates.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["median"]["point_estimate"].as_f64()
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    benches(&mut c);
    c.final_summary();
    let Some(bare) = median_ns("returning/bare") else {
        return;
    };
    println!(
        "\n{:<24} {:>10} {:>12} {:>8}",
        "median per request", "ns", "overhead ns", "x bare"
    );
    for id in [
        "returning/bare",
        "returning/plain",
        "returning/signed",
        "returning/sealed",
        "first-visit/plain",
        "first-visit/signed",
        "first-visit/sealed",
    ] {
        if let Some(ns) = median_ns(id) {
            println!("{id:<24} {ns:>10.0} {:>12.0} {:>8.2}", ns - bare, ns / bare);
        }
    }
}
