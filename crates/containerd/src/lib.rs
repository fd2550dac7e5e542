//! Runs dockplug's managed plugins as containerd tasks: the manager's
//! [`Executor`](dockplug_manager::Executor) over a containerd socket, the way Moby runs its
//! plugins.
//!
//! [`ContainerdExecutor`] talks gRPC to the containerd socket the caller configures
//! ([`ContainerdConfig`]; never hard-coded), in the namespace it configures (default
//! `plugins.moby`), with runtime `io.containerd.runc.v2`:
//!
//! * **create**: a container from the raw OCI spec (the plugin rootfs is `spec.root.path`;
//!   no image, no snapshot), a stale container of the same ID replaced (its task killed and
//!   deleted first), a task with no stdin whose stdout and stderr are FIFOs
//!   (`<fifo_dir>/<id>-stdout`, `-stderr`) pumped into the manager's sinks, then started. A
//!   failed create leaves nothing behind. What a manager killed mid-way can leave for the id
//!   is cleared first: a task containerd still holds but no longer shows (a delete cut short
//!   after the shim had deleted it; containerd refuses a new task of that id until it is
//!   deleted) and a shim containerd lost (found by its command line, killed with its
//!   children).
//! * **restore** after a restart of the manager: a running task is re-attached (same FIFOs);
//!   a stopped or never-started one is deleted with its container, and a lost shim of the
//!   id is killed.
//! * **signal**, **is_running**: on the init process.
//! * **exits**: one subscription to the namespace's `/tasks/exit` events. An exit of a
//!   tracked process drains its output, deletes task and container, and is then reported on
//!   the exit stream. When the event stream breaks (containerd restarted), the executor
//!   subscribes again and reconciles with the task list, so no exit is missed. A subscription
//!   counts as live only once a marker event of our own (topic `/dockplug/events-sync`, which
//!   no filter on `^/tasks/` matches) has come back through it: containerd sends nothing
//!   before its first event, and reconciling earlier could miss an exit.
//!
//! Better than Moby where nothing on the wire depends on it: the FIFOs live in a private
//! directory instead of the one mounted into the plugin; an exit counts only for the PID we
//! started, so a stale container's exit never restarts the current plugin.
//!
//! **Architecture invariant:** this is the only crate that depends on `containerd-client` or
//! `tonic` (checked by `tests/it/layering.rs`); none of their types reaches the manager, which
//! sees only the [`Executor`](dockplug_manager::Executor) trait. Its own API shows
//! `tonic` only inside [`Error`] sources.

mod config;
mod connection;
mod container;
mod error;
mod events;
mod executor;
mod shim;
mod stdio;

pub use config::{ContainerdConfig, DEFAULT_NAMESPACE, DEFAULT_RUNTIME};
pub use error::{Error, EventsEnded};
pub use executor::ContainerdExecutor;
