//! Real PostgreSQL servers for tests, shared by this crate's tests and the workspace's
//! `tests/postgres.rs` (which includes this file by path).
//!
//! - [`postgres_url`]: the shared server `.ci/with-postgres` started
//!   (`ACTIX_DEVICE_POSTGRES_URL`);
//! - [`OwnPostgres`]: a server of the test's own (binaries from `ACTIX_DEVICE_POSTGRES_BIN`,
//!   run as `ACTIX_DEVICE_POSTGRES_OS_USER` when that is set), for tests that stop,
//!   freeze or restart it.
//!
//! Either is `None` when its variable is unset, after printing why the test is skipped.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Prints why a test is skipped, straight to stderr: the test harness captures
/// `eprintln!` of passing tests, and a skip must be seen.
fn skip(why: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why}; run the tests under `.ci/with-postgres` to include them"
    );
}

/// The shared server's URL, or `None` (reason printed).
pub fn postgres_url() -> Option<String> {
    match std::env::var("ACTIX_DEVICE_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip("ACTIX_DEVICE_POSTGRES_URL is not set");
            None
        }
    }
}

/// A table name of this test run's own (`t_{test}_{pid}_{n}`), so runs sharing a server
/// never meet. `test` is a short lowercase word.
pub fn run_table(test: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("t_{test}_{}_{nanos}_{n}", std::process::id())
}

/// A free loopback port (free when asked; good enough for a test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The uid and gid of `user`, from `id(1)`.
fn ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .expect("id(1) runs");
        assert!(out.status.success(), "no user {user}");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

/// A PostgreSQL server of the test's own, so stopping it disturbs no other test: a
/// fresh cluster in a temporary directory, trusting loopback. Shut down on drop.
pub struct OwnPostgres {
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    port: u16,
    dir: tempfile::TempDir,
    postmaster: Option<Child>,
}

impl OwnPostgres {
    /// Creates and starts one, or `None` (reason printed) without
    /// `ACTIX_DEVICE_POSTGRES_BIN`.
    pub fn start() -> Option<Self> {
        let Ok(bin) = std::env::var("ACTIX_DEVICE_POSTGRES_BIN") else {
            skip("ACTIX_DEVICE_POSTGRES_BIN (PostgreSQL's bin directory) is not set");
            return None;
        };
        let owner = std::env::var("ACTIX_DEVICE_POSTGRES_OS_USER")
            .ok()
            .filter(|u| !u.is_empty())
            .map(|u| ids(&u));
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let mut server = OwnPostgres {
            bin: PathBuf::from(bin),
            owner,
            port: free_port(),
            dir,
            postmaster: None,
        };
        let status = server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed");
        server.restart();
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command for one of PostgreSQL's binaries, run as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) on the same port and data, and waits until it accepts
    /// connections.
    pub fn restart(&mut self) {
        let socket_dir: &Path = self.dir.path();
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(socket_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        self.postmaster = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Shuts the server down at once (immediate mode: every backend quits, clients get
    /// no goodbye; the next start recovers from the log) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.postmaster.take() {
            self.thaw();
            signal(&[child.id()], "QUIT");
            child.wait().expect("reap postgres");
        }
    }

    /// Freezes the whole server (postmaster and every backend: SIGSTOP), so connections
    /// stay open and nothing answers.
    pub fn freeze(&self) {
        signal(&self.processes(), "STOP");
    }

    /// Lets a frozen server run again.
    pub fn thaw(&self) {
        signal(&self.processes(), "CONT");
    }

    /// The postmaster first, then its children (read from /proc).
    fn processes(&self) -> Vec<u32> {
        let Some(postmaster) = self.postmaster.as_ref().map(Child::id) else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`: comm may hold spaces, so read after the ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }
}

/// Sends `signal` (`STOP`, `CONT`, `QUIT`) to each of `pids`.
fn signal(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status()
        .expect("kill(1) runs")
        .success();
    assert!(ok || signal == "CONT", "kill -{signal} {pids:?}");
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.kill();
    }
}
