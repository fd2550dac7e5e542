//! Lookup and activation: Moby's `TestGet`, `TestGetAll`, `TestPluginWithNoManifest`,
//! `TestPluginWaitBadPlugin`, `TestPluginAddHandler`, plus shared activation, the dead-socket
//! mark and handlers.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockplug_v1::{Error, LocalRegistry, PluginOptions, Registry, RegistryConfig};
use serde_json::Value;

use super::server::{PluginServer, Reply, Seen};
use super::{quick_retry, tempdir};

fn manifest(implements: &[&str]) -> impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static {
    let body = serde_json::json!({ "Implements": implements }).to_string();
    move |seen, _| {
        if seen.path == "/Plugin.Activate" {
            Reply::ok(&body)
        } else {
            Reply::Status(200, String::from_utf8_lossy(&seen.body).into_owned())
        }
    }
}

fn registry(root: &Path) -> Registry {
    registry_with(root, RegistryConfig::default())
}

fn registry_with(root: &Path, config: RegistryConfig) -> Registry {
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let config = config.plugin(
        PluginOptions::default()
            .retry(quick_retry())
            .activate_timeout(Some(Duration::from_secs(5))),
    );
    Registry::new(LocalRegistry::with_dirs([root.join("run")], [root.join("etc")]), config)
}

fn activations(server: &PluginServer) -> usize {
    server.requests().iter().filter(|s| s.path == "/Plugin.Activate").count()
}

#[tokio::test]
async fn get_activates_and_checks_the_interface() {
    let dir = tempdir();
    let r = registry(dir.path());
    let server =
        PluginServer::unix(&dir.path().join("run/vol.sock"), manifest(&["VolumeDriver"])).await;
    let p = r.get("vol", "VolumeDriver").await.unwrap();
    assert_eq!(p.name(), "vol");
    assert_eq!(p.manifest().unwrap().implements, ["VolumeDriver"]);
    assert_eq!(p.protocol(), "moby.plugins.http/v1");
    let seen = &server.requests()[0];
    assert_eq!(seen.path, "/Plugin.Activate");
    assert!(seen.body.is_empty(), "activation is an empty POST");
    let back: Value = p.client().call("VolumeDriver.List", &serde_json::json!({})).await.unwrap();
    assert_eq!(back, serde_json::json!({}));

    let e = r.get("vol", "volumedriver").await.unwrap_err();
    assert!(e.is_not_implemented(), "interfaces match case-sensitively: {e}");
    assert_eq!(
        e.to_string(),
        r#"plugin does not implement the requested driver: plugin="vol", requested implementation="volumedriver""#
    );
    let started = Instant::now();
    let e = r.get("missing", "VolumeDriver").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(1), "no 15 s lookup retry");
    assert!(r.get("", "VolumeDriver").await.is_err());
    assert_eq!(activations(&server), 1, "activation happens once");
}

#[tokio::test]
async fn concurrent_callers_share_one_activation() {
    let dir = tempdir();
    let r = Arc::new(registry(dir.path()));
    let server =
        PluginServer::unix(&dir.path().join("run/p.sock"), manifest(&["NetworkDriver"])).await;
    let calls = (0..16).map(|_| {
        let r = Arc::clone(&r);
        async move { r.get("p", "NetworkDriver").await.map(|p| p.name().to_owned()) }
    });
    for res in futures_util::future::join_all(calls).await {
        assert_eq!(res.unwrap(), "p");
    }
    assert_eq!(activations(&server), 1);
}

