//! Serve a Docker plugin from Rust.
//!
//! `dockplug-sdk` owns the plugin author's side of Docker's plugin protocols: one trait per
//! subsystem, with default methods for the optional calls, and one server that serves any
//! set of them on a unix socket or on TCP (optionally TLS), with the activation manifest
//! following from what is served.
//!
//! | subsystem | trait | `Implements` |
//! |-----------|-------|--------------|
//! | volumes | [`VolumeDriver`] | `VolumeDriver` |
//! | networks | [`NetworkDriver`] | `NetworkDriver` |
//! | address management | [`IpamDriver`] | `IpamDriver` |
//! | authorization | [`Authz`] | `authz` |
//! | logging | [`LogDriver`] (and [`log::LogStream`] for the FIFO) | `LogDriver` |
//! | metrics | [`MetricsCollector`] | `MetricsCollector` |
//! | swarm secrets | [`SecretProvider`] | `secretprovider` |
//!
//! What the server guarantees, so a plugin is right on the first try:
//! * success is exactly `200` with a JSON body (`{}` when there is nothing to say, never an
//!   empty body); a failure from the author's code is a `500` with `{"Err": "..."}` (IPAM also
//!   gets its `Error` key), which is what dockerd reads on every subsystem;
//! * a request body that does not parse gets a `400` naming the method, an unknown method a
//!   `404` (dockerd's "optional endpoint" rule relies on it), a panicking handler a `500`, and
//!   the server keeps serving;
//! * a stale socket file is replaced, a live one is refused; the socket's mode and group are
//!   settable; a `.spec`/`.json` discovery file can be written;
//! * graceful shutdown: on a future or on SIGTERM/SIGINT, calls in flight finish, then the
//!   socket and discovery files are removed;
//! * bounded clients ([`Limits`]): connections at once, header/idle/body/write timeouts, header
//!   and body sizes; a connection over a limit is closed and its descriptor freed.
//!
//! ```no_run
//! # use dockplug_sdk::{Plugin, UnixListen, VolumeDriver};
//! # async fn serve(driver: impl VolumeDriver) -> Result<(), dockplug_sdk::ServeError> {
//! let plugin = Plugin::builder().volume(driver).build();
//! let server = plugin.bind_unix(UnixListen::new("/run/docker/plugins/myvol.sock")).await?;
//! server.run().await // until SIGTERM or SIGINT
//! # }
//! ```
//!
//! **Architecture invariant:** the SDK depends on `dockplug-protocol` for every wire type and
//! never on the v1 client, the manager or containerd. It has no knowledge of any one plugin.
//! **API boundary:** yes: plugin authors implement these traits.

pub mod authz;
mod error;
pub mod ipam;
mod limits;
mod listen;
pub mod log;
pub mod metrics;
pub mod network;
mod router;
pub mod secrets;
mod server;
pub mod volume;

pub use authz::Authz;
pub use dockplug_protocol as protocol;
pub use error::{PluginError, PluginResult, ServeError};
pub use ipam::IpamDriver;
pub use limits::Limits;
pub use listen::{SpecFile, TcpListen, UnixListen};
pub use log::LogDriver;
pub use metrics::MetricsCollector;
pub use network::NetworkDriver;
pub use secrets::SecretProvider;
pub use server::{Address, Plugin, PluginBuilder, Server, DEFAULT_DRAIN};
pub use volume::VolumeDriver;
