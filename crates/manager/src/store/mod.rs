//! The store: plugins on disk under the root directory and in memory, lookups, reference
//! counts, and per-capability handlers and runtime-spec options.
//!
//! Disk layout (Moby's): `<root>/<64-hex id>/config.json` (the record, written atomically,
//! mode 0600), `<root>/<id>/rootfs/`, `<root>/<id>/propagated-mount/`. We add
//! `<root>/<id>/refcount` (the reference count, so it survives a restart). An entry that
//! cannot be loaded is renamed to `<root>/<id>-broken-<random>` and logged; it never stops
//! the others from loading.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dockplug_protocol::Plugin;
use oci_spec::runtime::Spec;

use crate::error::ManagerError;
use crate::lock;
use crate::{fsutil, reference};

mod entry;

pub use entry::RunState;
pub(crate) use entry::{Entry, ExitKind, OpGuard, Record, Upgraded};

/// How a capability lookup changes the reference count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupMode {
    /// No change.
    Lookup,
    /// +1: the caller now uses the plugin and must [`release`](LookupMode::Release) it.
    /// Unlike Moby's, the count is persisted (`<root>/<id>/refcount`) and survives a
    /// restart: a consumer must not acquire again for references it already holds.
    Acquire,
    /// -1.
    Release,
}

/// What a capability lookup or a handler sees of an enabled plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginRef {
    /// The plugin ID.
    pub id: String,
    /// Its normalised name.
    pub name: String,
    /// The unix socket it serves on (`<exec root>/<id>/<Interface.Socket>`).
    pub socket: PathBuf,
    /// `Interface.ProtocolScheme`, defaulted to `moby.plugins.http/v1`.
    pub protocol: String,
    /// The client timeout given at enable (`None` when none, or zero, was given).
    pub timeout: Option<Duration>,
    /// `<root>/<id>/rootfs`.
    pub rootfs: PathBuf,
    /// `Config.PropagatedMount`.
    pub propagated_mount: String,
}

impl PluginRef {
    /// The host path of `path` inside the plugin (Moby's `ScopedPath`).
    pub fn scoped_path(&self, path: &str) -> PathBuf {
        if !self.propagated_mount.is_empty() {
            if let Some(rest) = path.strip_prefix(&self.propagated_mount) {
                let base = self.rootfs.parent().unwrap_or(&self.rootfs).join("propagated-mount");
                return base.join(rest.trim_start_matches('/'));
            }
        }
        self.rootfs.join(path.trim_start_matches('/'))
    }
}

/// A callback run when a plugin with a capability is enabled.
pub type Handler = Arc<dyn Fn(&PluginRef) + Send + Sync>;
/// A change to the runtime spec of plugins with a capability.
pub type SpecOpt = Arc<dyn Fn(&mut Spec) + Send + Sync>;

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Arc<Entry>>,
    by_name: HashMap<String, String>,
    handlers: HashMap<String, Vec<Handler>>,
    spec_opts: HashMap<String, Vec<SpecOpt>>,
}

/// The plugin store. Cheap lookups under a read lock; every change to disk is atomic.
pub struct Store {
    root: PathBuf,
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish_non_exhaustive()
    }
}

pub(crate) fn is_plugin_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The type string handlers and spec options are registered under.
fn type_key(capability: &str) -> String {
    format!("docker.{}/1.0", capability.to_lowercase())
}

impl Store {
    /// `<root>/<id>`.
    pub(crate) fn plugin_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Loads every plugin under `root`. Broken entries are set aside and logged.
    pub(crate) fn load(root: &Path) -> Result<Self, ManagerError> {
        let mut inner = Inner::default();
        let entries = fs::read_dir(root).map_err(ManagerError::io("read", root))?;
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if let Some(id) = name.strip_suffix("-removing") {
                if is_plugin_id(id) {
                    if let Err(e) = fsutil::remove_dir_if_exists(&path) {
                        tracing::warn!(path = %path.display(), error = %e, "failed to finish removing plugin directory");
                    }
                }
                continue;
            }
            if !is_plugin_id(&name) {
                continue;
            }
            match load_one(&path, &name) {
                Ok((record, refs)) => {
                    if inner.by_name.contains_key(&record.plugin.name) {
                        set_aside(root, &name, "another plugin has the same name");
                        continue;
                    }
                    inner.by_name.insert(record.plugin.name.clone(), name.clone());
                    let entry = Entry::new(record, refs, root.join(&name));
                    inner.by_id.insert(name, Arc::new(entry));
                }
                Err(reason) => set_aside(root, &name, &reason),
            }
        }
        Ok(Self { root: root.to_path_buf(), inner: RwLock::new(inner) })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        lock::read(&self.inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        lock::write(&self.inner)
    }

