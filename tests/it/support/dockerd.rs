//! A private dockerd for the interop tests: its own data-root, exec-root, pidfile and API
//! socket in a temp dir, no bridge, no iptables, the `vfs` storage driver (works on any
//! backing file system), stopped by PID.
//!
//! What it cannot keep fully private: when a system containerd answers at
//! `/run/containerd/containerd.sock`, dockerd 20.10 uses it instead of starting its own (it has
//! no flag against that); our containers then live in namespaces named after the test process.
//! And dockerd 20.10 looks for v1 plugins only in the fixed directories `/run/docker/plugins`,
//! `/etc/docker/plugins` and `/usr/lib/docker/plugins`, and puts v2 plugin sockets under
//! `/run/docker/plugins/<id>/`. The tests therefore register their v1 plugin with one uniquely
//! named spec file (`dockplug-it-<pid>.spec`, removed afterwards) and remove every v2 plugin
//! they create.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::{program, require_root, wait_until, Daemon};

/// A running private dockerd.
pub struct Dockerd {
    pub daemon: Daemon,
    pub dir: PathBuf,
    pub host: String,
    docker: PathBuf,
}

impl Dockerd {
    /// Start dockerd with every path under `dir`, and wait (up to 60 s) until it answers.
    pub fn start(dir: &Path) -> Dockerd {
        require_root();
        let dockerd = program("dockerd");
        let docker = program("docker");
        std::fs::create_dir_all(dir).unwrap();
        let sock = dir.join("docker.sock");
        let mut cmd = Command::new(dockerd);
        cmd.arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .args(["--storage-driver=vfs", "--log-level=info"])
            // dockerd 20.10 starts its own containerd under the exec-root, unless a system one
            // answers at /run/containerd: then at least our containers and plugins live in
            // namespaces of their own.
            .arg(format!("--containerd-namespace=dockplug-it-{}", std::process::id()))
            .arg(format!(
                "--containerd-plugins-namespace=dockplug-it-plugins-{}",
                std::process::id()
            ));
        let daemon = Daemon::spawn("dockerd", cmd, &dir.join("dockerd.log"));
        let mut d = Dockerd {
            daemon,
            dir: dir.to_owned(),
            host: format!("unix://{}", sock.display()),
            docker,
        };
        let up = wait_until(Duration::from_secs(60), || {
            d.docker(&["version", "--format", "{{.Server.Version}}"]).status.success()
        });
        assert!(up, "dockerd did not come up:\n{}", d.daemon.log_tail());
        assert!(d.daemon.running(), "dockerd exited:\n{}", d.daemon.log_tail());
        d
    }

    /// Run the docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(&self.docker)
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.join("cli-config"))
            .output()
            .expect("run docker")
    }

    /// Run the docker CLI and require success; returns stdout, trimmed.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let started = std::time::Instant::now();
        let out = self.docker(args);
        eprintln!("docker {} ({:.1?})", args.join(" "), started.elapsed());
        assert!(
            out.status.success(),
            "docker {} failed ({}):\nstdout: {}\nstderr: {}\n--- dockerd log ---\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.daemon.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Import an image `tag` made locally (no network): a rootfs holding Debian's static
    /// busybox as `/bin/busybox`, with `sh`, `cat` and `echo` links.
    pub fn import_busybox(&self, tag: &str) {
        let busybox = program("busybox");
        let rootfs = self.dir.join("busybox-rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "cat", "echo", "ls"] {
            let link = rootfs.join("bin").join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link).unwrap();
            }
        }
        let tar = self.dir.join("busybox.tar");
        let status = Command::new(program("tar"))
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success(), "tar the busybox rootfs");
        self.ok(&["import", tar.to_str().unwrap(), tag]);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.daemon.stop(Duration::from_secs(30));
        // dockerd may leave mounts under its data-root (the private plugins mount, shm):
        // detach every mount below our directory so the temp dir can be removed.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.dir.display().to_string();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        ours.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in ours {
            let _ = Command::new("umount").args(["-l", p]).status();
        }
    }
}
