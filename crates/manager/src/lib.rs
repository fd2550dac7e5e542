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

pub mod executor;

pub use executor::{
    exit_channel, BoxError, Executor, ExecutorError, Exit, ExitReceiver, ExitSender, OutputSink,
    PluginStdio, Signal,
};
