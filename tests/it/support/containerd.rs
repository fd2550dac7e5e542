//! A private containerd for one test: its own root, state directory, socket and config in a
//! temp dir, started with `/usr/bin/containerd` and stopped by PID whatever happens. Its
//! shims and their containers outlive a containerd restart (as in production), so dropping
//! the fixture also kills every shim and container init it finds in its state directory, by
//! PID, before removing the directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{program, require_root, wait_for_socket, wait_until, Daemon};

/// How long containerd may take to answer on its socket.
const START_DEADLINE: Duration = Duration::from_secs(20);

pub struct Containerd {
    /// The temp dir holding everything (short path: unix sockets are limited to 108 bytes).
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    /// The containerd namespace the test's plugins run in: unique to this fixture, because
    /// runc keeps its state per namespace and container ID in one host-wide directory
    /// (`/run/containerd/runc/<namespace>/<id>`), shared by every containerd on the machine.
    pub namespace: String,
    daemon: Option<Daemon>,
    starts: u32,
}

impl Containerd {
    /// Starts a private containerd and waits until its socket answers.
    pub fn start() -> Containerd {
        require_root();
        let dir = tempfile::Builder::new().prefix("ctd").tempdir_in("/tmp").expect("temp dir");
        let root = dir.path().join("root");
        let state = dir.path().join("state");
        let socket = dir.path().join("c.sock");
        let config = dir.path().join("config.toml");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(&config, config_toml(&root, &state, &socket)).unwrap();
        let suffix =
            dir.path().file_name().unwrap().to_string_lossy().trim_start_matches("ctd").to_owned();
        let namespace = format!("dockplug-test-{suffix}");
        let mut c =
            Containerd { dir, socket, root, state, config, namespace, daemon: None, starts: 0 };
        c.launch();
        c
    }

    /// The directory for a test's own files (rootfs, FIFOs, sockets), beside containerd's.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn launch(&mut self) {
        self.starts += 1;
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new(program("containerd"));
        cmd.arg("--config").arg(&self.config);
        // The runc shim finds `runc` on PATH; Debian installs it in /usr/sbin.
        cmd.env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let log = self.dir.path().join(format!("containerd-{}.log", self.starts));
        let mut daemon = Daemon::spawn("containerd", cmd, &log);
        let up = wait_until(START_DEADLINE, || {
            wait_for_socket(&self.socket, Duration::from_millis(0)) || !daemon.running()
        });
        assert!(up && daemon.running(), "containerd did not start:\n{}", daemon.log_tail());
        self.daemon = Some(daemon);
    }

    /// The PID of the running containerd.
    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().expect("containerd runs").pid()
    }

    /// containerd's log so far.
    pub fn log_tail(&self) -> String {
        self.daemon.as_ref().map(Daemon::log_tail).unwrap_or_default()
    }

    /// Stops containerd (SIGTERM by PID, then SIGKILL) and starts it again on the same root,
    /// state and socket; running tasks survive in their shims.
    pub fn restart(&mut self) {
        self.stop_daemon();
        self.launch();
    }

    /// Stops containerd only; shims keep running.
    pub fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(10));
        }
    }

    /// The PIDs of every shim and container init in the state directory.
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
            let is_ours = cmdline.iter().any(|a| a.contains("containerd-shim"))
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

/// Every process with its command line.
fn processes() -> Vec<(u32, Vec<String>)> {
    read_dir(Path::new("/proc"))
        .into_iter()
        .filter_map(|dir| {
            let pid = dir.file_name()?.to_str()?.parse().ok()?;
            let raw = std::fs::read(dir.join("cmdline")).ok()?;
            let args = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
        .collect()
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
        let gone = wait_until(Duration::from_secs(10), || {
            leftovers
                .iter()
                .all(|(_, pid)| !Path::new(&format!("/proc/{pid}")).exists() || zombie(*pid))
        });
        if !gone {
            eprintln!("containerd fixture: processes still alive after SIGKILL: {leftovers:?}");
        }
        // runc's state of our namespace (see `namespace`), which runc leaves when killed.
        let _ = std::fs::remove_dir_all(Path::new("/run/containerd/runc").join(&self.namespace));
    }
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn config_toml(root: &Path, state: &Path, socket: &Path) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
# Nothing but what plugins need: no CRI, no metrics or debug listeners.
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

/// A minimal root filesystem with the static busybox (Debian's `busybox-static`) as
/// `/bin/busybox` and `/bin/sh`, in `dir`.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let busybox = program("busybox");
    let rootfs = dir.join("rootfs");
    for sub in ["bin", "proc", "sys", "dev", "tmp", "etc", "run"] {
        std::fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    std::fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    rootfs
}
