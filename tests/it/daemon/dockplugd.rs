//! A private dockplugd for one test (the testkit's launcher on the binary of this build): data
//! root, exec root, pidfile and API socket in a temp dir of its own, on the containerd the
//! test gives (or a private one it starts itself), stopped by PID; and the docker CLI pointed
//! at it with a CLI config of its own.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

use dockplug_testkit::http::Response;
use dockplug_testkit::{Containerd, DockplugdOptions};

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
            cmd.args([
                "build",
                "--quiet",
                "--locked",
                "-p",
                "dockplug-daemon",
                "--bin",
                "dockplugd",
            ])
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

/// A running dockplugd (the testkit's launcher) in a temp dir of its own, with the panicking
/// helpers a test wants.
pub struct Dockplugd {
    /// Declared first: dropped (stopped by PID) before its directory goes.
    inner: dockplug_testkit::Dockplugd,
    /// Everything of this instance (short: plugin sockets live under the exec root).
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for Dockplugd {
    type Target = dockplug_testkit::Dockplugd;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Dockplugd {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
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
        let mut options = DockplugdOptions::new(binary());
        options.args = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let inner = dockplug_testkit::Dockplugd::start(dir.path(), &options)
            .unwrap_or_else(|e| panic!("dockplugd did not start: {e}"));
        Dockplugd { inner, dir }
    }

    /// The PID of the running daemon.
    pub fn pid(&self) -> u32 {
        self.inner.pid().expect("dockplugd runs")
    }

    /// SIGTERM by PID and wait for the exit; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.inner.stop().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the daemon again on the same paths (stopping it first if it runs).
    pub fn restart(&mut self) {
        self.inner.restart().unwrap_or_else(|e| panic!("dockplugd did not restart: {e}"));
    }

    /// Runs [`DOCKER_CLI`] against this daemon with a CLI config directory of its own.
    pub fn docker(&self, args: &[&str]) -> Output {
        assert_eq!(dockplug_testkit::program("docker").unwrap(), Path::new(DOCKER_CLI));
        self.inner.docker(args).unwrap_or_else(|e| panic!("{e}"))
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
        self.inner.request(method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}
