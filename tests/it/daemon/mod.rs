//! dockplugd driven by real clients: the docker CLI ([`cli`]), bollard ([`bollard_client`]), the
//! same sequence under dockerd and dockplugd ([`parity`]), and the daemon's own life: lock,
//! pidfile, private containerd, restart with plugins restored in the background, SIGTERM,
//! live restore ([`life`]), and push/install through a private registry ([`registry`]).

mod bollard_client;
mod cli;
pub(crate) mod dockplugd;
mod life;
mod parity;
mod registry;

use std::path::{Path, PathBuf};

use dockplugd::Dockplugd;

/// The packaged localvol (as `cargo xtask package localvol` makes it) in `dir/localvol`.
pub fn localvol_dir(dir: &Path) -> PathBuf {
    crate::support::localvol::packaged(&dir.join("localvol"))
}

/// A plugin directory with localvol's `config.json` and an almost empty rootfs, at
/// `dir/small`: for requests that fail on the name alone (a create under a taken name). dockerd
/// answers those before it has read the build context, like dockplugd; with the whole
/// localvol rootfs the CLI may still be sending it and report a broken pipe instead of the
/// reply.
pub fn small_plugin_dir(dir: &Path, plugin_dir: &Path) -> PathBuf {
    let small = dir.join("small");
    std::fs::create_dir_all(small.join("rootfs/etc")).unwrap();
    std::fs::copy(plugin_dir.join("config.json"), small.join("config.json")).unwrap();
    small
}

/// The version of the docker CLI the suites run.
pub fn cli_version(d: &Dockplugd) -> String {
    d.docker_ok(&["version", "--format", "{{.Client.Version}}"]).trim().to_owned()
}
