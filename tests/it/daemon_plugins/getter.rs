//! The getter in process on the real manager and containerd executor (the packaged
//! localvol on a private containerd), beside an SDK v1 plugin: v2 first with reference
//! counts, no fallback for a disabled v2 plugin, v1 once the v2 plugin is gone, handlers of
//! both kinds, `on_gone`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dockplug_containerd::{ContainerdConfig, ContainerdExecutor};
use dockplug_getter::Getter;
use dockplug_manager::{LookupMode, Manager, ManagerConfig, ManagerError};
use dockplug_protocol::volume::CapabilitiesResponse;
use dockplug_sdk::{Plugin, UnixListen};
use dockplug_v1::{LocalRegistry, Registry, RegistryConfig};

use super::MemDriver;
use crate::support::containerd::Containerd;
use crate::support::{eventually, localvol};

const DEADLINE: Duration = Duration::from_secs(30);

fn context(dir: &std::path::Path) -> Cursor<Vec<u8>> {
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "config.json", "rootfs"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    Cursor::new(out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_first_with_counts_then_v1_and_handlers_of_both_kinds() {
    let containerd = Containerd::start();
    let exec_root = tempfile::Builder::new().prefix("x").tempdir_in("/tmp").unwrap();
    let plugin_dir = localvol::packaged(&containerd.path("localvol"));
    let ctd = ContainerdConfig::new(&containerd.socket, containerd.path("fifo"))
        .with_namespace(&containerd.namespace);
    let executor = ContainerdExecutor::connect(ctd).await.expect("connect to containerd");
    let mut config = ManagerConfig::new(containerd.path("plugins"), exec_root.path());
    config.start_timeout = Duration::from_secs(20);
    let manager = Manager::new(config, executor).await.expect("open the manager");

    // v1 plugins: `mem`, and one named like the v2 plugin, `localvol`.
    let sockets = tempfile::Builder::new().prefix("s").tempdir_in("/tmp").unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for name in ["mem", "localvol"] {
        let plugin = Plugin::builder().volume(MemDriver::default()).build();
        let server = plugin
            .bind_unix(UnixListen::new(sockets.path().join(format!("{name}.sock"))))
            .await
            .unwrap();
        let mut stopped = stopped.clone();
        tokio::spawn(server.run_until(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
    }
    let v1 = Registry::new(
        LocalRegistry::with_dirs([sockets.path()], [sockets.path().join("specs")]),
        RegistryConfig::default(),
    );
    let getter = Getter::new(manager.clone(), Some(Arc::new(v1)));
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h = handled.clone();
    getter
        .handle("VolumeDriver", move |p| h.lock().unwrap().push((p.name().to_owned(), p.is_v1())));
    let gone = Arc::new(Mutex::new(Vec::new()));
    let g = gone.clone();
    getter.on_gone(move |name| g.lock().unwrap().push(name.to_owned()));

    manager.create_from_context(context(&plugin_dir), "localvol").await.expect("create");
    // Installed but disabled: the v2 plugin has the name, so no v1 fallback.
    let err = getter.lookup("localvol", "VolumeDriver").await.unwrap_err();
    assert_eq!(err.http_status(), 409, "{err}");
    manager.enable("localvol", None).await.expect("enable");
    assert_eq!(
        *handled.lock().unwrap(),
        [("localvol:latest".to_owned(), false)],
        "v2 handler at enable"
    );

    // v2 first: counted, a ready client on its socket, paths scoped to the host.
    let p = getter.acquire("localvol", "VolumeDriver").await.unwrap();
    assert!(!p.is_v1());
    assert_eq!(p.name(), "localvol:latest");
    let id = p.id().unwrap().to_owned();
    assert_eq!(
        p.scoped_path("/data/volumes/x"),
        containerd.path("plugins").join(&id).join("propagated-mount").join("volumes/x")
    );
    assert_eq!(p.scoped_path("/etc/x"), containerd.path("plugins").join(&id).join("rootfs/etc/x"));
    let caps: CapabilitiesResponse = p
        .client()
        .call("VolumeDriver.Capabilities", &BTreeMap::<String, String>::new())
        .await
        .unwrap();
    assert_eq!(caps.capabilities.scope, "local");
    let err = manager.disable("localvol", false).await.unwrap_err();
    assert!(matches!(err, ManagerError::InUse { .. }), "{err}");
    assert_eq!(err.to_string(), "plugin localvol:latest is in use");

    // Both kinds of a capability; the v1 handler runs as v1 plugins activate.
    let all = getter.get_all_by_capability("VolumeDriver").await.unwrap();
    let mut kinds: Vec<(String, bool)> =
        all.iter().map(|p| (p.name().to_owned(), p.is_v1())).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("localvol".to_owned(), true),
            ("localvol:latest".to_owned(), false),
            ("mem".to_owned(), true)
        ]
    );
    let mut seen = handled.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("localvol".to_owned(), true),
            ("localvol:latest".to_owned(), false),
            ("mem".to_owned(), true)
        ]
    );
    assert_eq!(getter.get_all_managed_by_capability("VolumeDriver").len(), 1);

    // Released: it can be disabled; `on_gone` hears of it; still no fallback while installed.
    getter.get("localvol", "VolumeDriver", LookupMode::Release).await.unwrap();
    manager.disable("localvol", false).await.expect("disable once released");
    assert!(
        eventually(DEADLINE, || async {
            gone.lock().unwrap().contains(&"localvol:latest".to_owned())
        })
        .await
    );
    let err = getter.lookup("localvol", "VolumeDriver").await.unwrap_err();
    assert_eq!(err.to_string(), "plugin localvol:latest found but disabled");

    // A handler registered while a v2 plugin runs sees it at once.
    manager.enable("localvol", None).await.unwrap();
    let late = Arc::new(Mutex::new(Vec::new()));
    let l = late.clone();
    getter.handle("VolumeDriver", move |p| l.lock().unwrap().push(p.name().to_owned()));
    assert!(
        late.lock().unwrap().contains(&"localvol:latest".to_owned()),
        "{:?}",
        late.lock().unwrap()
    );

    // Removed: the name is v1's again.
    manager.disable("localvol", false).await.unwrap();
    manager.remove("localvol", false).await.unwrap();
    let p = getter.lookup("localvol", "VolumeDriver").await.unwrap();
    assert!(p.is_v1());
    assert_eq!(p.scoped_path("/data/x"), std::path::Path::new("/data/x"));
    manager.shutdown().await;
    let _ = stop.send(true);
}
