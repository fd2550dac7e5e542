//! A private dockplugd: its data root, exec root, pidfile and API socket in a directory the
//! caller gives, on the containerd the caller names (or a private one it starts itself),
//! stopped by PID; and the docker CLI pointed at it. The caller builds the binary and says
//! where it is: the testkit never runs cargo.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::Duration;

use crate::http::{self, Request, Response};
use crate::{program, wait_until, Daemon, Error, DAEMON_PATH};

/// How long dockplugd may take to answer `/_ping` (it binds its socket first).
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a stopping dockplugd may take (it stops its plugins first).
const STOP_DEADLINE: Duration = Duration::from_secs(60);
/// How long one Engine API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How a private dockplugd is started.
#[derive(Debug, Clone)]
pub struct DockplugdOptions {
    /// The `dockplugd` binary.
    pub binary: PathBuf,
    /// `--containerd`; `None` lets dockplugd choose.
    pub containerd: Option<PathBuf>,
    /// `--containerd-plugins-namespace`.
    pub plugins_namespace: Option<String>,
    /// More arguments, after the paths.
    pub args: Vec<String>,
}

impl DockplugdOptions {
    /// `binary` with dockplugd's own choices.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        DockplugdOptions {
            binary: binary.into(),
            containerd: None,
            plugins_namespace: None,
            args: Vec::new(),
        }
    }
}

/// A running private dockplugd.
#[derive(Debug)]
pub struct Dockplugd {
    /// The directory holding its data root, exec root, socket and logs.
    pub dir: PathBuf,
    /// The API socket.
    pub socket: PathBuf,
    /// `unix://<socket>`, for `DOCKER_HOST`.
    pub host: String,
    /// `--data-root`.
    pub data_root: PathBuf,
    /// `--exec-root` (short: plugin sockets live below it).
    pub exec_root: PathBuf,
    /// `--pidfile`.
    pub pidfile: PathBuf,
    options: DockplugdOptions,
    daemon: Option<Daemon>,
    starts: u32,
}

impl Dockplugd {
    /// Starts dockplugd with every path under `dir` (keep it short) and waits until it
    /// answers `/_ping`.
    pub fn start(dir: &Path, options: &DockplugdOptions) -> Result<Dockplugd, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let socket = dir.join("api.sock");
        let mut d = Dockplugd {
            dir: dir.to_owned(),
            host: format!("unix://{}", socket.display()),
            socket,
            data_root: dir.join("data"),
            exec_root: dir.join("x"),
            pidfile: dir.join("dockplugd.pid"),
            options: options.clone(),
            daemon: None,
            starts: 0,
        };
        d.launch()?;
        Ok(d)
    }

    /// Starts the daemon again on the same paths, after [`stop`](Self::stop) or
    /// [`kill`](Self::kill) (stopping it first if it runs), and waits for `/_ping`.
    pub fn restart(&mut self) -> Result<(), Error> {
        if self.daemon.is_some() {
            self.stop()?;
        }
        self.launch()
    }

    fn launch(&mut self) -> Result<(), Error> {
        self.starts += 1;
        let mut cmd = Command::new(&self.options.binary);
        cmd.arg("--host")
            .arg(&self.host)
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--pidfile")
            .arg(&self.pidfile)
            .env("PATH", DAEMON_PATH);
        if let Some(containerd) = &self.options.containerd {
            cmd.arg("--containerd").arg(containerd);
        }
        if let Some(ns) = &self.options.plugins_namespace {
            cmd.arg("--containerd-plugins-namespace").arg(ns);
        }
        cmd.args(&self.options.args);
        let mut daemon = Daemon::spawn("dockplugd", cmd, &self.log_path())?;
        let socket = self.socket.clone();
        daemon.wait_ready("GET /_ping", START_DEADLINE, || {
            http::unix(&socket, &Request::get("/_ping"), Duration::from_secs(5))
                .is_ok_and(|r| r.status == 200)
        })?;
        self.daemon = Some(daemon);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("dockplugd-{}.log", self.starts))
    }

    /// The PID of the running daemon.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    /// What the daemon logged since its last start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last lines of that log.
    pub fn log_tail(&self) -> String {
        self.daemon.as_ref().map(Daemon::log_tail).unwrap_or_default()
    }

    /// SIGTERM by PID and wait for the exit; returns the exit status.
    pub fn stop(&mut self) -> Result<ExitStatus, Error> {
        let Some(mut daemon) = self.daemon.take() else {
            return Err(Error::protocol("stop dockplugd", "it is not running"));
        };
        let pid = nix::unistd::Pid::from_raw(daemon.pid() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if !wait_until(STOP_DEADLINE, || !daemon.running()) {
            let log = daemon.log_tail();
            daemon.stop(Duration::from_secs(1));
            return Err(Error::protocol(
                "stop dockplugd",
                format!("no exit after SIGTERM:\n{log}"),
            ));
        }
        daemon.child.wait().map_err(|e| Error::io("reap dockplugd", e))
    }

    /// SIGKILL (a crash) and reap.
    pub fn kill(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.child.kill();
            let _ = daemon.child.wait();
        }
    }

    /// Runs the installed docker CLI (Debian's 20.10, `/usr/bin/docker`) against this daemon
    /// with a CLI config directory of its own.
    pub fn docker(&self, args: &[&str]) -> Result<Output, Error> {
        Command::new(program("docker")?)
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.join("cli-config"))
            .output()
            .map_err(|e| Error::io(format!("run docker {}", args.join(" ")), e))
    }

    /// One Engine API request over the socket (`Content-Type: application/json`).
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Result<Response, Error> {
        let headers = [("Content-Type", "application/json")];
        http::unix(
            &self.socket,
            &Request { method, path, headers: &headers, body },
            REQUEST_TIMEOUT,
        )
    }
}

impl Drop for Dockplugd {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(STOP_DEADLINE);
        }
        // What a killed daemon left mounted under its data root (propagated mounts).
        crate::unmount_below(&self.dir);
    }
}
