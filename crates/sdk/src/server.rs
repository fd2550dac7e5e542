//! The server: a [`Plugin`] (the subsystems it serves), bound to a listener as a [`Server`],
//! run until a shutdown future or signal, finishing calls in flight and removing its socket.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dockplug_protocol::Manifest;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::ServeError;
use crate::limits::{self, ConnState, Limits, Tracked, WatchedIo};
use crate::listen::{Cleanup, TcpListen, UnixListen};
use crate::router::{BoxFuture, ErrorKey, Reply, Router};

/// Collects the subsystems a plugin serves; see [`Plugin::builder`].
#[derive(Default)]
pub struct PluginBuilder {
    pub(crate) router: Router,
    limits: Limits,
}

impl PluginBuilder {
    /// The bounds on what clients may hold of the servers of this plugin (connections,
    /// timeouts, header and body sizes); [`Limits::default`] when not set.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The plugin, ready to bind.
    pub fn build(self) -> Plugin {
        let mut router = self.router;
        let manifest = router.manifest();
        router.unit(dockplug_protocol::common::ACTIVATE_METHOD, ErrorKey::Err, move || {
            let manifest = manifest.clone();
            async move { Ok(manifest) }
        });
        Plugin { router: Arc::new(router), limits: self.limits }
    }
}

impl fmt::Debug for PluginBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginBuilder").field("implements", &self.router.manifest()).finish()
    }
}

/// A plugin: the set of subsystems it serves, with their handlers. Cheap to clone; bind it to
/// as many listeners as you like.
#[derive(Clone)]
pub struct Plugin {
    router: Arc<Router>,
    limits: Limits,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("implements", &self.manifest()).finish()
    }
}

impl Plugin {
    /// Start describing a plugin: add subsystems with [`PluginBuilder::volume`] and the like.
    pub fn builder() -> PluginBuilder {
        PluginBuilder::default()
    }

    /// The activation manifest (`Plugin.Activate` reply), which follows from what is served.
    pub fn manifest(&self) -> Manifest {
        self.router.manifest()
    }

    /// Every method served (`Plugin.Activate`, `VolumeDriver.Create`, ...), sorted.
    pub fn methods(&self) -> Vec<String> {
        self.router.methods().map(str::to_owned).collect()
    }

    /// Bind a unix socket (see [`UnixListen`] for the stale- and live-socket rules).
    pub async fn bind_unix(&self, listen: UnixListen) -> Result<Server, ServeError> {
        let (listener, cleanup) = listen.bind()?;
        Ok(Server {
            router: self.router.clone(),
            listener: Listener::Unix(listener),
            address: Address::Unix(listen.path().to_owned()),
            cleanup: Cleanup(cleanup),
            drain: DEFAULT_DRAIN,
            limits: self.limits,
        })
    }

    /// Bind a TCP address, with TLS when configured.
    pub async fn bind_tcp(&self, listen: TcpListen) -> Result<Server, ServeError> {
        let (listener, local, tls, cleanup) = listen.bind().await?;
        let address = if tls.is_some() { Address::Tls(local) } else { Address::Tcp(local) };
        Ok(Server {
            router: self.router.clone(),
            listener: Listener::Tcp(listener, tls),
            address,
            cleanup: Cleanup(cleanup),
            drain: DEFAULT_DRAIN,
            limits: self.limits,
        })
    }

    /// Answer one call in process, without a socket: `method` is `VolumeDriver.Create` or a
    /// request path. Returns the status and body exactly as they would be sent, which makes
    /// a plugin's own unit tests short.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let plugin = dockplug_sdk::Plugin::builder().build();
    /// let (status, body) = plugin.call("Plugin.Activate", "").await;
    /// assert_eq!((status, &body[..]), (200, &b"{\"Implements\":[]}\n"[..]));
    /// let (status, _) = plugin.call("/VolumeDriver.Create", "{}").await;
    /// assert_eq!(status, 404);
    /// # }
    /// ```
    pub async fn call(&self, method: &str, body: impl Into<Bytes>) -> (u16, Bytes) {
        let reply = dispatch(&self.router, method, body.into()).await;
        let status = reply.status.as_u16();
        let mut out = Vec::new();
        match reply.body {
            crate::router::ReplyBody::Full(b) => out.extend_from_slice(&b),
            crate::router::ReplyBody::Stream(mut rx) => {
                while let Some(chunk) = rx.recv().await {
                    out.extend_from_slice(&chunk);
                }
            }
        }
        (status, out.into())
    }
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Address {
    /// A unix socket.
    Unix(PathBuf),
    /// Plain TCP.
    Tcp(SocketAddr),
    /// TCP with TLS.
    Tls(SocketAddr),
}

impl fmt::Display for Address {
    /// The address as a discovery URL: `unix:///path`, `tcp://host:port`, `https://host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Tcp(a) => write!(f, "tcp://{a}"),
            Address::Tls(a) => write!(f, "https://{a}"),
        }
    }
}

