//! A fake [`Backend`] over the plugin dockerd listed (the golden `GET /plugins`), recording
//! every call, and helpers to send requests through [`Engine::handle`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dockplug_protocol::filters::PluginListFilter;
use dockplug_protocol::progress::JsonMessage;
use dockplug_protocol::{Plugin, PluginPrivilege};
use http::{Method, Request};
use http_body_util::BodyExt;
use tokio::sync::Notify;

use crate::backend::{
    Backend, BuildContext, EventSink, PluginsInfo, PrivilegesRequest, Progress, PullRequest,
    PushRequest, UpgradeRequest,
};
use crate::body::RequestBody;
use crate::error::{ApiError, ErrorKind};
use crate::reply::Reply;
use crate::{Engine, EventLog};

pub(crate) const LIST: &str = include_str!("golden/engine-plugins-list.json");
pub(crate) const INSPECT: &str = include_str!("golden/engine-plugin-inspect-enabled.json");
pub(crate) const PRIVILEGES: &str = include_str!("golden/engine-plugin-privileges.json");
pub(crate) const RICH: &str = include_str!("golden/engine-plugin-inspect-rich-settings.json");

/// What a test wants a streamed operation to do.
#[derive(Debug, Clone, Default)]
pub(crate) enum Script {
    /// Two progress messages, then success.
    #[default]
    Progress,
    /// Fail before any output.
    FailEarly,
    /// One message, then fail.
    FailLate,
    /// One message, then wait forever (until cancelled).
    Hang,
}

#[derive(Default)]
pub(crate) struct State {
    pub calls: Vec<String>,
    pub script: Script,
    pub events: Option<EventSink>,
    /// Set when a hanging operation's future is dropped.
    pub cancelled: bool,
    pub context_bytes: usize,
}

/// The fake. Clones share state.
#[derive(Clone, Default)]
pub(crate) struct Fake {
    pub state: Arc<Mutex<State>>,
    pub started: Arc<Notify>,
    pub dropped: Arc<Notify>,
}

impl Fake {
    pub(crate) fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    pub(crate) fn script(&self, s: Script) {
        self.state.lock().unwrap().script = s;
    }

    fn record(&self, call: String) {
        self.state.lock().unwrap().calls.push(call);
    }

    fn plugins() -> Vec<Plugin> {
        serde_json::from_str(LIST).unwrap()
    }

    fn find(name: &str) -> Result<Plugin, ApiError> {
        let rich: Plugin = serde_json::from_str(RICH).unwrap();
        Self::plugins()
            .into_iter()
            .chain([rich])
            .find(|p| {
                p.name == name || p.id.starts_with(name) || p.name == format!("{name}:latest")
            })
            .ok_or_else(|| ApiError::not_found(format!("plugin \"{name}\" not found")))
    }

    async fn run(&self, what: &str, progress: Progress) -> Result<(), ApiError> {
        let script = self.state.lock().unwrap().script.clone();
        let msg = |s: &str| JsonMessage::status(s);
        match script {
            Script::Progress => {
                progress.send(&msg(&format!("{what} 1"))).await;
                progress.send(&msg(&format!("{what} 2"))).await;
                Ok(())
            }
            Script::FailEarly => Err(ApiError::new(ErrorKind::Unauthorized, "no basic auth")),
            Script::FailLate => {
                progress.send(&msg("Downloading")).await;
                Err(ApiError::system("layer digest mismatch"))
            }
            Script::Hang => {
                struct OnDrop(Fake);
                impl Drop for OnDrop {
                    fn drop(&mut self) {
                        self.0.state.lock().unwrap().cancelled = true;
                        self.0.dropped.notify_one();
                    }
                }
                let _guard = OnDrop(self.clone());
                progress.send(&msg("Downloading")).await;
                self.started.notify_one();
                std::future::pending::<()>().await;
                Ok(())
            }
        }
    }
}

impl Backend for Fake {
    async fn list(&self, filter: &PluginListFilter) -> Result<Vec<Arc<Plugin>>, ApiError> {
        self.record(format!("list enabled={:?}", filter.enabled()));
        Ok(Self::plugins().into_iter().filter(|p| filter.matches(p)).map(Arc::new).collect())
    }

    async fn inspect(&self, name: &str) -> Result<Plugin, ApiError> {
        self.record(format!("inspect {name}"));
        Self::find(name)
    }

