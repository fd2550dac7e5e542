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
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::ServeError;
use crate::listen::{Cleanup, TcpListen, UnixListen};
use crate::router::{ErrorKey, Reply, Router, MAX_BODY};

/// Collects the subsystems a plugin serves; see [`Plugin::builder`].
#[derive(Default)]
pub struct PluginBuilder {
    pub(crate) router: Router,
}

impl PluginBuilder {
    /// The plugin, ready to bind.
    pub fn build(self) -> Plugin {
        let mut router = self.router;
        let manifest = router.manifest();
        router.unit(dockplug_protocol::common::ACTIVATE_METHOD, ErrorKey::Err, move || {
            let manifest = manifest.clone();
            async move { Ok(manifest) }
        });
        Plugin { router: Arc::new(router) }
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
        let Server { router, listener, address, cleanup, drain } = self;
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        tracing::info!(%address, "serving");
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = accept(&listener) => match accepted {
                    Ok(Accepted::Unix(io)) => spawn_conn(&graceful, io, router.clone()),
                    Ok(Accepted::Tcp(io, None)) => spawn_conn(&graceful, io, router.clone()),
                    Ok(Accepted::Tcp(io, Some(tls))) => {
                        let watcher = graceful.watcher();
                        let router = router.clone();
                        tokio::spawn(async move {
                            match tls.accept(io).await {
                                Ok(io) => {
                                    let conn = connection(io, router);
                                    if let Err(e) = watcher.watch(conn).await {
                                        tracing::debug!(error = %e, "connection ended");
                                    }
                                }
                                Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
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
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> + Send
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(handle(&router, req).await.into_response()) }
    });
    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service)
}

fn spawn_conn<IO>(graceful: &GracefulShutdown, io: IO, router: Arc<Router>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = graceful.watch(connection(io, router));
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended");
        }
    });
}

async fn handle(router: &Router, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let status = if e.is::<http_body_util::LengthLimitError>() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return Reply::error(status, ErrorKey::Err, &format!("{path}: read request body: {e}"));
        }
    };
    dispatch(router, &path, body).await
}

/// Run the handler of `path` on `body` in its own task, so that a panic becomes a 500 reply
/// and the server keeps serving.
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
    tracing::debug!(%method, "call");
    match tokio::spawn(handler(body)).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(%method, error = %e, "handler failed");
            Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKey::ErrAndError,
                &format!("{method}: the plugin's handler panicked"),
            )
        }
    }
}
