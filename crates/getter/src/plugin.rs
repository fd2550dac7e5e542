//! [`CompatPlugin`]: what a lookup gives, whichever kind the plugin is (Moby's
//! `plugingetter.CompatPlugin` with its v1 client).

use std::path::PathBuf;
use std::sync::Arc;

use dockplug_manager::PluginRef;
use dockplug_v1::Client;

/// A plugin found by the [`Getter`](crate::Getter): a v2 (managed) plugin or a v1 plugin,
/// with a ready client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CompatPlugin {
    name: String,
    client: Client,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    V1(Arc<dockplug_v1::Plugin>),
    V2(PluginRef),
}

impl CompatPlugin {
    pub(crate) fn v1(plugin: Arc<dockplug_v1::Plugin>) -> Self {
        Self {
            name: plugin.name().to_owned(),
            client: plugin.client().clone(),
            kind: Kind::V1(plugin),
        }
    }

    pub(crate) fn v2(plugin: PluginRef, client: Client) -> Self {
        Self { name: plugin.name.clone(), client, kind: Kind::V2(plugin) }
    }

    /// The name: a v2 plugin's normalised name (`vieux/sshfs:latest`), a v1 plugin's
    /// discovery name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client that calls it: over `<exec root>/<id>/<socket>` for a v2 plugin (with the
    /// enable timeout as its default call bound, as Moby), the discovered address for a v1
    /// plugin.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether it is a v1 plugin.
    pub fn is_v1(&self) -> bool {
        matches!(self.kind, Kind::V1(_))
    }

    /// The host path of `path` as the plugin sees it (Moby's `ScopedPath`): a v1 plugin runs
    /// on the host, so `path` itself; a v2 plugin's path under its rootfs, or under
    /// `<root>/<id>/propagated-mount` when it is inside `PropagatedMount`.
    pub fn scoped_path(&self, path: &str) -> PathBuf {
        match &self.kind {
            Kind::V1(_) => PathBuf::from(path),
            Kind::V2(r) => r.scoped_path(path),
        }
    }

    /// The v2 plugin ID; `None` for a v1 plugin.
    pub fn id(&self) -> Option<&str> {
        match &self.kind {
            Kind::V1(_) => None,
            Kind::V2(r) => Some(&r.id),
        }
    }

    /// The manager's view of a v2 plugin.
    pub fn managed(&self) -> Option<&PluginRef> {
        match &self.kind {
            Kind::V1(_) => None,
            Kind::V2(r) => Some(r),
        }
    }

    /// The v1 plugin (its manifest, address, source file).
    pub fn legacy(&self) -> Option<&Arc<dockplug_v1::Plugin>> {
        match &self.kind {
            Kind::V1(p) => Some(p),
            Kind::V2(_) => None,
        }
    }
}
