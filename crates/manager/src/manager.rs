//! The manager: create, enable, disable, remove, set, inspect, list, privileges, events,
//! exit handling with restarts, restore, shutdown and GC.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dockplug_protocol::config::PluginRootfs;
use dockplug_protocol::filters::PluginListFilter;
use dockplug_protocol::plugin::PluginSettings;
use dockplug_protocol::privileges::{compute_privileges, validate_privileges};
use dockplug_protocol::registry::{Descriptor, ImageManifest};
use dockplug_protocol::{Plugin, PluginConfig, PluginPrivilege};

use crate::blobs::BlobStore;
use crate::error::ManagerError;
use crate::events::{CancelHandle, Event, EventFilter, Publisher, Subscription};
use crate::executor::{Executor, Exit, Signal};
use crate::log::{LogLine, PluginLog};
use crate::store::{Entry, Handler, LookupMode, PluginRef, Record, RunState, SpecOpt, Store};
use crate::{context, fsutil, reference, settable, spec};

/// How a crashed plugin is restarted: after `initial`, doubling up to `max`; the count is
/// reset once a plugin has stayed up for `stable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestartPolicy {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Uptime after which the backoff starts again from `initial`.
    pub stable: Duration,
    /// Give up after this many restarts in a row (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(60),
            stable: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

impl RestartPolicy {
    /// The delay before restart number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// What [`Manager::install`] needs: an extracted rootfs and the digests of its blobs.
pub(crate) struct Install<'a> {
    /// The normalised name.
    pub name: &'a str,
    /// The extracted rootfs, in `<root>/tmp`; moved into place.
    pub rootfs: &'a Path,
    /// The plugin config.
    pub config: PluginConfig,
    /// Digest of the config blob.
    pub config_digest: String,
    /// Layer digests.
    pub blobsums: Vec<String>,
    /// Digest of the manifest blob.
    pub manifest_digest: String,
    /// The remote reference (pull) or the name (create).
    pub plugin_reference: String,
    /// Privileges the user granted (pull, upgrade); `None` skips the check (create).
    pub granted: Option<&'a [PluginPrivilege]>,
}

/// A daemon-level plugin event (see [`Manager::on_daemon_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DaemonEvent<'a> {
    /// `Actor.ID`: the plugin ID.
    pub id: &'a str,
    /// `Actor.Attributes.name`.
    pub name: &'a str,
    /// `Action`: `create`, `enable`, `disable` or `remove`.
    pub action: &'static str,
}

type DaemonEventSink = Arc<dyn Fn(&DaemonEvent<'_>) + Send + Sync>;

/// Where and how the manager works.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ManagerConfig {
    /// Plugin data (Moby: `<data-root>/plugins`, e.g. `/var/lib/docker/plugins`).
    pub root: PathBuf,
    /// Sockets and bundles (Moby: `/run/docker/plugins`; keep it short, socket paths must
    /// stay under 108 bytes).
    pub exec_root: PathBuf,
    /// Keep plugins running across a manager restart.
    pub live_restore: bool,
    /// How long `enable` waits for the plugin's socket by default (Moby's effective 9.5 s).
    pub start_timeout: Duration,
    /// How long a stop waits after `SIGTERM`, and again after `SIGKILL` (Moby: 10 s).
    pub stop_timeout: Duration,
    /// Crash restarts.
    pub restart: RestartPolicy,
    /// Make `<root>/<id>/propagated-mount` a shared mount at enable (needs root; Moby does).
    pub share_propagated_mounts: bool,
}

impl ManagerConfig {
    /// A configuration with Moby's timings for the given directories.
    pub fn new(root: impl Into<PathBuf>, exec_root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            exec_root: exec_root.into(),
            live_restore: false,
            start_timeout: Duration::from_millis(9500),
            stop_timeout: Duration::from_secs(10),
            restart: RestartPolicy::default(),
            share_propagated_mounts: true,
        }
    }
}

struct Inner<E> {
    config: ManagerConfig,
    store: Store,
    executor: E,
    blobs: BlobStore,
    events: Publisher,
    daemon_events: std::sync::RwLock<Option<DaemonEventSink>>,
    /// Readers: create (and later pull/upgrade). Writer: gc.
    gc_lock: tokio::sync::RwLock<()>,
    shutting_down: AtomicBool,
    /// Output tails by plugin ID.
    logs: std::sync::Mutex<HashMap<String, Arc<PluginLog>>>,
}

/// How long a failed start waits for the executor to close the output of the exited process
/// (executors close it before they report the exit; this bounds one that does not).
const OUTPUT_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The v2 plugin manager. Cheap to clone.
pub struct Manager<E: Executor> {
    inner: Arc<Inner<E>>,
}

impl<E: Executor> Clone for Manager<E> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<E: Executor> std::fmt::Debug for Manager<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("root", &self.inner.config.root).finish_non_exhaustive()
    }
}

fn new_id() -> Result<String, ManagerError> {
    loop {
        let id = fsutil::hex(
            &fsutil::random_bytes::<32>().map_err(ManagerError::io("read", "/dev/urandom"))?,
        );
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id);
        }
    }
}

