//! A [`Backend`] that adds the daemon's plugin consumers to another backend's `/info`: the
//! v1 volume drivers in use, the network drivers registered through the getter, and the
//! authorization chain (Moby's `daemon/info.go` `showPluginsInfo`). Every other operation
//! is the inner backend's.

use std::sync::Arc;
use std::time::Duration;

use dockplug_getter::authz::AuthzChain;
use dockplug_getter::drivers::NetworkDrivers;
use dockplug_getter::volume::VolumeService;
use dockplug_protocol::filters::PluginListFilter;
use dockplug_protocol::{Plugin, PluginPrivilege};

use crate::backend::{
    Backend, BuildContext, EventSink, PluginsInfo, PrivilegesRequest, Progress, PullRequest,
    PushRequest, UpgradeRequest,
};
use crate::error::ApiError;

/// `backend` with the consumers' part of `/info`.
#[derive(Debug, Clone)]
pub struct WithConsumers<B> {
    backend: B,
    volumes: Option<VolumeService>,
    networks: Option<Arc<NetworkDrivers>>,
    authz: Option<AuthzChain>,
}

impl<B: Backend> WithConsumers<B> {
    /// `backend` with nothing added yet.
    pub fn new(backend: B) -> Self {
        Self { backend, volumes: None, networks: None, authz: None }
    }

    /// Lists the v1 drivers `volumes` used under `Plugins.Volume`.
    pub fn volumes(mut self, volumes: VolumeService) -> Self {
        self.volumes = Some(volumes);
        self
    }

    /// Lists the drivers of `networks` under `Plugins.Network`.
    pub fn networks(mut self, networks: Arc<NetworkDrivers>) -> Self {
        self.networks = Some(networks);
        self
    }

    /// Shows `chain` under `Plugins.Authorization`.
    pub fn authz(mut self, chain: AuthzChain) -> Self {
        self.authz = Some(chain);
        self
    }
}

fn merge(into: &mut Vec<String>, more: Vec<String>) {
    for n in more {
        if !into.contains(&n) {
            into.push(n);
        }
    }
    into.sort();
}

impl<B: Backend> Backend for WithConsumers<B> {
    async fn list(&self, filter: &PluginListFilter) -> Result<Vec<Arc<Plugin>>, ApiError> {
        self.backend.list(filter).await
    }

    async fn inspect(&self, name: &str) -> Result<Plugin, ApiError> {
        self.backend.inspect(name).await
    }

    async fn privileges(&self, r: PrivilegesRequest) -> Result<Vec<PluginPrivilege>, ApiError> {
        self.backend.privileges(r).await
    }

    async fn pull(&self, r: PullRequest, p: Progress) -> Result<(), ApiError> {
        self.backend.pull(r, p).await
    }

    async fn push(&self, r: PushRequest, p: Progress) -> Result<(), ApiError> {
        self.backend.push(r, p).await
    }

    async fn upgrade(&self, r: UpgradeRequest, p: Progress) -> Result<(), ApiError> {
        self.backend.upgrade(r, p).await
    }

    async fn remove(&self, name: &str, force: bool) -> Result<(), ApiError> {
        self.backend.remove(name, force).await
    }

    async fn enable(&self, name: &str, timeout: Option<Duration>) -> Result<(), ApiError> {
        self.backend.enable(name, timeout).await
    }

    async fn disable(&self, name: &str, force: bool) -> Result<(), ApiError> {
        self.backend.disable(name, force).await
    }

    async fn set(&self, name: &str, args: Vec<String>) -> Result<(), ApiError> {
        self.backend.set(name, args).await
    }

    async fn create(&self, name: &str, context: BuildContext) -> Result<(), ApiError> {
        self.backend.create(name, context).await
    }

    fn watch_events(&self, sink: EventSink) {
        self.backend.watch_events(sink);
    }

    async fn info(&self) -> PluginsInfo {
        let mut info = self.backend.info().await;
        if let Some(v) = &self.volumes {
            merge(&mut info.volume, v.v1_driver_names());
        }
        if let Some(n) = &self.networks {
            merge(&mut info.network, n.network());
        }
        if let Some(a) = &self.authz {
            let names = a.names();
            info.authorization = (!names.is_empty()).then_some(names);
        }
        info
    }
}
