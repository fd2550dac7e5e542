//! A private dockerd: its own data-root, exec-root, pidfile and API socket in a directory the
//! caller gives, no bridge, no iptables, the `vfs` storage driver (works on any backing file
//! system), stopped by PID.
//!
//! What it cannot keep private: dockerd 20.10 looks for v1 plugins only in the fixed
//! directories `/run/docker/plugins`, `/etc/docker/plugins` and `/usr/lib/docker/plugins`, and
//! puts v2 plugin sockets under `/run/docker/plugins/<id>/`. Without
//! [`DockerdOptions::containerd`], it uses a system containerd answering at
//! `/run/containerd/containerd.sock` when there is one (20.10 has no flag against that), and
//! starts its own under the exec-root otherwise; the namespaces keep its containers and
//! plugins apart either way.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::http::{self, Request, Response};
use crate::{program, Daemon, Error, DAEMON_PATH};

/// How long dockerd may take to answer `/_ping`.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// How long one Engine API request may take (a plugin create or enable is slow).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How a private dockerd is started.
#[derive(Debug, Clone)]
pub struct DockerdOptions {
    /// The containerd socket to use (`--containerd`); `None` lets dockerd choose.
    pub containerd: Option<PathBuf>,
    /// `--containerd-namespace`.
    pub namespace: String,
    /// `--containerd-plugins-namespace`.
    pub plugins_namespace: String,
    /// `--log-level`.
    pub log_level: String,
}

impl Default for DockerdOptions {
    /// Namespaces named after this process, log level `info`, dockerd's choice of containerd.
    fn default() -> Self {
        let pid = std::process::id();
        DockerdOptions {
            containerd: None,
            namespace: format!("dockplug-it-{pid}"),
            plugins_namespace: format!("dockplug-it-plugins-{pid}"),
            log_level: "info".to_owned(),
        }
    }
}

/// A running private dockerd.
#[derive(Debug)]
pub struct Dockerd {
    /// The process.
    pub daemon: Daemon,
    /// The directory holding its data-root, exec-root, socket and log.
    pub dir: PathBuf,
    /// The API socket.
    pub socket: PathBuf,
    /// `unix://<socket>`, for `DOCKER_HOST`.
    pub host: String,
    docker: Option<PathBuf>,
}

impl Dockerd {
    /// Starts dockerd with every path under `dir` and the default options, and waits until
    /// it answers `/_ping`.
    pub fn start(dir: &Path) -> Result<Dockerd, Error> {
        Dockerd::start_with(dir, &DockerdOptions::default())
    }

    /// Starts dockerd with every path under `dir`, and waits until it answers `/_ping`.
    pub fn start_with(dir: &Path, options: &DockerdOptions) -> Result<Dockerd, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let socket = dir.join("docker.sock");
        let mut cmd = Command::new(program("dockerd")?);
        cmd.arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .args(["--storage-driver=vfs"])
            .arg(format!("--log-level={}", options.log_level))
            .arg(format!("--containerd-namespace={}", options.namespace))
            .arg(format!("--containerd-plugins-namespace={}", options.plugins_namespace))
            .env("PATH", DAEMON_PATH);
        if let Some(containerd) = &options.containerd {
            cmd.arg("--containerd").arg(containerd);
        }
        let mut daemon = Daemon::spawn("dockerd", cmd, &dir.join("dockerd.log"))?;
        daemon.wait_ready("GET /_ping", START_DEADLINE, || {
            http::unix(&socket, &Request::get("/_ping"), Duration::from_secs(5))
                .is_ok_and(|r| r.status == 200)
        })?;
        Ok(Dockerd {
            daemon,
            dir: dir.to_owned(),
            host: format!("unix://{}", socket.display()),
            socket,
            docker: program("docker").ok(),
        })
    }

    /// Runs the installed docker CLI (Debian's, `/usr/bin/docker`) against this daemon, with
    /// a CLI config directory of its own.
    pub fn docker(&self, args: &[&str]) -> Result<Output, Error> {
        let docker = self.docker.clone().ok_or(Error::Missing { program: "docker".into() })?;
        Command::new(docker)
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.join("cli-config"))
            .output()
            .map_err(|e| Error::io(format!("run docker {}", args.join(" ")), e))
    }

    /// One Engine API request over the socket.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<Response, Error> {
        let headers = [("Content-Type", content_type)];
        http::unix(
            &self.socket,
            &Request { method, path, headers: &headers, body },
            REQUEST_TIMEOUT,
        )
    }

    /// [`request`](Self::request), failing unless the status is 2xx; returns the body.
    pub fn ok(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<String, Error> {
        let reply = self.request(method, path, body, content_type)?;
        if !(200..300).contains(&reply.status) {
            return Err(Error::protocol(
                format!("dockerd {method} {path}"),
                format!("{} {}", reply.status, reply.text()),
            ));
        }
        Ok(reply.text())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.daemon.stop(Duration::from_secs(30));
        // dockerd may leave mounts under its data-root (the private plugins mount, shm).
        crate::unmount_below(&self.dir);
    }
}
