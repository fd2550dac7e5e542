//! The [`Executor`] trait: how the manager runs a plugin's container.
//!
//! # Why it has this shape
//!
//! The manager owns every decision about a plugin (its spec, when to start it, when to give
//! up, when to restart it); the executor only turns a runtime spec into a running process and
//! tells the manager when that process is gone. So the trait is the smallest set of verbs
//! Moby's manager needs from containerd (`Create`, `IsRunning`, `Restore`, `Signal`, plus
//! exit notifications), expressed with types any backend can produce:
//!
//! * the spec is an [`oci_spec::runtime::Spec`], the standard OCI type, so no backend type
//!   (containerd, tonic, runc) ever appears in the manager's public API;
//! * output goes to [`OutputSink`]s the manager supplies, so the backend decides how to
//!   collect stdio (FIFOs, pipes) and the manager decides where it goes (logs);
//! * exits are a stream ([`ExitReceiver`]) the manager takes once and consumes in one task,
//!   instead of a callback into the manager: no reference cycle between the two, and the
//!   order of exits is kept;
//! * the methods return `Send` futures (return-position `impl Future` in the trait), so an
//!   implementation can be written with `async fn` and the manager can drive it from spawned
//!   tasks. The manager is generic over its executor; it never needs `dyn Executor`.
//!
//! Errors are [`ExecutorError`]: "unknown plugin" is its own variant because the manager acts
//! on it; anything a backend reports is carried as a boxed source with the plugin ID and the
//! operation, so the backend's error type stays private to it.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use oci_spec::runtime::Spec;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

/// Where a plugin's stdout or stderr goes. Written by the executor, closed (dropped) when
/// the stream ends.
pub type OutputSink = Pin<Box<dyn AsyncWrite + Send + Sync + 'static>>;

/// The two output streams of a plugin process.
#[non_exhaustive]
pub struct PluginStdio {
    /// Receives the process's standard output.
    pub stdout: OutputSink,
    /// Receives the process's standard error.
    pub stderr: OutputSink,
}

impl PluginStdio {
    /// Bundles two sinks.
    pub fn new(stdout: OutputSink, stderr: OutputSink) -> Self {
        Self { stdout, stderr }
    }
}

impl fmt::Debug for PluginStdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginStdio").finish_non_exhaustive()
    }
}

/// A signal the manager sends to a plugin's init process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// `SIGTERM`: asks the plugin to stop.
    Term,
    /// `SIGKILL`: stops it for good.
    Kill,
}

impl Signal {
    /// The Linux signal number (15 for `SIGTERM`, 9 for `SIGKILL`).
    pub fn number(self) -> i32 {
        match self {
            Signal::Term => 15,
            Signal::Kill => 9,
        }
    }
}

/// A plugin process has exited. Sent by the executor on its [`ExitSender`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exit {
    /// The plugin ID (the ID given to [`Executor::create`]).
    pub id: String,
    /// The exit status, when the backend knows it.
    pub exit_code: Option<u32>,
}

impl Exit {
    /// An exit of plugin `id`, with its exit status when known.
    pub fn new(id: impl Into<String>, exit_code: Option<u32>) -> Self {
        Self { id: id.into(), exit_code }
    }
}

/// The sending half of the exit stream: kept by the executor.
pub type ExitSender = mpsc::UnboundedSender<Exit>;
/// The receiving half of the exit stream: taken by the manager through
/// [`Executor::take_exits`].
pub type ExitReceiver = mpsc::UnboundedReceiver<Exit>;

/// Creates the channel an executor reports exits on.
pub fn exit_channel() -> (ExitSender, ExitReceiver) {
    mpsc::unbounded_channel()
}

