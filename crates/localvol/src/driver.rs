//! The `VolumeDriver` over the [`Store`]: a call that does file-system work runs on the
//! blocking pool; `Get` and `List` read memory only and answer at once, unless a change is
//! writing the state file meanwhile (then they wait for it on the blocking pool too).

use std::sync::Arc;

use dockplug_sdk::protocol::volume::{CreateRequest, MountRequest, Volume};
use dockplug_sdk::{PluginError, PluginResult, VolumeDriver};

use crate::store::Store;

/// localvol's volume driver.
#[derive(Debug, Clone)]
pub struct LocalVol {
    store: Arc<Store>,
}

impl LocalVol {
    /// A driver over `store`.
    pub fn new(store: Store) -> Self {
        Self { store: Arc::new(store) }
    }

    async fn run<T, F>(&self, f: F) -> PluginResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r.map_err(PluginError::from),
            Err(e) => Err(PluginError::new(format!("localvol: {e}"))),
        }
    }
}

impl VolumeDriver for LocalVol {
    async fn create(&self, req: CreateRequest) -> PluginResult<()> {
        self.run(move |s| s.create(&req.name, &req.opts.unwrap_or_default())).await
    }

    async fn remove(&self, name: String) -> PluginResult<()> {
        self.run(move |s| s.remove(&name)).await
    }

    async fn get(&self, name: String) -> PluginResult<Volume> {
        // A hand-off to the blocking pool costs more than the lookup (thread wake-ups).
        match self.store.try_get(&name) {
            Some(r) => r.map_err(PluginError::from),
            None => self.run(move |s| s.get(&name)).await,
        }
    }

    async fn list(&self) -> PluginResult<Vec<Volume>> {
        match self.store.try_list() {
            Some(volumes) => Ok(volumes),
            None => self.run(|s| Ok(s.list())).await,
        }
    }

    async fn mount(&self, req: MountRequest) -> PluginResult<String> {
        self.run(move |s| s.mount(&req.name, &req.id)).await.map(|p| p.display().to_string())
    }

    async fn unmount(&self, req: MountRequest) -> PluginResult<()> {
        self.run(move |s| s.unmount(&req.name, &req.id)).await
    }
}