/// Creates what the runtime expects in a rootfs (Moby's init layer), without following any
/// symlink the plugin shipped.
fn init_layer(rootfs: &Path) -> Result<(), ManagerError> {
    use std::fs;
    let ensure_dirs = |rel: &str| -> Result<(), ManagerError> {
        let mut cur = rootfs.to_path_buf();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&cur).map_err(ManagerError::io("remove", &cur))?;
                    fs::create_dir(&cur).map_err(ManagerError::io("create", &cur))?;
                }
                Err(_) => fs::create_dir(&cur).map_err(ManagerError::io("create", &cur))?,
            }
        }
        Ok(())
    };
    for d in ["dev/pts", "dev/shm", "proc", "sys", "etc"] {
        ensure_dirs(d)?;
    }
    for f in [".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console"] {
        let p = rootfs.join(f);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => {}
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&p).map_err(ManagerError::io("remove", &p))?;
                fs::write(&p, b"").map_err(ManagerError::io("create", &p))?;
            }
            Err(_) => fs::write(&p, b"").map_err(ManagerError::io("create", &p))?,
        }
    }
    let mtab = rootfs.join("etc/mtab");
    if fs::symlink_metadata(&mtab).is_err() {
        std::os::unix::fs::symlink("/proc/mounts", &mtab)
            .map_err(ManagerError::io("create", &mtab))?;
    }
    Ok(())
}

impl<E: Executor> Manager<E> {
    /// Opens the manager: creates the directories, loads the store, starts exit handling
    /// and restores the plugins that were enabled.
    pub async fn new(config: ManagerConfig, executor: E) -> Result<Self, ManagerError> {
        for d in [config.root.clone(), config.exec_root.clone(), config.root.join("tmp")] {
            fsutil::mkdir_all(&d, 0o700).map_err(ManagerError::io("mkdir", &d))?;
        }
        let blobs = BlobStore::open(config.root.join("storage"))?;
        blobs.clean_ingest()?;
        // Leftovers of interrupted creates are never referenced: drop them.
        if let Ok(entries) = std::fs::read_dir(config.root.join("tmp")) {
            for e in entries.flatten() {
                let _ = fsutil::remove_dir_if_exists(&e.path());
            }
        }
        let root = config.root.clone();
        let store = tokio::task::spawn_blocking(move || Store::load(&root))
            .await
            .map_err(|e| ManagerError::io("load", &config.root)(std::io::Error::other(e)))??;
        let exits = executor.take_exits();
        let manager = Self {
            inner: Arc::new(Inner {
                config,
                store,
                executor,
                blobs,
                events: Publisher::default(),
                daemon_events: std::sync::RwLock::new(None),
                gc_lock: tokio::sync::RwLock::new(()),
                shutting_down: AtomicBool::new(false),
                logs: std::sync::Mutex::default(),
            }),
        };
        if let Some(mut exits) = exits {
            let weak = Arc::downgrade(&manager.inner);
            tokio::spawn(async move {
                while let Some(exit) = exits.recv().await {
                    let Some(inner) = weak.upgrade() else { break };
                    Manager { inner }.handle_exit(exit);
                }
            });
        }
        manager.restore().await;
        Ok(manager)
    }

    /// The store (capability lookups, handlers, spec options).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The blob store shared with pull and push.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// The output tail of plugin `id`, created at its first start.
    fn plugin_log(&self, id: &str) -> Arc<PluginLog> {
        let mut logs = self.inner.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.entry(id.to_owned()).or_insert_with(|| PluginLog::new(id)).clone()
    }

    fn exec_dir(&self, id: &str) -> PathBuf {
        self.inner.config.exec_root.join(id)
    }

