//! dockplug-sdk served on real sockets and called through the real client (dockplug-v1):
//! dockerd's captured volume calls replayed as golden bodies, and the server's mechanics
//! (malformed bodies, unknown methods, panics, concurrency, graceful shutdown, sockets).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dockplug::protocol::volume::{CreateRequest, MountRequest, Volume};
use dockplug_sdk::{
    Plugin, PluginError, PluginResult, ServeError, SpecFile, TcpListen, UnixListen, VolumeDriver,
};
use dockplug_v1::{CallError, CallOptions, Client};
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

/// A volume driver that behaves like the one dockerd's calls were captured against:
/// volumes at `<prefix>/<name>`, mounts counted per ID in `Status.mounts`.
#[derive(Default)]
pub struct Harness {
    prefix: String,
    volumes: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl Harness {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned(), volumes: Mutex::default() }
    }

    fn mountpoint(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }
}

impl VolumeDriver for Harness {
    async fn create(&self, req: CreateRequest) -> PluginResult<()> {
        self.volumes.lock().unwrap().entry(req.name).or_default();
        Ok(())
    }
    async fn remove(&self, name: String) -> PluginResult<()> {
        self.volumes.lock().unwrap().remove(&name);
        Ok(())
    }
    async fn get(&self, name: String) -> PluginResult<Volume> {
        let volumes = self.volumes.lock().unwrap();
        let mounts = volumes
            .get(&name)
            .ok_or_else(|| PluginError::new(format!("no such volume: {name}")))?;
        let mut v = Volume::new(name.clone(), self.mountpoint(&name));
        let mut status = serde_json::Map::new();
        status.insert("mounts".into(), mounts.len().into());
        v.status = Some(status);
        Ok(v)
    }
    async fn list(&self) -> PluginResult<Vec<Volume>> {
        let volumes = self.volumes.lock().unwrap();
        Ok(volumes.keys().map(|n| Volume::new(n.clone(), self.mountpoint(n))).collect())
    }
    async fn mount(&self, req: MountRequest) -> PluginResult<String> {
        let mut volumes = self.volumes.lock().unwrap();
        let mounts = volumes
            .get_mut(&req.name)
            .ok_or_else(|| PluginError::new(format!("no such volume: {}", req.name)))?;
        mounts.insert(req.id);
        Ok(self.mountpoint(&req.name))
    }
    async fn unmount(&self, req: MountRequest) -> PluginResult<()> {
        if let Some(mounts) = self.volumes.lock().unwrap().get_mut(&req.name) {
            mounts.remove(&req.id);
        }
        Ok(())
    }
}

/// A plugin served on a unix socket in a temp dir, stopped (gracefully) when dropped.
pub struct Served {
    pub socket: PathBuf,
    pub client: Client,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Served {
    pub async fn unix(plugin: Plugin) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::at(plugin, UnixListen::new(dir.path().join("p.sock"))).await;
        s._dir = Some(dir);
        s
    }

    pub async fn at(plugin: Plugin, listen: UnixListen) -> Served {
        let socket = listen.path().to_owned();
        let server = plugin.bind_unix(listen).await.unwrap();
        let (tx, rx) = oneshot::channel();
        let done = tokio::spawn(server.run_until(async {
            let _ = rx.await;
        }));
        let client = Client::new(&format!("unix://{}", socket.display()), None).unwrap();
        Served { socket, client, stop: Some(tx), done: Some(done), _dir: None }
    }

    /// Ask for shutdown and return the server task.
    pub fn shutdown(&mut self) -> tokio::task::JoinHandle<Result<(), ServeError>> {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap()
    }

