//! dockplug's integration tests: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod containerd;
mod layering;
mod support;
mod v1;
