//! A private containerd for one test (`dockplug_testkit::Containerd`: own root, state,
//! socket and namespace in a temp dir, stopped by PID, its shims and container inits killed
//! by PID on drop), failing the test when it does not start.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use super::require_root;

/// A running private containerd; derefs to the testkit's, for its fields and methods.
pub struct Containerd(dockplug_testkit::Containerd);

impl Containerd {
    /// Starts a private containerd and waits until its socket answers.
    pub fn start() -> Containerd {
        require_root();
        Containerd(dockplug_testkit::Containerd::start().expect("start a private containerd"))
    }

    /// The PID of the running containerd.
    pub fn pid(&self) -> u32 {
        self.0.pid().expect("containerd runs")
    }

    /// Stops containerd and starts it again on the same root, state and socket; running
    /// tasks survive in their shims.
    pub fn restart(&mut self) {
        self.0.restart().expect("restart containerd");
    }
}

impl Deref for Containerd {
    type Target = dockplug_testkit::Containerd;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Containerd {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// A minimal root filesystem with the static busybox as `/bin/busybox` and `/bin/sh`, in
/// `dir`.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    dockplug_testkit::containerd::busybox_rootfs(dir).expect("a busybox rootfs")
}
