//! The manager's error type. Texts follow Moby's where a client sees them.

use std::io;
use std::path::PathBuf;

use crate::blobs::BlobError;
use crate::context::ContextError;
use crate::executor::ExecutorError;
use crate::reference::ReferenceError;
use crate::settable::SetError;
use crate::spec::SpecError;

/// Everything the manager can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// No plugin by that name or ID.
    #[error("plugin \"{name}\" not found")]
    NotFound {
        /// The name or ID asked for.
        name: String,
    },
    /// An ID prefix matches several plugins.
    #[error("multiple plugins found for \"{prefix}\"")]
    Ambiguous {
        /// The prefix asked for.
        prefix: String,
    },
    /// A plugin with that name exists.
    #[error("plugin {name} already exists")]
    AlreadyExists {
        /// The normalised name.
        name: String,
    },
    /// The name is not a valid reference.
    #[error("failed to parse reference {name}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why.
        #[source]
        source: ReferenceError,
    },
    /// Enable of an enabled plugin.
    #[error("plugin already enabled: plugin {name} is enabled")]
    AlreadyEnabled {
        /// The plugin name.
        name: String,
    },
    /// Disable of a disabled plugin.
    #[error("plugin is already disabled: plugin {name} found but disabled")]
    AlreadyDisabled {
        /// The plugin name.
        name: String,
    },
    /// A capability lookup found the plugin disabled.
    #[error("plugin {name} found but disabled")]
    Disabled {
        /// The plugin name.
        name: String,
    },
    /// The plugin is referenced (disable or remove without force).
    #[error("plugin {name} is in use")]
    InUse {
        /// The plugin name.
        name: String,
    },
    /// Upgrade of an enabled plugin (Moby's text).
    #[error("plugin must be disabled before upgrading: plugin {name} is enabled")]
    UpgradeEnabled {
        /// The plugin name.
        name: String,
    },
    /// Remove of an enabled plugin without force.
    #[error("plugin {name} is enabled")]
    Enabled {
        /// The plugin name.
        name: String,
    },
    /// A capability lookup found a plugin without that capability.
    #[error("plugin does not provide \"{capability}\" capability")]
    CapabilityMismatch {
        /// The capability asked for.
        capability: String,
    },
    /// `config.json` of a context or record is not valid.
    #[error("failed to parse config")]
    ConfigParse(#[source] serde_json::Error),
    /// A context's `config.json` is not a valid plugin config.
    #[error("failed to parse config")]
    InvalidConfig(#[from] dockplug_protocol::config::ConfigError),
    /// The plugin did not create and serve its socket before the deadline.
    #[error("plugin {name} did not serve {socket:?} within {seconds:.1}s")]
    SocketTimeout {
        /// The plugin name.
        name: String,
        /// The socket path.
        socket: PathBuf,
        /// The deadline, in seconds.
        seconds: f64,
    },
    /// `Interface.Socket` is not a plain file name, or its path is too long for a unix socket.
    #[error("plugin {name} has an unusable socket {socket:?}: {reason}")]
    InvalidSocket {
        /// The plugin name.
        name: String,
        /// The socket path.
        socket: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// The plugin exited while starting. The message ends with what it wrote to stderr.
    #[error("plugin \"{name}\" exited while starting{}", stderr_suffix(.stderr))]
    ExitedWhileStarting {
        /// The plugin name.
        name: String,
        /// The last lines the plugin wrote to stderr in this start, joined by line feeds
        /// (empty when it wrote nothing).
        stderr: String,
    },
    /// The manager is shutting down.
    #[error("plugin manager is shutting down")]
    ShuttingDown,
    /// `set` was refused.
    #[error(transparent)]
    Set(#[from] SetError),
    /// The build context was refused.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The runtime spec could not be generated.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The executor failed.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A list filter is invalid.
    #[error(transparent)]
    Filter(#[from] dockplug_protocol::filters::FilterError),
    /// Granted privileges do not match.
    #[error(transparent)]
    Privileges(#[from] dockplug_protocol::privileges::PrivilegeError),
    /// A registry operation failed (pull, push, upgrade, remote privileges).
    #[error(transparent)]
    Remote(#[from] crate::distribution::RemoteError),
    /// Work moved off the async threads (disk I/O, archive extraction) did not finish: its
    /// blocking task panicked, or the runtime shut down under it.
    #[error("failed to {operation}: its blocking task did not finish")]
    BlockingTask {
        /// What the task was doing.
        operation: &'static str,
        /// Why it did not finish ([`JoinError::is_panic`](tokio::task::JoinError::is_panic)
        /// tells a panic from a cancellation).
        #[source]
        source: tokio::task::JoinError,
    },
    /// A file-system operation failed.
    #[error("failed to {operation} {path:?}")]
    Io {
        /// What was attempted.
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// `: <stderr>` when there is any.
fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl ManagerError {
    /// The HTTP status Moby answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            ManagerError::NotFound { .. } => 404,
            ManagerError::Ambiguous { .. }
            | ManagerError::InvalidName { .. }
            | ManagerError::Filter(_)
            | ManagerError::Context(_)
            | ManagerError::ConfigParse(_)
            | ManagerError::InvalidConfig(_) => 400,
            ManagerError::AlreadyExists { .. }
            | ManagerError::AlreadyEnabled { .. }
            | ManagerError::AlreadyDisabled { .. }
            | ManagerError::Disabled { .. }
            | ManagerError::InUse { .. }
            | ManagerError::Enabled { .. }
            | ManagerError::UpgradeEnabled { .. } => 409,
            ManagerError::Remote(e) => match e.kind {
                crate::distribution::RemoteErrorKind::NotFound => 404,
                crate::distribution::RemoteErrorKind::Unauthorized => 401,
                crate::distribution::RemoteErrorKind::InvalidContent => 400,
                _ => 500,
            },
            _ => 500,
        }
    }

    /// Runs `work` on tokio's blocking threads; a task that does not finish is a
    /// [`BlockingTask`](ManagerError::BlockingTask) error that names `operation`.
    pub(crate) async fn blocking<T: Send + 'static>(
        operation: &'static str,
        work: impl FnOnce() -> Result<T, ManagerError> + Send + 'static,
    ) -> Result<T, ManagerError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|source| ManagerError::BlockingTask { operation, source })?
    }

    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ManagerError::Io { operation, path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicked_blocking_task_is_its_own_error() {
        let err = ManagerError::blocking("load the plugin store", || -> Result<(), _> {
            panic!("disk on fire")
        })
        .await
        .unwrap_err();
        let ManagerError::BlockingTask { operation, source } = &err else {
            panic!("not a BlockingTask: {err:?}");
        };
        assert_eq!(*operation, "load the plugin store");
        assert!(source.is_panic());
        assert_eq!(
            err.to_string(),
            "failed to load the plugin store: its blocking task did not finish"
        );
        assert_eq!(err.http_status(), 500);
    }
}
