//! The manager: [`Manager`] and its [`ManagerConfig`], one file per concern.
//!
//! This file opens and closes the manager (`new`, `shutdown`); `builder` ([`ManagerBuilder`])
//! opens it with handlers and runtime-spec options in place before restore. The operations
//! live next to it, each file an `impl Manager<E>` of its own: `install` (create from a build
//! context and the install step it shares with pull), `lifecycle` (enable, disable, remove,
//! set, and the start and stop they share), `supervise` (exit handling and the crash loop,
//! with its [`RestartPolicy`]), `restore`, `query` (inspect, logs, state, list, privileges,
//! capability lookups, handlers, spec options, subscriptions), `daemon_event`
//! ([`DaemonEvent`]), `gc`, and `pull`, `push` and `upgrade` (through a
//! [`Distribution`](crate::Distribution)).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::blobs::BlobStore;
use crate::error::ManagerError;
use crate::events::Publisher;
use crate::executor::Executor;
use crate::lock::lock;
use crate::output::PluginLog;
use crate::store::{Entry, RunState, Store};

mod builder;
mod daemon_event;
mod gc;
mod install;
mod lifecycle;
mod pull;
mod push;
mod query;
mod restore;
mod supervise;
mod upgrade;

pub use builder::ManagerBuilder;
pub use daemon_event::DaemonEvent;
use daemon_event::DaemonEventSink;
#[cfg(test)]
pub(crate) use install::Install;
pub use pull::PullOptions;
pub use supervise::RestartPolicy;

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
    /// How long `enable` waits for the plugin's socket when given no timeout, or zero
    /// (Moby's effective 9.5 s: `plugin/manager_linux.go pluginPostStart` dials the socket
    /// at 0.5 s and then every 3 s, four times in all, whatever timeout it was given).
    pub start_timeout: Duration,
    /// How long a stop waits after `SIGTERM`, and again after `SIGKILL` (Moby: 10 s).
    pub stop_timeout: Duration,
    /// Crash restarts.
    pub restart: RestartPolicy,
    /// Make `<root>/<id>/propagated-mount` a shared mount at enable (needs root; Moby does).
    pub share_propagated_mounts: bool,
    /// Return from [`Manager::new`] once the store is loaded and each plugin's restore holds
    /// that plugin's lock, instead of once every enabled plugin is back: a daemon can answer
    /// at once after a restart, each plugin's [`RunState`] shows how far it is, and an
    /// operation on a plugin still being restored waits for its restore.
    pub restore_in_background: bool,
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
            restore_in_background: false,
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

impl<E: Executor> Manager<E> {
    /// Opens the manager: creates the directories, loads the store, starts exit handling
    /// and restores the plugins that were enabled. To have handlers and runtime-spec options
    /// apply to the restored plugins as well, register them on [`Manager::builder`].
    pub async fn new(config: ManagerConfig, executor: E) -> Result<Self, ManagerError> {
        Self::builder(config, executor).build().await
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
        let mut logs = lock(&self.inner.logs);
        logs.entry(id.to_owned()).or_insert_with(|| PluginLog::new(id)).clone()
    }

    fn exec_dir(&self, id: &str) -> PathBuf {
        self.inner.config.exec_root.join(id)
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
                let op = entry.lock_op().await;
                if op.run_state() != RunState::Stopped {
                    this.stop(&op).await;
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
}

/// A plugin removed while the caller waited for its lock is not found.
fn check_not_removed(entry: &Entry, name: &str) -> Result<(), ManagerError> {
    if entry.is_removed() {
        Err(ManagerError::NotFound { name: name.to_owned() })
    } else {
        Ok(())
    }
}
