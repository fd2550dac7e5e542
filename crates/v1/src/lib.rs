//! Docker v1 plugins from the caller's side: discovery, the HTTP client, activation and
//! lookup.
//!
//! * [`LocalRegistry`] finds plugins by name in a socket directory (`/run/docker/plugins`)
//!   and spec directories (`/etc/docker/plugins`, `/usr/lib/docker/plugins`), or any
//!   directories the caller passes, with Moby's precedence.
//! * [`Client`] calls a plugin: `POST /<Method>` over a unix socket or TCP (TLS with rustls),
//!   JSON in and out, connections kept alive, Moby's retry backoff without its duplicate
//!   deliveries (see the [`client`] module).
//! * [`Plugin`] activates once through `POST /Plugin.Activate`, shared by concurrent callers.
//! * [`Registry`] is the lookup state a caller owns: [`Registry::get`], [`Registry::get_all`],
//!   [`Registry::handle`], with a short-lived dead mark for sockets that refuse connections.
//!
//! The wire contract is Moby's (`pkg/plugins`). Its known defects, decided for this layer (the
//! numbers are the entries of `docs/DIFFERENCES.md`, which name the Moby code of each):
//!
//! | difference | Moby | here |
//! |-------|------|------|
//! | 1 rootless spec path | inverted test: `/etc/docker/plugins` when XDG resolves | fixed: `$XDG_CONFIG_HOME/docker/plugins` ([`discovery::spec_dirs_for_env`]) |
//! | 2 scan | skips symlinked sockets, lists dirs named `x.spec`, duplicates | fixed: lists exactly what [`LocalRegistry::plugin`] resolves, each name once |
//! | 3 addresses | `unix://rel` dials the URL host; TCP URL path dropped | relative unix paths rejected; URL path dropped (kept: wire) |
//! | 4 retries | emptied body resent; timeouts retried (duplicate delivery) | fixed: consumed bodies never resent, timeouts never retried |
//! | 5 status | only 200 is success; raw body when `Err` is absent | kept (wire contract) |
//! | 6 `.json` TLS | no `CAFile` forces insecure; `Name` ignored | kept (spec files rely on it) |
//! | 7 missing plugin | looked up again for ≈15 s | fixed: fails at once; [`Registry::get_waiting`] waits when asked |
//! | 8 late handler | re-runs *all* handlers of active plugins | fixed: each handler sees each plugin once |
//!
//! Also beyond Moby: activation is bounded (30 s by default, [`PluginOptions`]); a refusing
//! socket is skipped for a short time ([`RegistryConfig::dead_for`]); a hostile spec file
//! (huge, FIFO, symlink loop) or reply (huge, garbage, cut short, never sent) is a typed error
//! within its bound.
//!
//! Like Moby's transport, TCP plugins are reached through the environment's proxy
//! ([`ProxyConfig`]), replies on TCP may come gzip-compressed, a `.json` spec's
//! `TLSConfig.MinVersion` is honoured, and idle connections are closed after 30 s (at most 6
//! kept). Every call carries our own `User-Agent` ([`USER_AGENT`]).
//!
//! **Architecture invariant:** this crate never depends on the v2 manager, on containerd or
//! on tonic; it speaks the wire types of `dockplug-protocol` and nothing else of ours.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dockplug_v1::Error> {
//! use dockplug_v1::{LocalRegistry, Registry, RegistryConfig};
//! let dirs = LocalRegistry::with_dirs(["/tmp/plugins"], ["/tmp/specs"]);
//! let registry = Registry::new(dirs, RegistryConfig::default());
//! for plugin in registry.get_all("VolumeDriver").await? {
//!     println!("{} at {}", plugin.name(), plugin.addr());
//! }
//! # Ok(()) }
//! ```

pub mod address;
pub mod client;
pub mod discovery;
pub mod plugin;
pub mod registry;
pub mod tls;

use std::sync::Arc;

pub use address::{Address, AddressError};
pub use client::{
    ByteStream, CallError, CallOptions, Client, ClientBuilder, ClientError, Proxy, ProxyConfig,
    ProxyError, RetryPolicy, USER_AGENT,
};
pub use discovery::{DiscoveryError, LocalRegistry, PluginSpec, SocketId};
pub use plugin::{Plugin, PluginOptions};
pub use registry::{Registry, RegistryConfig};
pub use tls::{TlsError, TlsOptions};

/// Why a lookup or a call through the registry failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plugin cannot be discovered (not found, bad name, broken spec file).
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The plugin does not list the interface in its manifest.
    #[error(
        "plugin does not implement the requested driver: plugin={name:?}, requested implementation={interface:?}"
    )]
    NotImplemented {
        /// The plugin.
        name: String,
        /// The interface asked for.
        interface: String,
    },
    /// The plugin's socket refused connections moments ago; it is not tried again yet.
    #[error("plugin {name} at {addr} refused connections recently")]
    Unavailable {
        /// The plugin.
        name: String,
        /// Its address.
        addr: String,
    },
    /// The plugin's client cannot be built (bad TLS files).
    #[error("plugin {name}: cannot set up its client")]
    Client {
        /// The plugin.
        name: String,
        /// Why.
        #[source]
        source: ClientError,
    },
    /// `Plugin.Activate` failed; the error is kept in the plugin.
    #[error("plugin {name}: activation failed")]
    Activation {
        /// The plugin.
        name: String,
        /// The call's error.
        #[source]
        source: Arc<CallError>,
    },
    /// A call failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

impl Error {
    /// Whether no plugin of that name was found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Discovery(DiscoveryError::NotFound { .. }))
    }

    /// Whether the plugin does not implement the interface asked for.
    pub fn is_not_implemented(&self) -> bool {
        matches!(self, Error::NotImplemented { .. })
    }

    /// The call error behind this error, if any.
    pub fn call_error(&self) -> Option<&CallError> {
        match self {
            Error::Activation { source, .. } => Some(source),
            Error::Call(e) => Some(e),
            _ => None,
        }
    }
}
