//! One plugin in memory: its record (what `<root>/<id>/config.json` holds), its reference
//! count, and what the manager knows of its process. Every field is private; each change is
//! a named transition below.
//!
//! Two kinds of state, two rules:
//! - The **record** is persisted. It changes only through an [`OpGuard`] (proof that the
//!   caller holds the plugin's operation lock, so no two changes race), and always disk
//!   first: the new record is written atomically, and only once that succeeded is it put in
//!   memory, in one assignment. A failed write changes nothing, in memory or on disk.
//! - The **run state** is memory only (a restart of the manager starts from `Stopped`), and
//!   changes through the `Entry` methods under "run state" (exit handling runs without the
//!   operation lock).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dockplug_protocol::Plugin;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::ManagerError;
use crate::lock::lock;
use crate::manager::RestartPolicy;
use crate::{fsutil, settable};

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

impl Record {
    /// Writes the record atomically as `<dir>/config.json` (mode 0600).
    pub(crate) fn write_in(&self, dir: &Path) -> Result<(), ManagerError> {
        let path = dir.join("config.json");
        let data = serde_json::to_vec(self).map_err(ManagerError::ConfigParse)?;
        fsutil::write_atomic(&path, &data, 0o600).map_err(ManagerError::io("write", path))
    }
}

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
struct Runtime {
    state: RunState,
    /// Restart the plugin when it exits.
    restart: bool,
    /// The client timeout given at enable.
    timeout: Option<Duration>,
    /// Restarts in the current crash loop.
    attempts: u32,
    /// When the current process was started (or re-attached).
    started: Option<tokio::time::Instant>,
}

impl Runtime {
    /// The delay before the next restart, or `None` (and `Stopped`) when `policy` gives up.
    fn next_restart(&mut self, id: &str, policy: &RestartPolicy) -> Option<Duration> {
        if self.started.is_some_and(|s| s.elapsed() >= policy.stable) {
            self.attempts = 0;
        }
        let attempt = self.attempts;
        if policy.max_attempts.is_some_and(|m| attempt >= m) {
            self.state = RunState::Stopped;
            self.restart = false;
            tracing::error!(plugin = %id, attempts = attempt, "plugin keeps crashing, giving up");
            return None;
        }
        self.attempts += 1;
        self.state = RunState::Restarting { attempt: attempt + 1 };
        Some(policy.delay(attempt))
    }
}

/// What an exit of the plugin's process means (see [`Entry::exited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitKind {
    /// It exited while starting: the start in progress sees it and fails.
    WhileStarting,
    /// It was stopped, or is not meant to come back: now `Stopped`.
    Stopped,
    /// It crashed: restart after the delay, or (`None`) the policy gave up.
    Crashed(Option<Duration>),
}

/// One plugin in memory.
pub(crate) struct Entry {
    id: String,
    /// `<root>/<id>`, where the record is written.
    dir: PathBuf,
    record: Mutex<Record>,
    refcount: Mutex<i64>,
    /// Serialises enable, disable, set, remove and restore of this plugin.
    op: tokio::sync::Mutex<()>,
    runtime: Mutex<Runtime>,
    /// Counts exits; a stop or a start waits for it to change.
    exits: watch::Sender<u64>,
    /// Set once the plugin is removed.
    removed: AtomicBool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Entry {
    /// A plugin whose record is in `dir`, with `refcount` references, not running.
    pub(crate) fn new(record: Record, refcount: i64, dir: PathBuf) -> Self {
        Self {
            id: record.plugin.id.clone(),
            dir,
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
            removed: AtomicBool::new(false),
        }
    }

    /// The plugin ID.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// `<root>/<id>`.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the operation lock: the only way to change the record.
    pub(crate) async fn lock_op(&self) -> OpGuard<'_> {
        OpGuard { entry: self, _guard: self.op.lock().await }
    }

    // Record: reads.

    /// A copy of the record.
    pub(crate) fn record(&self) -> Record {
        lock(&self.record).clone()
    }

    /// The plugin as recorded (shared, no deep copy).
    pub(crate) fn plugin(&self) -> Arc<Plugin> {
        lock(&self.record).plugin.clone()
    }

    /// The normalised name.
    pub(crate) fn name(&self) -> String {
        lock(&self.record).plugin.name.clone()
    }

    /// Whether the plugin is meant to run (the record's `Enabled`).
    pub(crate) fn enabled(&self) -> bool {
        lock(&self.record).plugin.enabled
    }

