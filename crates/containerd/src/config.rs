//! Where containerd is and how plugins run on it: the socket, the namespace, the runtime and
//! the directory that holds the stdio FIFOs. Nothing here is hard-coded: Moby's values are
//! only the defaults of the fields that have one.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Moby's default containerd namespace for plugins (`--containerd-plugins-namespace`).
pub const DEFAULT_NAMESPACE: &str = "plugins.moby";

/// The runtime (shim) plugins run under.
pub const DEFAULT_RUNTIME: &str = "io.containerd.runc.v2";

/// How to reach containerd and where to keep per-plugin state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerdConfig {
    /// containerd's gRPC socket (Moby: `/run/containerd/containerd.sock`).
    pub socket: PathBuf,
    /// The containerd namespace every request is made in (default [`DEFAULT_NAMESPACE`]).
    pub namespace: String,
    /// The runtime name given to each container (default [`DEFAULT_RUNTIME`]).
    pub runtime: String,
    /// The directory holding each plugin's stdout and stderr FIFOs (`<id>-stdout`,
    /// `<id>-stderr`). It must survive a restart of the manager (so restore can re-open them)
    /// and must not be visible inside the plugins: unlike Moby, which puts the FIFOs in the
    /// directory it bind-mounts into the plugin, give a private directory.
    pub fifo_dir: PathBuf,
    /// The deadline of each unary request to containerd (default 30 s).
    pub request_timeout: Duration,
}

impl ContainerdConfig {
    /// A configuration for containerd at `socket`, keeping FIFOs in `fifo_dir`, with the
    /// default namespace, runtime and request deadline.
    pub fn new(socket: impl Into<PathBuf>, fifo_dir: impl Into<PathBuf>) -> Self {
        ContainerdConfig {
            socket: socket.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            runtime: DEFAULT_RUNTIME.to_owned(),
            fifo_dir: fifo_dir.into(),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Uses the containerd namespace `namespace`.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Uses the runtime `runtime` (e.g. `io.containerd.runc.v2`).
    pub fn with_runtime(mut self, runtime: impl Into<String>) -> Self {
        self.runtime = runtime.into();
        self
    }

    /// Sets the deadline of each unary request.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The FIFO receiving the standard output of plugin `id`.
    pub fn stdout_fifo(&self, id: &str) -> PathBuf {
        fifo(&self.fifo_dir, id, "stdout")
    }

    /// The FIFO receiving the standard error of plugin `id`.
    pub fn stderr_fifo(&self, id: &str) -> PathBuf {
        fifo(&self.fifo_dir, id, "stderr")
    }
}

fn fifo(dir: &Path, id: &str, stream: &str) -> PathBuf {
    dir.join(format!("{id}-{stream}"))
}

/// Whether `namespace` is a valid containerd namespace: labels of `[A-Za-z0-9_-]`, starting
/// with a letter or digit, joined by dots, at most 76 bytes (containerd's `identifiers` rule).
pub(crate) fn valid_namespace(namespace: &str) -> bool {
    !namespace.is_empty() && namespace.len() <= 76 && namespace.split('.').all(valid_label)
}

/// Whether `id` can name a container: containerd's identifier rule (as for a namespace) and
/// no path separator, since it names files in the FIFO directory.
pub(crate) fn valid_id(id: &str) -> bool {
    valid_namespace(id)
}

fn valid_label(label: &str) -> bool {
    let mut chars = label.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_mobys() {
        let c = ContainerdConfig::new("/s.sock", "/f");
        assert_eq!(c.namespace, "plugins.moby");
        assert_eq!(c.runtime, "io.containerd.runc.v2");
        assert_eq!(c.stdout_fifo("abc"), Path::new("/f/abc-stdout"));
        assert_eq!(c.stderr_fifo("abc"), Path::new("/f/abc-stderr"));
    }

    #[test]
    fn namespaces_and_ids_are_checked() {
        for good in ["plugins.moby", "plugins.moby-1000.1000", "a", &"f".repeat(64)] {
            assert!(valid_namespace(good), "{good}");
        }
        for bad in ["", ".a", "a.", "a..b", "-a", "a/b", "../x", "a b", &"f".repeat(77)] {
            assert!(!valid_namespace(bad), "{bad}");
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
