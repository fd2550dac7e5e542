//! Every wire type of Docker's plugin system, and nothing else.
//!
//! `dockplug-protocol` owns the serde types and constants that travel between the Docker
//! daemon and its plugins: the v1 handshake ([`Manifest`]), the error body every subsystem
//! shares, and the constants of the transport (mime type, protocol scheme, discovery
//! directories).
//!
//! For v1 subsystems it owns one module per subsystem with every request and reply, a method
//! enum with the exact endpoint names and the `Implements` name: [`volume`], [`network`],
//! [`ipam`], [`authz`], [`log`] (with the length-prefixed protobuf `LogEntry` stream in
//! [`log::entry`]), [`metrics`], [`secrets`] and [`graph`]; [`subsystem`] ties them together.
//! Times are validated RFC 3339 strings ([`timestamp`]); [`body`] reads and writes bodies as
//! dockerd does (empty request bodies, first JSON value only, Go escaping).
//!
//! For v2 (managed) plugins it owns the plugin's `config.json` ([`PluginConfig`]), the
//! Engine API objects ([`Plugin`], its settings, [`PluginPrivilege`]), interface types and
//! capabilities ([`interface`]), the list filters ([`filters`]), the progress stream
//! ([`progress`]), the `X-Registry-Auth` header ([`auth`]), Docker reference names
//! ([`reference`](mod@reference)), the registry manifest ([`registry`]), the `/events` messages
//! ([`events`]) and the small print of the Engine API routes ([`engine`]). These are read
//! and written the way dockerd's Go code does ([`gojson`]): keys matched case-insensitively,
//! `null` read as the zero value, unknown keys dropped, and output byte for byte what dockerd
//! writes.
//!
//! **Architecture invariant:** this crate performs no I/O and never depends on tokio, hyper,
//! tonic or any async runtime. A caller who only needs the types pays for serde alone. The
//! layering test in `tests/it` checks this.

pub mod common;

// v1 subsystems (protov1)
pub mod authz;
mod b64;
pub mod body;
pub mod graph;
pub mod ipam;
pub mod log;
pub mod metrics;
pub mod network;
pub mod secrets;
pub mod subsystem;
pub mod timestamp;
pub mod volume;

// v2 plugins and the Engine API plugin objects (protov2)
pub mod auth;
pub mod config;
pub mod engine;
pub mod events;
pub mod filters;
pub mod gojson;
pub mod interface;
pub mod plugin;
pub mod privileges;
pub mod progress;
pub mod reference;
pub mod registry;

pub use common::{ErrorBody, Manifest};
pub use config::PluginConfig;
pub use plugin::Plugin;
pub use privileges::PluginPrivilege;