/// A boxed error from an executor backend.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What an executor can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// The executor does not know this plugin.
    #[error("unknown plugin \"{id}\"")]
    NotFound {
        /// The plugin ID.
        id: String,
    },
    /// The backend failed.
    #[error("{operation} of plugin {id} failed")]
    Backend {
        /// The plugin ID.
        id: String,
        /// What was attempted (`create`, `restore`, `signal`, `is running`).
        operation: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

impl ExecutorError {
    /// A backend failure of `operation` on plugin `id`.
    pub fn backend(
        id: impl Into<String>,
        operation: &'static str,
        source: impl Into<BoxError>,
    ) -> Self {
        ExecutorError::Backend { id: id.into(), operation, source: source.into() }
    }
}

/// Runs plugin containers for the manager. See the [module documentation](self) for why it
/// has this shape.
///
/// IDs are plugin IDs (64 lowercase hex characters); an implementation may use them as its
/// container IDs.
///
/// An implementation writes plain `async fn`s:
///
/// ```
/// use std::sync::Mutex;
/// use dockplug_manager::{exit_channel, Executor, ExecutorError, ExitReceiver, ExitSender, PluginStdio, Signal};
/// use oci_spec::runtime::Spec;
///
/// struct Nothing { exits: ExitSender, rx: Mutex<Option<ExitReceiver>> }
///
/// impl Executor for Nothing {
///     async fn create(&self, id: &str, _spec: Spec, _stdio: PluginStdio) -> Result<(), ExecutorError> {
///         Err(ExecutorError::backend(id, "create", "this executor runs nothing"))
///     }
///     async fn restore(&self, _id: &str, _stdio: PluginStdio) -> Result<bool, ExecutorError> {
///         Ok(false)
///     }
///     async fn is_running(&self, id: &str) -> Result<bool, ExecutorError> {
///         Err(ExecutorError::NotFound { id: id.to_owned() })
///     }
///     async fn signal(&self, id: &str, _signal: Signal) -> Result<(), ExecutorError> {
///         Err(ExecutorError::NotFound { id: id.to_owned() })
///     }
///     fn take_exits(&self) -> Option<ExitReceiver> {
///         self.rx.lock().ok()?.take()
///     }
/// }
///
/// let (exits, rx) = exit_channel();
/// let _executor = Nothing { exits, rx: Mutex::new(Some(rx)) };
/// ```
pub trait Executor: Send + Sync + 'static {
    /// Creates and starts the container of plugin `id` from `spec` (`spec.root.path` is the
    /// host path of its rootfs). A stale container with the same ID is replaced. Output is
    /// copied into `stdio` until the streams end. On failure nothing is left running.
    fn create(
        &self,
        id: &str,
        spec: Spec,
        stdio: PluginStdio,
    ) -> impl Future<Output = Result<(), ExecutorError>> + Send;

    /// Re-attaches to plugin `id` after a restart of the manager. Returns whether its process
    /// is alive; a container that is not running is cleaned up and `false` is returned.
    fn restore(
        &self,
        id: &str,
        stdio: PluginStdio,
    ) -> impl Future<Output = Result<bool, ExecutorError>> + Send;

    /// Whether the process of plugin `id` runs. [`ExecutorError::NotFound`] when unknown.
    fn is_running(&self, id: &str) -> impl Future<Output = Result<bool, ExecutorError>> + Send;

    /// Sends `signal` to the init process of plugin `id`. [`ExecutorError::NotFound`] when
    /// unknown.
    fn signal(
        &self,
        id: &str,
        signal: Signal,
    ) -> impl Future<Output = Result<(), ExecutorError>> + Send;

    /// Hands over the stream of [`Exit`]s. The manager calls it once, when it starts; an
    /// implementation may return `None` on later calls. Every exit of a process started by
    /// [`create`](Executor::create) or re-attached by [`restore`](Executor::restore) must be
    /// reported, after the backend has cleaned up the container and after it has written the
    /// process's last output to its [`PluginStdio`] sinks and closed (shut down or dropped)
    /// them: a start that fails reads the plugin's stderr then (the manager waits a short
    /// while for sinks still open, and its error carries only what arrived by then).
    fn take_exits(&self) -> Option<ExitReceiver>;
}
