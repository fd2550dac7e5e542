//! Unit tests: v1 plugins served by the SDK in a temp directory, and a fake of the
//! [`Managed`] seam for the v2 outcomes a lookup must respect (v2 positive paths run against
//! the real manager on containerd in `tests/it/daemon_plugins`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dockplug_manager::{LookupMode, ManagerError, PluginRef};
use dockplug_protocol::authz::{Request, Response};
use dockplug_protocol::filters::Filters;
use dockplug_protocol::volume::{CreateRequest, MountRequest, Volume};
use dockplug_sdk::{Authz, Plugin, PluginError, PluginResult, UnixListen, VolumeDriver};
use dockplug_v1::{LocalRegistry, Registry, RegistryConfig};

use crate::authz::{AuthzChain, AuthzConfig, AuthzError};
use crate::volume::{VolumeConfig, VolumeError, VolumeService};
use crate::{GetError, Getter, GoneHandler, Managed};

/// The v2 side answering every lookup with one error.
struct FakeManaged(fn(&str) -> ManagerError);

impl Managed for FakeManaged {
    fn get(&self, name: &str, _: &str, _: LookupMode) -> Result<PluginRef, ManagerError> {
        Err((self.0)(name))
    }
    fn get_all_by_capability(&self, _: &str) -> Vec<PluginRef> {
        Vec::new()
    }
    fn handle(&self, _: &str, _: Arc<dyn Fn(&PluginRef) + Send + Sync>) {}
    fn on_gone(&self, _: GoneHandler) {}
}

fn not_found(name: &str) -> ManagerError {
    ManagerError::NotFound { name: name.to_owned() }
}

fn disabled(name: &str) -> ManagerError {
    ManagerError::Disabled { name: name.to_owned() }
}

#[derive(Default, Clone)]
struct MemDriver {
    volumes: Arc<Mutex<BTreeMap<String, HashSet<String>>>>,
    fail_list: bool,
}

impl VolumeDriver for MemDriver {
    async fn create(&self, req: CreateRequest) -> PluginResult<()> {
        if req.name == "refused" {
            return Err(PluginError::new("refused by the driver"));
        }
        self.volumes.lock().unwrap().entry(req.name).or_default();
        Ok(())
    }
    async fn remove(&self, name: String) -> PluginResult<()> {
        self.volumes
            .lock()
            .unwrap()
            .remove(&name)
            .map(|_| ())
            .ok_or_else(|| PluginError::new("no such volume"))
    }
    async fn get(&self, name: String) -> PluginResult<Volume> {
        if self.volumes.lock().unwrap().contains_key(&name) {
            Ok(Volume::new(name.clone(), format!("/mnt/{name}")))
        } else {
            Err(PluginError::new("no such volume"))
        }
    }
    async fn list(&self) -> PluginResult<Vec<Volume>> {
        if self.fail_list {
            return Err(PluginError::new("list is broken"));
        }
        Ok(self
            .volumes
            .lock()
            .unwrap()
            .keys()
            .map(|n| Volume::new(n.clone(), format!("/mnt/{n}")))
            .collect())
    }
    async fn mount(&self, req: MountRequest) -> PluginResult<String> {
        self.volumes
            .lock()
            .unwrap()
            .get_mut(&req.name)
            .ok_or_else(|| PluginError::new("no such volume"))?
            .insert(req.id);
        Ok(format!("/mnt/{}", req.name))
    }
    async fn unmount(&self, req: MountRequest) -> PluginResult<()> {
        if let Some(m) = self.volumes.lock().unwrap().get_mut(&req.name) {
            m.remove(&req.id);
        }
        Ok(())
    }
}

/// Denies `DELETE` requests, allows the rest; counts replies seen.
#[derive(Default, Clone)]
struct NoDelete {
    responses: Arc<AtomicUsize>,
}

impl Authz for NoDelete {
    async fn authz_request(&self, req: Request) -> PluginResult<Response> {
        Ok(if req.request_method == "DELETE" {
            Response::deny("no deletes")
        } else {
            Response::allow()
        })
    }
    async fn authz_response(&self, _: Request) -> PluginResult<Response> {
        self.responses.fetch_add(1, Ordering::SeqCst);
        Ok(Response::allow())
    }
}

