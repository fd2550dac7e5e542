//! The Engine API's plugin endpoints, as dockerd serves them to the docker CLI and other
//! clients: `/plugins…`, `/_ping`, `/version`, a minimal `/info` and `/events`.
//!
//! `dockplug-engine` owns the HTTP side of a daemon: routing (every route at its bare path
//! and under `/v{version}`, Moby's version checks and headers), reading requests as dockerd
//! reads them (query values, `X-Registry-Auth`, JSON bodies with their `Content-Type`
//! checks, streamed build contexts), and writing replies as dockerd writes them (JSON with
//! `Content-Type: application/json`, `{"message": ...}` errors with Moby's status per error
//! kind, newline-delimited progress streams, the event stream). The work is done by a
//! [`Backend`] (Moby's router/backend split), implemented here for
//! [`dockplug_manager::Manager`].
//!
//! **Architecture invariant:** no process management, containerd, registry or disk access
//! of its own: everything a plugin route changes goes through the [`Backend`] (the plugin
//! consumers, `volumes` and `authz`, through `dockplug-getter`). It never depends on
//! `dockplug-containerd` or tonic; it serves HTTP/1 over unix sockets with plain hyper 1.
//!
//! Where it answers differently from dockerd, on purpose: a remote or plugin name that is not
//! a valid reference, and a `since`/`until` that is not a timestamp, are 400s (dockerd: 500);
//! `enable?timeout=0` (what `docker plugin install` sends) and negative timeouts mean the
//! backend's default deadline; `upgrade` under API versions before 1.26 is `page not found`,
//! as on a daemon without the route; request bodies are bounded
//! ([`EngineConfig::max_json_body`], [`EngineConfig::max_context_body`]) and may not stall
//! ([`EngineConfig::body_idle_timeout`]); headers must arrive within
//! [`EngineConfig::header_read_timeout`] (dockerd: 5 minutes); the version headers are on
//! every reply, `page not found` included.
//!
//! Room to grow: [`EngineBuilder::route`] adds routes (volumes, ...), and
//! [`EngineBuilder::middleware`] a request/response hook (authorization plugins); the
//! daemon publishes its other events through [`Engine::events`].
//!
//! ```no_run
//! use dockplug_engine::Engine;
//! use dockplug_manager::{Executor, Manager};
//!
//! async fn serve<E: Executor>(manager: Manager<E>) -> Result<(), Box<dyn std::error::Error>> {
//!     let listener = tokio::net::UnixListener::bind("/run/dockplug.sock")?;
//!     let engine = Engine::new(manager.clone());
//!     let shutdown = async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     };
//!     engine.serve(listener, shutdown).await?;
//!     manager.shutdown().await;
//!     Ok(())
//! }
//! ```

// The daemon's plugin consumers over dockplug-getter (volumes, authorization, /info).
pub mod authz;
pub mod backend;
pub mod body;
pub mod consumers;
pub mod error;
pub mod events;
mod manager;
pub mod middleware;
mod plugins;
mod remote;
pub mod reply;
pub mod router;
pub mod server;
mod system;
#[cfg(test)]
mod tests;
pub mod volumes;

pub use authz::AuthzMiddleware;
pub use backend::{
    Backend, BuildContext, EventSink, PluginsInfo, PrivilegesRequest, Progress, PullRequest,
    PushRequest, RegistryAuth, UpgradeRequest,
};
pub use body::{RequestBody, ResponseBody};
pub use consumers::WithConsumers;
pub use error::{ApiError, ErrorKind, ServeError};
pub use events::EventLog;
pub use manager::ManagerBackend;
pub use middleware::{Middleware, Next, PeerCredentials};
pub use reply::Reply;
pub use router::{BoxFuture, RouteRequest};
pub use server::{Engine, EngineBuilder, EngineConfig};
