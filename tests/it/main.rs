//! dockplug's integration tests: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod containerd;
mod containerd_e2e;
mod crash;
mod daemon;
mod daemon_plugins;
mod distribution;
mod dockerd_localvol;
mod hostile;
mod layering;
mod registry_kit;
mod sdk;
mod sdk_localvol;
mod sdk_subsystems;
mod support;
mod v1;