/// v1 plugins served from one socket directory, stopped on drop.
struct Plugins {
    dir: tempfile::TempDir,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Plugins {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), stops: Vec::new() }
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.sock"))
    }

    async fn serve(&mut self, name: &str, plugin: Plugin) {
        let server = plugin.bind_unix(UnixListen::new(self.socket(name))).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(server.run_until(async {
            let _ = rx.await;
        }));
        self.stops.push(tx);
    }

    fn registry(&self) -> Arc<Registry> {
        let dirs = LocalRegistry::with_dirs([self.dir.path()], [self.dir.path().join("specs")]);
        Arc::new(Registry::new(dirs, RegistryConfig::default()))
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[tokio::test]
async fn v1_is_found_when_no_v2_plugin_has_the_name() {
    let mut p = Plugins::new();
    p.serve("mem", Plugin::builder().volume(MemDriver::default()).build()).await;
    let getter = Getter::new(FakeManaged(not_found), Some(p.registry()));
    let found = getter.get("mem", "VolumeDriver", LookupMode::Acquire).await.unwrap();
    assert!(found.is_v1());
    assert_eq!(found.name(), "mem");
    assert_eq!(found.id(), None);
    assert_eq!(found.scoped_path("/mnt/x"), Path::new("/mnt/x"));
    let reply: serde_json::Value =
        found.client().call("VolumeDriver.List", &serde_json::json!({})).await.unwrap();
    assert_eq!(reply["Volumes"], serde_json::json!([]));

    let err = getter.get("mem", "authz", LookupMode::Lookup).await.unwrap_err();
    assert!(err.to_string().starts_with("legacy plugin: "), "{err}");
    assert_eq!(err.http_status(), 500);
    let err = getter.get("absent", "VolumeDriver", LookupMode::Lookup).await.unwrap_err();
    assert_eq!(err.to_string(), "plugin \"absent\" not found");
    assert!(err.is_not_found());
    assert_eq!(err.http_status(), 404);
}

#[tokio::test]
async fn a_disabled_v2_plugin_is_not_replaced_by_a_v1_plugin_of_that_name() {
    let mut p = Plugins::new();
    p.serve("mem", Plugin::builder().volume(MemDriver::default()).build()).await;
    let getter = Getter::new(FakeManaged(disabled), Some(p.registry()));
    let err = getter.get("mem", "VolumeDriver", LookupMode::Lookup).await.unwrap_err();
    assert!(matches!(err, GetError::Managed(ManagerError::Disabled { .. })));
    assert_eq!(err.to_string(), "plugin mem found but disabled");
    assert_eq!(err.http_status(), 409);
}

#[tokio::test]
async fn v1_handlers_run_once_per_activation_and_get_all_finds_both_drivers() {
    let mut p = Plugins::new();
    p.serve("a", Plugin::builder().volume(MemDriver::default()).build()).await;
    p.serve("b", Plugin::builder().volume(MemDriver::default()).build()).await;
    p.serve("z", Plugin::builder().authz(NoDelete::default()).build()).await;
    let getter = Getter::new(FakeManaged(not_found), Some(p.registry()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    getter.handle("VolumeDriver", move |p| s.lock().unwrap().push(p.name().to_owned()));
    getter.lookup("a", "VolumeDriver").await.unwrap();
    getter.lookup("a", "VolumeDriver").await.unwrap();
    assert_eq!(*seen.lock().unwrap(), ["a"]);
    let all = getter.get_all_by_capability("VolumeDriver").await.unwrap();
    let mut names: Vec<_> = all.iter().map(|p| p.name().to_owned()).collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    let mut handled = seen.lock().unwrap().clone();
    handled.sort();
    assert_eq!(handled, ["a", "b"], "each plugin handed to the handler once");
    // A handler registered late sees the active plugins at once.
    let late = Arc::new(AtomicUsize::new(0));
    let l = late.clone();
    getter.handle("VolumeDriver", move |_| {
        l.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(late.load(Ordering::SeqCst), 2);
}

async fn service(p: &Plugins, state: &Path) -> VolumeService {
    let getter = Getter::new(FakeManaged(not_found), Some(p.registry()));
    let config = VolumeConfig { call_timeout: Some(Duration::from_secs(5)) };
    VolumeService::open(getter, state, config).await.unwrap()
}

#[tokio::test]
async fn volumes_on_a_v1_driver_create_list_inspect_remove_with_mobys_texts() {
    let mut p = Plugins::new();
    let mem = MemDriver::default();
    p.serve("mem", Plugin::builder().volume(mem.clone()).build()).await;
    p.serve(
        "broken",
        Plugin::builder().volume(MemDriver { fail_list: true, ..MemDriver::default() }).build(),
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let vs = service(&p, state.path()).await;

    let labels = Some(BTreeMap::from([("team".to_owned(), "a".to_owned())]));
    let v = vs.create("data", "mem", Some(BTreeMap::new()), labels.clone()).await.unwrap();
    assert_eq!((v.name.as_str(), v.driver.as_str(), v.scope.as_str()), ("data", "mem", "local"));
    assert_eq!(v.created_at, "0001-01-01T00:00:00Z");
    assert!(mem.volumes.lock().unwrap().contains_key("data"));
    // Created again on the same driver: the same volume.
    vs.create("data", "mem", None, None).await.unwrap();
    // Asked of another driver: a conflict.
    let err = vs.create("data", "broken", None, None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "create data: driver 'mem' already has volume 'data': volume name must be unique"
    );
    assert_eq!(err.http_status(), 409);
    let err = vs.create("x", "nowhere", None, None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "create x: error looking up volume plugin nowhere: plugin \"nowhere\" not found"
    );
    assert_eq!(err.http_status(), 404);
    let err = vs.create("refused", "mem", None, None).await.unwrap_err();
    assert_eq!(err.to_string(), "create refused: VolumeDriver.Create: refused by the driver");

    let got = vs.get("data").await.unwrap();
    assert_eq!(got.mountpoint, "/mnt/data");
    assert_eq!(got.labels, labels);
    let err = vs.get("nope").await.unwrap_err();
    assert_eq!(err.to_string(), "get nope: no such volume");
    assert_eq!(err.http_status(), 404);

    let (list, warnings) = vs.list(&Filters::new()).await.unwrap();
    assert_eq!(list.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["data"]);
    assert_eq!(list[0].labels, labels, "labels come from the store");
    assert_eq!(warnings, ["list broken: VolumeDriver.List: list is broken"]);
    let mut f = Filters::new();
    f.add("driver", "other");
    assert!(vs.list(&f).await.unwrap().0.is_empty());
    let mut f = Filters::new();
    f.add("bogus", "1");
    assert!(matches!(vs.list(&f).await.unwrap_err(), VolumeError::Filter(_)));

    assert_eq!(vs.mount("data", "m1").await.unwrap(), Path::new("/mnt/data"));
    vs.unmount("data", "m1").await.unwrap();

    // The store outlives the service.
    drop(vs);
    let vs = service(&p, state.path()).await;
    assert_eq!(vs.get("data").await.unwrap().labels, labels);
    vs.remove("data", false).await.unwrap();
    assert!(mem.volumes.lock().unwrap().is_empty());
    let err = vs.remove("data", false).await.unwrap_err();
    assert_eq!(err.to_string(), "get data: no such volume");
    vs.remove("data", true).await.unwrap();
    assert_eq!(vs.v1_driver_names(), ["broken", "mem"]);
}

#[tokio::test]
async fn a_volume_gone_from_its_driver_is_dropped_at_restore() {
    let mut p = Plugins::new();
    let mem = MemDriver::default();
    p.serve("mem", Plugin::builder().volume(mem.clone()).build()).await;
    let state = tempfile::tempdir().unwrap();
    let vs = service(&p, state.path()).await;
    vs.create("a", "mem", None, None).await.unwrap();
    vs.create("b", "mem", None, None).await.unwrap();
    drop(vs);
    mem.volumes.lock().unwrap().remove("a");
    let vs = service(&p, state.path()).await;
    vs.restored().await;
    let store = crate::volume::VolumeStore::open(state.path()).unwrap();
    assert_eq!(store.all().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["b"]);
}

#[tokio::test]
async fn the_chain_denies_with_the_plugins_message_and_allows_the_rest() {
    let mut p = Plugins::new();
    let z = NoDelete::default();
    p.serve("z", Plugin::builder().authz(z.clone()).build()).await;
    let getter = Getter::new(FakeManaged(not_found), Some(p.registry()));
    let chain = AuthzChain::new(getter, ["z".to_owned()], AuthzConfig::default());
    chain.validate().await.unwrap();
    let get = Request {
        request_method: "GET".into(),
        request_uri: "/v1.41/volumes".into(),
        ..Request::default()
    };
    chain.authorize_request(&get).await.unwrap();
    chain.authorize_response(&get).await.unwrap();
    assert_eq!(z.responses.load(Ordering::SeqCst), 1);
    let del = Request { request_method: "DELETE".into(), ..get.clone() };
    let err = chain.authorize_request(&del).await.unwrap_err();
    assert_eq!(err.to_string(), "authorization denied by plugin z: no deletes");
    assert_eq!(err.http_status(), 403);
}

#[tokio::test]
async fn a_hanging_or_missing_plugin_fails_closed_within_the_deadline() {
    let p = Plugins::new();
    // Accepts connections and never answers.
    let listener = tokio::net::UnixListener::bind(p.socket("hang")).unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    let accept = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            h.lock().unwrap().push(s);
        }
    });
    let getter = Getter::new(FakeManaged(not_found), Some(p.registry()));
    let config = AuthzConfig::default().timeout(Duration::from_millis(300));
    let chain = AuthzChain::new(getter.clone(), ["hang".to_owned()], config);
    let started = Instant::now();
    let err = chain.authorize_request(&Request::default()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(err, AuthzError::Failed { .. }), "{err}");
    assert!(err.to_string().starts_with("plugin hang failed with error: "), "{err}");
    assert_eq!(err.http_status(), 500);

    let chain = AuthzChain::new(getter, ["gone".to_owned()], config);
    assert!(chain.validate().await.is_err());
    let err = chain.authorize_request(&Request::default()).await.unwrap_err();
    assert_eq!(err.to_string(), "plugin gone failed with error: plugin \"gone\" not found");
    accept.abort();
    let _ = p.path();
}

fn send<T: Send>(_: &T) {}

/// The HTTP side spawns these futures on a multi-threaded runtime.
#[test]
fn service_and_chain_futures_are_send() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let p = Plugins::new();
        let state = tempfile::tempdir().unwrap();
        let vs = service(&p, state.path()).await;
        send(&vs.create("a", "b", None, None));
        send(&vs.get("a"));
        send(&vs.list(&Filters::new()));
        send(&vs.remove("a", true));
        send(&vs.mount("a", "b"));
        let getter = Getter::new(FakeManaged(not_found), Some(p.registry()));
        let chain = AuthzChain::new(getter.clone(), [], AuthzConfig::default());
        send(&chain.authorize_request(&Request::default()));
        send(&getter.get_all_by_capability("x"));
    });
}

