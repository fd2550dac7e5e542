//! dockplug-v1 against in-process plugin servers on temp-dir sockets and loopback ports:
//! Moby's `pkg/plugins` tests (`pkg/plugins/client_test.go`, `discovery_test.go`, `plugin_test.go`) and hostile input.

mod cli;
mod client;
mod discovery;
mod hostile;
mod parity;
mod registry;
pub mod server;

use std::time::Duration;

use dockplug_v1::RetryPolicy;

/// A retry schedule short enough for tests: 10, 20, 40, 80 ms, give up at 200 ms.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(200))
}

/// A temp dir with a short path (unix socket paths are limited to 107 bytes).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("dp-v1-").tempdir_in("/tmp").unwrap()
}
