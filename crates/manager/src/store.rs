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
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dockplug_protocol::Plugin;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::ManagerError;
use crate::fsutil;
use crate::reference;

/// The persisted record: Moby's `config.json` of a v2 plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Shared, copy-on-write (`Arc::make_mut`): `list` hands out clones of the `Arc`.
    #[serde(rename = "plugin")]
    pub plugin: Arc<Plugin>,
    #[serde(rename = "Rootfs", default)]
    pub rootfs: String,
    #[serde(rename = "Config", default)]
    pub config: String,
    #[serde(rename = "Blobsums", default)]
    pub blobsums: Option<Vec<String>>,
    #[serde(rename = "Manifest", default)]
    pub manifest: String,
    #[serde(rename = "SwarmServiceID", default)]
    pub swarm_service_id: String,
}

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
    /// The client timeout given at enable.
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

/// Run state, in memory only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunState {
    /// Not running, and not meant to.
    Stopped,
    /// Being started (waiting for its socket).
    Starting,
    /// Running and serving.
    Running,
    /// Crashed; a restart is scheduled.
    Restarting {
        /// Restarts attempted so far in this crash loop.
        attempt: u32,
    },
}

/// What the manager knows of a plugin's process.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub state: RunState,
    /// Restart the plugin when it exits.
    pub restart: bool,
    pub timeout: Option<Duration>,
    pub attempts: u32,
    pub started: Option<tokio::time::Instant>,
}

