//! Crash test: a child process writes records in a loop and prints each one once it is
//! acknowledged — acknowledged = its `put` returned Ok (every commit is durable). The parent kills the child with SIGKILL at a random
//! moment, reopens the database, and checks that every acknowledged record is there.
//! 20 cycles by default; `CRASH_CYCLES` sets more.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use actix_device_redb::RedbStore;
use actix_device_store::Store;

const WRITERS: usize = 4;
/// Whether a record counts as acknowledged only after a flush that followed its put.
const ACK_AFTER_FLUSH: bool = false;

fn main() {
    if let Ok(path) = std::env::var("CRASH_CHILD_DB") {
        child(PathBuf::from(path));
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    parent();
}

fn value_for(key: &str) -> Vec<u8> {
    key.bytes().rev().collect()
}

/// Writes until killed, printing `ack KEY` for every acknowledged record.
fn child(path: PathBuf) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store = std::sync::Arc::new(RedbStore::open(&path).expect("child opens the store"));
        let run = std::process::id();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0u64.. {
                        let batch: Vec<String> =
                            (0..8).map(|j| format!("r{run}/w{w}/{i:08}/{j}")).collect();
                        for key in &batch {
                            store
                                .put(key.as_bytes(), &value_for(key), None)
                                .await
                                .expect("put");
                            if !ACK_AFTER_FLUSH {
                                ack(key);
                            }
                        }
                        if ACK_AFTER_FLUSH {
                            store.flush().await.expect("flush");
                            for key in &batch {
                                ack(key);
                            }
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

fn ack(key: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ack {key}");
    let _ = out.flush();
}

fn parent() {
    let cycles: u32 = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().expect("own path");
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    let mut total = 0usize;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for cycle in 1..=cycles {
        let mut child = Command::new(&exe)
            .env("CRASH_CHILD_DB", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("child starts");
        let stdout = child.stdout.take().expect("child stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ack ").map(str::to_owned))
                .collect::<Vec<String>>()
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = 150 + seed % 450;
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let acked = reader.join().expect("reader");
        rt.block_on(async {
            let store = RedbStore::open(&path).expect("reopens after the crash");
            for key in &acked {
                let got = store.get(key.as_bytes()).await.expect("get");
                assert_eq!(
                    got,
                    Some(value_for(key)),
                    "cycle {cycle}: acknowledged record {key} lost"
                );
            }
        });
        println!(
            "crash cycle {cycle}: killed after {wait} ms, {} acknowledged records all present",
            acked.len()
        );
        total += acked.len();
    }
    assert!(
        total > 0,
        "the children acknowledged nothing: the test proved nothing"
    );
    println!("crash: {cycles} cycles, {total} acknowledged records checked, none lost");
}
