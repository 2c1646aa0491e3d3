//! The crash test for persistent stores: a child process writes records in a loop and
//! prints each one once it is acknowledged; the parent kills it with `SIGKILL` at a random
//! moment, reopens the store and checks that every acknowledged record is there.
//!
//! Use it from a test target with `harness = false` whose `main` is one call:
//!
//! ```ignore
//! fn main() {
//!     actix_device_store::testkit::crash::main(|path| MyStore::open(path), false);
//! }
//! ```
//!
//! `ack_after_flush`: whether a write counts as acknowledged only once a `flush` that
//! followed it has returned (stores that are durable only after a flush), or as soon as
//! its `put` returned. 20 cycles by default; the `CRASH_CYCLES` environment variable sets
//! more.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::{Store, StoreError};

const WRITERS: usize = 4;
const CHILD_ENV: &str = "ACTIX_DEVICE_CRASH_CHILD_DB";

fn value_for(key: &str) -> Vec<u8> {
    key.bytes().rev().collect()
}

/// Runs the child side when started as the child, the parent side otherwise.
pub fn main<S, F>(open: F, ack_after_flush: bool)
where
    S: Store,
    F: Fn(&Path) -> Result<S, StoreError>,
{
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&open, PathBuf::from(path), ack_after_flush);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    parent(&open);
}

fn ack(key: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ack {key}");
    let _ = out.flush();
}

/// Writes until killed, printing `ack KEY` for every acknowledged record.
fn child<S: Store>(
    open: &dyn Fn(&Path) -> Result<S, StoreError>,
    path: PathBuf,
    ack_after_flush: bool,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(open(&path).expect("the child opens the store"));
    rt.block_on(async move {
        let run = std::process::id();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0u64.. {
                        let batch: Vec<String> =
                            (0..8).map(|j| format!("r{run}/w{w}/{i:08}/{j}")).collect();
                        for key in &batch {
                            store
                                .put(key.as_bytes(), &value_for(key), None)
                                .await
                                .expect("put");
                            if !ack_after_flush {
                                ack(key);
                            }
                        }
                        if ack_after_flush {
                            store.flush().await.expect("flush");
                            batch.iter().for_each(|k| ack(k));
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}

fn parent<S: Store>(open: &dyn Fn(&Path) -> Result<S, StoreError>) {
    let cycles: u32 = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("actix-device-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("crash.db");
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    let mut total = 0usize;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for cycle in 1..=cycles {
        let wait = 150 + next_random(&mut seed) % 450;
        let acked = kill_a_writer(&path, Duration::from_millis(wait));
        let store = open(&path).expect("the store reopens after the crash");
        rt.block_on(all_present(&store, &acked, cycle));
        drop(store);
        println!(
            "crash cycle {cycle}: killed after {wait} ms, {} acknowledged records all present",
            acked.len()
        );
        total += acked.len();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        total > 0,
        "the children acknowledged nothing: the test proved nothing"
    );
    println!("crash: {cycles} cycles, {total} acknowledged records checked, none lost");
}

/// A xorshift step: random enough to vary the moment of the kill, no dependency.
fn next_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Starts this executable as a child writing to the store at `path`, kills it with
/// `SIGKILL` after `wait`, and returns the keys it acknowledged before it died.
fn kill_a_writer(path: &Path, wait: Duration) -> Vec<String> {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the child starts");
    let stdout = child.stdout.take().expect("child stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ack ").map(str::to_owned))
            .collect::<Vec<String>>()
    });
    std::thread::sleep(wait);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    reader.join().expect("reader")
}

/// Every acknowledged key holds its value in the reopened store.
async fn all_present<S: Store>(store: &S, acked: &[String], cycle: u32) {
    for key in acked {
        let got = store.get(key.as_bytes()).await.expect("get");
        assert_eq!(
            got,
            Some(value_for(key)),
            "cycle {cycle}: acknowledged record {key} lost"
        );
    }
}