#[tokio::test]
async fn a_failed_activation_is_kept_and_rediscovered() {
    let dir = tempdir();
    let r = registry(dir.path());
    let server = PluginServer::unix(&dir.path().join("run/bad.sock"), |_, n| {
        if n == 0 {
            Reply::Status(500, r#"{"Err":"not ready"}"#.into())
        } else {
            Reply::ok(r#"{"Implements":["authz"]}"#)
        }
    })
    .await;
    let e = r.get("bad", "authz").await.unwrap_err();
    match &e {
        Error::Activation { name, source } => {
            assert_eq!(name, "bad");
            assert_eq!(source.to_string(), "Plugin.Activate: not ready");
        }
        other => panic!("{other:?}"),
    }
    // The failed object left the cache: the next lookup activates a fresh one.
    let p = r.get("bad", "authz").await.unwrap();
    assert!(p.activation_error().is_none());
    assert_eq!(activations(&server), 2);
}

#[tokio::test]
async fn a_plugin_that_hangs_on_activation_times_out() {
    let dir = tempdir();
    let config = RegistryConfig::default();
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    let r = Registry::new(
        LocalRegistry::with_dirs([dir.path().join("run")], [dir.path().join("etc")]),
        config.plugin(PluginOptions::default().activate_timeout(Some(Duration::from_millis(100)))),
    );
    let _server = PluginServer::unix(&dir.path().join("run/h.sock"), |_, _| Reply::Hang).await;
    let started = Instant::now();
    let e = r.get("h", "VolumeDriver").await.unwrap_err();
    assert!(e.call_error().is_some_and(|c| c.is_timeout()), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stale_socket_is_marked_dead_then_retried_when_recreated() {
    let dir = tempdir();
    let r = registry_with(dir.path(), RegistryConfig::default().dead_for(Duration::from_secs(60)));
    let path = dir.path().join("run/stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());

    let e = r.get("stale", "VolumeDriver").await.unwrap_err();
    assert!(e.call_error().is_some_and(|c| c.is_refused()), "{e:?}");
    let started = Instant::now();
    for _ in 0..100 {
        let e = r.get("stale", "VolumeDriver").await.unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());

    // The plugin comes back on a new socket at the same path: tried at once.
    std::fs::remove_file(&path).unwrap();
    let _server = PluginServer::unix(&path, manifest(&["VolumeDriver"])).await;
    r.get("stale", "VolumeDriver").await.unwrap();
}

#[tokio::test]
async fn get_all_activates_in_parallel_and_keeps_discovery_order() {
    let dir = tempdir();
    let r = registry(dir.path());
    let run = dir.path().join("run");
    let _a = PluginServer::unix(&run.join("a.sock"), manifest(&["VolumeDriver"])).await;
    let _b = PluginServer::unix(&run.join("b.sock"), manifest(&["NetworkDriver"])).await;
    let tcp = PluginServer::tcp(manifest(&["VolumeDriver", "authz"])).await;
    std::fs::write(dir.path().join("etc/c.spec"), &tcp.addr).unwrap();
    drop(std::os::unix::net::UnixListener::bind(run.join("dead.sock")).unwrap());
    let _hang = PluginServer::unix(&run.join("e.sock"), |_, _| Reply::Hang).await;
    std::fs::write(dir.path().join("etc/broken.spec"), "nonsense").unwrap();

    let r = Registry::new(
        r.discovery().clone(),
        RegistryConfig::default().plugin(
            PluginOptions::default()
                .retry(quick_retry())
                .activate_timeout(Some(Duration::from_millis(300))),
        ),
    );
    let started = Instant::now();
    let all = r.get_all("VolumeDriver").await.unwrap();
    let names: Vec<&str> = all.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["a", "c"]);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let all = r.get_all("authz").await.unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn handlers_run_once_per_plugin() {
    let dir = tempdir();
    let r = registry(dir.path());
    let run = dir.path().join("run");
    let _a = PluginServer::unix(&run.join("a.sock"), manifest(&["VolumeDriver"])).await;
    let _b = PluginServer::unix(&run.join("b.sock"), manifest(&["VolumeDriver"])).await;
    let early = Arc::new(AtomicUsize::new(0));
    let e2 = Arc::clone(&early);
    r.handle("VolumeDriver", move |p| {
        assert!(p.manifest().is_some());
        e2.fetch_add(1, Ordering::SeqCst);
    });
    r.get("a", "VolumeDriver").await.unwrap();
    assert_eq!(early.load(Ordering::SeqCst), 1);
    r.get("a", "VolumeDriver").await.unwrap();
    assert_eq!(early.load(Ordering::SeqCst), 1, "not again for the same plugin");

    // A late handler sees the already active plugin now, without re-running the early one.
    let late = Arc::new(AtomicUsize::new(0));
    let l2 = Arc::clone(&late);
    r.handle("VolumeDriver", move |_| {
        l2.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(late.load(Ordering::SeqCst), 1);
    r.get_all("VolumeDriver").await.unwrap();
    assert_eq!(early.load(Ordering::SeqCst), 2, "b activated");
    assert_eq!(late.load(Ordering::SeqCst), 2);
    // A handler for another interface never runs.
    let other = Arc::new(AtomicUsize::new(0));
    let o2 = Arc::clone(&other);
    r.handle("NetworkDriver", move |_| {
        o2.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(other.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_restarted_plugin_is_found_again_at_its_new_socket() {
    let dir = tempdir();
    let r = registry(dir.path());
    let path = dir.path().join("run/p.sock");
    let first = PluginServer::unix(&path, manifest(&["VolumeDriver"])).await;
    assert_eq!(r.get("p", "VolumeDriver").await.unwrap().manifest().unwrap().implements.len(), 1);
    // The plugin restarts: its socket is re-created, now implementing more.
    drop(first);
    std::fs::remove_file(&path).unwrap();
    let second = PluginServer::unix(&path, manifest(&["VolumeDriver", "authz"])).await;
    let p = r.get("p", "authz").await.unwrap();
    assert_eq!(p.manifest().unwrap().implements, ["VolumeDriver", "authz"]);
    assert_eq!(activations(&second), 1);
    // While the socket stays the same, the cached plugin is used.
    r.get("p", "authz").await.unwrap();
    assert_eq!(activations(&second), 1);
}

#[tokio::test]
async fn get_waiting_finds_a_plugin_that_starts_late() {
    let dir = tempdir();
    let r = registry(dir.path());
    let path = dir.path().join("run/late.sock");
    let (found, _server) =
        tokio::join!(r.get_waiting("late", "VolumeDriver", Duration::from_secs(10)), async {
            // The lookup above runs first and finds nothing; then the plugin starts.
            tokio::task::yield_now().await;
            PluginServer::unix(&path, manifest(&["VolumeDriver"])).await
        });
    assert_eq!(found.unwrap().name(), "late");

    let started = Instant::now();
    let e = r.get_waiting("never", "VolumeDriver", Duration::from_millis(100)).await.unwrap_err();
    assert!(e.is_not_found());
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn get_all_bounds_its_parallelism() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    let mut servers = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let path = dir.path().join(format!("run/{name}.sock"));
        servers.push(PluginServer::unix(&path, |_, _| Reply::Hang).await);
    }
    let timeout = Duration::from_millis(150);
    let r = Registry::new(
        LocalRegistry::with_dirs([dir.path().join("run")], [dir.path().join("etc")]),
        RegistryConfig::default()
            .parallelism(2)
            .plugin(PluginOptions::default().activate_timeout(Some(timeout))),
    );
    let started = Instant::now();
    assert!(r.get_all("VolumeDriver").await.unwrap().is_empty());
    // Four activations that each time out, two at a time: at least two timeouts in a row.
    assert!(started.elapsed() >= timeout * 2, "{:?}", started.elapsed());
    assert!(servers.iter().all(|s| s.count() == 1));
}
