//! Lookup: plugins by name or by interface, activated once, with handlers for interfaces.
//!
//! Moby keeps this state in process-wide globals; here it is a [`Registry`] value the caller
//! owns (share it with an `Arc`). Differences from Moby, on purpose:
//!
//! * a missing plugin fails at once instead of being looked up again for 15 s (difference 7);
//!   [`Registry::get_waiting`] waits for it when the caller asks;
//! * a cached plugin whose socket was removed or re-created is looked up on disk again, so a
//!   restarted or reinstalled plugin is not dialled at its old socket (moby/moby#34545);
//! * a socket that refused connections is marked dead for a short time
//!   ([`RegistryConfig::dead_for`]), so the lookups that follow fail in microseconds instead of
//!   each waiting out the retries; a socket re-created in its place is tried at once;
//! * [`Registry::get_all`] activates plugins in parallel with a bound, deduplicates names
//!   and returns them in discovery order;
//! * [`Registry::handle`] runs the new handler once for each plugin already active, and
//!   every handler once for each plugin when it activates (Moby re-runs *all* handlers of a
//!   plugin after a late `Handle`; difference 8).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::client::CallError;
use crate::discovery::{DiscoveryError, LocalRegistry, SocketId};
use crate::plugin::{Plugin, PluginOptions};
use crate::Error;

/// A callback run for each plugin that implements an interface.
pub type Handler = Arc<dyn Fn(&Arc<Plugin>) + Send + Sync>;

/// Settings of a [`Registry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryConfig {
    /// Client settings of each plugin.
    pub plugin: PluginOptions,
    /// How long a socket that refused connections is skipped (default 2 s).
    pub dead_for: Duration,
    /// How many plugins [`Registry::get_all`] activates at once (default 64). Moby's `GetAll`
    /// (pkg/plugins/plugins.go) starts a goroutine for every plugin; a bound keeps
    /// descriptors in check, and past 64 the activations of 600 local plugins took no less
    /// time.
    pub parallelism: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { plugin: PluginOptions::default(), dead_for: Duration::from_secs(2), parallelism: 64 }
    }
}

impl RegistryConfig {
    /// Set the plugin options.
    pub fn plugin(mut self, plugin: PluginOptions) -> Self {
        self.plugin = plugin;
        self
    }

    /// Set how long a refusing socket is skipped.
    pub fn dead_for(mut self, d: Duration) -> Self {
        self.dead_for = d;
        self
    }

    /// Set the activation parallelism of `get_all` (at least 1).
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }
}

#[derive(Default)]
struct State {
    plugins: HashMap<String, Arc<Plugin>>,
    handlers: HashMap<String, Vec<Handler>>,
    dead: HashMap<String, Dead>,
}

struct Dead {
    until: Instant,
    id: Option<SocketId>,
}

/// The v1 plugins of one caller: discovery, the activated plugins, and interface handlers.
///
/// ```no_run
/// # async fn demo() -> Result<(), dockplug_v1::Error> {
/// use dockplug_v1::{LocalRegistry, Registry, RegistryConfig};
/// let registry = Registry::new(LocalRegistry::new(), RegistryConfig::default());
/// let plugin = registry.get("local-persist", "VolumeDriver").await?;
/// let reply: serde_json::Value =
///     plugin.client().call("VolumeDriver.List", &serde_json::json!({})).await?;
/// # Ok(()) }
/// ```
pub struct Registry {
    discovery: LocalRegistry,
    config: RegistryConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("discovery", &self.discovery)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry over `discovery`'s directories.
    pub fn new(discovery: LocalRegistry, config: RegistryConfig) -> Self {
        Self { discovery, config, state: Mutex::new(State::default()) }
    }

    /// The directories searched.
    pub fn discovery(&self) -> &LocalRegistry {
        &self.discovery
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The plugin `name`, activated, if it implements `iface` (matched case-sensitively).
    pub async fn get(&self, name: &str, iface: &str) -> Result<Arc<Plugin>, Error> {
        let plugin = self.activated(name).await?;
        let implements = plugin.manifest().is_some_and(|m| m.implements(iface));
        if !implements {
            return Err(Error::NotImplemented {
                name: name.to_owned(),
                interface: iface.to_owned(),
            });
        }
        tracing::debug!(plugin = name, iface, "plugin implements interface");
        Ok(plugin)
    }

    /// [`Registry::get`], waiting up to `timeout` for the plugin to appear on disk (or for a
    /// refusing socket to be replaced): for a daemon that starts alongside its plugins. This
    /// is Moby's lookup retry made explicit; plain `get` fails at once.
    pub async fn get_waiting(
        &self,
        name: &str,
        iface: &str,
        timeout: Duration,
    ) -> Result<Arc<Plugin>, Error> {
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(10);
        loop {
            match self.get(name, iface).await {
                Err(e) if e.is_not_found() || matches!(e, Error::Unavailable { .. }) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    tracing::debug!(
                        plugin = name,
                        "plugin not there yet, looking again in {delay:?}"
                    );
                    tokio::time::sleep(delay.min(left)).await;
                    delay = (delay * 2).min(Duration::from_millis(250));
                }
                other => return other,
            }
        }
    }

    /// The plugin `name`, activated, whatever it implements.
    pub async fn activated(&self, name: &str) -> Result<Arc<Plugin>, Error> {
        let plugin = self.load(name)?;
        self.activate(&plugin).await?;
        Ok(plugin)
    }

