//! A test executor: "runs" a plugin as a tokio task that serves its unix socket.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use oci_spec::runtime::Spec;
use tokio::io::AsyncWriteExt;

use crate::executor::{
    exit_channel, Executor, ExecutorError, Exit, ExitReceiver, ExitSender, PluginStdio, Signal,
};

struct Task {
    socket: Option<PathBuf>,
    server: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
pub(crate) struct State {
    tasks: HashMap<String, Task>,
    /// Every spec given to create, in order.
    pub specs: Vec<(String, Spec)>,
    /// Signals received.
    pub signals: Vec<(String, Signal)>,
    /// IDs whose create fails.
    pub fail_create: HashSet<String>,
    /// Fail every create.
    pub fail_all_creates: bool,
    /// Fail this many creates, then succeed.
    pub fail_next_creates: u32,
    /// IDs that never open their socket.
    pub no_socket: HashSet<String>,
    /// IDs that ignore SIGTERM.
    pub ignore_term: HashSet<String>,
    /// IDs whose process exits right after it starts, without opening its socket.
    pub exit_on_start: HashSet<String>,
    /// What such a process writes to stderr before it exits.
    pub stderr_on_start: HashMap<String, Vec<u8>>,
    /// Close the output of such a process only this long after its exit is reported (an
    /// executor that breaks the order the trait asks for).
    pub close_late: Option<std::time::Duration>,
    /// Open the socket only this long after the process starts (a plugin that takes a
    /// while to listen).
    pub socket_after: Option<std::time::Duration>,
    /// IDs reported alive by restore.
    pub alive_on_restore: HashSet<String>,
    /// Restores asked.
    pub restores: Vec<String>,
}

/// Cloneable so a test keeps a handle after giving one to the manager.
#[derive(Clone)]
pub(crate) struct TestExecutor {
    pub socket_name: String,
    pub state: Arc<Mutex<State>>,
    exits: ExitSender,
    rx: Arc<Mutex<Option<ExitReceiver>>>,
}

impl TestExecutor {
    pub(crate) fn new() -> Self {
        let (exits, rx) = exit_channel();
        Self {
            socket_name: "plugin.sock".into(),
            state: Arc::default(),
            exits,
            rx: Arc::new(Mutex::new(Some(rx))),
        }
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub(crate) fn running(&self, id: &str) -> bool {
        self.state().tasks.contains_key(id)
    }

    /// The plugin process dies.
    pub(crate) fn crash(&self, id: &str) {
        self.stop(id, Some(139));
    }

    fn stop(&self, id: &str, code: Option<u32>) {
        let task = self.state().tasks.remove(id);
        if let Some(t) = task {
            if let Some(s) = t.server {
                s.abort();
            }
            if let Some(p) = t.socket {
                let _ = std::fs::remove_file(p);
            }
            let _ = self.exits.send(Exit::new(id, code));
        }
    }

    fn start(&self, id: &str, exec_dir: Option<PathBuf>) -> Result<(), ExecutorError> {
        let serve = !self.state().no_socket.contains(id);
        let mut task = Task { socket: None, server: None };
        if let (true, Some(dir)) = (serve, exec_dir) {
            let path = dir.join(&self.socket_name);
            let _ = std::fs::remove_file(&path);
            let after = self.state().socket_after;
            let serve = |listener: tokio::net::UnixListener| async move {
                while let Ok((conn, _)) = listener.accept().await {
                    drop(conn);
                }
            };
            task.server = Some(match after {
                None => {
                    let listener = tokio::net::UnixListener::bind(&path)
                        .map_err(|e| ExecutorError::backend(id, "create", e))?;
                    tokio::spawn(serve(listener))
                }
                Some(after) => {
                    let path = path.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        if let Ok(listener) = tokio::net::UnixListener::bind(&path) {
                            serve(listener).await;
                        }
                    })
                }
            });
            task.socket = Some(path);
        }
        self.state().tasks.insert(id.to_owned(), task);
        Ok(())
    }
}

fn exec_dir_of(spec: &Spec) -> Option<PathBuf> {
    spec.mounts()
        .as_ref()?
        .iter()
        .find(|m| m.destination() == &PathBuf::from("/run/docker/plugins"))
        .and_then(|m| m.source().clone())
}

impl Executor for TestExecutor {
    async fn create(&self, id: &str, spec: Spec, stdio: PluginStdio) -> Result<(), ExecutorError> {
        {
            let mut st = self.state();
            st.specs.push((id.to_owned(), spec.clone()));
            if st.fail_all_creates || st.fail_create.contains(id) {
                return Err(ExecutorError::backend(id, "create", "injected create failure"));
            }
            if st.fail_next_creates > 0 {
                st.fail_next_creates -= 1;
                return Err(ExecutorError::backend(id, "create", "injected create failure"));
            }
        }
        self.stop(id, None);
        if self.state().exit_on_start.contains(id) {
            let (text, late) = {
                let st = self.state();
                (st.stderr_on_start.get(id).cloned().unwrap_or_default(), st.close_late)
            };
            let PluginStdio { stdout, mut stderr } = stdio;
            self.pretend_running(id);
            match late {
                None => {
                    let _ = stderr.write_all(&text).await;
                    drop((stdout, stderr));
                    self.crash(id);
                }
                Some(after) => {
                    self.crash(id);
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = stderr.write_all(&text).await;
                        drop((stdout, stderr));
                    });
                }
            }
            return Ok(());
        }
        self.start(id, exec_dir_of(&spec))
    }

    async fn restore(&self, id: &str, _stdio: PluginStdio) -> Result<bool, ExecutorError> {
        let alive = {
            let mut st = self.state();
            st.restores.push(id.to_owned());
            st.alive_on_restore.contains(id)
        };
        Ok(alive)
    }

    async fn is_running(&self, id: &str) -> Result<bool, ExecutorError> {
        if self.running(id) {
            Ok(true)
        } else {
            Err(ExecutorError::NotFound { id: id.to_owned() })
        }
    }

    async fn signal(&self, id: &str, signal: Signal) -> Result<(), ExecutorError> {
        let ignore = {
            let mut st = self.state();
            if !st.tasks.contains_key(id) {
                return Err(ExecutorError::NotFound { id: id.to_owned() });
            }
            st.signals.push((id.to_owned(), signal));
            signal == Signal::Term && st.ignore_term.contains(id)
        };
        if !ignore {
            self.stop(id, Some(128 + signal.number() as u32));
        }
        Ok(())
    }

    fn take_exits(&self) -> Option<ExitReceiver> {
        self.rx.lock().ok()?.take()
    }
}

impl TestExecutor {
    /// Marks a plugin as running without a socket server (for restore tests).
    pub(crate) fn pretend_running(&self, id: &str) {
        self.state().tasks.insert(id.to_owned(), Task { socket: None, server: None });
    }
}
