//! Docker's plugin system, rebuilt in Rust.
//!
//! This crate is the façade: it owns no logic and re-exports each dockplug layer behind a
//! feature of the same name, so a user depends on one crate and turns on the layers they
//! need. Depending on a layer's crate directly is just as supported.
//!
//! | feature    | default | re-exports            | what it gives you                                   |
//! |------------|---------|-----------------------|-----------------------------------------------------|
//! | `protocol` | yes     | [`protocol`]          | every wire type, no I/O (`dockplug-protocol`)       |
//! | `containerd` | no    | `containerd`          | the manager's executor on containerd (`dockplug-containerd`) |
//! | `manager`  | no      | `manager`             | the v2 plugin manager and its `Executor` trait (`dockplug-manager`) |
//! | `sdk`      | no      | `sdk`                 | serve a plugin from Rust: a trait per subsystem (`dockplug-sdk`) |
//! | `v1`       | no      | `v1`                  | v1 discovery, client, activation, lookup (`dockplug-v1`) |
//! | `getter`   | no      | `getter`              | one lookup over v2 and v1 plugins, volumes and authorization through them (`dockplug-getter`) |
//!
//! Features only add: turning one on never changes what another name means.
//!
//! **Architecture invariant:** the façade contains re-exports and documentation only.
//!
//! ```
//! # #[cfg(feature = "protocol")] {
//! use dockplug::protocol::Manifest;
//! let manifest = Manifest::new(["VolumeDriver"]);
//! assert!(manifest.implements("VolumeDriver"));
//! # }
//! ```

#[cfg(feature = "protocol")]
#[doc(inline)]
pub use dockplug_protocol as protocol;

#[cfg(feature = "containerd")]
#[doc(inline)]
pub use dockplug_containerd as containerd;

#[cfg(feature = "manager")]
#[doc(inline)]
pub use dockplug_manager as manager;

#[cfg(feature = "sdk")]
#[doc(inline)]
pub use dockplug_sdk as sdk;

#[cfg(feature = "v1")]
#[doc(inline)]
pub use dockplug_v1 as v1;

#[cfg(feature = "getter")]
#[doc(inline)]
pub use dockplug_getter as getter;
