//! Fuzz target bodies for every parser in dockplug.
//!
//! Each target is one function over `&[u8]` that feeds the bytes to a parser the way the
//! daemon or a plugin would meet them, then checks an invariant of what came out (a value we
//! decoded re-encodes and decodes to itself, an incremental decoder agrees with the one-shot
//! one, an extracted build context never leaves its directory, ...). A target returns
//! normally for every input a parser may refuse; it panics only on a real defect: a panic
//! inside a parser, or a broken invariant.
//!
//! The same functions run two ways:
//! * deep, under libFuzzer: `cargo xtask fuzz <name>` (the harness in `fuzz/`, one
//!   `fuzz_target!` per entry of [`TARGETS`]);
//! * bounded, on stable, in `cargo xtask ci`: this crate's property tests (proptest) run each
//!   target over its seed corpus (`fuzz/corpus/<name>/`), mutations of the seeds and
//!   generated structured inputs, for a few seconds each.
//!
//! A crash found by either becomes a regression test in this crate (`src/regressions.rs`).
//!
//! **Architecture invariant:** a test-only crate (`publish = false`): nothing depends on it
//! but the fuzz harness; it uses only the public APIs of the crates it exercises, so what it
//! reaches is what a daemon or a plugin author reaches.

mod auth;
mod bodies;
mod challenge;
mod config;
mod context;
mod filters;
mod frames;
mod reference;
mod registry;
mod spec;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod regressions;

pub use auth::registry_auth;
pub use bodies::{
    activate_bodies, authz_bodies, graph_bodies, ipam_bodies, log_bodies, network_bodies,
    secrets_bodies, volume_bodies,
};
pub use challenge::registry_challenge;
pub use config::plugin_config;
pub use context::build_context;
pub use filters::engine_query;
pub use frames::log_frames;
pub use reference::reference_name;
pub use registry::registry_manifest;
pub use spec::spec_file;

/// One fuzz target: its name (the cargo-fuzz binary and the corpus directory) and its body.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name, as `cargo xtask fuzz <name>` takes it.
    pub name: &'static str,
    /// What it parses.
    pub about: &'static str,
    /// The body: returns for every input, panics only on a defect.
    pub run: fn(&[u8]),
}

/// Every target (`cargo xtask fuzz --list` prints their names sorted, one a line).
pub const TARGETS: &[Target] = &[
    Target {
        name: "spec_file",
        about: "v1 discovery: a .spec or .json spec file, and plugin addresses",
        run: spec_file,
    },
    Target {
        name: "plugin_config",
        about: "a v2 plugin's config.json, Go-style decoding",
        run: plugin_config,
    },
    Target {
        name: "activate_bodies",
        about: "Plugin.Activate manifest and the shared error body",
        run: activate_bodies,
    },
    Target {
        name: "volume_bodies",
        about: "VolumeDriver requests and replies",
        run: volume_bodies,
    },
    Target {
        name: "network_bodies",
        about: "NetworkDriver requests and replies",
        run: network_bodies,
    },
    Target { name: "ipam_bodies", about: "IpamDriver requests and replies", run: ipam_bodies },
    Target { name: "authz_bodies", about: "AuthZPlugin requests and replies", run: authz_bodies },
    Target {
        name: "log_bodies",
        about: "LogDriver requests and replies (metrics share their empty bodies)",
        run: log_bodies,
    },
    Target {
        name: "secrets_bodies",
        about: "SecretProvider requests and replies",
        run: secrets_bodies,
    },
    Target {
        name: "graph_bodies",
        about: "GraphDriver requests, replies and the ApplyDiff query",
        run: graph_bodies,
    },
    Target {
        name: "log_frames",
        about: "the length-prefixed LogEntry stream (protobuf frames)",
        run: log_frames,
    },
    Target {
        name: "build_context",
        about: "a tar or tar.gz plugin build context extracted by the manager",
        run: build_context,
    },
    Target {
        name: "registry_manifest",
        about: "registry manifests, indexes and descriptors",
        run: registry_manifest,
    },
    Target {
        name: "registry_challenge",
        about: "registry replies: WWW-Authenticate challenges, platform choice in an index",
        run: registry_challenge,
    },
    Target { name: "registry_auth", about: "the X-Registry-Auth header", run: registry_auth },
    Target {
        name: "reference_name",
        about: "Docker reference names of plugins",
        run: reference_name,
    },
    Target {
        name: "engine_query",
        about: "Engine API query values: list filters, timeout, booleans",
        run: engine_query,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Splits a selector byte off the input: which of `n` variants to run, and the rest.
pub(crate) fn select(data: &[u8], n: usize) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) => (usize::from(b) % n, rest),
        None => (0, data),
    }
}
