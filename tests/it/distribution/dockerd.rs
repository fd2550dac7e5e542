//! dockplug and a real dockerd exchange plugins through one private registry: dockerd pushes
//! and dockplug pulls, enables (on a private containerd) and serves a volume; dockplug
//! pushes and dockerd installs it and creates a volume; remote privileges match dockerd's and
//! a host-network plugin is refused without the grant; an index with two platforms installs
//! this machine's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use dockplug_containerd::{ContainerdConfig, ContainerdExecutor};
use dockplug_distribution::{RegistryClient, RegistryConfig, TargetPlatform};
use dockplug_manager::{Manager, ManagerConfig, PullOptions};
use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::progress::JsonMessage;
use dockplug_protocol::registry::{
    Descriptor, ImageIndex, Platform, DOCKER_MANIFEST_V2, OCI_INDEX,
};
use dockplug_protocol::PluginPrivilege;
use dockplug_testkit::http::Request;
use dockplug_v1::Client;
use serde_json::{json, Value};

use crate::support::containerd::Containerd;
use crate::support::dockerd::Dockerd;
use crate::support::{localvol, registry};

/// localvol's `PropagatedMount`.
const PROPAGATED_MOUNT: &str = "/data";

struct Env {
    containerd: Containerd,
    exec_root: tempfile::TempDir,
}

impl Env {
    async fn manager(&self) -> Manager<ContainerdExecutor> {
        let config = ContainerdConfig::new(&self.containerd.socket, self.containerd.path("fifo"))
            .with_namespace(&self.containerd.namespace);
        let executor = ContainerdExecutor::connect(config).await.expect("connect to containerd");
        let mut config = ManagerConfig::new(self.containerd.path("plugins"), self.exec_root.path());
        config.start_timeout = Duration::from_secs(20);
        Manager::new(config, executor).await.expect("open the manager")
    }

    fn client(&self, id: &str) -> Client {
        let socket = self.exec_root.path().join(id).join(localvol::LOCALVOL_SOCKET);
        Client::new(&format!("unix://{}", socket.display()), None).unwrap()
    }
}

/// A copy of the packaged plugin at `dir` with `edit` applied to its config and `extra`
/// files added to its rootfs.
fn variant(pkg: &Path, dir: &Path, edit: impl Fn(&mut Value), extra: &[(&str, &str)]) -> PathBuf {
    let out = Command::new("cp").arg("-a").arg(pkg).arg(dir).output().unwrap();
    assert!(out.status.success(), "cp: {}", String::from_utf8_lossy(&out.stderr));
    let file = dir.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&file, serde_json::to_vec(&config).unwrap()).unwrap();
    for (path, content) in extra {
        std::fs::write(dir.join("rootfs").join(path), content).unwrap();
    }
    dir.to_owned()
}

/// The build context (tar of `config.json` and `rootfs`) of a plugin directory.
fn context(dir: &Path) -> std::io::Cursor<Vec<u8>> {
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "config.json", "rootfs"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    std::io::Cursor::new(out.stdout)
}

fn registry_client() -> RegistryClient {
    let mut c = RegistryConfig::default();
    c.certs_dir = None;
    RegistryClient::new(c)
}

/// The registry's whole log (the testkit keeps it in `registry-<attempt>.log`).
fn full_log(reg: &dockplug_testkit::Registry) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(reg.dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect()
}

