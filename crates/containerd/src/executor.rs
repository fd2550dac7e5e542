//! [`ContainerdExecutor`]: the manager's [`Executor`] on containerd.
//!
//! It keeps one record per plugin it started or re-attached: the init PID and the stdio
//! pumps. An exit event counts only when its PID is the recorded one, so an exit of a stale
//! process (a replaced container, a previous incarnation) never stops the current one; an exit
//! that arrives while a task is still being created is held until the PID is known.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dockplug_manager::{
    exit_channel, Executor, ExecutorError, Exit, ExitReceiver, ExitSender, PluginStdio, Signal,
};
use oci_spec::runtime::Spec;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::config::{valid_id, ContainerdConfig};
use crate::connection::Connection;
use crate::container::TaskState;
use crate::error::{Error, EventsEnded};
use crate::events;
use crate::shim;
use crate::stdio::Stdio;

/// Runs plugins as containerd tasks. See the [crate documentation](crate) for what it does
/// and how it matches Moby.
///
/// ```no_run
/// # async fn demo() -> Result<(), dockplug_containerd::Error> {
/// use dockplug_containerd::{ContainerdConfig, ContainerdExecutor};
///
/// let config = ContainerdConfig::new("/run/containerd/containerd.sock", "/run/dockplug/fifo");
/// let executor = ContainerdExecutor::connect(config).await?;
/// # let _ = executor; Ok(()) }
/// ```
#[derive(Debug)]
pub struct ContainerdExecutor {
    shared: Arc<Shared>,
    exits: Mutex<Option<ExitReceiver>>,
    event_loop: AbortHandle,
}

/// What the executor and its event loop share.
#[derive(Debug)]
pub(crate) struct Shared {
    conn: Connection,
    config: ContainerdConfig,
    tracked: Mutex<HashMap<String, Tracked>>,
    tokens: AtomicU64,
    exits: ExitSender,
}

/// One plugin's process as we know it.
#[derive(Debug)]
struct Tracked {
    /// Which create/restore call owns this record.
    token: u64,
    /// The init PID; `None` while the task is being created or looked up.
    pid: Option<u32>,
    /// Exits seen while `pid` was unknown: `(pid, status)`.
    early: Vec<(u32, Option<u32>)>,
    stdio: Option<Stdio>,
}

impl ContainerdExecutor {
    /// Connects to containerd as `config` says and subscribes to its task exits. Returns once
    /// the subscription is live, so no exit of a plugin started afterwards can be missed.
    pub async fn connect(config: ContainerdConfig) -> Result<Self, Error> {
        let conn = Connection::open(&config).await?;
        let (exits, receiver) = exit_channel();
        let shared = Arc::new(Shared {
            conn: conn.clone(),
            config,
            tracked: Mutex::new(HashMap::new()),
            tokens: AtomicU64::new(1),
            exits,
        });
        let (ready, is_ready) = oneshot::channel();
        let event_loop = tokio::spawn(events::run(Arc::downgrade(&shared), conn, ready));
        let abort = event_loop.abort_handle();
        match is_ready.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::events(&shared.config.namespace, EventsEnded::LoopEnded)),
        }
        Ok(ContainerdExecutor { shared, exits: Mutex::new(Some(receiver)), event_loop: abort })
    }

    /// The configuration this executor was made with.
    pub fn config(&self) -> &ContainerdConfig {
        &self.shared.config
    }

    /// Creates and starts plugin `id` from a runtime spec (see [`Executor::create`]).
    pub async fn create_task(
        &self,
        id: &str,
        spec: &Spec,
        stdio: PluginStdio,
    ) -> Result<(), Error> {
        check_id(id)?;
        let json =
            serde_json::to_vec(spec).map_err(|source| Error::Spec { id: id.to_owned(), source })?;
        self.shared.create(id, &json, stdio).await
    }

    /// Re-attaches to plugin `id` (see [`Executor::restore`]).
    pub async fn restore_task(&self, id: &str, stdio: PluginStdio) -> Result<bool, Error> {
        check_id(id)?;
        self.shared.restore(id, stdio).await
    }

    /// Whether plugin `id` runs (see [`Executor::is_running`]).
    pub async fn task_running(&self, id: &str) -> Result<bool, Error> {
        self.shared.known(id)?;
        Ok(matches!(self.shared.conn.task(id).await?, Some(t) if t.state == TaskState::Alive))
    }

    /// Sends signal number `signal` to the init process of plugin `id`.
    pub async fn signal_task(&self, id: &str, signal: u32) -> Result<(), Error> {
        self.shared.known(id)?;
        self.shared.conn.kill(id, signal, false).await
    }
}

