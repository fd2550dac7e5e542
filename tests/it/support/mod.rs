//! Shared support for the integration tests: the private daemons of `dockplug-testkit`
//! (one home for the launchers, shared with xtask) in the panicking shape a test wants, and
//! waits on conditions with deadlines (never bare sleeps).
//!
//! Each daemon family has its own module (`containerd`, `dockerd`, `registry`, ...).
#![allow(dead_code)]

pub mod containerd;
pub mod dockerd;
pub mod localvol;
pub mod registry;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use dockplug_testkit::{wait_for_socket, Daemon};

/// The async form of [`dockplug_testkit::wait_until`]: poll the async `cond` every 20 ms (without blocking a
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

/// Whether the tests run as root (the daemon tests need it; CI runs as root, and a missing
/// prerequisite fails the run instead of skipping).
pub fn require_root() {
    assert!(dockplug_testkit::is_root(), "the daemon integration tests need root");
}

/// The absolute path of a program, checked to exist: the test fails with a clear message
/// when a prerequisite is missing (`cargo xtask ci` installs them).
pub fn program(name: &str) -> PathBuf {
    dockplug_testkit::program(name).unwrap_or_else(|e| panic!("{e}"))
}