enum Listener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>),
}

/// A bound plugin server. Nothing is served until [`Server::run`] or [`Server::run_until`];
/// dropping it removes its socket and discovery files.
pub struct Server {
    router: Arc<Router>,
    listener: Listener,
    address: Address,
    cleanup: Cleanup,
    drain: Duration,
    limits: Limits,
}

/// How long shutdown waits for calls in flight by default: dockerd's longest per-call timeout
/// (`VolumeDriver.Create` and `Mount`), after which the daemon has given up on them anyway.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(120);

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("address", &self.address).finish()
    }
}

impl Server {
    /// Where the server listens (the real port when bound to port 0).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// How long shutdown waits for calls in flight before it returns without them (default
    /// [`DEFAULT_DRAIN`]); their tasks end with the runtime.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain = timeout;
        self
    }

    /// Replaces the plugin's [`Limits`] for this listener.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serve until SIGTERM or SIGINT, then shut down gracefully.
    pub async fn run(self) -> Result<(), ServeError> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
        self.run_until(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        })
        .await
    }

    /// Serve until `shutdown` completes. Then stop accepting, let every call in flight finish
    /// (idle connections are closed; see [`Server::drain_timeout`]), and remove the socket and
    /// discovery files.
    pub async fn run_until<F: Future<Output = ()>>(self, shutdown: F) -> Result<(), ServeError> {
        let Server { router, listener, address, cleanup, drain, limits } = self;
        let graceful = GracefulShutdown::new();
        // One permit per connection served: past the bound, clients wait in the backlog.
        let permits = Arc::new(tokio::sync::Semaphore::new(limits.connections.max(1)));
        tokio::pin!(shutdown);
        tracing::info!(%address, "serving");
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            tokio::select! {
                () = &mut shutdown => break,
                accepted = accept(&listener) => match accepted {
                    Ok(Accepted::Unix(io)) => spawn_conn(&graceful, io, &router, limits, permit),
                    Ok(Accepted::Tcp(io, None)) => spawn_conn(&graceful, io, &router, limits, permit),
                    Ok(Accepted::Tcp(io, Some(tls))) => {
                        let watcher = graceful.watcher();
                        let router = router.clone();
                        tokio::spawn(async move {
                            let _permit = permit;
                            match tokio::time::timeout(limits.header, tls.accept(io)).await {
                                Ok(Ok(io)) => {
                                    let state = ConnState::new();
                                    let conn = connection(io, router, limits, state.clone());
                                    limits::watch(watcher.watch(conn), state, limits).await;
                                }
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        });
                    }
                    Err(e) => {
                        // EMFILE and the like: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        // The socket file goes now, so no new client finds it while calls drain.
        drop(cleanup);
        if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
            tracing::warn!(%address, ?drain, "calls still in flight after the drain timeout: not waiting for them");
        }
        tracing::info!(%address, "stopped");
        Ok(())
    }
}

enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream, Option<tokio_rustls::TlsAcceptor>),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Unix(l) => Ok(Accepted::Unix(l.accept().await?.0)),
        Listener::Tcp(l, tls) => Ok(Accepted::Tcp(l.accept().await?.0, tls.clone())),
    }
}

fn connection<IO>(
    io: IO,
    router: Arc<Router>,
    limits: Limits,
    state: Arc<ConnState>,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> + Send
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let calls = state.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        let call = calls.call();
        async move {
            let reply = handle(&router, req, &limits).await.into_response();
            Ok::<_, Infallible>(reply.map(|body| Tracked::new(body, call)))
        }
    });
    hyper::server::conn::http1::Builder::new()
        // Request line and headers must fit this buffer, else 431.
        .max_buf_size(limits.header_bytes.max(8192))
        .writev(false)
        .serve_connection(TokioIo::new(WatchedIo::new(io, state)), service)
}