    /// Call `method` with a raw body: the status and body of the reply (errors included).
    pub async fn raw(&self, method: &str, body: Option<&[u8]>) -> (u16, String) {
        let body = body.map(Bytes::copy_from_slice);
        match self.client.call_raw(method, body, CallOptions::default()).await {
            Ok(b) => (200, String::from_utf8(b.to_vec()).unwrap()),
            Err(CallError::Plugin { status, message, .. }) => (status, message),
            Err(e) => panic!("{method}: {e}"),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Replay dockerd's captured calls (`{"method","request","response","status"}` lines) against
/// a server, comparing each reply with what the captured plugin answered.
async fn replay(served: &Served, golden: &str) -> usize {
    let mut calls = 0;
    for line in golden.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(method) = v["method"].as_str() else { continue };
        let body = v.get("request").map(|r| {
            let mut b = serde_json::to_vec(r).unwrap();
            b.push(b'\n');
            b
        });
        let (status, reply) = served.raw(method, body.as_deref()).await;
        let want_status = v["status"].as_u64().unwrap() as u16;
        assert_eq!(status, want_status, "{method}: status (reply {reply})");
        if status == 200 {
            let got: Value = serde_json::from_str(&reply).unwrap();
            assert_eq!(got, v["response"], "{method}: reply body");
        } else {
            assert_eq!(reply, v["response"]["Err"].as_str().unwrap(), "{method}: error text");
        }
        calls += 1;
    }
    calls
}

fn golden(name: &str) -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/protocol/tests/golden").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_dockerd_v1_volume_calls() {
    let plugin = Plugin::builder().volume(Harness::new("/var/lib/harnessvol/volumes")).build();
    let served = Served::unix(plugin).await;
    let golden = golden("dockerd-v1-calls.jsonl");
    let calls = replay(&served, &golden).await;
    assert_eq!(calls, golden.matches("\"method\"").count());
    assert!(calls > 30, "only {calls} calls replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_dockerd_v2_volume_calls() {
    let plugin = Plugin::builder().volume(Harness::new("/data")).build();
    let served = Served::unix(plugin).await;
    let golden = golden("dockerd-v2-calls.jsonl");
    let calls = replay(&served, &golden).await;
    assert_eq!(calls, golden.matches("\"method\"").count());
    assert!(calls > 30, "only {calls} calls replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_follows_what_is_served_and_bodies_are_never_empty() {
    let served = Served::unix(Plugin::builder().volume(Harness::new("/v")).build()).await;
    // Through the client's activation path, as a daemon would.
    let plugin = dockplug_v1::Plugin::new(
        "golden",
        format!("unix://{}", served.socket.display()).parse().unwrap(),
        dockplug_v1::PluginOptions::default(),
    )
    .unwrap();
    let manifest = plugin.activate().await.unwrap();
    assert_eq!(manifest.implements, ["VolumeDriver"]);
    // Exactly 200 and a JSON body for a call with nothing to say (Create: `{"Err":""}`).
    let (status, body) =
        served.raw("VolumeDriver.Create", Some(br#"{"Name":"a","Opts":{}}"#)).await;
    assert_eq!((status, body.as_str()), (200, "{\"Err\":\"\"}\n"));
    let (status, body) = served.raw("VolumeDriver.Capabilities", None).await;
    assert_eq!((status, body.as_str()), (200, "{\"Capabilities\":{\"Scope\":\"local\"}}\n"));
    // The default Path answers from Get.
    let (status, body) = served.raw("VolumeDriver.Path", Some(br#"{"Name":"a"}"#)).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["Mountpoint"], "/v/a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_and_unknown_methods_404() {
    let served = Served::unix(Plugin::builder().volume(Harness::new("/v")).build()).await;
    for (body, what) in [
        (&b"{\"Name\":"[..], "malformed request body"),
        (b"", "empty request body"),
        (b"[1,2]", "malformed request body"),
        (b"{\"Name\": 7}", "malformed request body"),
        (b"\xff\xfe", "malformed request body"),
    ] {
        let (status, msg) = served.raw("VolumeDriver.Mount", Some(body)).await;
        assert_eq!(status, 400, "{body:?}: {msg}");
        assert!(msg.starts_with("VolumeDriver.Mount: ") && msg.contains(what), "{msg}");
    }
    let err = served
        .client
        .call::<_, Value>("VolumeDriver.Snapshot", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = served.client.call_empty::<Value>("NetworkDriver.GetCapabilities").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // Still serving.
    let (status, _) = served.raw("VolumeDriver.List", Some(b"{}")).await;
    assert_eq!(status, 200);
}

/// A driver whose Mount panics for one name and blocks for another until released.
struct Tricky {
    in_flight: AtomicUsize,
    /// Closed until the test opens it: no wake-up can be lost, unlike a `Notify`.
    gate: tokio::sync::Semaphore,
    entered: Notify,
}

impl VolumeDriver for Tricky {
    async fn create(&self, _req: CreateRequest) -> PluginResult<()> {
        Ok(())
    }
    async fn remove(&self, _name: String) -> PluginResult<()> {
        Ok(())
    }
    async fn get(&self, name: String) -> PluginResult<Volume> {
        Ok(Volume::new(name, "/x"))
    }
    async fn list(&self) -> PluginResult<Vec<Volume>> {
        Ok(vec![])
    }
    async fn mount(&self, req: MountRequest) -> PluginResult<String> {
        match req.name.as_str() {
            "panic" => panic!("the author's bug"),
            "slow" => {
                self.in_flight.fetch_add(1, Ordering::SeqCst);
                self.entered.notify_one();
                let _pass = self.gate.acquire().await;
                Ok("/slow".into())
            }
            "fail" => Err(std::io::Error::other("disk on fire").into()),
            _ => Ok(format!("/{}", req.name)),
        }
    }
    async fn unmount(&self, _req: MountRequest) -> PluginResult<()> {
        Ok(())
    }
}

fn tricky() -> Arc<Tricky> {
    Arc::new(Tricky {
        in_flight: AtomicUsize::new(0),
        gate: tokio::sync::Semaphore::new(0),
        entered: Notify::new(),
    })
}

/// Lets a test keep a handle on the driver it serves.
struct Shared(Arc<Tricky>);
impl VolumeDriver for Shared {
    async fn create(&self, r: CreateRequest) -> PluginResult<()> {
        self.0.create(r).await
    }
    async fn remove(&self, n: String) -> PluginResult<()> {
        self.0.remove(n).await
    }
    async fn get(&self, n: String) -> PluginResult<Volume> {
        self.0.get(n).await
    }
    async fn list(&self) -> PluginResult<Vec<Volume>> {
        self.0.list().await
    }
    async fn mount(&self, r: MountRequest) -> PluginResult<String> {
        self.0.mount(r).await
    }
    async fn unmount(&self, r: MountRequest) -> PluginResult<()> {
        self.0.unmount(r).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_500_and_the_server_keeps_serving() {
    let served = Served::unix(Plugin::builder().volume(Shared(tricky())).build()).await;
    let (status, msg) =
        served.raw("VolumeDriver.Mount", Some(br#"{"Name":"panic","ID":"1"}"#)).await;
    assert_eq!(status, 500);
    assert_eq!(msg, "VolumeDriver.Mount: the plugin's handler panicked");
    let (status, msg) =
        served.raw("VolumeDriver.Mount", Some(br#"{"Name":"fail","ID":"1"}"#)).await;
    assert_eq!((status, msg.as_str()), (500, "disk on fire"));
    let (status, body) = served.raw("VolumeDriver.Mount", Some(br#"{"Name":"ok","ID":"1"}"#)).await;
    assert_eq!((status, body.as_str()), (200, "{\"Mountpoint\":\"/ok\",\"Err\":\"\"}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_are_served_concurrently() {
    let driver = tricky();
    let served = Served::unix(Plugin::builder().volume(Shared(driver.clone())).build()).await;
    // Eight calls block inside the handler at the same time; then fifty quick ones still get
    // through while they wait.
    let mut slow = Vec::new();
    for i in 0..8 {
        let client = served.client.clone();
        slow.push(tokio::spawn(async move {
            let req = serde_json::json!({"Name": "slow", "ID": i.to_string()});
            client.call::<_, Value>("VolumeDriver.Mount", &req).await
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while driver.in_flight.load(Ordering::SeqCst) < 8 {
        assert!(tokio::time::Instant::now() < deadline, "the slow calls never ran together");
        let _ = tokio::time::timeout(Duration::from_millis(100), driver.entered.notified()).await;
    }
    let quick: Vec<_> = (0..50)
        .map(|i| {
            let client = served.client.clone();
            tokio::spawn(async move {
                let req = serde_json::json!({"Name": format!("q{i}"), "ID": "x"});
                client.call::<_, Value>("VolumeDriver.Mount", &req).await.unwrap()
            })
        })
        .collect();
    for (i, q) in quick.into_iter().enumerate() {
        assert_eq!(q.await.unwrap()["Mountpoint"], format!("/q{i}"));
    }
    driver.gate.add_permits(1000);
    for s in slow {
        assert_eq!(s.await.unwrap().unwrap()["Mountpoint"], "/slow");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_calls_in_flight_then_removes_the_socket() {
    let driver = tricky();
    let mut served = Served::unix(Plugin::builder().volume(Shared(driver.clone())).build()).await;
    let client = served.client.clone();
    let call = tokio::spawn(async move {
        client
            .call::<_, Value>("VolumeDriver.Mount", &serde_json::json!({"Name": "slow", "ID": "1"}))
            .await
    });
    tokio::time::timeout(Duration::from_secs(10), driver.entered.notified()).await.unwrap();
    let server = served.shutdown();
    // The socket goes at once, so nobody new finds the plugin; the call in flight goes on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while served.socket.exists() {
        assert!(tokio::time::Instant::now() < deadline, "socket not removed at shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!server.is_finished() && !call.is_finished());
    driver.gate.add_permits(1000);
    let reply =
        tokio::time::timeout(Duration::from_secs(10), call).await.unwrap().unwrap().unwrap();
    assert_eq!(reply["Mountpoint"], "/slow");
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_rules_stale_live_mode_group_and_spec_file() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sub/dir/v.sock");
    let plugin = Plugin::builder().volume(Harness::new("/v")).build();

    // A stale socket file (nobody listening) is replaced.
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(std::fs::metadata(&sock).unwrap().file_type().is_socket());
    let gid = nix::unistd::getgid().as_raw();
    let spec_dir = dir.path().join("specs");
    let listen = UnixListen::new(&sock)
        .mode(0o600)
        .group_id(gid)
        .spec_file(SpecFile::new(&spec_dir, "myvol"));
    let mut served = Served::at(plugin.clone(), listen).await;
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.gid(), gid);
    let spec = spec_dir.join("myvol.spec");
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), format!("unix://{}\n", sock.display()));
    // Discovery through the client finds the plugin by that spec file.
    let registry = dockplug_v1::LocalRegistry::with_dirs([dir.path().join("none")], [&spec_dir]);
    let found = registry.plugin("myvol").unwrap();
    assert_eq!(found.addr.to_string(), format!("unix://{}", sock.display()));

    // A live one is refused, and left alone.
    let err = plugin.bind_unix(UnixListen::new(&sock)).await.unwrap_err();
    assert!(matches!(err, ServeError::SocketInUse { .. }), "{err}");
    assert_eq!(served.raw("VolumeDriver.List", Some(b"{}")).await.0, 200);

    // A regular file is not ours to remove.
    let file = dir.path().join("file.sock");
    std::fs::write(&file, b"keep me").unwrap();
    let err = plugin.bind_unix(UnixListen::new(&file)).await.unwrap_err();
    assert!(matches!(err, ServeError::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    let err = plugin.bind_unix(UnixListen::new("relative.sock")).await.unwrap_err();
    assert!(matches!(err, ServeError::RelativePath { .. }), "{err}");
    let err = plugin
        .bind_unix(UnixListen::new(dir.path().join("g.sock")).group_name("no-such-group-dockplug"))
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::UnknownGroup { .. }), "{err}");
    assert!(!dir.path().join("g.sock").exists(), "a failed bind left its socket");

    // Shutdown removes the socket and the spec file.
    served.shutdown().await.unwrap().unwrap();
    assert!(!sock.exists() && !spec.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_with_a_spec_file_found_by_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::builder().volume(Harness::new("/v")).build();
    let server = plugin
        .bind_tcp(
            TcpListen::new("0.0.0.0:0".parse().unwrap())
                .spec_file(SpecFile::new(dir.path(), "tcpvol")),
        )
        .await
        .unwrap();
    let dockplug_sdk::Address::Tcp(addr) = server.address().clone() else { panic!("not tcp") };
    let spec = dir.path().join("tcpvol.spec");
    // An unspecified bind address is advertised as loopback, which a client can dial.
    assert_eq!(
        std::fs::read_to_string(&spec).unwrap(),
        format!("tcp://127.0.0.1:{}\n", addr.port())
    );
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    let registry = dockplug_v1::LocalRegistry::with_dirs([dir.path().join("none")], [dir.path()]);
    let found = registry.plugin("tcpvol").unwrap();
    let client = Client::new(&found.addr.to_string(), None).unwrap();
    let m: dockplug::protocol::Manifest = client.call_empty("Plugin.Activate").await.unwrap();
    assert_eq!(m.implements, ["VolumeDriver"]);
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(!spec.exists(), "spec file left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_json_spec_file() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let plugin = Plugin::builder().volume(Harness::new("/v")).build();
    let server = plugin
        .bind_tcp(
            TcpListen::new("127.0.0.1:0".parse().unwrap())
                .tls(Arc::new(config))
                .ca_file(&ca)
                .spec_file(SpecFile::new(dir.path(), "tlsvol")),
        )
        .await
        .unwrap();
    let dockplug_sdk::Address::Tls(addr) = server.address().clone() else { panic!("not tls") };
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("tlsvol.json")).unwrap())
            .unwrap();
    assert_eq!(spec["Addr"], format!("https://{addr}"));
    assert_eq!(spec["TLSConfig"]["CAFile"], ca.display().to_string());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    let registry = dockplug_v1::LocalRegistry::with_dirs([dir.path().join("none")], [dir.path()]);
    let found = registry.plugin("tlsvol").unwrap();
    let plugin =
        dockplug_v1::Plugin::from_spec(found, dockplug_v1::PluginOptions::default()).unwrap();
    assert_eq!(plugin.activate().await.unwrap().implements, ["VolumeDriver"]);
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_waiting_after_the_drain_timeout() {
    let driver = tricky();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let plugin = Plugin::builder().volume(Shared(driver.clone())).build();
    let server = plugin
        .bind_unix(UnixListen::new(&sock))
        .await
        .unwrap()
        .drain_timeout(Duration::from_millis(200));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    let client = Client::new(&format!("unix://{}", sock.display()), None).unwrap();
    let stuck = tokio::spawn(async move {
        let req = serde_json::json!({"Name": "slow", "ID": "1"});
        client.call::<_, Value>("VolumeDriver.Mount", &req).await
    });
    tokio::time::timeout(Duration::from_secs(10), driver.entered.notified()).await.unwrap();
    tx.send(()).unwrap();
    // The gate never opens: shutdown gives up on the stuck call after its drain timeout.
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();
    assert!(!sock.exists());
    stuck.abort();
}
