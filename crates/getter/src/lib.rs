//! Moby's `plugingetter` for dockplug, and the daemon's consumers of plugins.
//!
//! `dockplug-getter` joins the two halves of the plugin system: the v2 manager's store
//! (`dockplug-manager`) and v1 discovery (`dockplug-v1`). A daemon subsystem finds its
//! driver through one [`Getter`]: v2 plugins first, then v1 ones, reference counts on v2
//! plugins so a plugin in use cannot be disabled, handlers for both kinds. Each result is a
//! [`CompatPlugin`] with a ready v1-protocol [`Client`](dockplug_v1::Client).
//!
//! It also holds the consumers a daemon without containers has:
//! * [`volume`]: the volume service (which driver owns which volume, kept in a store of its
//!   own; driver references held while a driver has volumes; `Mount`/`Unmount` for the
//!   daemon's own use);
//! * [`authz`]: the authorization chain (`AuthZPlugin.AuthZReq` / `AuthZRes` in order,
//!   Moby's semantics, failing closed within a deadline);
//! * [`drivers`]: network and IPAM drivers registered through [`Getter::handle`].
//!
//! **Architecture invariant:** no HTTP server, no Engine API types and no process
//! management: the routes that serve these live in `dockplug-engine`; the wire types are
//! `dockplug-protocol`'s. It depends on the manager only through the [`Managed`] trait's
//! implementation, so nothing here is generic over an executor.
//!
//! ```no_run
//! # async fn demo(manager: dockplug_manager::Manager<impl dockplug_manager::Executor>)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use dockplug_getter::Getter;
//! use dockplug_v1::{LocalRegistry, Registry, RegistryConfig};
//!
//! let v1 = Arc::new(Registry::new(LocalRegistry::new(), RegistryConfig::default()));
//! let getter = Getter::new(manager, Some(v1));
//! for p in getter.get_all_by_capability("VolumeDriver").await? {
//!     println!("{} (v1: {}) at {}", p.name(), p.is_v1(), p.client().addr());
//! }
//! # Ok(()) }
//! ```

pub mod authz;
pub mod drivers;
pub mod error;
pub mod getter;
pub mod managed;
pub mod plugin;
pub mod volume;

#[cfg(test)]
mod tests;

pub use error::GetError;
pub use getter::Getter;
pub use managed::{GoneHandler, Managed};
pub use plugin::CompatPlugin;
