//! A volume driver: the `VolumeDriver` calls on a [`CompatPlugin`] (Moby's
//! `volume/drivers/proxy.go` and `adapter.go`), each bounded by Moby's per-call timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use dockplug_protocol::volume::{
    CapabilitiesResponse, CreateRequest, EmptyRequest, ErrResponse, GetResponse, ListResponse,
    MountRequest, MountResponse, NameRequest, Scope, Volume, VolumeMethod,
};
use dockplug_v1::{CallError, CallOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::plugin::CompatPlugin;

/// The `Implements` name (and v2 capability) of volume drivers.
pub const CAPABILITY: &str = dockplug_protocol::volume::IMPLEMENTS;

/// Why a driver call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The call failed: not reachable, timed out, or a non-200 reply
    /// (`VolumeDriver.<Method>: <Err>`).
    #[error(transparent)]
    Call(#[from] CallError),
    /// A 200 reply with `Err` set: the text as the plugin wrote it.
    #[error("{message}")]
    Plugin {
        /// The plugin's `Err`.
        message: String,
    },
}

impl DriverError {
    /// Whether the plugin could not be talked to (Moby's `net.Error` test): the volume's
    /// existence is then unknown, not denied.
    pub fn is_communication(&self) -> bool {
        matches!(
            self,
            DriverError::Call(
                CallError::Connect { .. } | CallError::Transport { .. } | CallError::Timeout { .. }
            )
        )
    }
}

/// A volume driver over a plugin found by the getter.
#[derive(Debug, Clone)]
pub struct Driver {
    plugin: CompatPlugin,
    /// Bound on every call instead of Moby's per-method timeouts (tests, impatient daemons).
    timeout: Option<Duration>,
}

impl Driver {
    /// The driver of `plugin`, with Moby's timeouts (2 min for `Create` and `Mount`, 1 min
    /// for the others).
    pub fn new(plugin: CompatPlugin) -> Self {
        Self { plugin, timeout: None }
    }

    /// Bounds every call by `timeout` instead.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The plugin.
    pub fn plugin(&self) -> &CompatPlugin {
        &self.plugin
    }

    /// The driver's name (the plugin's).
    pub fn name(&self) -> &str {
        self.plugin.name()
    }

    async fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: VolumeMethod,
        args: &A,
    ) -> Result<R, DriverError> {
        let timeout = self.timeout.unwrap_or_else(|| Duration::from_secs(method.timeout_secs()));
        let opts = CallOptions::new().timeout(timeout);
        Ok(self.plugin.client().call_with_options(method.as_str(), args, opts).await?)
    }

    /// `VolumeDriver.Create`.
    pub async fn create(
        &self,
        name: &str,
        opts: Option<BTreeMap<String, String>>,
    ) -> Result<(), DriverError> {
        let req = CreateRequest { name: name.to_owned(), opts };
        let r: ErrResponse = self.call(VolumeMethod::Create, &req).await?;
        check(&r.err)
    }

    /// `VolumeDriver.Remove`.
    pub async fn remove(&self, name: &str) -> Result<(), DriverError> {
        let r: ErrResponse = self.call(VolumeMethod::Remove, &named(name)).await?;
        check(&r.err)
    }

    /// `VolumeDriver.Get`: `None` for `"Volume": null` without an error.
    pub async fn get(&self, name: &str) -> Result<Option<Volume>, DriverError> {
        let r: GetResponse = self.call(VolumeMethod::Get, &named(name)).await?;
        check(&r.err)?;
        Ok(r.volume)
    }

    /// `VolumeDriver.List`.
    pub async fn list(&self) -> Result<Vec<Volume>, DriverError> {
        let r: ListResponse = self.call(VolumeMethod::List, &EmptyRequest {}).await?;
        check(&r.err)?;
        Ok(r.volumes)
    }

    /// `VolumeDriver.Path`, scoped to the host ([`CompatPlugin::scoped_path`]).
    pub async fn path(&self, name: &str) -> Result<PathBuf, DriverError> {
        let r: MountResponse = self.call(VolumeMethod::Path, &named(name)).await?;
        check(&r.err)?;
        Ok(self.plugin.scoped_path(&r.mountpoint))
    }

    /// `VolumeDriver.Mount` for mount ID `id`, the host path of the mount point.
    pub async fn mount(&self, name: &str, id: &str) -> Result<PathBuf, DriverError> {
        let req = MountRequest { name: name.to_owned(), id: id.to_owned() };
        let r: MountResponse = self.call(VolumeMethod::Mount, &req).await?;
        check(&r.err)?;
        Ok(self.plugin.scoped_path(&r.mountpoint))
    }

    /// `VolumeDriver.Unmount` of mount ID `id`.
    pub async fn unmount(&self, name: &str, id: &str) -> Result<(), DriverError> {
        let req = MountRequest { name: name.to_owned(), id: id.to_owned() };
        let r: ErrResponse = self.call(VolumeMethod::Unmount, &req).await?;
        check(&r.err)
    }

    /// The scope, as Moby reads `VolumeDriver.Capabilities`: any failure means `local`.
    pub async fn scope(&self) -> Scope {
        match self
            .call::<_, CapabilitiesResponse>(VolumeMethod::Capabilities, &EmptyRequest {})
            .await
        {
            Ok(r) if r.err.is_empty() => r.capabilities.scope(),
            Ok(_) | Err(_) => Scope::Local,
        }
    }

    /// The host path of a mount point a plugin reported (empty stays empty, as Moby shows it).
    pub fn scoped(&self, mountpoint: &str) -> String {
        if mountpoint.is_empty() {
            return String::new();
        }
        self.plugin.scoped_path(mountpoint).to_string_lossy().into_owned()
    }
}

fn named(name: &str) -> NameRequest {
    NameRequest { name: name.to_owned() }
}

fn check(err: &str) -> Result<(), DriverError> {
    if err.is_empty() {
        Ok(())
    } else {
        Err(DriverError::Plugin { message: err.to_owned() })
    }
}
