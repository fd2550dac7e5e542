//! The v2 (managed) plugin manager of dockplug.
//!
//! `dockplug-manager` owns managed plugins: it installs them from a build context, keeps them
//! on disk (the [`Store`]), computes and checks their privileges, configures them (`set`), runs
//! them through an [`Executor`], watches them (exit handling, restarts with a backoff),
//! publishes [`Event`]s (Moby's create, remove, enable and disable, plus crash and restart),
//! keeps the tail of each plugin's output ([`Manager::logs`]; a plugin that dies while
//! starting fails `enable` with the end of its stderr), and brings them back after a
//! restart. Behaviour, on-disk layout and error texts follow Moby's plugin manager; where
//! Moby loses data or state (reference counts reset at restart, plugins shown enabled while
//! dead, a broken plugin directory stopping the daemon, a fixed 500 ms sleep at enable, a
//! non-atomic `set`), this crate does not.
//!
//! **Architecture invariant:** no containerd or tonic type in its public API. A container
//! backend plugs in through the [`Executor`] trait, which speaks the OCI runtime spec
//! ([`oci_spec::runtime::Spec`]) only. The test executor of the unit tests is `cfg(test)`.
//!
//! Modules, by domain word: [`executor`] (the seam), [`store`] (disk and lookups),
//! [`context`] (build-context extraction), [`spec`] (runtime spec), [`settable`] (`set`),
//! [`events`], [`output`] (plugin output), [`blobs`] (content store shared with pull and push),
//! [`reference`](mod@reference) (names), [`manager`] (the operations), [`error`].
//!
//! ```no_run
//! use std::time::Duration;
//! use dockplug_manager::{Executor, LookupMode, Manager, ManagerConfig, ManagerError};
//!
//! async fn install<E: Executor>(executor: E, context: std::fs::File) -> Result<(), ManagerError> {
//!     let config = ManagerConfig::new("/var/lib/docker/plugins", "/run/docker/plugins");
//!     let manager = Manager::new(config, executor).await?;
//!     manager.create_from_context(context, "vieux/sshfs").await?;
//!     manager.set("vieux/sshfs", &["DEBUG=1".to_owned()]).await?;
//!     manager.enable("vieux/sshfs", Some(Duration::from_secs(30))).await?;
//!     let plugin = manager.get("vieux/sshfs", "VolumeDriver", LookupMode::Acquire)?;
//!     println!("serving on {}", plugin.socket.display());
//!     manager.get("vieux/sshfs", "VolumeDriver", LookupMode::Release)?;
//!     manager.shutdown().await;
//!     Ok(())
//! }
//! ```

pub mod blobs;
pub mod context;
pub mod distribution;
pub mod error;
pub mod events;
pub mod executor;
mod failpoint;
mod fsutil;
mod layer;
mod lock;
pub mod manager;
mod mounts;
pub mod output;
pub mod reference;
pub mod settable;
pub mod spec;
mod steps;
pub mod store;
#[cfg(test)]
mod testexec;
#[cfg(test)]
mod tests;

pub use distribution::{Distribution, NoProgress, Progress, RemoteError, RemoteErrorKind};
pub use error::ManagerError;
pub use events::{CancelHandle, Delivery, Event, EventFilter, Subscription};
pub use executor::{
    exit_channel, BoxError, Executor, ExecutorError, Exit, ExitReceiver, ExitSender, OutputSink,
    PluginStdio, Signal,
};
pub use manager::{
    DaemonEvent, Manager, ManagerBuilder, ManagerConfig, PullOptions, RestartPolicy,
};
pub use output::{OutputLine, OutputStream};
pub use store::{Handler, LookupMode, PluginRef, RunState, SpecOpt, Store};
