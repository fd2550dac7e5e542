//! dockplugd uses its plugins: volumes through the getter on a v2 plugin (the packaged
//! localvol on a private containerd) and on v1 plugins found by a socket in `--socket-dir`
//! and by a spec file in `--spec-dir` ([`volumes`]); the authorization chain with an
//! SDK-built v1 plugin, a hand-written one that hangs, and network drivers in `/info`
//! ([`authz`]). The docker CLI is Debian's 20.10 (`/usr/bin/docker`), chosen deliberately.

mod authz;
mod getter;
mod parity;
mod volumes;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dockplug_protocol::volume::{CreateRequest, MountRequest, Volume};
use dockplug_sdk::{Plugin, PluginError, PluginResult, SpecFile, UnixListen, VolumeDriver};

/// A volume driver kept in memory, served from the test process as a v1 plugin.
#[derive(Default, Clone)]
pub struct MemDriver {
    pub volumes: Arc<Mutex<BTreeMap<String, u32>>>,
    /// Where its volumes "are" (reported mount points).
    pub root: PathBuf,
}

impl VolumeDriver for MemDriver {
    async fn create(&self, req: CreateRequest) -> PluginResult<()> {
        self.volumes.lock().unwrap().entry(req.name).or_default();
        Ok(())
    }
    async fn remove(&self, name: String) -> PluginResult<()> {
        let mut v = self.volumes.lock().unwrap();
        v.remove(&name).map(|_| ()).ok_or_else(|| PluginError::new("no such volume"))
    }
    async fn get(&self, name: String) -> PluginResult<Volume> {
        if self.volumes.lock().unwrap().contains_key(&name) {
            Ok(Volume::new(name.clone(), self.root.join(&name).display().to_string()))
        } else {
            Err(PluginError::new("no such volume"))
        }
    }
    async fn list(&self) -> PluginResult<Vec<Volume>> {
        let v = self.volumes.lock().unwrap();
        Ok(v.keys()
            .map(|n| Volume::new(n.clone(), self.root.join(n).display().to_string()))
            .collect())
    }
    async fn mount(&self, req: MountRequest) -> PluginResult<String> {
        Ok(self.root.join(req.name).display().to_string())
    }
    async fn unmount(&self, _: MountRequest) -> PluginResult<()> {
        Ok(())
    }
}

/// v1 plugins served from the test process on a runtime of their own, with the socket and
/// spec directories dockplugd is pointed at; stopped when dropped.
pub struct V1Plugins {
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl V1Plugins {
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::Builder::new().prefix("v1p").tempdir_in("/tmp").unwrap();
        std::fs::create_dir_all(dir.path().join("sockets")).unwrap();
        std::fs::create_dir_all(dir.path().join("specs")).unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        Self { rt, dir, stops: Vec::new() }
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sockets")
    }

    pub fn spec_dir(&self) -> PathBuf {
        self.dir.path().join("specs")
    }

    /// dockplugd's arguments for these directories.
    pub fn args(&self) -> Vec<OsString> {
        vec![
            "--socket-dir".into(),
            self.socket_dir().into(),
            "--spec-dir".into(),
            self.spec_dir().into(),
        ]
    }

    /// Serves `plugin` as `<socket dir>/<name>.sock`.
    pub fn serve_socket(&mut self, name: &str, plugin: Plugin) {
        let listen = UnixListen::new(self.socket_dir().join(format!("{name}.sock")));
        self.serve(plugin, listen);
    }

    /// Serves `plugin` on a socket outside the socket directory, found by `<spec dir>/<name>.spec`.
    pub fn serve_spec(&mut self, name: &str, plugin: Plugin) {
        let listen =
            UnixListen::new(self.dir.path().join("elsewhere").join(format!("{name}.sock")))
                .spec_file(SpecFile::new(self.spec_dir(), name));
        self.serve(plugin, listen);
    }

    fn serve(&mut self, plugin: Plugin, listen: UnixListen) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.rt.block_on(async {
            let server = plugin.bind_unix(listen).await.unwrap();
            tokio::spawn(server.run_until(async {
                let _ = rx.await;
            }));
        });
        self.stops.push(tx);
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for V1Plugins {
    fn drop(&mut self) {
        for s in self.stops.drain(..) {
            let _ = s.send(());
        }
    }
}

/// `Error response from daemon: <text>` as the CLI prints a daemon error.
pub fn daemon_error(stderr: &str, text: &str) {
    assert!(
        stderr.contains(&format!("Error response from daemon: {text}")),
        "expected the daemon's error {text:?}, the CLI printed: {stderr}"
    );
}

/// The non-empty lines of `s`.
pub fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_empty()).collect()
}

/// `true` when `p` is under `dir`.
pub fn under(p: &str, dir: &Path) -> bool {
    Path::new(p).starts_with(dir)
}

/// The SDK-built authorization plugin of `crates/getter/examples/authz_plugin.rs`, built
/// into this build's target directory.
fn authz_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current exe");
            let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>");
            let target = profile_dir.parent().expect("target dir").to_owned();
            let profile = profile_dir.file_name().unwrap().to_string_lossy().into_owned();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = std::process::Command::new(cargo);
            cmd.args([
                "build",
                "--quiet",
                "--locked",
                "-p",
                "dockplug-getter",
                "--example",
                "authz_plugin",
            ])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile == "release" {
                cmd.arg("--release");
            }
            assert!(
                cmd.status().expect("run cargo build").success(),
                "building authz_plugin failed"
            );
            let bin = target.join(&profile).join("examples").join("authz_plugin");
            assert!(bin.is_file(), "{} is missing after the build", bin.display());
            bin
        })
        .clone()
}

/// That plugin packaged as a v2 plugin directory at `out` (`docker.authz/1.0` on
/// `authz.sock`), denying the creation of the volume `deny`.
pub fn authz_v2_plugin(out: &Path, deny: &str) -> PathBuf {
    let bin = authz_binary();
    let rootfs = out.join("rootfs");
    for dir in ["run/docker/plugins", "tmp", "proc", "sys", "dev", "etc"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    std::fs::copy(&bin, rootfs.join("authz_plugin")).unwrap();
    for lib in dockplug_testkit::package::shared_libraries(&bin).unwrap() {
        let dest = rootfs.join(lib.strip_prefix("/").unwrap_or(&lib));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &dest).unwrap();
    }
    let config = serde_json::json!({
        "Description": "an SDK authorization plugin (dockplug-getter's tests)",
        "Documentation": "https://example.invalid/dockplug",
        "Entrypoint": ["/authz_plugin", "--socket", "/run/docker/plugins/authz.sock", "--deny-volume", deny],
        "WorkDir": "/",
        "Interface": {"Types": ["docker.authz/1.0"], "Socket": "authz.sock"},
        "Network": {"Type": ""},
        "Linux": {"Capabilities": null, "AllowAllDevices": false, "Devices": null},
        "Mounts": null,
        "Env": null,
        "Args": {"Name": "", "Description": "", "Settable": null, "Value": null}
    });
    std::fs::write(out.join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    out.to_owned()
}
