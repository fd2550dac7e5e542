//! Errors: [`PluginError`], what a plugin author's code returns to the caller, and
//! [`ServeError`], what goes wrong while binding or serving.

use std::fmt;
use std::path::PathBuf;

/// The failure of a plugin call, as the plugin author reports it.
///
/// The message reaches the caller the way dockerd expects it: a non-200 status with
/// `{"Err": "<message>"}` (IPAM replies carry it under `Error` as well). Any error type converts
/// into it with `?`, keeping its chain of sources in the message (`outer: inner`).
///
/// ```
/// use dockplug_sdk::PluginError;
/// let e = PluginError::new("no such volume: v1");
/// assert_eq!(e.message(), "no such volume: v1");
/// let io: PluginError = std::io::Error::other("disk full").into();
/// assert_eq!(io.to_string(), "disk full");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PluginError {
    message: String,
}

impl PluginError {
    /// A failure with this message, sent to the caller as is.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }

    /// The message the caller will see.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginError({:?})", self.message)
    }
}

// Like anyhow's error, `PluginError` is not itself a `std::error::Error`: that keeps this
// blanket conversion coherent, so `?` works on any error in a handler.
impl<E: std::error::Error> From<E> for PluginError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        Self { message }
    }
}

/// What a handler returns: its reply, or a [`PluginError`] for the caller.
pub type PluginResult<T> = Result<T, PluginError>;

/// A failure to bind or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Another process is serving on this socket (a connection succeeded); it is left alone.
    #[error("socket {path} is in use by a live server")]
    SocketInUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something other than a socket sits at the path; it is left alone.
    #[error("{path} exists and is not a socket")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket path is relative; plugin sockets must be absolute.
    #[error("socket path {path} is not absolute")]
    RelativePath {
        /// The path.
        path: PathBuf,
    },
    /// A group name given for the socket does not exist.
    #[error("group {name} does not exist")]
    UnknownGroup {
        /// The group name.
        name: String,
    },
    /// A file-system or socket operation failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done (`bind`, `chmod`, `write spec file`, ...).
        action: &'static str,
        /// The path (or address) it was done to.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Installing the signal handlers for shutdown failed.
    #[error("install signal handlers")]
    Signals(#[source] std::io::Error),
}

impl ServeError {
    pub(crate) fn io(
        action: &'static str,
        path: impl fmt::Display,
        source: std::io::Error,
    ) -> Self {
        ServeError::Io { action, path: path.to_string(), source }
    }
}