    /// The API object as a client should see it: `Enabled` is true only while the plugin
    /// is meant to run *and* is up (or being restored), never for a dead plugin.
    pub(crate) fn snapshot(&self) -> Arc<Plugin> {
        let up = matches!(self.run_state(), RunState::Running | RunState::Starting);
        let mut p = self.plugin();
        if p.enabled && !up {
            Arc::make_mut(&mut p).enabled = false;
        }
        p
    }

    // Reference count.

    /// The reference count.
    pub(crate) fn refcount(&self) -> i64 {
        *lock(&self.refcount)
    }

    /// Changes the reference count by `delta` and persists it (`<root>/<id>/refcount`);
    /// memory changes only once the file is written.
    pub(crate) fn add_ref(&self, delta: i64) -> Result<i64, ManagerError> {
        let mut count = lock(&self.refcount);
        let new = *count + delta;
        let path = self.dir.join("refcount");
        fsutil::write_atomic(&path, new.to_string().as_bytes(), 0o600)
            .map_err(ManagerError::io("write", path))?;
        *count = new;
        Ok(new)
    }

    // Removal.

    /// Poisons the record lock, as a thread that panics while holding it would.
    #[cfg(test)]
    pub(crate) fn poison_record(self: &Arc<Self>) {
        let this = self.clone();
        let panicked = std::thread::spawn(move || {
            let _held = this.record.lock();
            panic!("poison the record lock");
        })
        .join();
        assert!(panicked.is_err() && self.record.is_poisoned());
    }

    /// Whether the plugin was removed (a caller that waited for its lock must not act).
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    // Run state.

    /// The run state.
    pub(crate) fn run_state(&self) -> RunState {
        lock(&self.runtime).state
    }

    /// The client timeout given at enable.
    pub(crate) fn client_timeout(&self) -> Option<Duration> {
        lock(&self.runtime).timeout
    }

    /// A receiver that sees the exits from now on, not those before.
    pub(crate) fn watch_exits(&self) -> watch::Receiver<u64> {
        let mut rx = self.exits.subscribe();
        rx.mark_unchanged();
        rx
    }

    /// Being started: `Starting`, restarted when it crashes from now on.
    pub(crate) fn starting(&self) {
        let mut rt = lock(&self.runtime);
        rt.state = RunState::Starting;
        rt.restart = true;
    }

    /// Its process exists (created with client `timeout`): uptime counts from now.
    pub(crate) fn process_created(&self, timeout: Option<Duration>) {
        let mut rt = lock(&self.runtime);
        rt.timeout = timeout;
        rt.started = Some(tokio::time::Instant::now());
    }

    /// Re-attached to a process that survived a restart of the manager: `Starting` until
    /// its socket answers, uptime counted from now.
    pub(crate) fn reattached(&self) {
        let mut rt = lock(&self.runtime);
        rt.state = RunState::Starting;
        rt.restart = true;
        rt.started = Some(tokio::time::Instant::now());
    }

    /// Serving: `Running`.
    pub(crate) fn running(&self) {
        let mut rt = lock(&self.runtime);
        rt.state = RunState::Running;
        rt.restart = true;
    }

    /// Not running, and not to be restarted: `Stopped`.
    pub(crate) fn stopped(&self) {
        let mut rt = lock(&self.runtime);
        rt.state = RunState::Stopped;
        rt.restart = false;
    }

    /// A stop begins: no restart from now on. Returns whether a process may be running; a
    /// plugin waiting for its restart has none and is `Stopped` at once.
    pub(crate) fn stopping(&self) -> bool {
        let mut rt = lock(&self.runtime);
        rt.restart = false;
        if matches!(rt.state, RunState::Restarting { .. }) {
            rt.state = RunState::Stopped;
            return false;
        }
        true
    }

    /// Its process exited. `may_restart` is false while the manager shuts down. Every
    /// waiting [`watch_exits`](Entry::watch_exits) receiver is told after the state changed.
    pub(crate) fn exited(&self, may_restart: bool, policy: &RestartPolicy) -> ExitKind {
        let kind = {
            let mut rt = lock(&self.runtime);
            if rt.state == RunState::Starting {
                ExitKind::WhileStarting
            } else if rt.restart && may_restart {
                ExitKind::Crashed(rt.next_restart(&self.id, policy))
            } else {
                rt.state = RunState::Stopped;
                ExitKind::Stopped
            }
        };
        self.exits.send_modify(|n| *n += 1);
        kind
    }