    /// Every plugin.
    pub(crate) fn all(&self) -> Vec<Arc<Entry>> {
        self.read().by_id.values().cloned().collect()
    }

    /// Moby's `resolvePluginID` + lookup: full ID, name (normalised, `:latest` added), or a
    /// unique ID prefix.
    pub(crate) fn resolve(&self, id_or_name: &str) -> Result<Arc<Entry>, ManagerError> {
        let not_found = || ManagerError::NotFound { name: id_or_name.to_owned() };
        let inner = self.read();
        if is_plugin_id(id_or_name) {
            return inner.by_id.get(id_or_name).cloned().ok_or_else(not_found);
        }
        let name = match reference::normalize(id_or_name) {
            Ok(n) => n,
            Err(reference::ReferenceError::Canonical) => {
                tracing::warn!(reference = id_or_name, "canonical references cannot be resolved");
                return Err(not_found());
            }
            Err(_) => return Err(not_found()),
        };
        if let Some(id) = inner.by_name.get(&name) {
            if let Some(e) = inner.by_id.get(id) {
                return Ok(e.clone());
            }
        }
        let mut found = inner.by_id.iter().filter(|(id, _)| id.starts_with(id_or_name));
        match (found.next(), found.next()) {
            (Some((_, e)), None) => Ok(e.clone()),
            (Some(_), Some(_)) => Err(ManagerError::Ambiguous { prefix: id_or_name.to_owned() }),
            _ => Err(not_found()),
        }
    }

    /// Whether a plugin has this (normalised) name.
    pub(crate) fn name_taken(&self, name: &str) -> bool {
        self.read().by_name.contains_key(name)
    }

    /// Adds a new plugin; refuses a taken name.
    pub(crate) fn insert(&self, entry: Arc<Entry>) -> Result<(), ManagerError> {
        let name = entry.name();
        let mut inner = self.write();
        if inner.by_name.contains_key(&name) || inner.by_id.contains_key(entry.id()) {
            return Err(ManagerError::AlreadyExists { name });
        }
        inner.by_name.insert(name, entry.id().to_owned());
        inner.by_id.insert(entry.id().to_owned(), entry);
        Ok(())
    }

    /// Drops a plugin from memory.
    pub(crate) fn remove(&self, id: &str) {
        let mut inner = self.write();
        if let Some(e) = inner.by_id.remove(id) {
            let name = e.name();
            inner.by_name.remove(&name);
        }
    }

    /// Moby's `Store.Get(name, capability, mode)` for v2 plugins: the plugin must be
    /// enabled and declare `docker.<capability>`; the count changes only on success.
    pub fn get(
        &self,
        name: &str,
        capability: &str,
        mode: LookupMode,
        exec_root: &Path,
    ) -> Result<PluginRef, ManagerError> {
        let entry = self.resolve(name)?;
        let plugin = entry.plugin();
        if !plugin.enabled {
            return Err(ManagerError::Disabled { name: plugin.name.clone() });
        }
        let cap = capability.to_lowercase();
        let provides = plugin
            .config
            .interface
            .types()
            .iter()
            .any(|t| t.capability() == cap && t.prefix() == "docker");
        if !provides {
            return Err(ManagerError::CapabilityMismatch { capability: capability.to_owned() });
        }
        match mode {
            LookupMode::Lookup => {}
            LookupMode::Acquire => {
                entry.add_ref(1)?;
            }
            LookupMode::Release => {
                entry.add_ref(-1)?;
            }
        }
        Ok(self.plugin_ref(&entry, exec_root))
    }

