//! The registry's touch throttle on one thread and on two: what a returning device's
//! request pays to be counted when no write is due, and what sharing the throttle between
//! two workers adds.
//!
//! ```sh
//! cargo bench --bench touch --features moka
//! ```
//!
//! Each thread runs its own current-thread runtime and touches its own 1,000 devices
//! (every touch after a device's first is throttled, so no write), `N` times (default
//! 1,000,000). Each round times one thread, then two at once; the table shows medians
//! over `ROUNDS` rounds (default 5) of the ns per touch per thread, and of each round's
//! two-thread figure over its one-thread figure. With fewer than two cores the two
//! threads take turns and the ratio says nothing.

mod support;

use support::{env_num, median};

use std::sync::Arc;
use std::time::Instant;

use actix_device::devices::Devices;
use actix_device::stores::{MokaStore, Store};
use actix_device::{DeviceId, RequestInfo, ServiceContext};

/// Nanoseconds per touch per thread, `threads` threads at once.
fn run(devices: &Devices, threads: u64, n: u64) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for thread in 0..threads {
            let devices = devices.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a runtime");
                let info = RequestInfo::default();
                rt.block_on(async {
                    for i in 0..n {
                        let id = (u128::from(thread) << 64) | u128::from(i % 1000);
                        let written = devices.touch(DeviceId::from_bytes(id.to_be_bytes()), &info);
                        written.await.expect("the touch");
                    }
                });
            });
        }
    });
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery
    }
    let n = env_num("N", 1_000_000).max(1);
    let rounds = env_num("ROUNDS", 5).max(1);
    let store: Arc<dyn Store> = Arc::new(MokaStore::builder().build());
    let devices = Devices::new(&ServiceContext::new(store));
    run(&devices, 2, 1000); // the first touch of each device writes
    let (mut one, mut two, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let a = run(&devices, 1, n);
        let b = run(&devices, 2, n);
        one.push(a);
        two.push(b);
        ratio.push(b / a);
    }
    println!("touch, throttled: {rounds} rounds x {n} touches per thread; medians");
    println!(
        "{:<10} {:>16} {:>12}",
        "threads", "ns/touch/thread", "x 1 thread"
    );
    println!("{:<10} {:>16.1} {:>12.2}", 1, median(one), 1.0);
    println!("{:<10} {:>16.1} {:>12.2}", 2, median(two), median(ratio));
}