    /// A restart in the crash loop failed: the loop goes on. Returns the delay before the
    /// next attempt, or `None` (and `Stopped`) when `policy` gives up.
    pub(crate) fn restart_failed(&self, policy: &RestartPolicy) -> Option<Duration> {
        let mut rt = lock(&self.runtime);
        rt.restart = true;
        rt.next_restart(&self.id, policy)
    }
}

/// Proof that the caller holds a plugin's operation lock, and the only way to change its
/// record. Dereferences to the [`Entry`].
/// What an upgrade changes in a record.
pub(crate) struct Upgraded {
    pub config: dockplug_protocol::PluginConfig,
    pub config_digest: String,
    pub manifest_digest: String,
    pub blobsums: Vec<String>,
    pub plugin_reference: String,
}

pub(crate) struct OpGuard<'a> {
    entry: &'a Entry,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl std::ops::Deref for OpGuard<'_> {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        self.entry
    }
}

impl OpGuard<'_> {
    /// Changes a copy of the record, writes it, then puts it in memory. Nothing changes
    /// unless `change` and the write both succeed.
    fn update(
        &self,
        change: impl FnOnce(&mut Record) -> Result<(), ManagerError>,
    ) -> Result<(), ManagerError> {
        let mut next = self.entry.record();
        change(&mut next)?;
        next.write_in(&self.entry.dir)?;
        *lock(&self.entry.record) = next;
        Ok(())
    }

    /// Records whether the plugin is meant to run (`Enabled`).
    pub(crate) fn set_enabled(&self, enabled: bool) -> Result<(), ManagerError> {
        self.update(|r| {
            Arc::make_mut(&mut r.plugin).enabled = enabled;
            Ok(())
        })
    }

    /// Records a successful start: `Enabled`, and the rootfs it runs from (`Rootfs`).
    pub(crate) fn set_started(&self, rootfs: &Path) -> Result<(), ManagerError> {
        self.update(|r| {
            Arc::make_mut(&mut r.plugin).enabled = true;
            r.rootfs = rootfs.to_string_lossy().into_owned();
            Ok(())
        })
    }

    /// Applies `set` arguments (all or nothing; see [`settable::apply`]).
    pub(crate) fn set_settings(&self, args: &[String]) -> Result<(), ManagerError> {
        self.update(|r| Ok(settable::apply(Arc::make_mut(&mut r.plugin), args)?))
    }

    /// Records an upgrade (Moby's `Upgrade`): the new config, its blobs and the remote
    /// reference; ID, name, settings and `Enabled` (false) are kept.
    pub(crate) fn set_upgraded(&self, upgrade: Upgraded) -> Result<(), ManagerError> {
        self.update(|r| {
            let plugin = Arc::make_mut(&mut r.plugin);
            plugin.config = upgrade.config;
            plugin.plugin_reference = upgrade.plugin_reference;
            r.config = upgrade.config_digest;
            r.manifest = upgrade.manifest_digest;
            r.blobsums = Some(upgrade.blobsums);
            Ok(())
        })
    }

    /// The plugin's directory is gone: it counts as removed from now on.
    pub(crate) fn set_removed(&self) {
        self.entry.removed.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path) -> Entry {
        let record = Record {
            plugin: Arc::new(Plugin {
                id: "a".repeat(64),
                name: "p:latest".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        std::fs::create_dir_all(dir).unwrap();
        record.write_in(dir).unwrap();
        Entry::new(record, 0, dir.to_path_buf())
    }

    fn on_disk(dir: &Path) -> Record {
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
    }

    /// A thread that panics while holding the record lock poisons it; changes go on, and
    /// disk and memory still agree (before, `set` wrote the disk and silently skipped a
    /// poisoned memory).
    #[tokio::test]
    async fn changes_reach_disk_and_memory_even_after_a_panic_under_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Arc::new(entry(tmp.path()));
        e.poison_record();
        let op = e.lock_op().await;
        op.set_enabled(true).unwrap();
        assert!(e.enabled());
        assert!(on_disk(tmp.path()).plugin.enabled);
        op.set_started(&tmp.path().join("rootfs")).unwrap();
        assert_eq!(e.record().rootfs, on_disk(tmp.path()).rootfs);
        assert!(!e.record().rootfs.is_empty());
    }

    /// A write that fails changes neither memory nor disk.
    #[tokio::test]
    async fn a_failed_write_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let e = entry(tmp.path());
        crate::failpoint::arm("write_atomic:before_rename", tmp.path());
        let op = e.lock_op().await;
        assert!(op.set_enabled(true).is_err());
        crate::failpoint::disarm(tmp.path());
        assert!(!e.enabled());
        assert!(!on_disk(tmp.path()).plugin.enabled);
    }
}