impl Drop for ContainerdExecutor {
    /// Stops listening; running plugins live on (a later executor restores them).
    fn drop(&mut self) {
        self.event_loop.abort();
        let tracked = std::mem::take(&mut *self.shared.lock());
        for (_, t) in tracked {
            if let Some(stdio) = t.stdio {
                stdio.detach();
            }
        }
    }
}

fn check_id(id: &str) -> Result<(), Error> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Error::InvalidId { id: id.to_owned() })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Tracked>> {
        // A panic while holding the lock leaves the map consistent (every update is one
        // statement), so a poisoned lock is still usable.
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn known(&self, id: &str) -> Result<(), Error> {
        match self.lock().get(id) {
            Some(t) if t.pid.is_some() => Ok(()),
            _ => Err(Error::NotFound { id: id.to_owned() }),
        }
    }

    /// Records a placeholder for `id` and returns its token. A record it replaces loses its
    /// pumps (the container is about to be replaced).
    fn begin(&self, id: &str) -> u64 {
        let token = self.tokens.fetch_add(1, Ordering::Relaxed);
        let old = self
            .lock()
            .insert(id.to_owned(), Tracked { token, pid: None, early: Vec::new(), stdio: None });
        if let Some(Tracked { stdio: Some(stdio), .. }) = old {
            stdio.detach();
        }
        token
    }

    /// Drops the record of `id` if `token` still owns it, returning its pumps.
    fn end(&self, id: &str, token: u64) -> Option<Stdio> {
        let mut tracked = self.lock();
        match tracked.get(id) {
            Some(t) if t.token == token => tracked.remove(id).and_then(|t| t.stdio),
            _ => None,
        }
    }

    /// The task of `id` (owned by `token`) has init PID `pid` and these pumps. An exit of
    /// that PID seen meanwhile is handled now.
    fn attach(&self, id: &str, token: u64, pid: u32, stdio: Stdio) {
        let mut tracked = self.lock();
        let Some(t) = tracked.get_mut(id).filter(|t| t.token == token) else {
            drop(tracked);
            tokio::spawn(stdio.finish());
            return;
        };
        t.pid = Some(pid);
        t.stdio = Some(stdio);
        let early = std::mem::take(&mut t.early);
        drop(tracked);
        if let Some((_, status)) = early.into_iter().find(|(p, _)| *p == pid) {
            self.exited(id, pid, status);
        }
    }

    /// Init process `pid` of container `id` exited. If it is the one we track: clean up in
    /// the background (drain output, delete task and container), then report the exit.
    pub(crate) fn exited(&self, id: &str, pid: u32, status: Option<u32>) {
        let mut tracked = self.lock();
        let Some(t) = tracked.get_mut(id) else {
            tracing::debug!(container = id, pid, "exit of a container we do not track");
            return;
        };
        match t.pid {
            None => {
                t.early.push((pid, status));
                return;
            }
            Some(p) if p != pid => {
                tracing::debug!(container = id, pid, current = p, "exit of a stale process");
                return;
            }
            Some(_) => {}
        }
        let stdio = tracked.remove(id).and_then(|t| t.stdio);
        drop(tracked);
        tracing::info!(plugin = id, pid, ?status, "plugin process exited");
        let conn = self.conn.clone();
        let exits = self.exits.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Some(stdio) = stdio {
                stdio.finish().await;
            }
            if let Err(e) = conn.remove(&id).await {
                tracing::warn!(plugin = %id, error = %e, "cannot delete the exited container");
            }
            let _ = exits.send(Exit::new(id, status));
        });
    }

    /// After a gap in the event stream: every tracked process that is no longer running
    /// exited while nobody listened. Returns whether every tracked task could be read (a
    /// containerd that has just restarted may fail some); the exits found are reported
    /// either way, and a task reported once is not tracked any more.
    pub(crate) async fn reconcile(&self) -> bool {
        let watched: Vec<(String, u32)> =
            self.lock().iter().filter_map(|(id, t)| t.pid.map(|pid| (id.clone(), pid))).collect();
        let mut complete = true;
        for (id, pid) in watched {
            match self.conn.task(&id).await {
                Ok(Some(t)) if t.pid == pid && t.state == TaskState::Alive => {}
                Ok(Some(t)) if t.pid == pid => {
                    let status = match t.state {
                        TaskState::Stopped(code) => Some(code),
                        _ => None,
                    };
                    self.exited(&id, pid, status);
                }
                Ok(_) => self.exited(&id, pid, None),
                Err(e) => {
                    tracing::warn!(plugin = %id, error = %e, "cannot reconcile the task yet");
                    complete = false;
                }
            }
        }
        complete
    }

    async fn create(&self, id: &str, spec: &[u8], stdio: PluginStdio) -> Result<(), Error> {
        let token = self.begin(id);
        let (stdout, stderr) = (self.config.stdout_fifo(id), self.config.stderr_fifo(id));
        let pumps = match Stdio::open(
            &self.config.fifo_dir,
            stdout.clone(),
            stderr.clone(),
            stdio,
            false,
        ) {
            Ok(pumps) => pumps,
            Err(e) => {
                self.end(id, token);
                return Err(e);
            }
        };
        if let Err(e) = self.conn.create_container(id, spec, &self.config.runtime).await {
            self.end(id, token);
            pumps.finish().await;
            return Err(e);
        }
        // What a killed predecessor may have left for this id: a task containerd holds but
        // shows no more (deleted now that the container exists), a shim it lost.
        if let Err(e) = self.clear_leftovers(id).await {
            self.end(id, token);
            self.discard(id).await;
            pumps.finish().await;
            return Err(e);
        }
        let pid = match self.conn.create_task(id, &stdout, &stderr).await {
            Ok(pid) => pid,
            Err(e) => {
                self.end(id, token);
                self.discard(id).await;
                pumps.finish().await;
                return Err(e);
            }
        };
        pumps.writer_open();
        self.attach(id, token, pid, pumps);
        if let Err(e) = self.conn.start_task(id).await {
            let pumps = self.end(id, token);
            self.discard(id).await;
            if let Some(pumps) = pumps {
                pumps.finish().await;
            }
            return Err(e);
        }
        tracing::debug!(plugin = id, pid, "plugin task started");
        Ok(())
    }

    async fn restore(&self, id: &str, stdio: PluginStdio) -> Result<bool, Error> {
        let token = self.begin(id);
        let found = async {
            if !self.conn.container_exists(id).await? {
                return Ok(None);
            }
            self.conn.task(id).await
        }
        .await;
        let info = match found {
            Ok(info) => info,
            Err(e) => {
                self.end(id, token);
                return Err(e);
            }
        };
        match info {
            Some(t) if t.state == TaskState::Alive => {
                let (stdout, stderr) = (self.config.stdout_fifo(id), self.config.stderr_fifo(id));
                match Stdio::open(&self.config.fifo_dir, stdout, stderr, stdio, true) {
                    Ok(pumps) => {
                        self.attach(id, token, t.pid, pumps);
                        tracing::info!(plugin = id, pid = t.pid, "re-attached to a running plugin");
                        Ok(true)
                    }
                    Err(e) => {
                        self.end(id, token);
                        Err(e)
                    }
                }
            }
            _ => {
                self.end(id, token);
                self.conn.remove(id).await?;
                self.kill_lost_shims(id).await;
                for fifo in [self.config.stdout_fifo(id), self.config.stderr_fifo(id)] {
                    let _ = std::fs::remove_file(fifo);
                }
                Ok(false)
            }
        }
    }

    /// Before a task of `id` is created: deletes a task containerd still holds for it and
    /// kills the shims of `id` containerd lost (see the `shim` module).
    async fn clear_leftovers(&self, id: &str) -> Result<(), Error> {
        self.conn.force_delete_task(id).await?;
        self.kill_lost_shims(id).await;
        Ok(())
    }

    /// Kills the shims of `id` that containerd lost; call only while containerd has no task
    /// for `id`. Failures are logged: a leftover shim may still be reused by the next one.
    async fn kill_lost_shims(&self, id: &str) {
        let shims = shim::find(&self.config.socket, &self.config.namespace, id);
        if shims.is_empty() {
            return;
        }
        tracing::warn!(plugin = id, ?shims, "killing shims containerd lost");
        if !shim::kill_all(&shims).await {
            tracing::warn!(plugin = id, ?shims, "lost shims still there after SIGKILL");
        }
    }

    /// Removes what a failed create left (errors are only logged: the create error is the
    /// one that matters).
    async fn discard(&self, id: &str) {
        if let Err(e) = self.conn.remove(id).await {
            tracing::warn!(plugin = id, error = %e, "cannot clean up after a failed create");
        }
    }
}

