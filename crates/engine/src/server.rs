//! The [`Engine`]: the route table, the middleware chain and the version checks, served over
//! unix sockets with hyper's HTTP/1 server (Moby's `api/server/server.go`).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Method, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::backend::Backend;
use crate::body::RequestBody;
use crate::error::{ApiError, ServeError};
use crate::events::EventLog;
use crate::middleware::{Middleware, Next, PeerCredentials};
use crate::reply::{self, Reply};
use crate::router::{self, compare_versions, Limits, Pattern, Route, RouteRequest, RouteTable};
use crate::{plugins, system};

/// How the engine presents itself and what it accepts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The API version advertised (`Api-Version`) and the highest accepted in a path.
    pub api_version: String,
    /// The lowest API version accepted in a path (older: 400 "client version ... is too old").
    pub min_api_version: String,
    /// The version in `Server: Docker/<version> (linux)` and `/version`.
    pub server_version: String,
    /// `Docker-Experimental`.
    pub experimental: bool,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a request body may stall between chunks.
    pub body_idle_timeout: Duration,
    /// The largest JSON request body (privileges, `set` arguments).
    pub max_json_body: usize,
    /// The largest build context `POST /plugins/create` accepts.
    pub max_context_body: u64,
    /// How long [`Engine::serve`] waits for requests in flight after its shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            api_version: "1.41".to_owned(),
            min_api_version: "1.24".to_owned(),
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            experimental: false,
            header_read_timeout: Duration::from_secs(60),
            body_idle_timeout: Duration::from_secs(60),
            max_json_body: 1 << 20,
            max_context_body: 4 << 30,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Set in the extensions of requests served by [`Engine::serve`]: becomes `true` when that
/// server shuts down, so endless streams (`/events`) end.
#[derive(Debug, Clone)]
pub(crate) struct Closing(pub watch::Receiver<bool>);

pub(crate) struct Shared {
    pub config: EngineConfig,
    pub routes: RouteTable,
    pub middlewares: Vec<Arc<dyn Middleware>>,
    pub events: EventLog,
    limits: Limits,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Shared {
    /// Routes a request (the innermost step of the chain).
    pub(crate) async fn dispatch(&self, request: Request<RequestBody>) -> Reply {
        match self.route(request).await {
            Ok(r) => r,
            Err(e) => reply::error(&e),
        }
    }

    async fn route(&self, request: Request<RequestBody>) -> Result<Reply, ApiError> {
        let (parts, body) = request.into_parts();
        let path = router::percent_decode(parts.uri.path(), false);
        let (version, rest) = router::split_version(&path);
        let (route, param) =
            self.routes.find(&parts.method, rest).ok_or_else(ApiError::page_not_found)?;
        let version = version.unwrap_or(&self.config.api_version);
        if compare_versions(version, &self.config.min_api_version).is_lt() {
            return Err(ApiError::invalid_parameter(format!(
                "client version {version} is too old. Minimum supported API version is {}, \
                 please upgrade your client to a newer version",
                self.config.min_api_version
            )));
        }
        if compare_versions(version, &self.config.api_version).is_gt() {
            return Err(ApiError::invalid_parameter(format!(
                "client version {version} is too new. Maximum supported API version is {}",
                self.config.api_version
            )));
        }
        if route.min_version.is_some_and(|min| compare_versions(version, min).is_lt()) {
            return Err(ApiError::page_not_found());
        }
        let handler = route.handler.clone();
        let request =
            RouteRequest::new(parts, body, param.to_owned(), version.to_owned(), self.limits);
        handler(request).await
    }
}

/// The Engine API server. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.shared.config)
            .field("routes", &self.shared.routes)
            .finish_non_exhaustive()
    }
}

/// Adds the built-in routes over the backend, once the configuration is known.
type BuiltinRoutes = Box<dyn FnOnce(&mut RouteTable, &EngineConfig) + Send>;