#[tokio::test]
async fn a_known_volume_whose_driver_cannot_be_asked_keeps_its_name() {
    let state = tempfile::tempdir().unwrap();
    let mut store = crate::volume::VolumeStore::open(state.path()).unwrap();
    store.put(crate::volume::VolumeRecord::new("kept", "gone")).unwrap();
    drop(store);
    let mut p = Plugins::new();
    p.serve("other", Plugin::builder().volume(MemDriver::default()).build()).await;
    let vs = service(&p, state.path()).await;
    let err = vs.create("kept", "other", None, None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "create kept: found reference to volume 'kept' in driver 'gone', but got an error while \
         checking the driver: error while checking if volume \"kept\" exists in driver \"gone\": \
         error looking up volume plugin gone: plugin \"gone\" not found: volume name must be unique"
    );
    assert_eq!(err.http_status(), 409);
    let err = vs.get("kept").await.unwrap_err();
    assert!(matches!(err, VolumeError::Check { .. }), "{err}");
    let store = crate::volume::VolumeStore::open(state.path()).unwrap();
    assert!(store.get("kept").is_some(), "the record is kept");
}

/// Allows requests; denies every reply, or fails every call when `fail`.
#[derive(Default, Clone)]
struct DenyReplies {
    fail: bool,
}