fn to_executor_error(id: &str, operation: &'static str, e: Error) -> ExecutorError {
    match e {
        Error::NotFound { id } => ExecutorError::NotFound { id },
        e => ExecutorError::backend(id, operation, e),
    }
}

impl Executor for ContainerdExecutor {
    async fn create(&self, id: &str, spec: Spec, stdio: PluginStdio) -> Result<(), ExecutorError> {
        self.create_task(id, &spec, stdio).await.map_err(|e| to_executor_error(id, "create", e))
    }

    async fn restore(&self, id: &str, stdio: PluginStdio) -> Result<bool, ExecutorError> {
        self.restore_task(id, stdio).await.map_err(|e| to_executor_error(id, "restore", e))
    }

    async fn is_running(&self, id: &str) -> Result<bool, ExecutorError> {
        self.task_running(id).await.map_err(|e| to_executor_error(id, "is running", e))
    }

    async fn signal(&self, id: &str, signal: Signal) -> Result<(), ExecutorError> {
        let number = u32::try_from(signal.number()).unwrap_or(15);
        self.signal_task(id, number).await.map_err(|e| to_executor_error(id, "signal", e))
    }

    fn take_exits(&self) -> Option<ExitReceiver> {
        self.exits.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> (Arc<Shared>, ExitReceiver) {
        let (exits, receiver) = exit_channel();
        let dir = std::env::temp_dir().join(format!("dockplug-ctrd-unit-{}", std::process::id()));
        let shared = Arc::new(Shared {
            conn: Connection::unconnected("plugins.test"),
            config: ContainerdConfig::new("/nonexistent.sock", dir),
            tracked: Mutex::new(HashMap::new()),
            tokens: AtomicU64::new(1),
            exits,
        });
        (shared, receiver)
    }

    fn tracked(shared: &Shared, id: &str, pid: Option<u32>) -> u64 {
        let token = shared.begin(id);
        if let Some(pid) = pid {
            if let Some(t) = shared.lock().get_mut(id) {
                t.pid = Some(pid);
            }
        }
        token
    }

    async fn no_exit(exits: &mut ExitReceiver) {
        // Every exit is reported from a task spawned by `exited`; give those a chance to run.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert!(exits.try_recv().is_err(), "no exit expected");
    }

    #[tokio::test]
    async fn only_the_tracked_pid_counts() {
        let (shared, mut exits) = shared();
        tracked(&shared, "p", Some(42));
        shared.exited("p", 41, Some(1));
        shared.exited("other", 42, Some(1));
        no_exit(&mut exits).await;
        shared.exited("p", 42, Some(7));
        let exit = exits.recv().await.expect("an exit");
        assert_eq!(exit, Exit::new("p", Some(7)));
        // Reported once: the record is gone.
        shared.exited("p", 42, Some(7));
        no_exit(&mut exits).await;
        assert!(matches!(shared.known("p"), Err(Error::NotFound { .. })));
    }

    #[tokio::test]
    async fn an_exit_before_the_pid_is_known_is_held_until_attach() {
        let (shared, mut exits) = shared();
        let token = tracked(&shared, "p", None);
        shared.exited("p", 5, Some(0)); // a stale incarnation
        shared.exited("p", 6, Some(2)); // ours, before create_task returned
        no_exit(&mut exits).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (out, err) = (dir.path().join("o"), dir.path().join("e"));
        let stdio = PluginStdio::new(Box::pin(tokio::io::sink()), Box::pin(tokio::io::sink()));
        let pumps = Stdio::open(dir.path(), out, err, stdio, false).expect("fifos");
        shared.attach("p", token, 6, pumps);
        assert_eq!(exits.recv().await.expect("an exit"), Exit::new("p", Some(2)));
    }

    #[tokio::test]
    async fn a_newer_create_owns_the_record() {
        let (shared, _exits) = shared();
        let old = tracked(&shared, "p", None);
        let new = tracked(&shared, "p", None);
        assert!(shared.end("p", old).is_none());
        assert!(shared.lock().contains_key("p"), "the old token cannot drop the new record");
        shared.end("p", new);
        assert!(!shared.lock().contains_key("p"));
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id(&"a".repeat(64)).is_ok());
        for bad in ["", "../x", "a/b", "a b"] {
            assert!(matches!(check_id(bad), Err(Error::InvalidId { .. })), "{bad}");
        }
    }
}
