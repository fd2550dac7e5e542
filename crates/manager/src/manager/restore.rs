//! Restore: bringing back, when the manager opens, the plugins that were enabled when it
//! last stopped (re-attached under live-restore, otherwise started again).

use std::path::Path;
use std::sync::Arc;

use dockplug_protocol::Plugin;

use super::Manager;
use crate::executor::Executor;
use crate::fsutil;
use crate::store::Entry;

/// Further attempts to start a plugin whose first start at restore failed.
const RESTORE_RETRIES: u32 = 3;

impl<E: Executor> Manager<E> {
    /// Restores every plugin in a task of its own; returns once each task holds its plugin's
    /// lock (so no operation overtakes a restore), or once all are done when `wait`.
    pub(super) async fn restore(&self, wait: bool) {
        let mut tasks = Vec::new();
        let mut locked = Vec::new();
        for entry in self.inner.store.all() {
            let this = self.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            tasks.push(tokio::spawn(async move { this.restore_one(entry, tx).await }));
            locked.push(rx);
        }
        for rx in locked {
            let _ = rx.await;
        }
        if wait {
            for t in tasks {
                let _ = t.await;
            }
        }
    }

    async fn restore_one(&self, entry: Arc<Entry>, locked: tokio::sync::oneshot::Sender<()>) {
        let op = entry.lock_op().await;
        let plugin = op.plugin();
        if plugin.enabled {
            // Coming back, not stopped: shown enabled while its restore runs.
            op.starting();
        }
        let _ = locked.send(());
        let name = plugin.name.clone();
        migrate_propagated_mount(op.dir(), &plugin);
        if !plugin.enabled {
            // A crash during enable (before `Enabled` was saved) or disable (after) leaves a
            // container, or even a running task, of a plugin recorded disabled: remove it.
            match self.inner.executor.restore(op.id(), self.plugin_log(op.id()).stdio()).await {
                Ok(true) => self.stop(&op).await,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(plugin = %name, error = %e, "cannot clean up a disabled plugin")
                }
            }
            return;
        }
        let alive =
            match self.inner.executor.restore(op.id(), self.plugin_log(op.id()).stdio()).await {
                Ok(alive) => alive,
                Err(e) => {
                    tracing::error!(plugin = %name, error = %e, "failed to restore plugin");
                    false
                }
            };
        if alive && self.inner.config.live_restore {
            op.reattached();
            let timeout = self.inner.config.start_timeout;
            let exits = op.watch_exits();
            match self.post_start(&op, timeout, exits).await {
                Ok(()) => self.call_handlers(&op),
                Err(e) => tracing::error!(plugin = %name, error = %e, "failed to restore plugin"),
            }
            return;
        }
        if alive {
            self.stop(&op).await;
        }
        // A start that fails at restore (containerd still settling after the daemon died) is
        // tried again a few times at the restart policy's delays before the plugin is left
        // stopped (Moby's `reload` tries once). What a killed daemon left in containerd (a
        // hidden task, a lost shim) is the executor's to clear before it creates the task.
        for attempt in 0..=RESTORE_RETRIES {
            match self.start(&op, true, None).await {
                Ok(()) => return,
                Err(e) if attempt < RESTORE_RETRIES => {
                    let delay = self.inner.config.restart.delay(attempt);
                    tracing::warn!(plugin = %name, error = %e, ?delay, "failed to enable plugin; trying again");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => tracing::error!(plugin = %name, error = %e, "failed to enable plugin"),
            }
        }
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
