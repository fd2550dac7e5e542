//! The v2 (managed) plugin manager of dockplug.
//!
//! `dockplug-manager` owns managed plugins: it installs them from a build context, keeps them
//! on disk (the store), computes and checks their privileges, configures them (`set`), runs
//! them through an [`Executor`], watches them (exit handling, restarts), publishes events, and
//! brings them back after a restart.
//!
//! **Architecture invariant:** no containerd or tonic type in its public API. A container
//! backend plugs in through the [`Executor`] trait, which speaks the OCI runtime spec
//! ([`oci_spec::runtime::Spec`]) only.

pub mod blobs;
pub mod context;
pub mod error;
pub mod events;
pub mod executor;
mod failpoint;
mod fsutil;
pub mod manager;
mod mounts;
pub mod reference;
pub mod settable;
pub mod spec;
pub mod store;
#[cfg(test)]
mod testexec;
#[cfg(test)]
mod tests;

pub use error::ManagerError;
pub use events::{CancelHandle, Delivery, Event, EventFilter, Subscription};
pub use executor::{
    exit_channel, BoxError, Executor, ExecutorError, Exit, ExitReceiver, ExitSender, OutputSink,
    PluginStdio, Signal,
};
pub use manager::{Manager, ManagerConfig, RestartPolicy};
pub use store::{Handler, LookupMode, PluginRef, RunState, SpecOpt, Store};