/// Builds an [`Engine`]: configuration, extra routes, middlewares.
pub struct EngineBuilder {
    config: EngineConfig,
    builtin: BuiltinRoutes,
    extra: RouteTable,
    middlewares: Vec<Arc<dyn Middleware>>,
    events: EventLog,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// Replaces the configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds a route after the built-in ones, answering at the bare path and under
    /// `/v{version}`. `pattern` is a literal path with at most one parameter,
    /// `{name:.*}` (greedy) or `{name}` (one segment), e.g. `/volumes/{name:.*}`.
    ///
    /// # Panics
    /// On a pattern with two parameters or an unclosed brace.
    pub fn route<F, Fut>(mut self, method: Method, pattern: &str, handler: F) -> Self
    where
        F: Fn(RouteRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reply, ApiError>> + Send + 'static,
    {
        self.extra.push(Route {
            method,
            pattern: Pattern::parse(pattern),
            min_version: None,
            handler: Arc::new(move |r| Box::pin(handler(r))),
        });
        self
    }

    /// Adds a middleware; the first added sees each request first.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middlewares.push(Arc::new(middleware));
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        let mut routes = RouteTable::default();
        (self.builtin)(&mut routes, &self.config);
        for r in self.extra.into_routes() {
            routes.push(r);
        }
        let config = self.config;
        let headers = vec![
            (
                HeaderName::from_static("server"),
                header_value(&format!("Docker/{} (linux)", config.server_version)),
            ),
            (HeaderName::from_static("api-version"), header_value(&config.api_version)),
            (HeaderName::from_static("ostype"), HeaderValue::from_static("linux")),
            (
                HeaderName::from_static("docker-experimental"),
                HeaderValue::from_static(if config.experimental { "true" } else { "false" }),
            ),
        ];
        let limits = Limits {
            json_body: config.max_json_body,
            context_body: config.max_context_body,
            body_idle: config.body_idle_timeout,
        };
        Engine {
            shared: Arc::new(Shared {
                config,
                routes,
                middlewares: self.middlewares,
                events: self.events,
                limits,
                headers,
            }),
        }
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

impl Engine {
    /// An engine over `backend` with the default [`EngineConfig`].
    pub fn new<B: Backend>(backend: B) -> Self {
        Self::builder(backend).build()
    }

    /// A builder over `backend`. The backend's events are connected to the engine's
    /// [`EventLog`] here, so build one engine per backend (a manager has one event sink;
    /// serve several sockets from clones of the engine).
    pub fn builder<B: Backend>(backend: B) -> EngineBuilder {
        let backend = Arc::new(backend);
        let events = EventLog::new();
        backend.watch_events(events.clone());
        let log = events.clone();
        let builtin = move |routes: &mut RouteTable, config: &EngineConfig| {
            plugins::routes(routes, &backend);
            system::routes(routes, &backend, &log, config);
        };
        EngineBuilder {
            config: EngineConfig::default(),
            builtin: Box::new(builtin),
            extra: RouteTable::default(),
            middlewares: Vec::new(),
            events,
        }
    }

    /// The event log behind `/events`: publish the daemon's other events here.
    pub fn events(&self) -> &EventLog {
        &self.shared.events
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Answers one request in process (the middlewares, the routes, the version headers).
    pub async fn handle(&self, request: Request<RequestBody>) -> Reply {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let started = std::time::Instant::now();
        let mut reply = Next::new(self.shared.clone(), 0).run(request).await;
        tracing::debug!(
            %method,
            path,
            status = reply.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "api request"
        );
        let headers = reply.headers_mut();
        for (k, v) in &self.shared.headers {
            headers.insert(k.clone(), v.clone());
        }
        reply
    }

    /// Serves `listener` until `shutdown` completes, then stops accepting, ends event
    /// streams and waits up to [`EngineConfig::shutdown_grace`] for requests in flight.
    ///
    /// # Errors
    /// [`ServeError::Accept`] when accepting fails for a reason other than a transient one
    /// (out of file descriptors or memory, an aborted connection).
    pub async fn serve(
        &self,
        listener: UnixListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let graceful = GracefulShutdown::new();
        let (closing_tx, closing_rx) = watch::channel(false);
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => self.spawn_connection(&graceful, stream, &closing_rx),
                    Err(e) if is_transient(&e) => {
                        tracing::warn!(error = %e, "accept failed; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => break Err(ServeError::Accept(e)),
                },
            }
        };
        drop(listener);
        let _ = closing_tx.send(true);
        if tokio::time::timeout(self.shared.config.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still in flight after the shutdown grace period; dropped");
        }
        result
    }

    fn spawn_connection(
        &self,
        graceful: &GracefulShutdown,
        stream: tokio::net::UnixStream,
        closing: &watch::Receiver<bool>,
    ) {
        let peer = stream.peer_cred().ok().map(|c| PeerCredentials {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        });
        let engine = self.clone();
        let closing = Closing(closing.clone());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let engine = engine.clone();
            let closing = closing.clone();
            async move {
                let (mut parts, body) = request.into_parts();
                if let Some(p) = peer {
                    parts.extensions.insert(p);
                }
                parts.extensions.insert(closing);
                let request = Request::from_parts(parts, RequestBody::incoming(body));
                Ok::<_, Infallible>(engine.handle(request).await)
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.shared.config.header_read_timeout)
            .title_case_headers(true)
            .max_buf_size(1 << 20)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(e.kind(), K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock)
        || matches!(e.raw_os_error(), Some(code) if [
            nix::libc::EMFILE, nix::libc::ENFILE, nix::libc::ENOBUFS, nix::libc::ENOMEM,
        ].contains(&code))
}
