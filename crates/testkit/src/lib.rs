//! Private daemons for dockplug's integration tests (`tests/it`) and for `cargo xtask`: one
//! home for every launcher, so a test and a benchmark start a daemon the same way.
//!
//! Each launcher puts everything its daemon touches (root, state, config, storage, sockets,
//! log) in a temp dir of its own under `/tmp` (short: unix socket paths are limited to 108
//! bytes), waits on a condition with a deadline until the daemon answers, and stops the
//! daemon by PID when dropped, whatever happened.
//!
//! | module | what it starts |
//! |---|---|
//! | [`process`] | the [`Daemon`] guard (spawn with a log, stop by PID) and the waits |
//! | [`containerd`] | a private containerd; dropping it also kills its shims and container inits |
//! | [`dockerd`] | a private dockerd (own data-root, exec-root, socket), optionally on a given containerd |
//! | [`crash`] | a crash loop over a private dockplugd: SIGKILL at random points of CLI operations, then the consistency checks |
//! | [`dockplugd`] | a private dockplugd (own data root, exec root, socket) from a binary the caller built, optionally on a given containerd |
//! | [`registry`] | Debian's `docker-registry` (distribution 2.8) on an ephemeral loopback port: plain, htpasswd or token auth, optionally TLS |
//! | [`token`] | the signing key and certificate of a registry's token auth, and JWTs signed with it |
//! | [`token_server`] | a token server on a thread that grants every scope asked, recording each request |
//! | [`package`] | localvol packaged as a v2 plugin directory (`config.json` + `rootfs/`) |
//! | [`http`] | one HTTP/1.1 request over a unix or TCP stream, for readiness probes and raw API calls |
//!
//! This crate owns no product behaviour. It must never be a dependency of a library crate,
//! and never reach containerd-client or tonic: xtask builds it before `cargo xtask setup`
//! has installed `protoc`. Its functions return [`Error`] instead of panicking, so xtask can
//! report a failure and a test can `expect` it.
//!
//! ```no_run
//! let registry = dockplug_testkit::Registry::builder().basic("alice", "secret").start()?;
//! println!("a registry with basic auth at {}", registry.url());
//! # Ok::<(), dockplug_testkit::Error>(())
//! ```

pub mod containerd;
pub mod crash;
pub mod dockerd;
pub mod dockplugd;
mod error;
pub mod http;
pub mod package;
pub mod process;
pub mod registry;
pub mod token;
pub mod token_server;

pub use containerd::Containerd;
pub use dockerd::{Dockerd, DockerdOptions};
pub use dockplugd::{Dockplugd, DockplugdOptions};
pub use error::Error;
pub use process::{is_root, program, rss_kib, wait_for_socket, wait_until, Daemon};
pub use registry::{Registry, RegistryBuilder};
pub use token::{Access, TokenSigner};
pub use token_server::{RunningTokenServer, TokenPolicy, TokenRequest, TokenServer};

/// The PATH every daemon gets: the runc shim finds `runc` on it, and Debian installs it in
/// `/usr/sbin`.
pub const DAEMON_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Detaches (lazily, `umount -l`) every mount at or below `dir`, deepest first: what a
/// killed daemon left mounted under its data root (propagated mounts, shm), so the directory
/// can be removed.
pub fn unmount_below(dir: &std::path::Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    ours.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in ours {
        let _ = std::process::Command::new("umount").args(["-l", p]).status();
    }
}

/// A temp dir under `/tmp` whose name starts with `prefix`, removed on drop.
pub fn temp_dir(prefix: &str) -> Result<tempfile::TempDir, Error> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .map_err(|e| Error::io(format!("create a temp dir {prefix}* in /tmp"), e))
}
