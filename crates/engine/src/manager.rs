//! [`Backend`] for the manager: every route on `dockplug_manager::Manager`.
//!
//! Pull, push, upgrade and the remote privileges query need the manager's registry side;
//! until it has one, those routes answer 501 (`... is not implemented by this daemon`)
//! instead of pretending.

use std::sync::Arc;
use std::time::Duration;

use dockplug_manager::{DaemonEvent, Executor, Manager};
use dockplug_protocol::events::{EventActor, PLUGIN_EVENT_TYPE};
use dockplug_protocol::filters::PluginListFilter;
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
            let actor = EventActor {
                id: e.id.to_owned(),
                attributes: [("name".to_owned(), e.name.to_owned())].into(),
            };
            sink.log(PLUGIN_EVENT_TYPE, e.action, actor);
        });
    }

    async fn info(&self) -> PluginsInfo {
        let plugins = Manager::list(self, &PluginListFilter::all());
        PluginsInfo::from_plugins(plugins.iter().map(|p| &**p))
    }
}
