//! The lifecycle of one plugin: enable (start and wait for its socket), disable, remove and
//! set, and the stop every one of them shares.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dockplug_protocol::Plugin;

use super::{check_not_removed, Manager};
use crate::error::ManagerError;
use crate::events::Event;
use crate::executor::{Executor, Signal};
use crate::lock::lock;
use crate::steps::Steps;
use crate::store::{Entry, OpGuard, RunState};
use crate::{fsutil, spec};

/// How long a failed start waits for the executor to close the output of the exited process
/// (executors close it before they report the exit; this bounds one that does not).
const OUTPUT_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How long a plugin that failed to start (its socket never answered) gets between
/// `SIGTERM` and `SIGKILL`, and again after it.
const START_FAILURE_GRACE: Duration = Duration::from_secs(1);

impl<E: Executor> Manager<E> {
    /// Enables a plugin: generates its runtime spec, starts it through the executor, and
    /// waits until its socket accepts connections. `timeout` bounds that wait (and becomes
    /// the plugin's client timeout); `None` or zero uses
    /// [`ManagerConfig::start_timeout`](super::ManagerConfig::start_timeout). Zero is what
    /// `docker plugin install` sends (Moby's `client/plugin_install.go PluginInstall`); it
    /// means "no timeout given", never "give up at once".
    pub async fn enable(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<Plugin, ManagerError> {
        let timeout = timeout.filter(|t| !t.is_zero());
        self.check_running()?;
        let entry = self.inner.store.resolve(name)?;
        let op = entry.lock_op().await;
        check_not_removed(&op, name)?;
        self.start(&op, false, timeout).await?;
        let plugin = (*op.snapshot()).clone();
        self.inner.events.publish(Event::Enable(plugin.clone()));
        self.daemon_event(&plugin.id, name, "enable");
        Ok(plugin)
    }

    pub(super) fn check_running(&self) -> Result<(), ManagerError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            Err(ManagerError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Starts a plugin (the guard proves the caller holds its operation lock).
    pub(super) async fn start(
        &self,
        entry: &OpGuard<'_>,
        force: bool,
        timeout: Option<Duration>,
    ) -> Result<(), ManagerError> {
        let plugin = entry.plugin();
        let name = plugin.name.clone();
        let mut steps = Steps::start("start", entry.id());
        if plugin.enabled && !force && entry.run_state() != RunState::Stopped {
            return Err(ManagerError::AlreadyEnabled { name });
        }
        let dir = entry.dir().to_path_buf();
        let exec_dir = self.exec_dir(entry.id());
        check_socket(&name, &exec_dir, &plugin.config.interface.socket)?;
        let mut spec =
            spec::init_spec(&plugin, &spec::SpecPaths { plugin_dir: &dir, exec_dir: &exec_dir })?;
        for opt in self.inner.store.spec_opts_for(&plugin) {
            opt(&mut spec);
        }
        fsutil::mkdir_all(&exec_dir, 0o700).map_err(ManagerError::io("mkdir", &exec_dir))?;
        if !plugin.config.propagated_mount.is_empty() {
            let pm = dir.join("propagated-mount");
            fsutil::mkdir_all(&pm, 0o755).map_err(ManagerError::io("mkdir", &pm))?;
            if self.inner.config.share_propagated_mounts {
                crate::mounts::make_rshared(&pm)
                    .map_err(ManagerError::io("set up propagated mount dir", &pm))?;
            }
        }
        init_layer(&dir.join("rootfs"))?;
        steps.step("spec and init layer");
        entry.starting();
        // Subscribed before the process exists, so an exit while starting is never missed.
        let exits = entry.watch_exits();
        if let Err(e) =
            self.inner.executor.create(entry.id(), spec, self.plugin_log(entry.id()).stdio()).await
        {
            entry.stopped();
            return Err(e.into());
        }
        steps.step("executor create (container, task, start)");
        let deadline = timeout.unwrap_or(self.inner.config.start_timeout);
        entry.process_created(timeout);
        self.post_start(entry, deadline, exits).await?;
        steps.step("socket answers");
        entry.set_started(&dir.join("rootfs"))?;
        steps.step("record written");
        self.call_handlers(entry);
        steps.step("handlers called");
        Ok(())
    }

    /// Tells the handlers of its capabilities that a plugin serves (Moby's `CallHandler`, in
    /// `plugin/manager_linux.go pluginPostStart`, for a start and a live restore alike).
    pub(super) fn call_handlers(&self, entry: &Entry) {
        let pref = self.inner.store.plugin_ref(entry, &self.inner.config.exec_root);
        for h in self.inner.store.handlers_for(&entry.plugin()) {
            h(&pref);
        }
    }

    /// Waits for the socket; on failure stops the plugin and marks it disabled.
    pub(super) async fn post_start(
        &self,
        entry: &OpGuard<'_>,
        deadline: Duration,
        mut exits: tokio::sync::watch::Receiver<u64>,
    ) -> Result<(), ManagerError> {
        let plugin = entry.plugin();
        let socket_name = &plugin.config.interface.socket;
        let name = plugin.name.clone();
        let result = if socket_name.is_empty() {
            Ok(())
        } else {
            let socket = self.exec_dir(entry.id()).join(socket_name);
            tokio::select! {
                r = wait_for_socket(&socket, deadline) => r.map_err(|()| ManagerError::SocketTimeout {
                    name: name.clone(),
                    socket: socket.clone(),
                    seconds: deadline.as_secs_f64(),
                }),
                _ = exits.changed() => {
                    let stderr = self.plugin_log(entry.id()).stderr_of_run(OUTPUT_CLOSE_WAIT).await;
                    Err(ManagerError::ExitedWhileStarting { name: name.clone(), stderr })
                }
            }
        };
        match result {
            Ok(()) => {
                entry.running();
                Ok(())
            }
            Err(e) => {
                // It never served anyone: a short grace, so the caller's error comes within
                // its deadline (Moby waits its full 10 s here, past the timeout it was given).
                self.stop_within(entry, START_FAILURE_GRACE.min(self.inner.config.stop_timeout))
                    .await;
                if let Err(save) = entry.set_enabled(false) {
                    tracing::warn!(plugin = %name, error = %save, "failed to save plugin state");
                }
                Err(e)
            }
        }
    }

    /// Stops a plugin: `SIGTERM`, wait, `SIGKILL`, wait (Moby's shutdown of one plugin).
    pub(super) async fn stop(&self, entry: &Entry) {
        self.stop_within(entry, self.inner.config.stop_timeout).await;
    }

    /// `stop`, with `timeout` for each of its two waits.
    async fn stop_within(&self, entry: &Entry, timeout: Duration) {
        let mut exits = entry.watch_exits();
        if !entry.stopping() {
            return;
        }
        let id = entry.id();
        let mut steps = Steps::start("stop", id);
        // The signal first (Moby's `shutdownPlugin` asks nothing before it): whether the
        // process still runs only matters when the signal could not be sent.
        if let Err(e) = self.inner.executor.signal(id, Signal::Term).await {
            if let Ok(true) = self.inner.executor.is_running(id).await {
                tracing::error!(plugin = %id, error = %e, "sending SIGTERM to plugin failed");
            }
            entry.stopped();
            return;
        }
        steps.step("SIGTERM sent");
        if tokio::time::timeout(timeout, exits.changed()).await.is_err() {
            tracing::debug!(plugin = %id, "plugin did not stop on SIGTERM, sending SIGKILL");
            if let Err(e) = self.inner.executor.signal(id, Signal::Kill).await {
                tracing::error!(plugin = %id, error = %e, "sending SIGKILL to plugin failed");
            } else if tokio::time::timeout(timeout, exits.changed()).await.is_err() {
                tracing::warn!(plugin = %id, "Force shutdown plugin FAILED");
            }
        }
        steps.step("exit reported");
        entry.stopped();
    }

    /// Disables a plugin; refused while it is in use unless `force`.
    pub async fn disable(&self, name: &str, force: bool) -> Result<Plugin, ManagerError> {
        let entry = self.inner.store.resolve(name)?;
        let op = entry.lock_op().await;
        check_not_removed(&op, name)?;
        let pname = op.name();
        if !force && op.refcount() > 0 {
            return Err(ManagerError::InUse { name: pname });
        }
        if !op.enabled() {
            return Err(ManagerError::AlreadyDisabled { name: pname });
        }
        let mut steps = Steps::start("disable", op.id());
        self.stop(&op).await;
        steps.step("stopped");
        if self.inner.config.share_propagated_mounts {
            // As Moby does when a plugin exits for good: its mounts go with it.
            crate::mounts::unmount_all_under(op.dir());
            steps.step("unmounted");
        }
        op.set_enabled(false)?;
        steps.step("record written");
        let plugin = (*op.snapshot()).clone();
        self.inner.events.publish(Event::Disable(plugin.clone()));
        self.daemon_event(&plugin.id, name, "disable");
        Ok(plugin)
    }

    /// Removes a plugin; refused while in use or enabled unless `force`.
    pub async fn remove(&self, name: &str, force: bool) -> Result<(), ManagerError> {
        let entry = self.inner.store.resolve(name)?;
        let op = entry.lock_op().await;
        check_not_removed(&op, name)?;
        let pname = op.name();
        let mut steps = Steps::start("remove", op.id());
        if !force {
            if op.refcount() > 0 {
                return Err(ManagerError::InUse { name: pname });
            }
            if op.enabled() {
                return Err(ManagerError::Enabled { name: pname });
            }
        }
        if op.enabled() || op.run_state() != RunState::Stopped {
            self.stop(&op).await;
            if op.enabled() {
                // Recorded, so a removal that fails below leaves a disabled plugin, on disk
                // as in memory.
                if let Err(e) = op.set_enabled(false) {
                    tracing::warn!(plugin = %pname, error = %e, "failed to save plugin state");
                }
            }
        }
        steps.step("stopped");
        let dir = op.dir();
        crate::mounts::unmount_all_under(dir);
        steps.step("unmounted");
        let removing = fsutil::retire(dir).map_err(ManagerError::io("remove", dir))?;
        steps.step("plugin dir renamed away");
        let _ = fsutil::remove_dir_if_exists(&self.exec_dir(op.id()));
        op.set_removed();
        self.inner.store.remove(op.id());
        lock(&self.inner.logs).remove(op.id());
        let plugin = (*op.snapshot()).clone();
        self.daemon_event(&plugin.id, name, "remove");
        self.inner.events.publish(Event::Remove(plugin));
        steps.step("removed from the store");
        // The removal is durable once the directory is renamed away: its files (a rootfs of
        // tens of MB takes 50-200 ms to unlink) and then the blobs nothing references any
        // more go after the reply. A crash meanwhile leaves a `-removing` directory, which the
        // next load deletes, and orphaned blobs, which the next GC deletes.
        let this = self.clone();
        tokio::spawn(async move {
            if let Some(removing) = removing {
                let deleted = tokio::task::spawn_blocking(move || {
                    fsutil::remove_dir_if_exists(&removing).map_err(|e| (removing, e))
                })
                .await;
                if let Ok(Err((path, e))) = deleted {
                    tracing::warn!(path = %path.display(), error = %e, "failed to delete a removed plugin's directory");
                }
            }
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
        let op = entry.lock_op().await;
        check_not_removed(&op, name)?;
        op.set_settings(args)
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

/// How often the socket is tried while a plugin starts: every millisecond for the time most
/// plugins take to listen, then less often.
const SOCKET_POLL_FAST: Duration = Duration::from_millis(1);
const SOCKET_POLL_FAST_FOR: Duration = Duration::from_millis(250);
const SOCKET_POLL_SLOW: Duration = Duration::from_millis(20);

/// Waits until `socket` exists and accepts a connection, or `deadline` passes.
///
/// Polling, not inotify: the socket appears inside a directory that is bind-mounted into the
/// plugin's mount namespace, where inotify events are not reliable across all set-ups. A try
/// is a failed `connect` (a few microseconds), so trying every millisecond for the first
/// 250 ms costs nothing and finds the socket within a millisecond of the plugin's `listen`
/// (a doubling backoff from 2 ms found it up to 16 ms late); then every 20 ms. Moby sleeps a
/// fixed 500 ms first (`plugin/manager_linux.go pluginPostStart`).
async fn wait_for_socket(socket: &Path, deadline: Duration) -> Result<(), ()> {
    let start = tokio::time::Instant::now();
    loop {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Ok(());
        }
        let elapsed = start.elapsed();
        if elapsed >= deadline {
            return Err(());
        }
        let interval =
            if elapsed < SOCKET_POLL_FAST_FOR { SOCKET_POLL_FAST } else { SOCKET_POLL_SLOW };
        tokio::time::sleep(interval.min(deadline - elapsed)).await;
    }
}