fn spawn_conn<IO>(
    graceful: &GracefulShutdown,
    io: IO,
    router: &Arc<Router>,
    limits: Limits,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = ConnState::new();
    let conn = graceful.watch(connection(io, router.clone(), limits, state.clone()));
    tokio::spawn(async move {
        let _permit = permit;
        limits::watch(conn, state, limits).await;
    });
}

async fn handle(router: &Router, req: Request<Incoming>, limits: &Limits) -> Reply {
    let (head, body) = req.into_parts();
    let path = head.uri.path();
    // A declared length past the limit is refused before a byte of it is read.
    if body.size_hint().lower() > limits.body_bytes as u64 {
        return Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKey::Err,
            &format!("{path}: read request body: length limit exceeded"),
        );
    }
    let read = read_body(body, limits.body_bytes);
    // A body that arrived with its headers (the usual case) needs no timer.
    let mut read = std::pin::pin!(read);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(read.as_mut().poll(cx))).await;
    let read = match first {
        std::task::Poll::Ready(r) => Ok(r),
        std::task::Poll::Pending => tokio::time::timeout(limits.body, read).await,
    };
    let body = match read {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let status = match e {
                BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Broken(_) => StatusCode::BAD_REQUEST,
            };
            return Reply::error(status, ErrorKey::Err, &format!("{path}: read request body: {e}"));
        }
        Err(_) => {
            return Reply::error(
                StatusCode::REQUEST_TIMEOUT,
                ErrorKey::Err,
                &format!("{path}: read request body: not complete after {:?}", limits.body),
            );
        }
    };
    dispatch(router, path, body).await
}

/// Why a request body was not read.
enum BodyError {
    /// Past the body bound.
    TooLarge,
    /// The connection failed or the body is malformed.
    Broken(hyper::Error),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge => f.write_str("length limit exceeded"),
            BodyError::Broken(e) => e.fmt(f),
        }
    }
}

/// The whole request body, at most `limit` bytes; trailers are ignored. A body that comes in
/// one frame (the usual case) is kept as it came, without a copy.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let mut whole = Bytes::new();
    let mut more: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Broken)?.into_data() else {
            continue;
        };
        let len = whole.len() + more.as_ref().map_or(0, |m| m.len()) + data.len();
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        match &mut more {
            None if whole.is_empty() => whole = data,
            None => {
                let mut m = bytes::BytesMut::with_capacity(len);
                m.extend_from_slice(&std::mem::take(&mut whole));
                m.extend_from_slice(&data);
                more = Some(m);
            }
            Some(m) => m.extend_from_slice(&data),
        }
    }
    Ok(more.map_or(whole, bytes::BytesMut::freeze))
}

/// A handler's future, polled with panics caught: a panic becomes `Err` with its payload.
/// This is what a task per call gave (`tokio::spawn` then `JoinError`), without the task: the
/// spawn, its wake-ups and the cross-thread hand-off were the largest cost of a call.
struct CatchUnwind(BoxFuture<Reply>);

impl std::future::Future for CatchUnwind {
    type Output = Result<Reply, Box<dyn std::any::Any + Send>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let fut = &mut self.0;
        // The future is dropped as soon as it panicked (the reply is the 500), never polled
        // again, so no broken invariant of it can be observed.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(reply)) => std::task::Poll::Ready(Ok(reply)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

/// Run the handler of `path` on `body`, catching a panic, so that a panic becomes a 500
/// reply and the server keeps serving.
async fn dispatch(router: &Router, path: &str, body: Bytes) -> Reply {
    let Some((method, handler)) = router.handler(path) else {
        let method = dockplug_protocol::subsystem::method_name_of_path(path);
        tracing::debug!(method, "unknown method");
        return Reply::error(
            StatusCode::NOT_FOUND,
            ErrorKey::Err,
            &format!("{method}: method not implemented by this plugin"),
        );
    };
    tracing::debug!(method, "call");
    match CatchUnwind(handler(body)).await {
        Ok(reply) => reply,
        Err(panic) => {
            let e = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            tracing::error!(method, error = %e, "handler panicked");
            Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKey::ErrAndError,
                &format!("{method}: the plugin's handler panicked"),
            )
        }
    }
}
