//! The v2 side of the getter: what it needs of the manager, as a trait ([`Managed`]) so the
//! getter and its consumers are not generic over the manager's executor.

use std::sync::Arc;

use dockplug_manager::{Delivery, Event, Executor, LookupMode, Manager, ManagerError, PluginRef};

/// A callback for a plugin name that went away from the enabled set (disabled or removed).
pub type GoneHandler = Arc<dyn Fn(&str) + Send + Sync>;

/// What the getter asks of the v2 manager (implemented for [`Manager`]).
pub trait Managed: Send + Sync + 'static {
    /// Moby's `Store.Get` for v2 plugins ([`Manager::get`]).
    fn get(
        &self,
        name: &str,
        capability: &str,
        mode: LookupMode,
    ) -> Result<PluginRef, ManagerError>;

    /// Enabled plugins with the capability ([`Manager::get_all_by_capability`]).
    fn get_all_by_capability(&self, capability: &str) -> Vec<PluginRef>;

    /// Runs `handler` at each enable of a plugin declaring `docker.<capability>/1.0`, and now
    /// for those already running ([`Manager::handle`]).
    fn handle(&self, capability: &str, handler: Arc<dyn Fn(&PluginRef) + Send + Sync>);

    /// Runs `gone` with the name of each plugin that is disabled or removed from now on
    /// (Moby's manager tells the authorization middleware at disable). Needs a tokio
    /// runtime.
    fn on_gone(&self, gone: GoneHandler);
}

impl<E: Executor> Managed for Manager<E> {
    fn get(
        &self,
        name: &str,
        capability: &str,
        mode: LookupMode,
    ) -> Result<PluginRef, ManagerError> {
        Manager::get(self, name, capability, mode)
    }

    fn get_all_by_capability(&self, capability: &str) -> Vec<PluginRef> {
        Manager::get_all_by_capability(self, capability)
    }

    fn handle(&self, capability: &str, handler: Arc<dyn Fn(&PluginRef) + Send + Sync>) {
        Manager::handle(self, capability, move |p| handler(p));
    }

    fn on_gone(&self, gone: GoneHandler) {
        let (mut events, _cancel) = self.subscribe(256, None);
        tokio::spawn(async move {
            // `_cancel` lives as long as the task: the subscription ends with the manager.
            let _cancel = _cancel;
            while let Some(d) = events.recv().await {
                match d {
                    Delivery::Event(Event::Disable(p) | Event::Remove(p)) => gone(&p.name),
                    Delivery::Missed(n) => {
                        tracing::warn!(missed = n, "plugin events missed by the getter");
                    }
                    _ => {}
                }
            }
        });
    }
}
