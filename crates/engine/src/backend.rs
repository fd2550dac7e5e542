//! The seam between the routes and what manages plugins: the [`Backend`] trait (Moby's
//! `api/server/router/plugin/backend.go` `Backend`), and what its operations take and give.
//!
//! The routes parse and check the request (query, headers, JSON body, names of pulls) and
//! write the reply; the backend does the work. A backend reports progress of a pull, push
//! or upgrade through a [`Progress`] and events through the [`EventSink`] it is given once.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::filters::PluginListFilter;
use dockplug_protocol::progress::JsonMessage;
use dockplug_protocol::{Plugin, PluginPrivilege};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::events::EventLog;

/// What the plugin routes drive. Every operation but [`Backend::watch_events`] is async;
/// errors carry their kind (and so their status) in [`ApiError`].
///
/// Names are as the client sent them: a name, `name:tag`, a full ID or a unique ID prefix.
pub trait Backend: Send + Sync + 'static {
    /// `GET /plugins`: the plugins matching `filter`, sorted by name.
    fn list(
        &self,
        filter: &PluginListFilter,
    ) -> impl Future<Output = Result<Vec<Arc<Plugin>>, ApiError>> + Send;

    /// `GET /plugins/{name}/json`.
    fn inspect(&self, name: &str) -> impl Future<Output = Result<Plugin, ApiError>> + Send;

    /// `GET /plugins/privileges?remote=`: the privileges the remote plugin needs.
    fn privileges(
        &self,
        request: PrivilegesRequest,
    ) -> impl Future<Output = Result<Vec<PluginPrivilege>, ApiError>> + Send;

    /// `POST /plugins/pull`: installs `request.remote` as `request.name`, reporting through
    /// `progress`. Dropping the future (the client went away) must leave no plugin behind.
    fn pull(
        &self,
        request: PullRequest,
        progress: Progress,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// `POST /plugins/{name}/push`.
    fn push(
        &self,
        request: PushRequest,
        progress: Progress,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// `POST /plugins/{name}/upgrade`.
    fn upgrade(
        &self,
        request: UpgradeRequest,
        progress: Progress,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// `DELETE /plugins/{name}`.
    fn remove(&self, name: &str, force: bool) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// `POST /plugins/{name}/enable`: `timeout` is `None` for the backend's default (the
    /// client sent `0` or less).
    fn enable(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// `POST /plugins/{name}/disable`.
    fn disable(&self, name: &str, force: bool)
        -> impl Future<Output = Result<(), ApiError>> + Send;

    /// `POST /plugins/{name}/set`.
    fn set(
        &self,
        name: &str,
        args: Vec<String>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// `POST /plugins/create?name=`: installs a plugin from a build context (tar or tar.gz,
    /// read as it arrives; read it from a blocking thread).
    fn create(
        &self,
        name: &str,
        context: BuildContext,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// Connects the backend's events to the engine's `/events`: called once, when the
    /// engine is built. The backend publishes through `sink` from then on.
    fn watch_events(&self, sink: EventSink);

    /// The plugin part of `GET /info`.
    fn info(&self) -> impl Future<Output = PluginsInfo> + Send;
}

/// Registry credentials and forwarded headers of a request (`X-Registry-Auth`, `X-Meta-*`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RegistryAuth {
    /// The decoded `X-Registry-Auth` (empty when absent or invalid, as Moby's
    /// `parseHeaders` does).
    pub auth: AuthConfig,
    /// The `X-Meta-*` headers, to forward to the registry.
    pub meta_headers: Vec<(String, String)>,
}

/// `GET /plugins/privileges`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PrivilegesRequest {
    /// The remote reference, as the client sent it (`docker.io/vieux/sshfs`).
    pub remote: String,
    /// Credentials.
    pub registry: RegistryAuth,
}

/// `POST /plugins/pull`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PullRequest {
    /// The remote reference, as the client sent it.
    pub remote: String,
    /// The local name (the `Docker-Plugin-Name` of the reply; `name:tag`).
    pub name: String,
    /// The privileges the client granted.
    pub privileges: Vec<PluginPrivilege>,
    /// Credentials.
    pub registry: RegistryAuth,
}

/// `POST /plugins/{name}/push`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PushRequest {
    /// The plugin, as the client named it.
    pub name: String,
    /// Credentials.
    pub registry: RegistryAuth,
}

/// `POST /plugins/{name}/upgrade`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The installed plugin, as the client named it.
    pub name: String,
    /// The remote reference to upgrade from.
    pub remote: String,
    /// The privileges the client granted.
    pub privileges: Vec<PluginPrivilege>,
    /// Credentials.
    pub registry: RegistryAuth,
}