    async fn restore(&self) {
        let mut tasks = Vec::new();
        for entry in self.inner.store.all() {
            let this = self.clone();
            tasks.push(tokio::spawn(async move { this.restore_one(entry).await }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn restore_one(&self, entry: Arc<Entry>) {
        let _op = entry.op.lock().await;
        let record = entry.record();
        let name = record.plugin.name.clone();
        migrate_propagated_mount(&self.inner.store.plugin_dir(&entry.id), &record.plugin);
        if !record.plugin.enabled {
            return;
        }
        let alive = match self
            .inner
            .executor
            .restore(&entry.id, self.plugin_log(&entry.id).stdio())
            .await
        {
            Ok(alive) => alive,
            Err(e) => {
                tracing::error!(plugin = %name, error = %e, "failed to restore plugin");
                false
            }
        };
        if alive && self.inner.config.live_restore {
            set_state(&entry, RunState::Starting, true);
            if let Ok(mut rt) = entry.runtime.lock() {
                rt.started = Some(tokio::time::Instant::now());
            }
            let timeout = self.inner.config.start_timeout;
            let mut exits = entry.exits.subscribe();
            exits.mark_unchanged();
            if let Err(e) = self.post_start(&entry, timeout, exits).await {
                tracing::error!(plugin = %name, error = %e, "failed to restore plugin");
            }
            return;
        }
        if alive {
            self.stop(&entry).await;
        }
        if let Err(e) = self.start(&entry, true, None).await {
            tracing::error!(plugin = %name, error = %e, "failed to enable plugin");
        }
    }

    /// Installs a plugin from a build context: a tar or tar.gz stream with `config.json` and
    /// `rootfs/`. Returns the new plugin.
    pub async fn create_from_context<R: Read + Send + 'static>(
        &self,
        context: R,
        name: &str,
    ) -> Result<Plugin, ManagerError> {
        let _gc = self.inner.gc_lock.read().await;
        let name = reference::normalize(name)
            .map_err(|source| ManagerError::InvalidName { name: name.to_owned(), source })?;
        if self.inner.store.name_taken(&name) {
            return Err(ManagerError::AlreadyExists { name });
        }
        let suffix = fsutil::random_suffix().map_err(ManagerError::io("read", "/dev/urandom"))?;
        let staging = self.inner.config.root.join("tmp").join(format!(".rootfs{suffix}"));
        let blobs = self.inner.blobs.clone();
        let staging2 = staging.clone();
        let extracted =
            tokio::task::spawn_blocking(move || context::extract(context, &staging2, &blobs))
                .await
                .map_err(|e| ManagerError::io("extract", &staging)(std::io::Error::other(e)))??;
        let result = self.finish_create(&name, &staging, extracted);
        if result.is_err() {
            let _ = fsutil::remove_dir_if_exists(&staging);
        }
        let plugin = result?;
        self.inner.events.publish(Event::Create(plugin.clone()));
        self.daemon_event(&plugin.id, &plugin.name, "create");
        Ok(plugin)
    }

    fn finish_create(
        &self,
        name: &str,
        staging: &Path,
        extracted: context::Extracted,
    ) -> Result<Plugin, ManagerError> {
        let mut config = PluginConfig::from_slice(&extracted.config)?;
        config.rootfs = Some(PluginRootfs::layers([extracted.layer_digest.clone()]));
        let config_blob = config.to_blob().map_err(ManagerError::ConfigParse)?;
        let config_digest = self.inner.blobs.put(&config_blob)?;
        let manifest = ImageManifest::plugin(
            Descriptor::plugin_config(config_digest.clone(), config_blob.len() as i64),
            vec![Descriptor::gzip_layer(
                extracted.layer_digest.clone(),
                extracted.layer_size as i64,
            )],
        )
        .to_bytes()
        .map_err(ManagerError::ConfigParse)?;
        let manifest_digest = self.inner.blobs.put(&manifest)?;
        self.install(Install {
            name,
            rootfs: staging,
            config,
            config_digest,
            blobsums: vec![extracted.layer_digest],
            manifest_digest,
            // Persisted at once (Moby keeps it in memory until the next save).
            plugin_reference: name.to_owned(),
            granted: None,
        })
    }

    /// Moby's `createPlugin`, shared by create and (later) pull: checks the name and the
    /// granted privileges, then moves the extracted rootfs and the new record into place in
    /// one rename and adds the plugin to the store.
    pub(crate) fn install(&self, req: Install<'_>) -> Result<Plugin, ManagerError> {
        let Install {
            name,
            rootfs: staging,
            config,
            config_digest,
            blobsums,
            manifest_digest,
            plugin_reference,
            granted,
        } = req;
        if self.inner.store.name_taken(name) {
            return Err(ManagerError::AlreadyExists { name: name.to_owned() });
        }
        if let Some(granted) = granted {
            validate_privileges(&compute_privileges(&config), granted)?;
        }
        let id = new_id()?;
        let dir = self.inner.store.plugin_dir(&id);
        let settings = PluginSettings::from_config(&config);
        let record = Record {
            plugin: Arc::new(Plugin {
                config,
                enabled: false,
                id: id.clone(),
                name: name.to_owned(),
                plugin_reference,
                settings,
            }),
            rootfs: String::new(),
            config: config_digest,
            blobsums: Some(blobsums),
            manifest: manifest_digest,
            swarm_service_id: String::new(),
        };
        // Everything is assembled in `<root>/tmp/.plugin*` and appears under `<root>/<id>` in
        // one rename: a crash at any step leaves either nothing (tmp is swept at start) or
        // the whole plugin.
        let suffix = fsutil::random_suffix().map_err(ManagerError::io("read", "/dev/urandom"))?;
        let staged = self.inner.config.root.join("tmp").join(format!(".plugin{suffix}"));
        let steps = || -> Result<(), ManagerError> {
            let crash = |p: &Path| ManagerError::io("create", p.to_path_buf());
            fsutil::mkdir_all(&staged, 0o700).map_err(ManagerError::io("mkdir", &staged))?;
            crate::failpoint::hit("create:after_mkdir", &staged).map_err(crash(&staged))?;
            let rootfs = staged.join("rootfs");
            std::fs::rename(staging, &rootfs)
                .map_err(ManagerError::io("rename rootfs to", &rootfs))?;
            crate::failpoint::hit("create:after_rename", &staged).map_err(crash(&staged))?;
            if !record.plugin.config.propagated_mount.is_empty() {
                // Present from the start, so restore never mistakes the rootfs's own
                // directory for data to migrate.
                let pm = staged.join("propagated-mount");
                fsutil::mkdir_all(&pm, 0o755).map_err(ManagerError::io("mkdir", &pm))?;
            }
            self.inner.store.save_in(&staged, &record)?;
            std::fs::rename(&staged, &dir)
                .map_err(ManagerError::io("rename plugin dir to", &dir))?;
            if let Err(e) = fsutil::sync_dir(&self.inner.config.root) {
                tracing::warn!(error = %e, "fsync of the plugin root failed");
            }
            crate::failpoint::hit("create:after_commit", &dir).map_err(crash(&dir))
        };
        if let Err(e) = steps() {
            if !crate::failpoint::is_crash(&e) {
                let _ = fsutil::remove_dir_if_exists(&staged);
            }
            return Err(e);
        }
        let entry = Arc::new(Entry::new(record.clone(), 0));
        if let Err(e) = self.inner.store.insert(entry) {
            let _ = fsutil::remove_dir_if_exists(&dir);
            return Err(e);
        }
        Ok((*record.plugin).clone())
    }

    /// Enables a plugin: generates its runtime spec, starts it through the executor, and
    /// waits until its socket accepts connections. `timeout` bounds that wait (and becomes
    /// the plugin's client timeout); `None` uses [`ManagerConfig::start_timeout`].
    pub async fn enable(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<Plugin, ManagerError> {
        self.check_running()?;
        let entry = self.inner.store.resolve(name)?;
        let _op = entry.op.lock().await;
        check_not_removed(&entry, name)?;
        self.start(&entry, false, timeout).await?;
        let plugin = (*entry.snapshot()).clone();
        self.inner.events.publish(Event::Enable(plugin.clone()));
        self.daemon_event(&plugin.id, name, "enable");
        Ok(plugin)
    }

    fn check_running(&self) -> Result<(), ManagerError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            Err(ManagerError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Starts a plugin; the caller holds its op lock.
    async fn start(
        &self,
        entry: &Arc<Entry>,
        force: bool,
        timeout: Option<Duration>,
    ) -> Result<(), ManagerError> {
        let mut record = entry.record();
        let name = record.plugin.name.clone();
        if record.plugin.enabled && !force && entry.run_state() != RunState::Stopped {
            return Err(ManagerError::AlreadyEnabled { name });
        }
        let dir = self.inner.store.plugin_dir(&entry.id);
        let exec_dir = self.exec_dir(&entry.id);
        check_socket(&name, &exec_dir, &record.plugin.config.interface.socket)?;
        let mut spec = spec::init_spec(
            &record.plugin,
            &spec::SpecPaths { plugin_dir: &dir, exec_dir: &exec_dir },
        )?;
        for opt in self.inner.store.spec_opts_for(&record.plugin) {
            opt(&mut spec);
        }
        fsutil::mkdir_all(&exec_dir, 0o700).map_err(ManagerError::io("mkdir", &exec_dir))?;
        if !record.plugin.config.propagated_mount.is_empty() {
            let pm = dir.join("propagated-mount");
            fsutil::mkdir_all(&pm, 0o755).map_err(ManagerError::io("mkdir", &pm))?;
            if self.inner.config.share_propagated_mounts {
                crate::mounts::make_rshared(&pm)
                    .map_err(ManagerError::io("set up propagated mount dir", &pm))?;
            }
        }
        init_layer(&dir.join("rootfs"))?;
        set_state(entry, RunState::Starting, true);
        // Subscribed before the process exists, so an exit while starting is never missed.
        let mut exits = entry.exits.subscribe();
        exits.mark_unchanged();
        if let Err(e) =
            self.inner.executor.create(&entry.id, spec, self.plugin_log(&entry.id).stdio()).await
        {
            set_state(entry, RunState::Stopped, false);
            return Err(e.into());
        }
        let deadline = timeout.unwrap_or(self.inner.config.start_timeout);
        if let Ok(mut rt) = entry.runtime.lock() {
            rt.timeout = timeout;
            rt.started = Some(tokio::time::Instant::now());
        }
        self.post_start(entry, deadline, exits).await?;
        {
            let mut r = entry.record.lock().unwrap_or_else(|e| e.into_inner());
            Arc::make_mut(&mut r.plugin).enabled = true;
            r.rootfs = dir.join("rootfs").to_string_lossy().into_owned();
            record = r.clone();
        }
        self.inner.store.save(&record)?;
        let pref = self.inner.store.plugin_ref(entry, &self.inner.config.exec_root);
        for h in self.inner.store.handlers_for(&record.plugin) {
            h(&pref);
        }
        Ok(())
    }

    /// Waits for the socket; on failure stops the plugin and marks it disabled.
    async fn post_start(
        &self,
        entry: &Arc<Entry>,
        deadline: Duration,
        mut exits: tokio::sync::watch::Receiver<u64>,
    ) -> Result<(), ManagerError> {
        let record = entry.record();
        let socket_name = record.plugin.config.interface.socket.clone();
        let name = record.plugin.name.clone();
        let result = if socket_name.is_empty() {
            Ok(())
        } else {
            let socket = self.exec_dir(&entry.id).join(&socket_name);
            tokio::select! {
                r = wait_for_socket(&socket, deadline) => r.map_err(|()| ManagerError::SocketTimeout {
                    name: name.clone(),
                    socket: socket.clone(),
                    seconds: deadline.as_secs_f64(),
                }),
                _ = exits.changed() => {
                    let stderr = self.plugin_log(&entry.id).stderr_of_run(OUTPUT_CLOSE_WAIT).await;
                    Err(ManagerError::ExitedWhileStarting { name: name.clone(), stderr })
                }
            }
        };
        match result {
            Ok(()) => {
                set_state(entry, RunState::Running, true);
                Ok(())
            }
            Err(e) => {
                self.stop(entry).await;
                if let Ok(mut r) = entry.record.lock() {
                    Arc::make_mut(&mut r.plugin).enabled = false;
                }
                let record = entry.record();
                if let Err(save) = self.inner.store.save(&record) {
                    tracing::warn!(plugin = %name, error = %save, "failed to save plugin state");
                }
                Err(e)
            }
        }
    }

    /// Stops a plugin: `SIGTERM`, wait, `SIGKILL`, wait (Moby's shutdown of one plugin).
    async fn stop(&self, entry: &Arc<Entry>) {
        let mut exits = entry.exits.subscribe();
        exits.mark_unchanged();
        if let Ok(mut rt) = entry.runtime.lock() {
            rt.restart = false;
            if matches!(rt.state, RunState::Restarting { .. }) {
                rt.state = RunState::Stopped;
                return;
            }
        }
        let id = &entry.id;
        let timeout = self.inner.config.stop_timeout;
        match self.inner.executor.is_running(id).await {
            Ok(false) | Err(_) => {
                set_state(entry, RunState::Stopped, false);
                return;
            }
            Ok(true) => {}
        }
        if let Err(e) = self.inner.executor.signal(id, Signal::Term).await {
            tracing::error!(plugin = %id, error = %e, "sending SIGTERM to plugin failed");
            set_state(entry, RunState::Stopped, false);
            return;
        }
        if tokio::time::timeout(timeout, exits.changed()).await.is_err() {
            tracing::debug!(plugin = %id, "plugin did not stop on SIGTERM, sending SIGKILL");
            if let Err(e) = self.inner.executor.signal(id, Signal::Kill).await {
                tracing::error!(plugin = %id, error = %e, "sending SIGKILL to plugin failed");
            } else if tokio::time::timeout(timeout, exits.changed()).await.is_err() {
                tracing::warn!(plugin = %id, "Force shutdown plugin FAILED");
            }
        }
        set_state(entry, RunState::Stopped, false);
    }

    /// Called for every exit the executor reports.
    fn handle_exit(&self, exit: Exit) {
        let Ok(entry) = self.inner.store.resolve(&exit.id) else {
            tracing::warn!(plugin = %exit.id, "exit of an unknown plugin");
            return;
        };
        let _ = fsutil::remove_dir_if_exists(&self.exec_dir(&entry.id));
        // `Some(next restart)` for a crash.
        let crash = {
            let Ok(mut rt) = entry.runtime.lock() else { return };
            if rt.state == RunState::Starting {
                // The start in progress sees the exit and fails; it is not a crash to restart.
                None
            } else if rt.restart && !self.inner.shutting_down.load(Ordering::SeqCst) {
                Some(self.next_restart(&exit.id, &mut rt))
            } else {
                rt.state = RunState::Stopped;
                None
            }
        };
        entry.exits.send_modify(|n| *n += 1);
        let Some(restart) = crash else { return };
        self.inner.events.publish(Event::Crash {
            plugin: (*entry.snapshot()).clone(),
            exit_code: exit.exit_code,
            restart_in: restart,
        });
        if let Some(delay) = restart {
            tracing::warn!(plugin = %exit.id, exit_code = ?exit.exit_code, delay_ms = delay.as_millis() as u64, "plugin exited, restarting");
            let this = self.clone();
            tokio::spawn(async move { this.restart_loop(entry, delay).await });
        }
    }

    /// The delay before the next restart, or `None` (and `Stopped`) when the policy gives up.
    fn next_restart(&self, id: &str, rt: &mut crate::store::Runtime) -> Option<Duration> {
        let policy = self.inner.config.restart;
        if rt.started.is_some_and(|s| s.elapsed() >= policy.stable) {
            rt.attempts = 0;
        }
        let attempt = rt.attempts;
        if policy.max_attempts.is_some_and(|m| attempt >= m) {
            rt.state = RunState::Stopped;
            rt.restart = false;
            tracing::error!(plugin = %id, attempts = attempt, "plugin keeps crashing, giving up");
            return None;
        }
        rt.attempts += 1;
        rt.state = RunState::Restarting { attempt: attempt + 1 };
        Some(policy.delay(attempt))
    }

    /// Restarts a crashed plugin after `delay`; a failed restart is part of the crash loop
    /// (the plugin stays enabled and the backoff goes on) until the policy gives up or the
    /// plugin is disabled or removed.
    async fn restart_loop(&self, entry: Arc<Entry>, mut delay: Duration) {
        loop {
            tokio::time::sleep(delay).await;
            let _op = entry.op.lock().await;
            let still = matches!(entry.run_state(), RunState::Restarting { .. })
                && entry.enabled()
                && !entry.removed.load(Ordering::SeqCst);
            if !still || self.check_running().is_err() {
                return;
            }
            let timeout = entry.runtime.lock().ok().and_then(|r| r.timeout);
            let Err(e) = self.start(&entry, true, timeout).await else {
                self.inner.events.publish(Event::Restart((*entry.snapshot()).clone()));
                return;
            };
            tracing::error!(plugin = %entry.id, error = %e, "restart of plugin failed");
            // Still meant to run: undo the disable a failed start records.
            let record = {
                let mut r = entry.record.lock().unwrap_or_else(|e| e.into_inner());
                Arc::make_mut(&mut r.plugin).enabled = true;
                r.clone()
            };
            if let Err(e) = self.inner.store.save(&record) {
                tracing::warn!(plugin = %entry.id, error = %e, "failed to save plugin state");
            }
            let next = match entry.runtime.lock() {
                Ok(mut rt) => {
                    rt.restart = true;
                    self.next_restart(&entry.id, &mut rt)
                }
                Err(_) => None,
            };
            self.inner.events.publish(Event::Crash {
                plugin: (*entry.snapshot()).clone(),
                exit_code: None,
                restart_in: next,
            });
            match next {
                Some(d) => delay = d,
                None => return,
            }
        }
    }

    /// Disables a plugin; refused while it is in use unless `force`.
    pub async fn disable(&self, name: &str, force: bool) -> Result<Plugin, ManagerError> {
        let entry = self.inner.store.resolve(name)?;
        let _op = entry.op.lock().await;
        check_not_removed(&entry, name)?;
        let pname = entry.name();
        if !force && entry.refcount() > 0 {
            return Err(ManagerError::InUse { name: pname });
        }
        if !entry.enabled() {
            return Err(ManagerError::AlreadyDisabled { name: pname });
        }
        self.stop(&entry).await;
        if self.inner.config.share_propagated_mounts {
            // As Moby does when a plugin exits for good: its mounts go with it.
            crate::mounts::unmount_all_under(&self.inner.store.plugin_dir(&entry.id));
        }
        let record = {
            let mut r = entry.record.lock().unwrap_or_else(|e| e.into_inner());
            Arc::make_mut(&mut r.plugin).enabled = false;
            r.clone()
        };
        self.inner.store.save(&record)?;
        let plugin = (*entry.snapshot()).clone();
        self.inner.events.publish(Event::Disable(plugin.clone()));
        self.daemon_event(&plugin.id, name, "disable");
        Ok(plugin)
    }

    /// Removes a plugin; refused while in use or enabled unless `force`.
    pub async fn remove(&self, name: &str, force: bool) -> Result<(), ManagerError> {
        let entry = self.inner.store.resolve(name)?;
        let _op = entry.op.lock().await;
        check_not_removed(&entry, name)?;
        let pname = entry.name();
        if !force {
            if entry.refcount() > 0 {
                return Err(ManagerError::InUse { name: pname });
            }
            if entry.enabled() {
                return Err(ManagerError::Enabled { name: pname });
            }
        }
        if entry.enabled() || entry.run_state() != RunState::Stopped {
            self.stop(&entry).await;
            if let Ok(mut r) = entry.record.lock() {
                Arc::make_mut(&mut r.plugin).enabled = false;
            }
        }
        let dir = self.inner.store.plugin_dir(&entry.id);
        crate::mounts::unmount_all_under(&dir);
        fsutil::atomic_remove_all(&dir).map_err(ManagerError::io("remove", &dir))?;
        let _ = fsutil::remove_dir_if_exists(&self.exec_dir(&entry.id));
        entry.removed.store(true, Ordering::SeqCst);
        self.inner.store.remove(&entry.id);
        if let Ok(mut logs) = self.inner.logs.lock() {
            logs.remove(&entry.id);
        }
        let plugin = (*entry.snapshot()).clone();
        self.daemon_event(&plugin.id, name, "remove");
        self.inner.events.publish(Event::Remove(plugin));
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.gc().await {
                tracing::warn!(error = %e, "plugin blob gc failed");
            }
        });
        Ok(())
    }

    /// Changes settings: `NAME=value` (env, args), `mount.source=/path`, `device.path=/dev/x`.
    /// All or nothing; refused while the plugin is enabled.
    pub async fn set(&self, name: &str, args: &[String]) -> Result<(), ManagerError> {
        let entry = self.inner.store.resolve(name)?;
        let _op = entry.op.lock().await;
        check_not_removed(&entry, name)?;
        let mut record = entry.record();
        settable::apply(Arc::make_mut(&mut record.plugin), args)?;
        self.inner.store.save(&record)?;
        if let Ok(mut r) = entry.record.lock() {
            *r = record;
        }
        Ok(())
    }

    /// The plugin's API object.
    pub fn inspect(&self, name: &str) -> Result<Plugin, ManagerError> {
        Ok((*self.inner.store.resolve(name)?.snapshot()).clone())
    }

    /// What a plugin wrote to stdout and stderr lately, oldest line first: at most
    /// [`log::MAX_LINES`](crate::log::MAX_LINES) lines and
    /// [`log::MAX_BYTES`](crate::log::MAX_BYTES) bytes, kept in memory across its restarts
    /// (not across a restart of the manager) and dropped when it is removed. Every line also
    /// goes to `tracing` (stdout at `info`, stderr at `error`). Empty for a plugin that never
    /// ran.
    pub fn logs(&self, name: &str) -> Result<Vec<LogLine>, ManagerError> {
        let entry = self.inner.store.resolve(name)?;
        let logs = self.inner.logs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(logs.get(&entry.id).map(|l| l.lines()).unwrap_or_default())
    }

    /// The run state of a plugin (what `Enabled` alone cannot say).
    pub fn state(&self, name: &str) -> Result<RunState, ManagerError> {
        Ok(self.inner.store.resolve(name)?.run_state())
    }

    /// Every plugin matching `filter`, sorted by name. The objects are shared snapshots
    /// (no deep copy per call).
    pub fn list(&self, filter: &PluginListFilter) -> Vec<Arc<Plugin>> {
        let mut out: Vec<Arc<Plugin>> = self
            .inner
            .store
            .all()
            .iter()
            .map(|e| e.snapshot())
            .filter(|p| filter.matches(p))
            .collect();
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The privileges a plugin needs.
    pub fn privileges(&self, name: &str) -> Result<Vec<PluginPrivilege>, ManagerError> {
        Ok(compute_privileges(&self.inner.store.resolve(name)?.record().plugin.config))
    }

    /// Checks `granted` against what `config` requires (for pull and upgrade).
    pub fn validate_privileges(
        config: &PluginConfig,
        granted: &[PluginPrivilege],
    ) -> Result<(), ManagerError> {
        Ok(validate_privileges(&compute_privileges(config), granted)?)
    }

    /// Moby's `Store.Get` (capability lookup with reference counting).
    pub fn get(
        &self,
        name: &str,
        capability: &str,
        mode: LookupMode,
    ) -> Result<PluginRef, ManagerError> {
        self.inner.store.get(name, capability, mode, &self.inner.config.exec_root)
    }

    /// Enabled plugins that declare `docker.<capability>`.
    pub fn get_all_by_capability(&self, capability: &str) -> Vec<PluginRef> {
        self.inner
            .store
            .enabled_with_cap(capability)
            .iter()
            .map(|e| self.inner.store.plugin_ref(e, &self.inner.config.exec_root))
            .collect()
    }

    /// Registers a callback for plugins declaring `docker.<capability>/1.0`: called at each
    /// enable, and now for every such plugin already enabled.
    pub fn handle(&self, capability: &str, handler: impl Fn(&PluginRef) + Send + Sync + 'static) {
        let handler: Handler = Arc::new(handler);
        self.inner.store.add_handler(capability, handler.clone());
        for e in self.inner.store.enabled_with_cap(capability) {
            let types = e.record().plugin.config.interface.types().to_vec();
            let key = format!("docker.{}/1.0", capability.to_lowercase());
            if types.iter().any(|t| t.to_string() == key) && e.run_state() == RunState::Running {
                handler(&self.inner.store.plugin_ref(&e, &self.inner.config.exec_root));
            }
        }
    }

    /// Registers a runtime-spec change for plugins declaring `docker.<capability>/1.0`. It
    /// applies to every later start, including plugins that already exist.
    pub fn register_runtime_opt(
        &self,
        capability: &str,
        opt: impl Fn(&mut oci_spec::runtime::Spec) + Send + Sync + 'static,
    ) {
        let opt: SpecOpt = Arc::new(opt);
        self.inner.store.add_spec_opt(capability, opt);
    }

    /// Subscribes to events. `filters: None` delivers everything; `Some(vec![])` nothing.
    /// At most `buffer` events wait; beyond that the subscriber gets a
    /// [`Delivery::Missed`](crate::Delivery::Missed) count instead.
    pub fn subscribe(
        &self,
        buffer: usize,
        filters: Option<Vec<EventFilter>>,
    ) -> (Subscription, CancelHandle) {
        self.inner.events.subscribe(buffer, filters)
    }

    /// Sets where the daemon-level events go (Moby's `LogPluginEvent`, shown by the Engine's
    /// `/events` as type `plugin`): `create` (plugin ID, normalised name), `enable`,
    /// `disable` and `remove` (plugin ID, the name or ID exactly as the caller passed it).
    /// None for `set`, crash restarts or restore, as in Moby.
    pub fn on_daemon_event(&self, sink: impl Fn(&DaemonEvent<'_>) + Send + Sync + 'static) {
        if let Ok(mut s) = self.inner.daemon_events.write() {
            *s = Some(Arc::new(sink));
        }
    }

    fn daemon_event(&self, id: &str, name: &str, action: &'static str) {
        let sink = self.inner.daemon_events.read().ok().and_then(|s| s.clone());
        if let Some(sink) = sink {
            sink(&DaemonEvent { id, name, action });
        }
    }

    /// Stops every running plugin (they stay enabled on disk and come back at the next
    /// start), unless live-restore keeps them running.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        if self.inner.config.live_restore {
            return;
        }
        let mut tasks = Vec::new();
        for entry in self.inner.store.all() {
            let this = self.clone();
            tasks.push(tokio::spawn(async move {
                let _op = entry.op.lock().await;
                if entry.run_state() != RunState::Stopped {
                    this.stop(&entry).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        if self.inner.config.share_propagated_mounts {
            crate::mounts::unmount_all_under(&self.inner.config.root);
        }
    }

    /// Deletes every blob no plugin references; returns the deleted digests.
    pub async fn gc(&self) -> Result<Vec<String>, ManagerError> {
        let _w = self.inner.gc_lock.write().await;
        let mut keep = HashSet::new();
        for e in self.inner.store.all() {
            let r = e.record();
            keep.insert(r.config);
            keep.insert(r.manifest);
            keep.extend(r.blobsums.unwrap_or_default());
        }
        let blobs = self.inner.blobs.clone();
        let deleted = tokio::task::spawn_blocking(move || blobs.gc(&keep))
            .await
            .map_err(|e| ManagerError::io("gc", PathBuf::new())(std::io::Error::other(e)))??;
        Ok(deleted)
    }
}

/// Moby's restore-time migration: plugins that keep data under their propagated mount once
/// kept it inside their rootfs; move it to `<root>/<id>/propagated-mount` if that is missing.
fn migrate_propagated_mount(dir: &Path, plugin: &Plugin) {
    let pm = plugin.config.propagated_mount.trim_start_matches('/');
    let concerned = plugin.config.interface.types().iter().any(|t| {
        t.prefix() == "docker"
            && t.version().starts_with("1.")
            && matches!(
                t.capability(),
                "volumedriver" | "graphdriver" | "csinode" | "csicontroller"
            )
    });
    if pm.is_empty() || !concerned {
        return;
    }
    let target = dir.join("propagated-mount");
    let old = dir.join("rootfs").join(pm);
    // Only a real directory inside the rootfs is moved, never through a symlink.
    let old_is_dir = std::fs::symlink_metadata(&old).is_ok_and(|m| m.is_dir());
    if !target.exists() && old_is_dir && !pm.split('/').any(|c| c == "..") {
        if let Err(e) = std::fs::rename(&old, &target) {
            tracing::error!(plugin = %plugin.id, error = %e, "error migrating propagated mount storage");
        }
    }
    if let Err(e) = fsutil::mkdir_all(&target, 0o755) {
        tracing::error!(plugin = %plugin.id, error = %e, "error creating propagated mount storage");
    }
}

/// `Interface.Socket` must name a file in the plugin's socket directory, and the whole path
/// must fit a unix socket address (107 bytes), or no connection could ever succeed.
fn check_socket(name: &str, exec_dir: &Path, socket: &str) -> Result<(), ManagerError> {
    if socket.is_empty() {
        return Ok(());
    }
    let path = exec_dir.join(socket);
    let bad = |reason| ManagerError::InvalidSocket {
        name: name.to_owned(),
        socket: path.clone(),
        reason,
    };
    if socket.contains('/') || socket == "." || socket == ".." || socket.contains('\0') {
        return Err(bad("it must be a file name"));
    }
    if path.as_os_str().len() > 107 {
        return Err(bad("the path is longer than a unix socket address allows"));
    }
    Ok(())
}

/// A plugin removed while the caller waited for its lock is not found.
fn check_not_removed(entry: &Entry, name: &str) -> Result<(), ManagerError> {
    if entry.removed.load(Ordering::SeqCst) {
        Err(ManagerError::NotFound { name: name.to_owned() })
    } else {
        Ok(())
    }
}

fn set_state(entry: &Entry, state: RunState, restart: bool) {
    if let Ok(mut rt) = entry.runtime.lock() {
        rt.state = state;
        rt.restart = restart;
    }
}

/// Waits until `socket` exists and accepts a connection, or `deadline` passes.
///
/// Polling, not inotify: the socket appears inside a directory that is bind-mounted into the
/// plugin's mount namespace, where inotify events are not reliable across all set-ups, and a
/// poll every few milliseconds (growing to 50 ms) costs nothing next to a process start. It
/// returns as soon as the plugin listens, instead of Moby's fixed 500 ms sleep.
async fn wait_for_socket(socket: &Path, deadline: Duration) -> Result<(), ()> {
    let start = tokio::time::Instant::now();
    let mut interval = Duration::from_millis(2);
    loop {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Ok(());
        }
        if start.elapsed() >= deadline {
            return Err(());
        }
        let left = deadline.saturating_sub(start.elapsed());
        tokio::time::sleep(interval.min(left)).await;
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}
