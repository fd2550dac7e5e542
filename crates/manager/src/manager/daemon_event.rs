//! Daemon-level plugin events: the lines a daemon writes to its own `/events` stream.

use std::sync::Arc;

use super::Manager;
use crate::executor::Executor;
use crate::lock;

/// A daemon-level plugin event (see [`Manager::on_daemon_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DaemonEvent<'a> {
    /// `Actor.ID`: the plugin ID.
    pub id: &'a str,
    /// `Actor.Attributes.name`.
    pub name: &'a str,
    /// `Action`: `create`, `enable`, `disable` or `remove`.
    pub action: &'static str,
}

pub(super) type DaemonEventSink = Arc<dyn Fn(&DaemonEvent<'_>) + Send + Sync>;

impl<E: Executor> Manager<E> {
    /// Sets where the daemon-level events go (Moby's `LogPluginEvent`, shown by the Engine's
    /// `/events` as type `plugin`): `create` (plugin ID, normalised name), `enable`,
    /// `disable` and `remove` (plugin ID, the name or ID exactly as the caller passed it).
    /// None for `set`, crash restarts or restore, as in Moby.
    pub fn on_daemon_event(&self, sink: impl Fn(&DaemonEvent<'_>) + Send + Sync + 'static) {
        *lock::write(&self.inner.daemon_events) = Some(Arc::new(sink));
    }

    pub(super) fn daemon_event(&self, id: &str, name: &str, action: &'static str) {
        let sink = lock::read(&self.inner.daemon_events).clone();
        if let Some(sink) = sink {
            sink(&DaemonEvent { id, name, action });
        }
    }
}
