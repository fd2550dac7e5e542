//! [`Getter`]: Moby's `plugingetter.PluginGetter` over both kinds of plugin (the manager's
//! `Store` in `daemon/pkg/plugin/store.go` `Get`, `GetAllByCap`, `GetAllManagedPluginsByCap`
//! and `Handle`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dockplug_manager::{LookupMode, ManagerError, PluginRef};
use dockplug_v1::{Address, Client, Registry};

use crate::error::GetError;
use crate::managed::{GoneHandler, Managed};
use crate::plugin::CompatPlugin;

/// One lookup over v2 (managed) plugins and v1 (discovered) plugins. Cheap to clone; clones
/// share everything.
///
/// * [`Getter::get`]: the v2 plugin of that name first: enabled and with the capability, its
///   reference count changed by `mode`; a v2 plugin that is disabled or lacks the
///   capability is an error (no fallback, as in Moby). Only when no v2 plugin has the name,
///   v1 discovery (the mode does not apply to v1 plugins: they are not counted).
/// * [`Getter::get_all_by_capability`]: the enabled v2 plugins, then every v1 plugin that
///   implements the capability.
/// * [`Getter::handle`]: a callback for both kinds: v2 plugins at each enable (and now for
///   those running), v1 plugins once per activation.
///
/// # Reference counts and restore
///
/// Moby keeps v2 reference counts in memory: they start at 0 after a restart, and the
/// consumers (the volume service) acquire again for what they hold while they restore. The
/// manager here persists its counts (`<root>/<id>/refcount`), so a consumer that acquired
/// before a restart **must not acquire again** for the same use: the count would double and
/// the plugin could never be disabled without `--force`. The rule every consumer of this
/// crate follows: record, next to what you hold, the [`CompatPlugin::id`] of the plugin you
/// acquired; at restore, look the plugin up with [`LookupMode::Lookup`] and acquire only when
/// its ID differs from the recorded one (the plugin was removed and installed again, so the
/// old count is gone) or nothing was recorded. Record after acquiring: a crash in between
/// leaves one reference too many (a disable needs `--force`), never one too few (a plugin
/// disabled under a volume). The volume service ([`crate::volume`]) does exactly this.
///
/// ```no_run
/// # async fn demo(manager: dockplug_manager::Manager<impl dockplug_manager::Executor>)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use dockplug_getter::Getter;
/// use dockplug_manager::LookupMode;
/// use dockplug_v1::{LocalRegistry, Registry, RegistryConfig};
///
/// let v1 = Arc::new(Registry::new(LocalRegistry::new(), RegistryConfig::default()));
/// let getter = Getter::new(manager, Some(v1));
/// let driver = getter.get("localvol", "VolumeDriver", LookupMode::Acquire).await?;
/// let reply: serde_json::Value =
///     driver.client().call("VolumeDriver.List", &serde_json::json!({})).await?;
/// println!("{} (v1: {}): {reply}", driver.name(), driver.is_v1());
/// getter.get("localvol", "VolumeDriver", LookupMode::Release).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Getter {
    inner: Arc<Inner>,
}

struct Inner {
    managed: Option<Arc<dyn Managed>>,
    legacy: Option<Arc<Registry>>,
    clients: Arc<Clients>,
}

impl std::fmt::Debug for Getter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Getter")
            .field("managed", &self.inner.managed.is_some())
            .field("legacy", &self.inner.legacy)
            .finish_non_exhaustive()
    }
}

impl Getter {
    /// A getter over the v2 manager and, when `legacy` is given, v1 discovery (Moby's
    /// `allowV1PluginsFallback`).
    pub fn new(managed: impl Managed, legacy: Option<Arc<Registry>>) -> Self {
        Self::build(Some(Arc::new(managed)), legacy)
    }

    /// A getter over v1 plugins only (no manager).
    pub fn legacy_only(legacy: Arc<Registry>) -> Self {
        Self::build(None, Some(legacy))
    }

    fn build(managed: Option<Arc<dyn Managed>>, legacy: Option<Arc<Registry>>) -> Self {
        Self { inner: Arc::new(Inner { managed, legacy, clients: Arc::default() }) }
    }

    /// The v1 registry, when v1 plugins are looked up.
    pub fn legacy(&self) -> Option<&Arc<Registry>> {
        self.inner.legacy.as_ref()
    }

