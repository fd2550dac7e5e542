//! A private containerd: its own root, state directory, socket and config in a temp dir,
//! started with the installed `containerd` and stopped by PID whatever happens.
//!
//! Its shims and their containers outlive a containerd restart (as in production), so
//! dropping the guard also kills every shim and container init it finds in its state
//! directory, and every shim started for its socket, by PID, before removing the directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::process::{gone, processes, read_dir};
use crate::{program, wait_until, Daemon, Error, DAEMON_PATH};

/// How long containerd may take to answer on its socket.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running private containerd.
#[derive(Debug)]
pub struct Containerd {
    /// The temp dir holding everything.
    pub dir: tempfile::TempDir,
    /// containerd's gRPC socket.
    pub socket: PathBuf,
    /// Its root (content, snapshots, metadata).
    pub root: PathBuf,
    /// Its state directory (task bundles, shim sockets).
    pub state: PathBuf,
    /// Its `config.toml`.
    pub config: PathBuf,
    /// A containerd namespace unique to this instance, for the caller's containers: runc
    /// keeps its state per namespace and container ID in one host-wide directory
    /// (`/run/containerd/runc/<namespace>/<id>`), shared by every containerd on the machine.
    pub namespace: String,
    daemon: Option<Daemon>,
    starts: u32,
}

impl Containerd {
    /// Starts a private containerd and waits until its socket answers.
    pub fn start() -> Result<Containerd, Error> {
        let dir = crate::temp_dir("ctd")?;
        let root = dir.path().join("root");
        let state = dir.path().join("state");
        let socket = dir.path().join("c.sock");
        let config = dir.path().join("config.toml");
        for d in [&root, &state] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("create {}", d.display()), e))?;
        }
        std::fs::write(&config, config_toml(&root, &state, &socket))
            .map_err(|e| Error::io(format!("write {}", config.display()), e))?;
        let suffix = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().trim_start_matches("ctd").to_owned())
            .unwrap_or_default();
        let namespace = format!("dockplug-test-{suffix}");
        let mut c =
            Containerd { dir, socket, root, state, config, namespace, daemon: None, starts: 0 };
        c.launch()?;
        Ok(c)
    }

    /// A path for the caller's own files (rootfs, FIFOs, sockets), beside containerd's.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn launch(&mut self) -> Result<(), Error> {
        self.starts += 1;
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new(program("containerd")?);
        cmd.arg("--config").arg(&self.config).env("PATH", DAEMON_PATH);
        let log = self.dir.path().join(format!("containerd-{}.log", self.starts));
        let mut daemon = Daemon::spawn("containerd", cmd, &log)?;
        let socket = self.socket.clone();
        daemon.wait_ready(&format!("on {}", socket.display()), START_DEADLINE, || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        })?;
        self.daemon = Some(daemon);
        Ok(())
    }

    /// The PID of the running containerd, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    /// containerd's log so far.
    pub fn log_tail(&self) -> String {
        self.daemon.as_ref().map(Daemon::log_tail).unwrap_or_default()
    }

    /// Stops containerd (SIGTERM by PID, then SIGKILL) and starts it again on the same root,
    /// state and socket; running tasks survive in their shims.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop_daemon();
        self.launch()
    }

    /// Stops containerd only; shims keep running.
    pub fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(10));
        }
    }

    /// The PIDs of every shim and container init of this containerd, as (`init.pid` or
    /// `shim.pid`, PID).
    pub fn leftover_pids(&self) -> Vec<(String, u32)> {
        let mut found = Vec::new();
        let tasks = self.state.join("io.containerd.runtime.v2.task");
        for ns in read_dir(&tasks) {
            for bundle in read_dir(&ns) {
                for file in ["init.pid", "shim.pid"] {
                    if let Some(pid) = read_pid(&bundle.join(file)) {
                        found.push((file.to_owned(), pid));
                    }
                }
            }
        }
        // A shim can outlive its bundle (e.g. when containerd stops while the shim is being
        // shut down): find the rest by the socket they were started for, which is ours alone.
        for (pid, cmdline) in processes() {
            let is_ours = cmdline.first().is_some_and(|a| a.contains("containerd-shim"))
                && cmdline
                    .windows(2)
                    .any(|w| w[0] == "-address" && Path::new(&w[1]) == self.socket);
            if is_ours && !found.iter().any(|(_, p)| *p == pid) {
                found.push(("shim.pid".to_owned(), pid));
            }
        }
        found
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop_daemon();
        // Container inits first (they take their PID namespace with them), then the shims.
        let mut leftovers = self.leftover_pids();
        leftovers.sort_by_key(|(kind, _)| kind != "init.pid");
        for (_, pid) in &leftovers {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        let all_gone =
            wait_until(Duration::from_secs(10), || leftovers.iter().all(|(_, pid)| gone(*pid)));
        if !all_gone {
            eprintln!("testkit containerd: processes still alive after SIGKILL: {leftovers:?}");
        }
        // runc's state of our namespace (see `namespace`), which runc leaves when killed.
        let _ = std::fs::remove_dir_all(Path::new("/run/containerd/runc").join(&self.namespace));
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn config_toml(root: &Path, state: &Path, socket: &Path) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
# Nothing but what plugins need: no CRI, no tracing, no metrics or debug listeners.
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
"#,
        root = root.display(),
        state = state.display(),
        socket = socket.display(),
    )
}

/// A minimal root filesystem in `dir/rootfs` with the static busybox (Debian's
/// `busybox-static`) as `/bin/busybox` and `/bin/sh`; returns its path.
pub fn busybox_rootfs(dir: &Path) -> Result<PathBuf, Error> {
    let busybox = program("busybox")?;
    let rootfs = dir.join("rootfs");
    let io = |what: &str, e| Error::io(format!("{what} in {}", rootfs.display()), e);
    for sub in ["bin", "proc", "sys", "dev", "tmp", "etc", "run"] {
        std::fs::create_dir_all(rootfs.join(sub)).map_err(|e| io("create directories", e))?;
    }
    std::fs::copy(&busybox, rootfs.join("bin/busybox")).map_err(|e| io("copy busybox", e))?;
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh"))
        .map_err(|e| io("link /bin/sh", e))?;
    Ok(rootfs)
}