/// The plugins of `GET /info` by kind (Moby's `types.PluginsInfo`), names as `docker plugin
/// ls` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PluginsInfo {
    /// `Volume`: volume drivers.
    #[serde(rename = "Volume")]
    pub volume: Vec<String>,
    /// `Network`: network drivers.
    #[serde(rename = "Network")]
    pub network: Vec<String>,
    /// `Authorization`: the authorization plugins in use, in chain order (`null` when none,
    /// as dockerd).
    #[serde(rename = "Authorization")]
    pub authorization: Option<Vec<String>>,
    /// `Log`: log drivers.
    #[serde(rename = "Log")]
    pub log: Vec<String>,
}

impl PluginsInfo {
    /// Lists from enabled plugins: each plugin under every kind its types name.
    pub fn from_plugins<'a>(plugins: impl IntoIterator<Item = &'a Plugin>) -> Self {
        let mut info = Self::default();
        for p in plugins.into_iter().filter(|p| p.enabled) {
            for t in p.config.interface.types() {
                let list = match t.capability() {
                    "volumedriver" => &mut info.volume,
                    "networkdriver" => &mut info.network,
                    "logdriver" => &mut info.log,
                    "authz" => continue,
                    _ => continue,
                };
                if !list.contains(&p.name) {
                    list.push(p.name.clone());
                }
            }
        }
        for list in [&mut info.volume, &mut info.network, &mut info.log] {
            list.sort();
        }
        info
    }
}

/// Where a pull, push or upgrade reports progress: each message becomes one line of the
/// reply's JSON stream.
///
/// Sending never blocks the operation. Lines wait for a slow client in a queue; once
/// [`PROGRESS_BACKLOG`] lines wait, byte-count updates (`progressDetail` with a total) are
/// dropped, as a later one replaces them, while status changes, errors and `aux` results are
/// always kept (there is one of each per layer, and the layers are bounded by the manifest).
#[derive(Debug, Clone)]
pub struct Progress {
    tx: mpsc::UnboundedSender<Bytes>,
    pending: Arc<AtomicUsize>,
}

/// How many progress lines may wait for a slow client before byte-count updates are dropped.
pub const PROGRESS_BACKLOG: usize = 256;

impl Progress {
    pub(crate) fn new() -> (Self, ProgressReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        (Self { tx, pending: pending.clone() }, ProgressReceiver { rx, pending })
    }

    /// Queues `message`. Returns `false` when it was dropped: the client is gone (the
    /// operation is about to be cancelled) or behind and the message only counts bytes.
    pub fn emit(&self, message: &JsonMessage) -> bool {
        let update = message.progress_detail.as_ref().is_some_and(|d| d.total > 0)
            && message.error_detail.is_none()
            && message.aux.is_none();
        if update && self.pending.load(Ordering::Relaxed) >= PROGRESS_BACKLOG {
            return false;
        }
        let line = match message.to_line() {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, "progress message not encodable");
                return false;
            }
        };
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Bytes::from(line)).is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// [`Progress::emit`], for callers that prefer to await.
    pub async fn send(&self, message: &JsonMessage) -> bool {
        self.emit(message)
    }

    /// Whether the client is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The reading side of a [`Progress`].
#[derive(Debug)]
pub(crate) struct ProgressReceiver {
    rx: mpsc::UnboundedReceiver<Bytes>,
    pending: Arc<AtomicUsize>,
}

impl ProgressReceiver {
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let line = self.rx.recv().await;
        if line.is_some() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
        line
    }

    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        let line = self.rx.try_recv().ok();
        if line.is_some() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
        line
    }
}

/// The body of `POST /plugins/create`, read as it arrives. Reads block: use it from a
/// blocking thread (`tokio::task::spawn_blocking`). A body that stalls or outgrows the
/// engine's limit reads as an error.
#[derive(Debug)]
pub struct BuildContext {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
    current: Bytes,
}

impl BuildContext {
    pub(crate) fn new(rx: mpsc::Receiver<Result<Bytes, io::Error>>) -> Self {
        Self { rx, current: Bytes::new() }
    }
}

impl io::Read for BuildContext {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) => self.current = chunk,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Where a backend publishes events for `/events` (a handle on the engine's [`EventLog`]).
pub type EventSink = EventLog;
