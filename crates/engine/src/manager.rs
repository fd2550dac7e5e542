//! [`Backend`] for the manager: every route on `dockplug_manager::Manager`.
//!
//! The manager reaches registries through a [`Distribution`] it is handed per call, so a
//! bare [`Manager`] serves the local routes and answers pull, push, upgrade and the remote
//! privileges query with 501 (`... is not implemented by this daemon`), while
//! [`ManagerBackend`] (a manager and its registry client) serves them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dockplug_manager::manager::PullOptions;
use dockplug_manager::{DaemonEvent, Distribution, Executor, Manager};
use dockplug_protocol::events::{EventActor, PLUGIN_EVENT_TYPE};
use dockplug_protocol::filters::PluginListFilter;
use dockplug_protocol::progress::JsonMessage;
use dockplug_protocol::reference::Reference;
use dockplug_protocol::{Plugin, PluginPrivilege};

use crate::backend::{
    Backend, BuildContext, EventSink, PluginsInfo, PrivilegesRequest, Progress, PullRequest,
    PushRequest, UpgradeRequest,
};
use crate::error::ApiError;

impl<E: Executor> Backend for Manager<E> {
    async fn list(&self, filter: &PluginListFilter) -> Result<Vec<Arc<Plugin>>, ApiError> {
        Ok(Manager::list(self, filter))
    }

    async fn inspect(&self, name: &str) -> Result<Plugin, ApiError> {
        Ok(Manager::inspect(self, name)?)
    }

    async fn privileges(
        &self,
        _request: PrivilegesRequest,
    ) -> Result<Vec<PluginPrivilege>, ApiError> {
        Err(ApiError::not_implemented("plugin privileges of a remote"))
    }

    async fn pull(&self, _request: PullRequest, _progress: Progress) -> Result<(), ApiError> {
        Err(ApiError::not_implemented("plugin pull"))
    }

    async fn push(&self, _request: PushRequest, _progress: Progress) -> Result<(), ApiError> {
        Err(ApiError::not_implemented("plugin push"))
    }

    async fn upgrade(&self, _request: UpgradeRequest, _progress: Progress) -> Result<(), ApiError> {
        Err(ApiError::not_implemented("plugin upgrade"))
    }

    async fn remove(&self, name: &str, force: bool) -> Result<(), ApiError> {
        Ok(Manager::remove(self, name, force).await?)
    }

    async fn enable(&self, name: &str, timeout: Option<Duration>) -> Result<(), ApiError> {
        Manager::enable(self, name, timeout).await?;
        Ok(())
    }

    async fn disable(&self, name: &str, force: bool) -> Result<(), ApiError> {
        Manager::disable(self, name, force).await?;
        Ok(())
    }

    async fn set(&self, name: &str, args: Vec<String>) -> Result<(), ApiError> {
        Ok(Manager::set(self, name, &args).await?)
    }

    async fn create(&self, name: &str, context: BuildContext) -> Result<(), ApiError> {
        self.create_from_context(context, name).await?;
        Ok(())
    }

    fn watch_events(&self, sink: EventSink) {
        self.on_daemon_event(move |e: &DaemonEvent<'_>| {
            log_plugin_event(&sink, e.action, e.id, e.name)
        });
    }

    async fn info(&self) -> PluginsInfo {
        let plugins = Manager::list(self, &PluginListFilter::all());
        PluginsInfo::from_plugins(plugins.iter().map(|p| &**p))
    }
}

/// Logs a plugin event as Moby's `LogPluginEvent` does: actor ID and a `name` attribute.
fn log_plugin_event(sink: &EventSink, action: &str, id: &str, name: &str) {
    let actor =
        EventActor { id: id.to_owned(), attributes: [("name".to_owned(), name.to_owned())].into() };
    sink.log(PLUGIN_EVENT_TYPE, action, actor);
}

/// The `pull` events the manager reported, by plugin name, so an upgrade the manager did not
/// report is logged once (Moby's `Upgrade` logs `pull`).
#[derive(Debug, Default)]
struct PullEvents {
    sink: OnceLock<EventSink>,
    seen: Mutex<HashMap<String, u64>>,
}

impl PullEvents {
    fn count(&self, name: &str) -> u64 {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(name).copied().unwrap_or(0)
    }
}

