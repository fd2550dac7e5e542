//! localvol for the tests: the binary (built when missing), a running v1 instance, and the
//! v2 plugin directory packaged by `dockplug_testkit::package`, as `cargo xtask package
//! localvol` packages it.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dockplug_testkit::{package, wait_until};

use super::Daemon;

pub use package::LOCALVOL_SOCKET;

/// The target directory and profile directory this test binary was built in
/// (`<target>/debug/deps/it-<hash>` gives `<target>` and `debug`).
fn target_dirs() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("exe in <target>/<profile>/deps");
    let target = profile_dir.parent().expect("target dir").to_owned();
    let profile = profile_dir.file_name().unwrap().to_string_lossy().into_owned();
    (target, profile)
}

/// The localvol binary of this build. `cargo build -p dockplug-localvol` runs first, into the
/// same target directory (a no-op when `cargo test --workspace` already built it; cargo has
/// released its build lock by the time tests run).
pub fn binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let (target, profile) = target_dirs();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "--locked", "-p", "dockplug-localvol"])
                .args(["--bin", "localvol"])
                .arg("--target-dir")
                .arg(&target)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile == "release" {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build for localvol");
            assert!(status.success(), "cargo build -p dockplug-localvol failed");
            let bin = target.join(&profile).join("localvol");
            assert!(bin.is_file(), "{} is missing after the build", bin.display());
            bin
        })
        .clone()
}

/// Package localvol as a v2 plugin directory (`config.json` + `rootfs/`) at `out`.
pub fn packaged(out: &Path) -> PathBuf {
    package::localvol_plugin(&binary(), out).expect("package localvol as a v2 plugin")
}

/// A running localvol, stopped by PID when dropped (its socket and spec file go with it).
pub struct LocalVol {
    pub daemon: Daemon,
    pub socket: PathBuf,
    pub root: PathBuf,
    spec: Option<PathBuf>,
}

impl LocalVol {
    /// Start localvol on `<dir>/plugins/localvol.sock` with its root at `<dir>/root`, writing a
    /// discovery file `<spec>.spec` when `spec` (DIR/NAME) is given.
    pub fn start(dir: &Path, spec: Option<&Path>) -> LocalVol {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("plugins").join(LOCALVOL_SOCKET);
        let root = dir.join("root");
        let mut cmd = Command::new(binary());
        cmd.arg("--socket").arg(&socket).arg("--root").arg(&root);
        if let Some(spec) = spec {
            cmd.arg("--spec").arg(spec);
        }
        let daemon =
            Daemon::spawn("localvol", cmd, &dir.join("localvol.log")).expect("start localvol");
        let lv = LocalVol { daemon, socket, root, spec: spec.map(|s| s.with_extension("spec")) };
        // localvol writes its spec file just after it binds the socket: wait for both.
        let ready = wait_until(Duration::from_secs(10), || {
            UnixStream::connect(&lv.socket).is_ok() && lv.spec.as_ref().is_none_or(|s| s.is_file())
        });
        assert!(ready, "localvol did not listen (or wrote no spec file): {}", lv.daemon.log_tail());
        lv
    }
}

impl Drop for LocalVol {
    fn drop(&mut self) {
        self.daemon.stop(Duration::from_secs(10));
        // Gone already after a clean stop; this covers a killed localvol.
        if let Some(spec) = &self.spec {
            let _ = std::fs::remove_file(spec);
        }
    }
}
