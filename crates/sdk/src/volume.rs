//! `VolumeDriver`: serve volumes (Moby `volume/drivers/proxy.go`).

use std::future::Future;
use std::sync::Arc;

use dockplug_protocol::volume::{
    Capabilities, CapabilitiesResponse, CreateRequest, GetRequest, GetResponse, ListResponse,
    MountRequest, MountResponse, PathRequest, RemoveRequest, Scope, UnmountRequest, Volume,
    VolumeMethod, IMPLEMENTS,
};
use dockplug_protocol::ErrorBody;

use crate::error::PluginResult;
use crate::router::ErrorKey;
use crate::server::PluginBuilder;

/// A volume plugin. Implement the required methods; `path` and `capabilities` have defaults.
///
/// Each method returns the payload of its reply; an `Err` reaches the daemon as a 500 with
/// `{"Err": ...}`, which it shows the user as `VolumeDriver.<Method>: <message>`. The daemon may
/// repeat a call after a transport error, so make handlers idempotent.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::Mutex;
/// use dockplug_sdk::{PluginError, PluginResult, VolumeDriver};
/// use dockplug_sdk::protocol::volume::{CreateRequest, MountRequest, Volume};
///
/// #[derive(Default)]
/// struct Memory(Mutex<BTreeMap<String, Volume>>);
///
/// impl VolumeDriver for Memory {
///     async fn create(&self, req: CreateRequest) -> PluginResult<()> {
///         let path = format!("/srv/volumes/{}", req.name);
///         self.0.lock().unwrap().insert(req.name.clone(), Volume::new(req.name, path));
///         Ok(())
///     }
///     async fn remove(&self, name: String) -> PluginResult<()> {
///         self.0.lock().unwrap().remove(&name);
///         Ok(())
///     }
///     async fn get(&self, name: String) -> PluginResult<Volume> {
///         let volumes = self.0.lock().unwrap();
///         volumes.get(&name).cloned().ok_or_else(|| PluginError::new(format!("no such volume: {name}")))
///     }
///     async fn list(&self) -> PluginResult<Vec<Volume>> {
///         Ok(self.0.lock().unwrap().values().cloned().collect())
///     }
///     async fn mount(&self, req: MountRequest) -> PluginResult<String> {
///         Ok(self.get(req.name).await?.mountpoint)
///     }
///     async fn unmount(&self, _req: MountRequest) -> PluginResult<()> {
///         Ok(())
///     }
/// }
/// let plugin = dockplug_sdk::Plugin::builder().volume(Memory::default()).build();
/// assert_eq!(plugin.manifest().implements, ["VolumeDriver"]);
/// ```
pub trait VolumeDriver: Send + Sync + 'static {
    /// `VolumeDriver.Create`: make the volume (`docker volume create`). The daemon calls
    /// [`get`](Self::get) first and skips this when the volume exists.
    fn create(&self, req: CreateRequest) -> impl Future<Output = PluginResult<()>> + Send;

    /// `VolumeDriver.Remove`: delete the volume `name`.
    fn remove(&self, name: String) -> impl Future<Output = PluginResult<()>> + Send;

    /// `VolumeDriver.Get`: describe the volume `name`. An unknown name must be an error
    /// (`no such volume: <name>`), or the daemon never calls `Create`.
    fn get(&self, name: String) -> impl Future<Output = PluginResult<Volume>> + Send;

    /// `VolumeDriver.List`: every volume.
    fn list(&self) -> impl Future<Output = PluginResult<Vec<Volume>>> + Send;

    /// `VolumeDriver.Mount`: make the volume available for the mount `req.id` and return its
    /// path (v1: on the host; v2: inside the plugin, under its `PropagatedMount`).
    fn mount(&self, req: MountRequest) -> impl Future<Output = PluginResult<String>> + Send;

    /// `VolumeDriver.Unmount`: the mount `req.id` is over.
    fn unmount(&self, req: UnmountRequest) -> impl Future<Output = PluginResult<()>> + Send;

    /// `VolumeDriver.Path`: the volume's path. Default: the mount point [`get`](Self::get)
    /// reports.
    fn path(&self, name: String) -> impl Future<Output = PluginResult<String>> + Send {
        async move { Ok(self.get(name).await?.mountpoint) }
    }

    /// `VolumeDriver.Capabilities`. Default: scope `local`. The daemon may ask often (every
    /// lookup of a v2 plugin), so keep it cheap.
    fn capabilities(&self) -> impl Future<Output = PluginResult<Capabilities>> + Send {
        async { Ok(Capabilities::new(Scope::Local)) }
    }
}

impl PluginBuilder {
    /// Serve `driver` as `VolumeDriver`.
    pub fn volume<D: VolumeDriver>(mut self, driver: D) -> Self {
        let d = Arc::new(driver);
        let r = &mut self.router;
        r.implement(IMPLEMENTS);
        let k = ErrorKey::Err;
        let dd = d.clone();
        r.json(VolumeMethod::Create.as_str(), k, move |req: CreateRequest| {
            let d = dd.clone();
            async move { d.create(req).await.map(|()| ErrorBody::default()) }
        });
        let dd = d.clone();
        r.json(VolumeMethod::Remove.as_str(), k, move |req: RemoveRequest| {
            let d = dd.clone();
            async move { d.remove(req.name).await.map(|()| ErrorBody::default()) }
        });
        let dd = d.clone();
        r.json(VolumeMethod::Get.as_str(), k, move |req: GetRequest| {
            let d = dd.clone();
            async move {
                d.get(req.name).await.map(|v| GetResponse { volume: Some(v), err: String::new() })
            }
        });
        let dd = d.clone();
        r.unit(VolumeMethod::List.as_str(), k, move || {
            let d = dd.clone();
            async move { d.list().await.map(|volumes| ListResponse { volumes, err: String::new() }) }
        });
        let dd = d.clone();
        r.json(VolumeMethod::Mount.as_str(), k, move |req: MountRequest| {
            let d = dd.clone();
            async move {
                d.mount(req)
                    .await
                    .map(|mountpoint| MountResponse { mountpoint, err: String::new() })
            }
        });
        let dd = d.clone();
        r.json(VolumeMethod::Unmount.as_str(), k, move |req: UnmountRequest| {
            let d = dd.clone();
            async move { d.unmount(req).await.map(|()| ErrorBody::default()) }
        });
        let dd = d.clone();
        r.json(VolumeMethod::Path.as_str(), k, move |req: PathRequest| {
            let d = dd.clone();
            async move {
                d.path(req.name)
                    .await
                    .map(|mountpoint| MountResponse { mountpoint, err: String::new() })
            }
        });
        r.unit(VolumeMethod::Capabilities.as_str(), k, move || {
            let d = d.clone();
            async move {
                d.capabilities()
                    .await
                    .map(|capabilities| CapabilitiesResponse { capabilities, err: String::new() })
            }
        });
        self
    }
}