impl Authz for DenyReplies {
    async fn authz_request(&self, _: Request) -> PluginResult<Response> {
        if self.fail {
            return Err(PluginError::new("boom"));
        }
        Ok(Response::allow())
    }
    async fn authz_response(&self, _: Request) -> PluginResult<Response> {
        Ok(Response::deny("reply hidden"))
    }
}

#[tokio::test]
async fn the_chain_asks_in_order_stops_at_the_first_denial_and_fails_closed_on_errors() {
    let mut p = Plugins::new();
    p.serve("z", Plugin::builder().authz(NoDelete::default()).build()).await;
    p.serve("r", Plugin::builder().authz(DenyReplies::default()).build()).await;
    p.serve("e", Plugin::builder().authz(DenyReplies { fail: true }).build()).await;
    let getter = Getter::new(FakeManaged(not_found), Some(p.registry()));
    let chain =
        AuthzChain::new(getter.clone(), ["z".to_owned(), "r".to_owned()], AuthzConfig::default());
    let get = Request { request_method: "GET".into(), ..Request::default() };
    chain.authorize_request(&get).await.unwrap();
    let err = chain.authorize_response(&get).await.unwrap_err();
    assert_eq!(err.to_string(), "authorization denied by plugin r: reply hidden");
    let del = Request { request_method: "DELETE".into(), ..Request::default() };
    let err = chain.authorize_request(&del).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "authorization denied by plugin z: no deletes",
        "the first denial wins"
    );

    let chain = AuthzChain::new(getter, ["e".to_owned(), "z".to_owned()], AuthzConfig::default());
    let err = chain.authorize_request(&get).await.unwrap_err();
    assert_eq!(err.to_string(), "plugin e failed with error: AuthZPlugin.AuthZReq: boom");
    assert_eq!(err.http_status(), 500);
}