    pub(crate) fn plugin_ref(&self, entry: &Entry, exec_root: &Path) -> PluginRef {
        let plugin = entry.plugin();
        PluginRef {
            id: entry.id().to_owned(),
            name: plugin.name.clone(),
            socket: exec_root.join(entry.id()).join(&plugin.config.interface.socket),
            protocol: plugin.config.interface.protocol().to_owned(),
            timeout: entry.client_timeout(),
            rootfs: entry.dir().join("rootfs"),
            propagated_mount: plugin.config.propagated_mount.clone(),
        }
    }

    /// Enabled plugins declaring `docker.<capability>`.
    pub(crate) fn enabled_with_cap(&self, capability: &str) -> Vec<Arc<Entry>> {
        let cap = capability.to_lowercase();
        self.all()
            .into_iter()
            .filter(|e| {
                let p = e.plugin();
                p.enabled
                    && p.config
                        .interface
                        .types()
                        .iter()
                        .any(|t| t.capability() == cap && t.prefix() == "docker")
            })
            .collect()
    }

    /// Registers `handler` for `capability`.
    pub(crate) fn add_handler(&self, capability: &str, handler: Handler) {
        self.write().handlers.entry(type_key(capability)).or_default().push(handler);
    }

    /// Registers a spec option for `capability`.
    pub(crate) fn add_spec_opt(&self, capability: &str, opt: SpecOpt) {
        self.write().spec_opts.entry(type_key(capability)).or_default().push(opt);
    }

    /// The handlers for the interface types of `plugin`.
    pub(crate) fn handlers_for(&self, plugin: &Plugin) -> Vec<Handler> {
        for_types(&self.read().handlers, plugin)
    }

    /// The spec options for the interface types of `plugin`.
    pub(crate) fn spec_opts_for(&self, plugin: &Plugin) -> Vec<SpecOpt> {
        for_types(&self.read().spec_opts, plugin)
    }
}

/// What `registry` holds for each interface type of `plugin`, in the order of its types.
fn for_types<T: Clone>(registry: &HashMap<String, Vec<T>>, plugin: &Plugin) -> Vec<T> {
    let types = plugin.config.interface.types();
    types.iter().flat_map(|t| registry.get(&t.to_string()).cloned().unwrap_or_default()).collect()
}

fn load_one(dir: &Path, id: &str) -> Result<(Record, i64), String> {
    let path = dir.join("config.json");
    let data = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let record: Record = serde_json::from_slice(&data)
        .map_err(|e| format!("cannot decode {}: {e}", path.display()))?;
    if record.plugin.id != id {
        return Err(format!("record ID {:?} does not match its directory", record.plugin.id));
    }
    if reference::normalize(&record.plugin.name).as_deref() != Ok(record.plugin.name.as_str()) {
        return Err(format!("invalid plugin name {:?}", record.plugin.name));
    }
    // An upgrade killed between its two renames (`rootfs` to `rootfs-old`, the staged tree
    // to `rootfs`) left only the old tree, which the record still describes: put it back.
    let (rootfs, old) = (dir.join("rootfs"), dir.join("rootfs-old"));
    if !rootfs.is_dir() && old.is_dir() {
        fs::rename(&old, &rootfs).map_err(|e| format!("cannot restore {}: {e}", old.display()))?;
        tracing::warn!(plugin = id, "restored the rootfs of an interrupted upgrade");
    }
    if !rootfs.is_dir() {
        return Err("missing rootfs".to_owned());
    }
    let refs = match fs::read_to_string(dir.join("refcount")) {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(plugin = id, "unreadable reference count, starting from 0");
            0
        }),
        Err(_) => 0,
    };
    Ok((record, refs))
}

fn set_aside(root: &Path, id: &str, reason: &str) {
    let from = root.join(id);
    let suffix = fsutil::random_suffix().unwrap_or_else(|_| "0".to_owned());
    let to = root.join(format!("{id}-broken-{suffix}"));
    match fs::rename(&from, &to) {
        Ok(()) => {
            tracing::error!(plugin = id, reason, moved_to = %to.display(), "error loading plugin, set aside")
        }
        Err(e) => {
            tracing::error!(plugin = id, reason, error = %e, "error loading plugin, skipping")
        }
    }
}
