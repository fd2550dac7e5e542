//! What talking to containerd can fail with.

use std::path::PathBuf;

/// An error of the containerd executor. Each variant keeps the context a person needs
/// (socket, plugin ID, operation, path); the cause is its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket could not be connected to.
    #[error("cannot connect to containerd at {}", socket.display())]
    Connect {
        /// containerd's socket.
        socket: PathBuf,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The configured namespace is not a valid containerd namespace.
    #[error("invalid containerd namespace {namespace:?}")]
    Namespace {
        /// The namespace as configured.
        namespace: String,
    },
    /// A plugin ID cannot name a container.
    #[error("invalid container id {id:?}")]
    InvalidId {
        /// The ID as given.
        id: String,
    },
    /// The plugin is not known to this executor (Moby's text).
    #[error("unknown plugin \"{id}\"")]
    NotFound {
        /// The plugin ID.
        id: String,
    },
    /// A containerd request failed.
    #[error("containerd {operation} of {id} failed")]
    Rpc {
        /// The request (`create container`, `start task`, ...).
        operation: &'static str,
        /// The container ID.
        id: String,
        /// containerd's status.
        #[source]
        source: tonic::Status,
    },
    /// A file operation on a FIFO or its directory failed.
    #[error("cannot {operation} {}", path.display())]
    Io {
        /// What was attempted (`create fifo`, `open fifo`, ...).
        operation: &'static str,
        /// The path it was attempted on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime spec could not be encoded.
    #[error("cannot encode the runtime spec of {id}")]
    Spec {
        /// The plugin ID.
        id: String,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stale container of the same ID did not go away in time.
    #[error("stale task of {id} did not stop")]
    StaleTask {
        /// The container ID.
        id: String,
    },
}

impl Error {
    pub(crate) fn rpc(operation: &'static str, id: &str, source: tonic::Status) -> Self {
        Error::Rpc { operation, id: id.to_owned(), source }
    }

    /// Whether containerd answered "not found".
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Rpc { source, .. } => source.code() == tonic::Code::NotFound,
            _ => false,
        }
    }
}
