//! A private dockplugd for one test: data root, exec root, pidfile and API socket in a temp
//! dir of its own, on the containerd the test gives (or a private one it starts itself),
//! stopped by PID; and the docker CLI pointed at it with a CLI config of its own.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::Duration;

use dockplug_testkit::http::{self, Request, Response};
use dockplug_testkit::{Containerd, Daemon};

/// How long dockplugd may take to answer `/_ping` (it binds its socket first).
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long one request may take (create streams a whole plugin).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The docker CLI the suites run: Debian's docker.io (20.10), chosen deliberately over the
/// 28.x CLI that comes first in PATH on this machine, because it is the one `cargo xtask
/// setup` installs on a fresh machine.
pub const DOCKER_CLI: &str = "/usr/bin/docker";

/// The dockplugd binary of this build, built with cargo into the same target directory
/// (a no-op when the workspace build made it already).
pub fn binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current exe");
            let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>");
            let target = profile_dir.parent().expect("target dir").to_owned();
            let profile = profile_dir.file_name().unwrap().to_string_lossy().into_owned();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "--locked", "-p", "dockplug-daemon", "--bin", "dockplugd"])
                .arg("--target-dir")
                .arg(&target)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile == "release" {
                cmd.arg("--release");
            }
            assert!(cmd.status().expect("run cargo build").success(), "building dockplugd failed");
            let bin = target.join(&profile).join("dockplugd");
            assert!(bin.is_file(), "{} is missing after the build", bin.display());
            bin
        })
        .clone()
}

/// A running dockplugd.
pub struct Dockplugd {
    /// Everything of this instance (short: plugin sockets live under the exec root).
    pub dir: tempfile::TempDir,
    /// The API socket.
    pub socket: PathBuf,
    /// `unix://<socket>`.
    pub host: String,
    /// `--data-root`.
    pub data_root: PathBuf,
    /// `--exec-root`.
    pub exec_root: PathBuf,
    /// `--pidfile`.
    pub pidfile: PathBuf,
    args: Vec<OsString>,
    daemon: Option<Daemon>,
    starts: u32,
}

impl Dockplugd {
    /// dockplugd on `containerd`, plugins in the fixture's own namespace.
    pub fn start(containerd: &Containerd) -> Dockplugd {
        Dockplugd::start_with(&[
            "--containerd".into(),
            containerd.socket.clone().into(),
            "--containerd-plugins-namespace".into(),
            containerd.namespace.clone().into(),
        ])
    }

    /// dockplugd with its paths in a new temp dir and `args` after them.
    pub fn start_with(args: &[OsString]) -> Dockplugd {
        let dir = dockplug_testkit::temp_dir("dpd").expect("temp dir");
        let d = dir.path().to_owned();
        let mut d = Dockplugd {
            socket: d.join("api.sock"),
            host: format!("unix://{}", d.join("api.sock").display()),
            data_root: d.join("data"),
            exec_root: d.join("x"),
            pidfile: d.join("dockplugd.pid"),
            args: args.to_vec(),
            dir,
            daemon: None,
            starts: 0,
        };
        d.launch();
        d
    }

    /// The command line of this instance (paths, then the extra arguments).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(binary());
        cmd.arg("--host")
            .arg(&self.host)
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--pidfile")
            .arg(&self.pidfile)
            .args(&self.args)
            .env("PATH", dockplug_testkit::DAEMON_PATH);
        cmd
    }

    fn launch(&mut self) {
        self.starts += 1;
        let log = self.dir.path().join(format!("dockplugd-{}.log", self.starts));
        let mut daemon = Daemon::spawn("dockplugd", self.command(), &log).expect("spawn dockplugd");
        let socket = self.socket.clone();
        daemon
            .wait_ready("GET /_ping", START_DEADLINE, || {
                http::unix(&socket, &Request::get("/_ping"), Duration::from_secs(5))
                    .is_ok_and(|r| r.status == 200)
            })
            .unwrap_or_else(|e| panic!("dockplugd did not start: {e}"));
        self.daemon = Some(daemon);
    }

    /// The PID of the running daemon.
    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().expect("dockplugd runs").pid()
    }

    /// Everything the daemon logged since its last start.
    pub fn log(&self) -> String {
        let path = self.dir.path().join(format!("dockplugd-{}.log", self.starts));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// SIGTERM by PID and wait for the exit; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut daemon = self.daemon.take().expect("dockplugd runs");
        let pid = nix::unistd::Pid::from_raw(daemon.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let exited = dockplug_testkit::wait_until(Duration::from_secs(40), || !daemon.running());
        assert!(exited, "dockplugd did not exit after SIGTERM:\n{}", daemon.log_tail());
        daemon.child.wait().expect("reap dockplugd")
    }

    /// SIGKILL by PID (a crash) and reap.
    pub fn kill(&mut self) {
        let mut daemon = self.daemon.take().expect("dockplugd runs");
        let _ = daemon.child.kill();
        let _ = daemon.child.wait();
    }

    /// Starts the daemon again on the same paths (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        if self.daemon.is_some() {
            self.stop();
        }
        self.launch();
    }

    /// Runs [`DOCKER_CLI`] against this daemon with a CLI config directory of its own.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER_CLI)
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.path().join("cli-config"))
            .output()
            .unwrap_or_else(|e| panic!("run docker {}: {e}", args.join(" ")))
    }

    /// [`docker`](Self::docker), asserting success; returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {} failed: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// [`docker`](Self::docker), asserting failure; returns stderr.
    pub fn docker_err(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            !out.status.success(),
            "docker {} succeeded, expected a failure: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    /// One Engine API request over the socket.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let headers = [("Content-Type", "application/json")];
        http::unix(&self.socket, &Request { method, path, headers: &headers, body }, REQUEST_TIMEOUT)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// The last lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        self.daemon.as_ref().map(Daemon::log_tail).unwrap_or_default()
    }
}

impl Drop for Dockplugd {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(40));
        }
        // Anything a killed daemon left mounted under its data root (propagated mounts).
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.dir.path().display().to_string();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
