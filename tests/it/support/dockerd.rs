//! A private dockerd for the interop tests (`dockplug_testkit::Dockerd`: own data-root,
//! exec-root, pidfile and API socket, no bridge, no iptables, `vfs`, stopped by PID), with
//! the docker CLI helpers a test asserts with.
//!
//! dockerd 20.10 looks for v1 plugins only in the fixed directories `/run/docker/plugins`,
//! `/etc/docker/plugins` and `/usr/lib/docker/plugins`, and puts v2 plugin sockets under
//! `/run/docker/plugins/<id>/`. The tests therefore register their v1 plugin with one
//! uniquely named spec file (`dockplug-it-<pid>.spec`, removed afterwards) and remove every
//! v2 plugin they create.

use std::ops::Deref;
use std::path::Path;
use std::process::{Command, Output};

use super::{program, require_root};

/// A running private dockerd; derefs to the testkit's (`daemon`, `dir`, `host`, `request`).
pub struct Dockerd(dockplug_testkit::Dockerd);

impl Dockerd {
    /// Start dockerd with every path under `dir`, and wait (up to 60 s) until it answers.
    pub fn start(dir: &Path) -> Dockerd {
        require_root();
        Dockerd(dockplug_testkit::Dockerd::start(dir).expect("start a private dockerd"))
    }

    /// Run the docker CLI (Debian's 20.10, `/usr/bin/docker`) against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.0.docker(args).unwrap_or_else(|e| panic!("{e}"))
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
            self.0.daemon.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Import an image `tag` made locally (no network): a rootfs holding Debian's static
    /// busybox as `/bin/busybox`, with `sh`, `cat`, `echo` and `ls` links.
    pub fn import_busybox(&self, tag: &str) {
        let busybox = program("busybox");
        let rootfs = self.0.dir.join("busybox-rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "cat", "echo", "ls"] {
            let link = rootfs.join("bin").join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link).unwrap();
            }
        }
        let tar = self.0.dir.join("busybox.tar");
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

impl Deref for Dockerd {
    type Target = dockplug_testkit::Dockerd;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
