//! Shared support for the integration tests: private daemons started in temp dirs and stopped
//! by PID, and waits on conditions with deadlines (never bare sleeps).
//!
//! Each daemon family has its own module (`containerd`, `dockerd`, ...) built on
//! [`Daemon`] and [`wait_until`].
#![allow(dead_code)]

pub mod dockerd;
pub mod localvol;

pub mod containerd;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A daemon process we started, stopped by PID when dropped: SIGTERM, a bounded wait, then
/// SIGKILL. Its stdout and stderr go to `log`, which a failing test can print.
pub struct Daemon {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Start `cmd` with its output appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Daemon {
        let out = std::fs::File::create(log).expect("create daemon log");
        let err = out.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon { name: name.to_owned(), child, log: log.to_owned() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far, for assertion messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stop by PID: SIGTERM, wait up to `grace`, then SIGKILL and reap.
    pub fn stop(&mut self, grace: Duration) {
        if !self.running() {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let exited = wait_until(grace, || !self.running());
        if !exited {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Poll `cond` every 20 ms until it holds or `deadline` passes; returns whether it held.
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The async form of [`wait_until`]: poll the async `cond` every 20 ms (without blocking a
/// runtime thread) until it holds or `deadline` passes; returns whether it held.
pub async fn eventually<F, Fut>(deadline: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond().await
}

/// Wait until a unix socket at `path` accepts a connection.
pub fn wait_for_socket(path: &Path, deadline: Duration) -> bool {
    wait_until(deadline, || std::os::unix::net::UnixStream::connect(path).is_ok())
}

/// Whether the tests run as root (the daemon tests need it; CI runs as root, and a missing
/// prerequisite fails the run instead of skipping).
pub fn require_root() {
    assert!(nix::unistd::Uid::effective().is_root(), "the daemon integration tests need root");
}

/// The absolute path of a program, checked to exist: the test fails with a clear message
/// when a prerequisite is missing (`cargo xtask ci` installs them).
pub fn program(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed: run `cargo xtask setup` (CI installs it)");
}