    /// Every discovered plugin that implements `iface`, activated, in discovery order.
    /// Plugins that fail to activate are logged and left out.
    pub async fn get_all(&self, iface: &str) -> Result<Vec<Arc<Plugin>>, Error> {
        let names = self.discovery.scan()?;
        let results: Vec<_> = futures_util::stream::iter(names)
            .map(|name| async move { (self.activated(&name).await, name) })
            .buffered(self.config.parallelism)
            .collect()
            .await;
        let mut out = Vec::new();
        for (result, name) in results {
            match result {
                Ok(p) if p.manifest().is_some_and(|m| m.implements(iface)) => out.push(p),
                Ok(_) => {}
                Err(e) => tracing::warn!(plugin = %name, error = %e, "skipping plugin"),
            }
        }
        Ok(out)
    }

    /// Run `handler` for every plugin that implements `iface`: now, for those already active,
    /// and later, for each as it activates. Each plugin is handed to each handler once.
    pub fn handle(&self, iface: &str, handler: impl Fn(&Arc<Plugin>) + Send + Sync + 'static) {
        let handler: Handler = Arc::new(handler);
        let ready: Vec<Arc<Plugin>> = {
            let mut state = self.lock();
            state.handlers.entry(iface.to_owned()).or_default().push(Arc::clone(&handler));
            state
                .plugins
                .values()
                .filter(|p| p.handlers_seen.load(Ordering::Acquire))
                .filter(|p| p.manifest().is_some_and(|m| m.implements(iface)))
                .cloned()
                .collect()
        };
        for p in &ready {
            handler(p);
        }
    }

    /// Forget a plugin, so the next lookup finds it on disk again.
    pub fn forget(&self, name: &str) {
        self.lock().plugins.remove(name);
    }

    /// The cached plugin, or a new one from discovery.
    fn load(&self, name: &str) -> Result<Arc<Plugin>, Error> {
        if name.is_empty() {
            return Err(DiscoveryError::InvalidName { name: String::new() }.into());
        }
        let cached = self.lock().plugins.get(name).cloned();
        if let Some(p) = cached {
            // A plugin behind a socket that was removed or re-created (the plugin restarted
            // or was reinstalled) is found on disk again, not dialled at its old socket.
            let stale = match (p.socket_id, p.source()) {
                (Some(id), Some(path)) => SocketId::current(path) != Some(id),
                _ => false,
            };
            if !stale {
                return Ok(p);
            }
            let mut state = self.lock();
            if state.plugins.get(name).is_some_and(|q| Arc::ptr_eq(q, &p)) {
                state.plugins.remove(name);
            }
        }
        let spec = self.discovery.plugin(name)?;
        {
            let state = self.lock();
            if let Some(dead) = state.dead.get(spec.addr.as_str()) {
                if dead.until > Instant::now() && dead.id == spec.socket_id {
                    return Err(Error::Unavailable {
                        name: name.to_owned(),
                        addr: spec.addr.to_string(),
                    });
                }
            }
        }
        let plugin = Plugin::from_spec(spec, self.config.plugin)
            .map_err(|source| Error::Client { name: name.to_owned(), source })?;
        let mut state = self.lock();
        let entry = state.plugins.entry(name.to_owned()).or_insert_with(|| Arc::new(plugin));
        Ok(Arc::clone(entry))
    }

    async fn activate(&self, plugin: &Arc<Plugin>) -> Result<(), Error> {
        match plugin.activate().await {
            Ok(_) => {
                self.run_handlers(plugin);
                Ok(())
            }
            Err(source) => {
                self.failed(plugin, &source);
                Err(Error::Activation { name: plugin.name().to_owned(), source })
            }
        }
    }

    /// Hand a freshly active plugin to the handlers of its interfaces, once.
    fn run_handlers(&self, plugin: &Arc<Plugin>) {
        let todo: Vec<Handler> = {
            let state = self.lock();
            if plugin.handlers_seen.swap(true, Ordering::AcqRel) {
                return;
            }
            let Some(manifest) = plugin.manifest() else { return };
            manifest
                .implements
                .iter()
                .filter_map(|iface| state.handlers.get(iface))
                .flatten()
                .cloned()
                .collect()
        };
        for h in todo {
            h(plugin);
        }
    }

    /// Drop a failed plugin from the cache; mark a refusing socket dead for a while.
    fn failed(&self, plugin: &Arc<Plugin>, err: &CallError) {
        let mut state = self.lock();
        if state.plugins.get(plugin.name()).is_some_and(|p| Arc::ptr_eq(p, plugin)) {
            state.plugins.remove(plugin.name());
        }
        if err.is_refused() {
            let now = Instant::now();
            state.dead.retain(|_, d| d.until > now);
            state.dead.insert(
                plugin.addr().to_string(),
                Dead { until: now + self.config.dead_for, id: plugin.socket_id },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>(_: &T) {}
    fn shared<T: Send + Sync>() {}

    /// A daemon shares one registry between tasks and spawns lookups and calls.
    #[test]
    fn registry_clients_and_their_futures_are_send() {
        shared::<Registry>();
        shared::<Plugin>();
        shared::<crate::Client>();
        shared::<Error>();
        let r = Registry::new(
            LocalRegistry::with_dirs(["/nonexistent"], ["/nonexistent"]),
            RegistryConfig::default(),
        );
        send(&r.get("x", "VolumeDriver"));
        send(&r.get_all("VolumeDriver"));
        send(&r.get_waiting("x", "VolumeDriver", Duration::ZERO));
        let c = crate::Client::new("tcp://127.0.0.1:1", None).unwrap_or_else(|e| panic!("{e}"));
        send(&c.call::<_, serde_json::Value>("X.Y", &1));
        send(&c.stream("X.Y", &1));
        send(&c.send_file::<_, serde_json::Value>("X.Y", tokio::io::empty()));
    }
}