    /// Moby's `Get(name, capability, mode)`. `capability` is the v1 `Implements` name
    /// (`VolumeDriver`, `NetworkDriver`, `IpamDriver`, `authz`); for v2 plugins it is
    /// matched lower-cased against `docker.<capability>/…` types.
    ///
    /// # Errors
    /// [`GetError::Managed`] when a v2 plugin has the name but cannot serve (disabled: 409,
    /// capability missing); [`GetError::NotFound`] when neither kind has it;
    /// [`GetError::Legacy`] when v1 discovery or activation failed.
    pub async fn get(
        &self,
        name: &str,
        capability: &str,
        mode: LookupMode,
    ) -> Result<CompatPlugin, GetError> {
        if let Some(managed) = &self.inner.managed {
            match managed.get(name, capability, mode) {
                Ok(r) => return self.inner.clients.compat(r),
                // Not a v2 plugin (or not even a v2 name): try v1, as Moby does.
                Err(ManagerError::NotFound { .. } | ManagerError::InvalidName { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let Some(legacy) = &self.inner.legacy else {
            return Err(GetError::NotFound { name: name.to_owned() });
        };
        match legacy.get(name, capability).await {
            Ok(p) => Ok(CompatPlugin::v1(p)),
            Err(e) if e.is_not_found() => Err(GetError::NotFound { name: name.to_owned() }),
            Err(e) => Err(GetError::legacy(name, e)),
        }
    }

    /// [`Getter::get`] with [`LookupMode::Lookup`].
    pub async fn lookup(&self, name: &str, capability: &str) -> Result<CompatPlugin, GetError> {
        self.get(name, capability, LookupMode::Lookup).await
    }

    /// [`Getter::get`] with [`LookupMode::Acquire`]: the caller now uses the plugin.
    pub async fn acquire(&self, name: &str, capability: &str) -> Result<CompatPlugin, GetError> {
        self.get(name, capability, LookupMode::Acquire).await
    }

    /// [`Getter::get`] with [`LookupMode::Release`].
    pub async fn release(&self, name: &str, capability: &str) -> Result<CompatPlugin, GetError> {
        self.get(name, capability, LookupMode::Release).await
    }

    /// Moby's `GetAllByCap`: the enabled v2 plugins with the capability, then every v1
    /// plugin that implements it (activated; those that fail to activate are logged and
    /// left out).
    ///
    /// # Errors
    /// [`GetError::Legacy`] when the v1 directories cannot be scanned (Moby returns no
    /// result then either).
    pub async fn get_all_by_capability(
        &self,
        capability: &str,
    ) -> Result<Vec<CompatPlugin>, GetError> {
        let mut out = self.get_all_managed_by_capability(capability);
        if let Some(legacy) = &self.inner.legacy {
            let found = legacy.get_all(capability).await.map_err(|e| GetError::legacy("", e))?;
            out.extend(found.into_iter().map(CompatPlugin::v1));
        }
        Ok(out)
    }

    /// Moby's `GetAllManagedPluginsByCap`: the enabled v2 plugins with the capability.
    pub fn get_all_managed_by_capability(&self, capability: &str) -> Vec<CompatPlugin> {
        let Some(managed) = &self.inner.managed else { return Vec::new() };
        managed
            .get_all_by_capability(capability)
            .into_iter()
            .filter_map(|r| match self.inner.clients.compat(r) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping plugin");
                    None
                }
            })
            .collect()
    }

    /// Moby's `Handle`: `handler` runs for v2 plugins declaring `docker.<capability>/1.0` at
    /// each enable (and now, for those running), and for v1 plugins implementing
    /// `capability` once per activation (and now, for those active).
    pub fn handle(
        &self,
        capability: &str,
        handler: impl Fn(&CompatPlugin) + Send + Sync + 'static,
    ) {
        let handler = Arc::new(handler);
        if let Some(managed) = &self.inner.managed {
            let (h, clients) = (handler.clone(), self.inner.clients.clone());
            managed.handle(
                capability,
                Arc::new(move |r: &PluginRef| match clients.compat(r.clone()) {
                    Ok(p) => h(&p),
                    Err(e) => tracing::warn!(error = %e, "plugin handler skipped"),
                }),
            );
        }
        if let Some(legacy) = &self.inner.legacy {
            legacy.handle(capability, move |p| handler(&CompatPlugin::v1(p.clone())));
        }
    }

    /// Runs `gone` with the name of every v2 plugin disabled or removed from now on (the
    /// authorization chain drops such plugins, as Moby's manager makes it). Needs a tokio
    /// runtime when there is a manager; without one, nothing ever goes.
    pub fn on_gone(&self, gone: impl Fn(&str) + Send + Sync + 'static) {
        if let Some(managed) = &self.inner.managed {
            let gone: GoneHandler = Arc::new(gone);
            managed.on_gone(gone);
        }
    }
}

/// The clients of v2 plugins, one per plugin ID and socket (so connections are reused
/// across lookups), rebuilt when the socket or the timeout changes.
#[derive(Default)]
struct Clients {
    by_id: Mutex<HashMap<String, CachedClient>>,
}

/// A client and what it was built for: the socket and the call timeout.
type CachedClient = (PathBuf, Option<Duration>, Client);

impl Clients {
    fn compat(&self, r: PluginRef) -> Result<CompatPlugin, GetError> {
        let client = self.client(&r)?;
        Ok(CompatPlugin::v2(r, client))
    }

    fn client(&self, r: &PluginRef) -> Result<Client, GetError> {
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((socket, timeout, client)) = map.get(&r.id) {
            if *socket == r.socket && *timeout == r.timeout {
                return Ok(client.clone());
            }
        }
        let err = |source| GetError::Client { name: r.name.clone(), source };
        let addr: Address = format!("unix://{}", r.socket.display())
            .parse()
            .map_err(|e| err(dockplug_v1::ClientError::Address(e)))?;
        let client = Client::builder(addr).timeout(r.timeout).build().map_err(err)?;
        map.insert(r.id.clone(), (r.socket.clone(), r.timeout, client.clone()));
        Ok(client)
    }
}