    async fn privileges(&self, r: PrivilegesRequest) -> Result<Vec<PluginPrivilege>, ApiError> {
        self.record(format!("privileges {} user={}", r.remote, r.registry.auth.username));
        Ok(serde_json::from_str(PRIVILEGES).unwrap())
    }

    async fn pull(&self, r: PullRequest, progress: Progress) -> Result<(), ApiError> {
        self.record(format!("pull {} as {} privileges={}", r.remote, r.name, r.privileges.len()));
        self.run("pull", progress).await
    }

    async fn push(&self, r: PushRequest, progress: Progress) -> Result<(), ApiError> {
        let meta: Vec<_> =
            r.registry.meta_headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.record(format!("push {} meta={}", r.name, meta.join(",")));
        self.run("push", progress).await
    }

    async fn upgrade(&self, r: UpgradeRequest, progress: Progress) -> Result<(), ApiError> {
        self.record(format!("upgrade {} from {}", r.name, r.remote));
        self.run("upgrade", progress).await
    }

    async fn remove(&self, name: &str, force: bool) -> Result<(), ApiError> {
        self.record(format!("remove {name} force={force}"));
        let p = Self::find(name)?;
        if p.enabled && !force {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("plugin {} is enabled", p.name),
            ));
        }
        Ok(())
    }

    async fn enable(&self, name: &str, timeout: Option<Duration>) -> Result<(), ApiError> {
        self.record(format!("enable {name} timeout={timeout:?}"));
        let p = Self::find(name)?;
        Err(ApiError::new(
            ErrorKind::Conflict,
            format!("plugin already enabled: plugin {} is enabled", p.name),
        ))
    }

    async fn disable(&self, name: &str, force: bool) -> Result<(), ApiError> {
        self.record(format!("disable {name} force={force}"));
        Self::find(name).map(drop)
    }

    async fn set(&self, name: &str, args: Vec<String>) -> Result<(), ApiError> {
        self.record(format!("set {name} {args:?}"));
        Self::find(name)?;
        match args.iter().find(|a| a.starts_with("NOPE")) {
            Some(_) => Err(ApiError::invalid_parameter(
                "setting \"NOPE\" not found in the plugin configuration",
            )),
            None => Ok(()),
        }
    }

    async fn create(&self, name: &str, mut context: BuildContext) -> Result<(), ApiError> {
        self.record(format!("create {name}"));
        if name == "taken" {
            // Answers before reading the context, as the manager does for a name in use.
            return Err(ApiError::new(ErrorKind::Conflict, "plugin taken:latest already exists"));
        }
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut context, &mut buf).map(|_| buf)
        })
        .await
        .unwrap();
        let bytes = read.map_err(|e| ApiError::invalid_parameter(e.to_string()))?;
        self.state.lock().unwrap().context_bytes = bytes.len();
        Ok(())
    }

    fn watch_events(&self, sink: EventSink) {
        self.state.lock().unwrap().events = Some(sink);
    }

    async fn info(&self) -> PluginsInfo {
        PluginsInfo::from_plugins(&Self::plugins())
    }
}

/// An engine over a fresh fake.
pub(crate) fn engine() -> (Engine, Fake) {
    let fake = Fake::default();
    (Engine::new(fake.clone()), fake)
}

/// The event sink the fake was given.
pub(crate) fn sink(fake: &Fake) -> EventLog {
    fake.state.lock().unwrap().events.clone().unwrap()
}

/// A request with `body` and optional `Content-Type`.
pub(crate) fn request(
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Request<RequestBody> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        b = b.header("Content-Type", ct);
    }
    b.body(RequestBody::from_bytes(Bytes::copy_from_slice(body))).unwrap()
}

/// Sends a request without a body.
pub(crate) async fn call(engine: &Engine, method: Method, uri: &str) -> Reply {
    engine.handle(request(method, uri, None, b"")).await
}

/// The whole body of a reply (a stream is read to its end).
pub(crate) async fn body(reply: Reply) -> String {
    let bytes = reply.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A header of a reply.
pub(crate) fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or_default()
}

/// Asserts an error reply: status, `Content-Type: application/json` and the message.
pub(crate) async fn assert_error(reply: Reply, status: u16, message: &str) {
    assert_eq!(reply.status(), status, "status");
    assert_eq!(header(&reply, "content-type"), "application/json");
    let text = body(reply).await;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v, serde_json::json!({ "message": message }), "{text}");
    assert!(text.ends_with('\n'));
}
