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
    /// The plugin is not known to this executor (Moby's text: `plugin/executor/containerd/
    /// containerd.go` `Executor.Signal` and `IsRunning`).
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
    /// containerd's event stream could not be followed (no containerd request failed: the
    /// stream ended or never confirmed the subscription).
    #[error("containerd's event stream for namespace {namespace} {reason}")]
    Events {
        /// The executor's namespace.
        namespace: String,
        /// What happened to the stream.
        reason: EventsEnded,
    },
    /// A stale container of the same ID did not go away in time.
    #[error("stale task of {id} did not stop")]
    StaleTask {
        /// The container ID.
        id: String,
    },
}

/// How following containerd's event stream ended, in [`Error::Events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventsEnded {
    /// containerd closed the stream.
    #[error("ended")]
    Closed,
    /// Our marker event never came back on a new subscription, however often published.
    #[error("never confirmed the subscription (marker published {published} times)")]
    Unconfirmed {
        /// How often the marker was published.
        published: u32,
    },
    /// The executor's event loop task ended before it reported the first subscription.
    #[error("loop ended before the first subscription was confirmed")]
    LoopEnded,
}

impl Error {
    pub(crate) fn events(namespace: &str, reason: EventsEnded) -> Self {
        Error::Events { namespace: namespace.to_owned(), reason }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_event_stream_is_its_own_error_not_a_grpc_status() {
        let closed = Error::events("plugins.moby", EventsEnded::Closed);
        assert_eq!(
            closed.to_string(),
            "containerd's event stream for namespace plugins.moby ended"
        );
        assert!(std::error::Error::source(&closed).is_none());
        assert!(!closed.is_not_found());
        let unconfirmed = Error::events("p", EventsEnded::Unconfirmed { published: 200 });
        assert!(unconfirmed.to_string().contains("marker published 200 times"), "{unconfirmed}");
        assert!(matches!(
            Error::events("p", EventsEnded::LoopEnded),
            Error::Events { reason: EventsEnded::LoopEnded, .. }
        ));
    }
}
