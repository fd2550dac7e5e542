//! Queries and registrations: inspect, logs, state, list, privileges, capability lookups,
//! handlers, runtime-spec options and event subscriptions.

use std::sync::Arc;

use dockplug_protocol::filters::PluginListFilter;
use dockplug_protocol::privileges::{compute_privileges, validate_privileges};
use dockplug_protocol::{Plugin, PluginConfig, PluginPrivilege};

use super::Manager;
use crate::error::ManagerError;
use crate::events::{CancelHandle, EventFilter, Subscription};
use crate::executor::Executor;
use crate::lock::lock;
use crate::output::OutputLine;
use crate::store::{Handler, LookupMode, PluginRef, RunState, SpecOpt};

impl<E: Executor> Manager<E> {
    /// The plugin's API object.
    pub fn inspect(&self, name: &str) -> Result<Plugin, ManagerError> {
        Ok((*self.inner.store.resolve(name)?.snapshot()).clone())
    }

    /// What a plugin wrote to stdout and stderr lately, oldest line first: at most
    /// [`output::MAX_LINES`](crate::output::MAX_LINES) lines and
    /// [`output::MAX_BYTES`](crate::output::MAX_BYTES) bytes, kept in memory across its
    /// restarts (not across a restart of the manager) and dropped when it is removed. Every
    /// line also goes to `tracing` (stdout at `info`, stderr at `error`). Empty for a plugin
    /// that never ran.
    pub fn logs(&self, name: &str) -> Result<Vec<OutputLine>, ManagerError> {
        let entry = self.inner.store.resolve(name)?;
        let logs = lock(&self.inner.logs);
        Ok(logs.get(entry.id()).map(|l| l.lines()).unwrap_or_default())
    }

    /// The run state of a plugin (what `Enabled` alone cannot say).
    pub fn state(&self, name: &str) -> Result<RunState, ManagerError> {
        Ok(self.inner.store.resolve(name)?.run_state())
    }

    /// Every plugin matching `filter`, sorted by name. The objects are shared snapshots
    /// (no deep copy per call).
    pub fn list(&self, filter: &PluginListFilter) -> Vec<Arc<Plugin>> {
        let mut out: Vec<Arc<Plugin>> = self
            .inner
            .store
            .all()
            .iter()
            .map(|e| e.snapshot())
            .filter(|p| filter.matches(p))
            .collect();
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The privileges a plugin needs.
    pub fn privileges(&self, name: &str) -> Result<Vec<PluginPrivilege>, ManagerError> {
        Ok(compute_privileges(&self.inner.store.resolve(name)?.plugin().config))
    }

    /// Checks `granted` against what `config` requires (for pull and upgrade).
    pub fn validate_privileges(
        config: &PluginConfig,
        granted: &[PluginPrivilege],
    ) -> Result<(), ManagerError> {
        Ok(validate_privileges(&compute_privileges(config), granted)?)
    }

    /// Moby's `Store.Get` (capability lookup with reference counting).
    pub fn get(
        &self,
        name: &str,
        capability: &str,
        mode: LookupMode,
    ) -> Result<PluginRef, ManagerError> {
        self.inner.store.get(name, capability, mode, &self.inner.config.exec_root)
    }

    /// Enabled plugins that declare `docker.<capability>`.
    pub fn get_all_by_capability(&self, capability: &str) -> Vec<PluginRef> {
        self.inner
            .store
            .enabled_with_cap(capability)
            .iter()
            .map(|e| self.inner.store.plugin_ref(e, &self.inner.config.exec_root))
            .collect()
    }

    /// Registers a callback for plugins declaring `docker.<capability>/1.0`: called at each
    /// enable, and now for every such plugin already enabled.
    pub fn handle(&self, capability: &str, handler: impl Fn(&PluginRef) + Send + Sync + 'static) {
        let handler: Handler = Arc::new(handler);
        self.inner.store.add_handler(capability, handler.clone());
        for e in self.inner.store.enabled_with_cap(capability) {
            let types = e.plugin().config.interface.types().to_vec();
            let key = format!("docker.{}/1.0", capability.to_lowercase());
            if types.iter().any(|t| t.to_string() == key) && e.run_state() == RunState::Running {
                handler(&self.inner.store.plugin_ref(&e, &self.inner.config.exec_root));
            }
        }
    }

    /// Registers a runtime-spec change for plugins declaring `docker.<capability>/1.0`. It
    /// applies to every later start, including plugins that already exist.
    pub fn register_runtime_opt(
        &self,
        capability: &str,
        opt: impl Fn(&mut oci_spec::runtime::Spec) + Send + Sync + 'static,
    ) {
        let opt: SpecOpt = Arc::new(opt);
        self.inner.store.add_spec_opt(capability, opt);
    }

    /// Subscribes to events. `filters: None` delivers everything; `Some(vec![])` nothing.
    /// At most `buffer` events wait; beyond that the subscriber gets a
    /// [`Delivery::Missed`](crate::Delivery::Missed) count instead.
    pub fn subscribe(
        &self,
        buffer: usize,
        filters: Option<Vec<EventFilter>>,
    ) -> (Subscription, CancelHandle) {
        self.inner.events.subscribe(buffer, filters)
    }
}