/// Every request the registry answered, as `METHOD path status` (upload state elided).
fn requests(reg: &dockplug_testkit::Registry) -> Vec<String> {
    full_log(reg)
        .lines()
        .filter(|l| l.contains("response completed"))
        .filter_map(|l| {
            let method = l.split("http.request.method=").nth(1)?.split_whitespace().next()?;
            let uri = l.split("http.request.uri=").nth(1)?.split_whitespace().next()?;
            let status = l.split("http.response.status=").nth(1)?.split_whitespace().next()?;
            let uri = uri.trim_matches('"');
            let uri = match uri.split_once("?_state=") {
                Some((path, rest)) => {
                    let digest = rest.split("&digest=").nth(1).unwrap_or("");
                    format!("{path}?digest={digest}")
                }
                None => uri.to_owned(),
            };
            Some(format!("{method} {uri} {status}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_and_dockplug_exchange_plugins_through_a_registry() {
    crate::support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry::plain();
    let host = reg.host();
    let dockerd = Dockerd::start(&tmp.path().join("dockerd"));
    let env = Env {
        containerd: Containerd::start(),
        exec_root: tempfile::Builder::new().prefix("x").tempdir_in("/tmp").unwrap(),
    };
    let m = env.manager().await;
    let rc = registry_client();
    let auth = AuthConfig::default();
    let pkg = localvol::packaged(&tmp.path().join("pkg"));

    // dockerd pushes; its Engine API and dockplug agree on the remote privileges.
    let theirs = format!("{host}/dockerd/localvol:1");
    dockerd.ok(&["plugin", "create", &theirs, pkg.to_str().unwrap()]);
    let before = requests(&reg).len();
    dockerd.ok(&["plugin", "push", &theirs]);
    eprintln!("dockerd push: {:#?}", &requests(&reg)[before..]);
    dockerd.ok(&["plugin", "rm", "--force", &theirs]);
    let ours = m.remote_privileges(&rc, &theirs, &auth).await.expect("remote privileges");
    let engine = dockerd
        .request(
            "GET",
            &format!("/v1.41/plugins/privileges?remote={theirs}"),
            b"",
            "application/json",
        )
        .expect("dockerd privileges");
    assert_eq!(engine.status, 200, "{}", engine.text());
    // dockerd answers `null` for a plugin that needs nothing.
    let engine: Option<Vec<PluginPrivilege>> = serde_json::from_str(&engine.text()).unwrap();
    let engine = engine.unwrap_or_default();
    assert_eq!(ours, engine, "the same privileges as dockerd computes");

    // dockplug pulls what dockerd pushed, enables it on containerd and serves a volume.
    let messages = Mutex::new(Vec::<JsonMessage>::new());
    let sink = |msg: JsonMessage| messages.lock().unwrap().push(msg);
    let before = requests(&reg).len();
    let pulled = m
        .pull(&rc, &theirs, None, &auth, &ours, &sink, &PullOptions::default())
        .await
        .expect("pull");
    let ours_install = requests(&reg)[before..].to_vec();
    eprintln!("dockplug install: {ours_install:#?}");
    // Three requests, none wasted: the manifest by tag, the config, the layer.
    assert_eq!(ours_install.len(), 3, "{ours_install:?}");
    assert!(ours_install[0].starts_with("GET /v2/dockerd/localvol/manifests/1 200"));
    assert!(pulled.enabled);
    assert_eq!(pulled.plugin_reference, theirs);
    let statuses: Vec<String> = messages.lock().unwrap().iter().map(|m| m.status.clone()).collect();
    assert!(statuses.iter().any(|s| s.starts_with("Digest: sha256:")), "{statuses:?}");
    let client = env.client(&pulled.id);
    let _: Value =
        client.call("VolumeDriver.Create", &json!({"Name": "pulled", "Opts": {}})).await.unwrap();
    let mounted: Value =
        client.call("VolumeDriver.Mount", &json!({"Name": "pulled", "ID": "c1"})).await.unwrap();
    let mountpoint = mounted["Mountpoint"].as_str().expect("a mountpoint").to_owned();
    assert!(mountpoint.starts_with(PROPAGATED_MOUNT), "{mountpoint}");
    let on_host = env
        .containerd
        .path("plugins")
        .join(&pulled.id)
        .join("propagated-mount")
        .join(mountpoint.trim_start_matches(PROPAGATED_MOUNT).trim_start_matches('/'));
    assert!(on_host.is_dir(), "{} on the host", on_host.display());
    let _: Value =
        client.call("VolumeDriver.Unmount", &json!({"Name": "pulled", "ID": "c1"})).await.unwrap();
    m.disable(&pulled.id, true).await.unwrap();
    m.remove(&pulled.id, true).await.unwrap();

    // dockplug pushes; dockerd installs it and creates a volume with it.
    let mine = format!("{host}/dockplug/localvol:2");
    let created = m.create_from_context(context(&pkg), &mine).await.expect("create");
    let before = requests(&reg).len();
    let result = m.push(&rc, &mine, &auth, &dockplug_manager::NoProgress).await.expect("push");
    let ours_push = requests(&reg)[before..].to_vec();
    eprintln!("dockplug push: {ours_push:#?}");
    // Per blob HEAD 404, POST 202, PUT 201; then the manifest.
    assert_eq!(ours_push.len(), 7, "{ours_push:?}");
    assert!(ours_push[6].starts_with("PUT /v2/dockplug/localvol/manifests/2 201"));
    assert_eq!(result.tag, "2");
    let before = requests(&reg).len();
    dockerd.ok(&["plugin", "install", "--grant-all-permissions", &mine]);
    eprintln!("dockerd install: {:#?}", &requests(&reg)[before..]);
    let installed =
        dockerd.ok(&["plugin", "inspect", "--format", "{{.Enabled}} {{.PluginReference}}", &mine]);
    assert_eq!(installed, format!("true {mine}"));
    let volume = dockerd.docker(&["volume", "create", "-d", &mine, "fromdockplug"]);
    let driver = dockerd.docker(&["volume", "inspect", "--format", "{{.Driver}}", "fromdockplug"]);
    let _ = dockerd.docker(&["volume", "rm", "fromdockplug"]);
    let _ = dockerd.docker(&["plugin", "rm", "--force", &mine]);
    assert!(volume.status.success(), "volume create: {}", String::from_utf8_lossy(&volume.stderr));
    assert_eq!(String::from_utf8_lossy(&driver.stdout).trim(), mine);
    m.remove(&created.id, true).await.unwrap();

    // A host-network plugin: dockplug refuses the install without the grant, and so does
    // dockerd when nobody answers its question.
    let hostnet = format!("{host}/dockplug/hostnet:1");
    let dir =
        variant(&pkg, &tmp.path().join("hostnet"), |c| c["Network"] = json!({"Type": "host"}), &[]);
    m.create_from_context(context(&dir), &hostnet).await.unwrap();
    m.push(&rc, &hostnet, &auth, &dockplug_manager::NoProgress).await.unwrap();
    m.remove(&hostnet, true).await.unwrap();
    let wanted = m.remote_privileges(&rc, &hostnet, &auth).await.unwrap();
    assert!(wanted.iter().any(|p| p.name == "network" && p.value == ["host"]), "{wanted:?}");
    let granted: Vec<_> = wanted.iter().filter(|p| p.name != "network").cloned().collect();
    let err = m
        .pull(
            &rc,
            &hostnet,
            None,
            &auth,
            &granted,
            &dockplug_manager::NoProgress,
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "incorrect privileges");
    assert!(m.list(&Default::default()).is_empty(), "nothing installed");
    let refused = dockerd.docker(&["plugin", "install", &hostnet]);
    assert!(!refused.status.success(), "dockerd installed without the grant");
    assert!(dockerd.docker(&["plugin", "inspect", &hostnet]).status.code() != Some(0));

    // An OCI index with two platforms: this machine's variant is installed.
    let here = TargetPlatform::host();
    let mut children = Vec::new();
    for arch in ["arm64", "amd64"] {
        let name = format!("{host}/dockplug/multi:{arch}");
        let dir = variant(&pkg, &tmp.path().join(arch), |_| {}, &[("platform", arch)]);
        m.create_from_context(context(&dir), &name).await.unwrap();
        let r = m.push(&rc, &name, &auth, &dockplug_manager::NoProgress).await.unwrap();
        m.remove(&name, true).await.unwrap();
        let variant = if arch == "arm64" { "v8" } else { "" };
        children.push(Descriptor {
            platform: Some(Platform {
                os: "linux".into(),
                architecture: arch.into(),
                variant: variant.into(),
                ..Platform::default()
            }),
            ..Descriptor::new(DOCKER_MANIFEST_V2, r.digest, r.size)
        });
    }
    let index = ImageIndex { schema_version: 2, media_type: OCI_INDEX.into(), manifests: children };
    let body = serde_json::to_vec(&index).unwrap();
    let headers = [("Content-Type", OCI_INDEX)];
    let put = reg
        .request(&Request {
            method: "PUT",
            path: "/v2/dockplug/multi/manifests/multi",
            headers: &headers,
            body: &body,
        })
        .unwrap();
    assert_eq!(put.status, 201, "{}", put.text());
    let multi = format!("{host}/dockplug/multi:multi");
    let wanted = m.remote_privileges(&rc, &multi, &auth).await.unwrap();
    let p = m
        .pull(
            &rc,
            &multi,
            None,
            &auth,
            &wanted,
            &dockplug_manager::NoProgress,
            &PullOptions::default().disabled(),
        )
        .await
        .unwrap();
    let marker =
        std::fs::read_to_string(env.containerd.path("plugins").join(&p.id).join("rootfs/platform"))
            .unwrap();
    assert_eq!(marker, here.architecture, "the index entry for {here}");
    m.remove(&p.id, true).await.unwrap();

    // Upgrade keeps the ID and the volume data: a volume made by the amd64 variant is still
    // served after the upgrade to what dockerd pushed.
    let amd64 = format!("{host}/dockplug/multi:amd64");
    let wanted = m.remote_privileges(&rc, &amd64, &auth).await.unwrap();
    let before = m
        .pull(
            &rc,
            &amd64,
            Some("upgradable"),
            &auth,
            &wanted,
            &dockplug_manager::NoProgress,
            &PullOptions::default(),
        )
        .await
        .unwrap();
    let client = env.client(&before.id);
    let _: Value =
        client.call("VolumeDriver.Create", &json!({"Name": "keep", "Opts": {}})).await.unwrap();
    let path: Value = client.call("VolumeDriver.Path", &json!({"Name": "keep"})).await.unwrap();
    let inside = path["Mountpoint"]
        .as_str()
        .unwrap()
        .trim_start_matches(PROPAGATED_MOUNT)
        .trim_start_matches('/')
        .to_owned();
    let data = env
        .containerd
        .path("plugins")
        .join(&before.id)
        .join("propagated-mount")
        .join(&inside)
        .join("file");
    std::fs::write(&data, b"kept").unwrap();
    let err = m
        .upgrade(&rc, "upgradable", &theirs, &auth, &ours, &dockplug_manager::NoProgress)
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 409, "{err}");
    m.disable("upgradable", false).await.unwrap();
    let after = m
        .upgrade(&rc, "upgradable", &theirs, &auth, &ours, &dockplug_manager::NoProgress)
        .await
        .unwrap();
    assert_eq!(after.id, before.id);
    assert_eq!(after.plugin_reference, theirs);
    let rootfs = env.containerd.path("plugins").join(&after.id).join("rootfs");
    assert!(!rootfs.join("platform").exists(), "the new rootfs");
    m.enable("upgradable", None).await.unwrap();
    let got: Value = client.call("VolumeDriver.Get", &json!({"Name": "keep"})).await.unwrap();
    assert_eq!(got["Volume"]["Name"], "keep", "{got}");
    assert_eq!(std::fs::read(&data).unwrap(), b"kept");
    m.disable("upgradable", true).await.unwrap();
    m.remove("upgradable", true).await.unwrap();
    m.shutdown().await;
}
