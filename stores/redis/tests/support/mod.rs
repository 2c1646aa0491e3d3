//! Real Redis servers for tests, shared by this crate's tests and the workspace's
//! `tests/redis.rs` (which includes this file by path).
//!
//! - [`redis_url`]: the shared server `.ci/with-redis` started (`ACTIX_DEVICE_REDIS_URL`);
//! - [`OwnRedis`]: a server of the test's own (binary from `ACTIX_DEVICE_REDIS_SERVER`), for
//!   tests that stop, freeze or restart it.
//!
//! Either is `None` when its variable is unset, after printing why the test is skipped.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Prints why a test is skipped, straight to stderr: the test harness captures
/// `eprintln!` of passing tests, and a skip must be seen.
fn skip(why: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why}; run the tests under `.ci/with-redis` to include them"
    );
}

/// The shared server's URL, or `None` (reason printed).
pub fn redis_url() -> Option<String> {
    match std::env::var("ACTIX_DEVICE_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip("ACTIX_DEVICE_REDIS_URL is not set");
            None
        }
    }
}

/// A key prefix of this test run's own, so runs sharing a server never meet.
pub fn run_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("test-{test}-{}-{nanos}:", std::process::id())
}

/// A free loopback port (free when asked; good enough for a test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A redis-server of the test's own, so stopping it disturbs no other test. Killed on drop.
pub struct OwnRedis {
    binary: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one, or `None` (reason printed) without `ACTIX_DEVICE_REDIS_SERVER`.
    pub fn start() -> Option<Self> {
        let Ok(binary) = std::env::var("ACTIX_DEVICE_REDIS_SERVER") else {
            skip("ACTIX_DEVICE_REDIS_SERVER (a redis-server binary) is not set");
            return None;
        };
        let mut server = OwnRedis {
            binary,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again) on the same port, with no persistence, and waits until
    /// it accepts connections.
    pub fn restart(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill redis-server");
            child.wait().expect("reap redis-server");
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the running server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill(1) runs")
            .success();
        assert!(ok, "kill -{signal} {pid}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (SIGSTOP) process too.
        self.kill();
    }
}