/// A manager and the registry client its pulls, pushes and privileges queries use: the
/// backend of a daemon.
#[derive(Debug, Clone)]
pub struct ManagerBackend<E: Executor, D> {
    manager: Manager<E>,
    registry: Arc<D>,
    pulls: Arc<PullEvents>,
}

impl<E: Executor, D: Distribution + 'static> ManagerBackend<E, D> {
    /// A backend over `manager` reaching registries through `registry`.
    pub fn new(manager: Manager<E>, registry: D) -> Self {
        Self { manager, registry: Arc::new(registry), pulls: Arc::default() }
    }

    /// The manager.
    pub fn manager(&self) -> &Manager<E> {
        &self.manager
    }
}

/// The manager's progress sink over the route's [`Progress`].
fn sink(progress: &Progress) -> impl Fn(JsonMessage) + Send + Sync + '_ {
    move |m: JsonMessage| {
        progress.emit(&m);
    }
}

impl<E: Executor, D: Distribution + 'static> Backend for ManagerBackend<E, D> {
    async fn list(&self, filter: &PluginListFilter) -> Result<Vec<Arc<Plugin>>, ApiError> {
        Backend::list(&self.manager, filter).await
    }

    async fn inspect(&self, name: &str) -> Result<Plugin, ApiError> {
        Backend::inspect(&self.manager, name).await
    }

    async fn privileges(
        &self,
        request: PrivilegesRequest,
    ) -> Result<Vec<PluginPrivilege>, ApiError> {
        let auth = &request.registry.auth;
        Ok(self.manager.remote_privileges(&*self.registry, &request.remote, auth).await?)
    }

    async fn pull(&self, request: PullRequest, progress: Progress) -> Result<(), ApiError> {
        // The API installs disabled: the client enables afterwards (`enable?timeout=0`).
        let options = PullOptions::default().disabled();
        let sink = sink(&progress);
        self.manager
            .pull(
                &*self.registry,
                &request.remote,
                Some(&request.name),
                &request.registry.auth,
                &request.privileges,
                &sink,
                &options,
            )
            .await?;
        Ok(())
    }

    async fn push(&self, request: PushRequest, progress: Progress) -> Result<(), ApiError> {
        let sink = sink(&progress);
        self.manager.push(&*self.registry, &request.name, &request.registry.auth, &sink).await?;
        Ok(())
    }

    async fn upgrade(&self, request: UpgradeRequest, progress: Progress) -> Result<(), ApiError> {
        let before = Manager::inspect(&self.manager, &request.name)
            .map(|p| self.pulls.count(&p.name))
            .unwrap_or(0);
        let sink = sink(&progress);
        let plugin = self
            .manager
            .upgrade(
                &*self.registry,
                &request.name,
                &request.remote,
                &request.registry.auth,
                &request.privileges,
                &sink,
            )
            .await?;
        if self.pulls.count(&plugin.name) == before {
            if let (Some(events), Ok(remote)) =
                (self.pulls.sink.get(), Reference::parse(&request.remote))
            {
                let remote = remote.with_default_tag().to_string();
                log_plugin_event(events, "pull", &remote, &plugin.name);
            }
        }
        Ok(())
    }

    async fn remove(&self, name: &str, force: bool) -> Result<(), ApiError> {
        Backend::remove(&self.manager, name, force).await
    }

    async fn enable(&self, name: &str, timeout: Option<Duration>) -> Result<(), ApiError> {
        Backend::enable(&self.manager, name, timeout).await
    }

    async fn disable(&self, name: &str, force: bool) -> Result<(), ApiError> {
        Backend::disable(&self.manager, name, force).await
    }

    async fn set(&self, name: &str, args: Vec<String>) -> Result<(), ApiError> {
        Backend::set(&self.manager, name, args).await
    }

    async fn create(&self, name: &str, context: BuildContext) -> Result<(), ApiError> {
        Backend::create(&self.manager, name, context).await
    }

    fn watch_events(&self, sink: EventSink) {
        let _ = self.pulls.sink.set(sink.clone());
        let pulls = self.pulls.clone();
        self.manager.on_daemon_event(move |e: &DaemonEvent<'_>| {
            if e.action == "pull" {
                let mut seen = pulls.seen.lock().unwrap_or_else(|e| e.into_inner());
                *seen.entry(e.name.to_owned()).or_default() += 1;
            }
            log_plugin_event(&sink, e.action, e.id, e.name);
        });
    }

    async fn info(&self) -> PluginsInfo {
        Backend::info(&self.manager).await
    }
}