/// One plugin in memory.
pub(crate) struct Entry {
    pub id: String,
    pub record: Mutex<Record>,
    pub refcount: Mutex<i64>,
    /// Serialises enable, disable, set and remove of this plugin.
    pub op: tokio::sync::Mutex<()>,
    pub runtime: Mutex<Runtime>,
    /// Counts exits; a stop waits for it to change.
    pub exits: watch::Sender<u64>,
    /// Set once the plugin is removed.
    pub removed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Entry {
    pub(crate) fn new(record: Record, refcount: i64) -> Self {
        Self {
            id: record.plugin.id.clone(),
            record: Mutex::new(record),
            refcount: Mutex::new(refcount),
            op: tokio::sync::Mutex::new(()),
            runtime: Mutex::new(Runtime {
                state: RunState::Stopped,
                restart: false,
                timeout: None,
                attempts: 0,
                started: None,
            }),
            exits: watch::Sender::new(0),
            removed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn record(&self) -> Record {
        self.record.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub(crate) fn name(&self) -> String {
        self.record.lock().map(|r| r.plugin.name.clone()).unwrap_or_default()
    }

    pub(crate) fn enabled(&self) -> bool {
        self.record.lock().map(|r| r.plugin.enabled).unwrap_or(false)
    }

    pub(crate) fn run_state(&self) -> RunState {
        self.runtime.lock().map(|r| r.state).unwrap_or(RunState::Stopped)
    }

    /// The API object as a client should see it: `Enabled` is true only while the plugin
    /// is meant to run *and* is up (or being restored), never for a dead plugin.
    pub(crate) fn snapshot(&self) -> Arc<Plugin> {
        let up = matches!(self.run_state(), RunState::Running | RunState::Starting);
        let mut p = self.record.lock().map(|r| r.plugin.clone()).unwrap_or_default();
        if p.enabled && !up {
            Arc::make_mut(&mut p).enabled = false;
        }
        p
    }

    pub(crate) fn refcount(&self) -> i64 {
        self.refcount.lock().map(|r| *r).unwrap_or(0)
    }
}

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
                    inner.by_id.insert(name, Arc::new(Entry::new(record, refs)));
                }
                Err(reason) => set_aside(root, &name, &reason),
            }
        }
        Ok(Self { root: root.to_path_buf(), inner: RwLock::new(inner) })
    }

    /// Writes the record atomically into its plugin directory.
    pub(crate) fn save(&self, record: &Record) -> Result<(), ManagerError> {
        self.save_in(&self.plugin_dir(&record.plugin.id), record)
    }

    /// Writes the record atomically as `<dir>/config.json`.
    pub(crate) fn save_in(&self, dir: &Path, record: &Record) -> Result<(), ManagerError> {
        let path = dir.join("config.json");
        let data = serde_json::to_vec(record).map_err(ManagerError::ConfigParse)?;
        fsutil::write_atomic(&path, &data, 0o600).map_err(ManagerError::io("write", path))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
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
        if inner.by_name.contains_key(&name) || inner.by_id.contains_key(&entry.id) {
            return Err(ManagerError::AlreadyExists { name });
        }
        inner.by_name.insert(name, entry.id.clone());
        inner.by_id.insert(entry.id.clone(), entry);
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

    /// Changes the reference count and persists it.
    pub(crate) fn add_ref(&self, entry: &Entry, delta: i64) -> Result<i64, ManagerError> {
        let mut count = entry.refcount.lock().unwrap_or_else(|e| e.into_inner());
        let new = *count + delta;
        let path = self.plugin_dir(&entry.id).join("refcount");
        fsutil::write_atomic(&path, new.to_string().as_bytes(), 0o600)
            .map_err(ManagerError::io("write", path))?;
        *count = new;
        Ok(new)
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
        let record = entry.record();
        if !record.plugin.enabled {
            return Err(ManagerError::Disabled { name: record.plugin.name.clone() });
        }
        let cap = capability.to_lowercase();
        let provides = record
            .plugin
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
                self.add_ref(&entry, 1)?;
            }
            LookupMode::Release => {
                self.add_ref(&entry, -1)?;
            }
        }
        Ok(self.plugin_ref(&entry, exec_root))
    }

    pub(crate) fn plugin_ref(&self, entry: &Entry, exec_root: &Path) -> PluginRef {
        let record = entry.record();
        let timeout = entry.runtime.lock().ok().and_then(|r| r.timeout);
        PluginRef {
            id: entry.id.clone(),
            name: record.plugin.name.clone(),
            socket: exec_root.join(&entry.id).join(&record.plugin.config.interface.socket),
            protocol: record.plugin.config.interface.protocol().to_owned(),
            timeout,
            rootfs: self.plugin_dir(&entry.id).join("rootfs"),
            propagated_mount: record.plugin.config.propagated_mount.clone(),
        }
    }

    /// Enabled plugins declaring `docker.<capability>`.
    pub(crate) fn enabled_with_cap(&self, capability: &str) -> Vec<Arc<Entry>> {
        let cap = capability.to_lowercase();
        self.all()
            .into_iter()
            .filter(|e| {
                let r = e.record.lock();
                r.map(|r| {
                    r.plugin.enabled
                        && r.plugin
                            .config
                            .interface
                            .types()
                            .iter()
                            .any(|t| t.capability() == cap && t.prefix() == "docker")
                })
                .unwrap_or(false)
            })
            .collect()
    }

    /// Registers `handler` for `capability`; returns the key it is stored under.
    pub(crate) fn add_handler(&self, capability: &str, handler: Handler) {
        self.write().handlers.entry(type_key(capability)).or_default().push(handler);
    }

    /// Registers a spec option for `capability`.
    pub(crate) fn add_spec_opt(&self, capability: &str, opt: SpecOpt) {
        self.write().spec_opts.entry(type_key(capability)).or_default().push(opt);
    }

    /// The handlers for the interface types of `plugin`.
    pub(crate) fn handlers_for(&self, plugin: &Plugin) -> Vec<Handler> {
        let inner = self.read();
        plugin
            .config
            .interface
            .types()
            .iter()
            .flat_map(|t| inner.handlers.get(&t.to_string()).cloned().unwrap_or_default())
            .collect()
    }

    /// The spec options for the interface types of `plugin`.
    pub(crate) fn spec_opts_for(&self, plugin: &Plugin) -> Vec<SpecOpt> {
        let inner = self.read();
        plugin
            .config
            .interface
            .types()
            .iter()
            .flat_map(|t| inner.spec_opts.get(&t.to_string()).cloned().unwrap_or_default())
            .collect()
    }
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
    if !dir.join("rootfs").is_dir() {
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
