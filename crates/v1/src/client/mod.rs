//! The HTTP client of the v1 plugin protocol: `POST /<Method>` over a unix socket or TCP
//! (with TLS for `https://`), JSON in and out, kept-alive connections, Moby's retry backoff.
//!
//! # Retries
//!
//! A call that cannot reach the plugin is retried with Moby's backoff ([`RetryPolicy`]: wait
//! 1 s, doubling, and give up once the next wait would pass 30 s since the first attempt:
//! attempts at about 0, 1, 3, 7 and 15 s). Two things Moby does we do not (quirk 4):
//!
//! * a request whose body was already consumed is **never resent**: [`Client::send_file`]
//!   streams its body, so it is retried only when the connection failed before any of it was
//!   sent; JSON calls keep their body and resend it whole;
//! * a call that **timed out is never retried**: the timeout bounds the whole call, retries
//!   and reading the reply included, so a slow non-idempotent call (`VolumeDriver.Create`) is
//!   not delivered twice.
//!
//! Any HTTP reply ends the retries; only status 200 is success (quirk 5, kept: it is the
//! wire contract).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dockplug_protocol::common::VERSION_MIMETYPE;
use dockplug_protocol::ErrorBody;
use futures_util::Stream;
use http::header::{ACCEPT, CONTENT_LENGTH, HOST};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::address::{Address, AddressError};
use crate::tls::{self, TlsError, TlsOptions};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Moby's retry schedule for calls that cannot reach the plugin, configurable so tests and
/// impatient callers can shorten it.
///
/// The wait before retry `n` (from 0) is `initial_delay * 2^n`, capped at `max_delay`; the
/// client gives up instead of waiting when the wait would end `give_up_after` or more after
/// the first attempt.
///
/// ```
/// use std::time::Duration;
/// let s = dockplug_v1::RetryPolicy::default().schedule();
/// let secs: Vec<u64> = s.iter().map(Duration::as_secs).collect();
/// assert_eq!(secs, [1, 2, 4, 8]); // attempts at 0, 1, 3, 7 and 15 s
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The first wait (Moby: 1 s).
    pub initial_delay: Duration,
    /// The longest wait (Moby: 30 s).
    pub max_delay: Duration,
    /// The window after the first attempt in which retries may start (Moby: 30 s).
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            give_up_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retry at all: the first connection failure is returned.
    pub fn never() -> Self {
        Self {
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            give_up_after: Duration::ZERO,
        }
    }

    /// A policy with the given first wait and window (the wait is capped at the window).
    pub fn new(initial_delay: Duration, give_up_after: Duration) -> Self {
        Self { initial_delay, max_delay: give_up_after, give_up_after }
    }

    /// The wait before retry number `retries` (0 for the first retry).
    pub fn backoff(&self, retries: u32) -> Duration {
        let factor = 1u32.checked_shl(retries.min(31)).unwrap_or(u32::MAX);
        self.initial_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Whether to give up rather than wait `delay` when `elapsed` has passed since the first
    /// attempt.
    pub fn gives_up(&self, delay: Duration, elapsed: Duration) -> bool {
        delay.is_zero() || delay + elapsed >= self.give_up_after
    }

    /// The waits taken when every attempt fails at once (bounded by the window).
    pub fn schedule(&self) -> Vec<Duration> {
        let mut out = Vec::new();
        let mut elapsed = Duration::ZERO;
        for retries in 0..64 {
            let d = self.backoff(retries);
            if self.gives_up(d, elapsed) {
                break;
            }
            elapsed += d;
            out.push(d);
        }
        out
    }
}

/// Options for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// Bound on the whole call (retries and reading the reply included); `None` uses the
    /// client's default.
    pub timeout: Option<Duration>,
}

impl CallOptions {
    /// Options with nothing set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bound the whole call by `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Why a client cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address cannot be used.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The TLS options cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The call did not finish within its timeout; it was not retried.
    #[error("{method}: timed out after {after:?}")]
    Timeout {
        /// The method called.
        method: String,
        /// The timeout.
        after: Duration,
    },
    /// No connection to the plugin could be made (after the retries of the policy).
    #[error("{method}: cannot connect to plugin at {addr}")]
    Connect {
        /// The method called.
        method: String,
        /// The plugin's address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed while the call was in flight (closed mid-reply, reset, bad
    /// HTTP).
    #[error("{method}: connection to plugin at {addr} failed")]
    Transport {
        /// The method called.
        method: String,
        /// The plugin's address.
        addr: String,
        /// The HTTP error.
        #[source]
        source: hyper::Error,
    },
    /// The plugin answered with a status other than 200: `<Method>: <Err>`, or the raw body
    /// when it has no `Err`.
    #[error("{method}: {message}")]
    Plugin {
        /// The method called.
        method: String,
        /// The HTTP status.
        status: u16,
        /// The plugin's message.
        message: String,
    },
    /// The reply is not the JSON expected.
    #[error("{method}: cannot decode the plugin's reply")]
    Decode {
        /// The method called.
        method: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The request cannot be encoded as JSON.
    #[error("{method}: cannot encode the request")]
    Encode {
        /// The method called.
        method: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The reply is larger than the client accepts.
    #[error("{method}: reply larger than {limit} bytes")]
    TooLarge {
        /// The method called.
        method: String,
        /// The limit.
        limit: usize,
    },
    /// The method name cannot be a URL path.
    #[error("invalid method name {method:?}")]
    InvalidMethod {
        /// The method name.
        method: String,
    },
}

impl CallError {
    /// Whether the plugin answered 404 (Moby's `IsNotFound`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CallError::Plugin { status: 404, .. })
    }

    /// Whether the call timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, CallError::Timeout { .. })
    }

    /// Whether nothing listens at the address: the connection was refused or the socket file
    /// is gone (a stale or dead plugin).
    pub fn is_refused(&self) -> bool {
        match self {
            CallError::Connect { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ),
            _ => false,
        }
    }

    /// The method called.
    pub fn method(&self) -> &str {
        match self {
            CallError::Timeout { method, .. }
            | CallError::Connect { method, .. }
            | CallError::Transport { method, .. }
            | CallError::Plugin { method, .. }
            | CallError::Decode { method, .. }
            | CallError::Encode { method, .. }
            | CallError::TooLarge { method, .. }
            | CallError::InvalidMethod { method } => method,
        }
    }
}

/// Builds a [`Client`] with non-default settings.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    addr: Address,
    tls: Option<TlsOptions>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    retry: RetryPolicy,
    max_idle: usize,
    max_response_bytes: usize,
}

impl ClientBuilder {
    /// TLS options for `https://` addresses (`None`: system roots).
    pub fn tls(mut self, tls: Option<TlsOptions>) -> Self {
        self.tls = tls;
        self
    }

    /// A default bound on every call (default: none, as Moby).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bound on opening one connection (default 10 s, as Moby).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The retry schedule for connection failures (default: Moby's).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How many idle connections are kept for reuse (default 16).
    pub fn max_idle(mut self, n: usize) -> Self {
        self.max_idle = n;
        self
    }

    /// The largest reply body `call` accepts (default 64 MiB).
    pub fn max_response_bytes(mut self, n: usize) -> Self {
        self.max_response_bytes = n;
        self
    }

    /// Build the client. No connection is made yet.
    pub fn build(self) -> Result<Client, ClientError> {
        let tls = if self.addr.is_tls() {
            let config = tls::client_config(self.tls.as_ref())?;
            let (host, _) = self.addr.tcp_host_port().unwrap_or(("localhost", 0));
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| AddressError::BadHost { addr: self.addr.to_string() })?;
            Some((tokio_rustls::TlsConnector::from(config), name))
        } else {
            None
        };
        let host = HeaderValue::from_str(self.addr.host_header())
            .map_err(|_| AddressError::BadHost { addr: self.addr.to_string() })?;
        Ok(Client {
            inner: Arc::new(Inner {
                host,
                addr: self.addr,
                tls,
                pool: Mutex::new(Vec::new()),
                timeout: self.timeout,
                connect_timeout: self.connect_timeout,
                retry: self.retry,
                max_idle: self.max_idle,
                max_response_bytes: self.max_response_bytes,
            }),
        })
    }
}

/// A client for one plugin address. Cheap to clone; clones share the connection pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use dockplug_v1::Client;
/// use dockplug_protocol::Manifest;
/// let client = Client::new("unix:///run/docker/plugins/local.sock", None)?;
/// let manifest: Manifest = client.call_empty("Plugin.Activate").await?;
/// println!("{:?}", manifest.implements);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("addr", &self.inner.addr.as_str()).finish_non_exhaustive()
    }
}

struct Inner {
    addr: Address,
    host: HeaderValue,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    pool: Mutex<Vec<SendRequest<Body>>>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    retry: RetryPolicy,
    max_idle: usize,
    max_response_bytes: usize,
}

/// How one attempt failed, and whether its request can be sent again.
enum AttemptError {
    Connect(std::io::Error, Option<Request<Body>>),
    /// The flag: whether the connection was a reused (pooled) one.
    Transport(hyper::Error, Option<Request<Body>>, bool),
}

impl Client {
    /// A client for `addr` (`unix://`, `tcp://`, `http://`, `https://`) with Moby's defaults:
    /// no call timeout, 10 s connect timeout, Moby's retry schedule.
    pub fn new(addr: &str, tls: Option<&TlsOptions>) -> Result<Client, ClientError> {
        Self::builder(addr.parse()?).tls(tls.cloned()).build()
    }

    /// A builder for `addr`.
    pub fn builder(addr: Address) -> ClientBuilder {
        ClientBuilder {
            addr,
            tls: None,
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            max_idle: 16,
            max_response_bytes: 64 << 20,
        }
    }

    /// The plugin's address.
    pub fn addr(&self) -> &Address {
        &self.inner.addr
    }

    /// Call `method` with `args` as JSON and decode the reply (an empty reply decodes as
    /// JSON `null`, so `()` and `Option<T>` accept it; ask for `serde::de::IgnoredAny` to
    /// ignore any reply).
    ///
    /// Only the status decides success, as in Moby's client: a 200 whose body carries
    /// `{"Err": "..."}` is returned as decoded, for the caller (or its typed reply) to check.
    pub async fn call<A, R>(&self, method: &str, args: &A) -> Result<R, CallError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_with_options(method, args, CallOptions::default()).await
    }

    /// [`Client::call`] with per-call options.
    pub async fn call_with_options<A, R>(
        &self,
        method: &str,
        args: &A,
        opts: CallOptions,
    ) -> Result<R, CallError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let body = encode(method, args)?;
        let reply = self.call_raw(method, Some(body), opts).await?;
        decode(method, &reply)
    }

    /// Call `method` with an empty body (as `Plugin.Activate` is sent) and decode the reply.
    pub async fn call_empty<R: DeserializeOwned>(&self, method: &str) -> Result<R, CallError> {
        let reply = self.call_raw(method, None, CallOptions::default()).await?;
        decode(method, &reply)
    }

    /// Call `method` with a raw body (`None`: empty) and return the raw reply of a 200.
    pub async fn call_raw(
        &self,
        method: &str,
        body: Option<Bytes>,
        opts: CallOptions,
    ) -> Result<Bytes, CallError> {
        let path = path_of(method)?;
        let body = body.unwrap_or_default();
        let limit = self.inner.max_response_bytes;
        let inner = &self.inner;
        self.bounded(method, opts, async {
            let (resp, sender) = inner.send_buffered(method, &path, body).await?;
            let status = resp.status();
            let bytes = read_limited(method, &inner.addr, resp.into_body(), limit).await?;
            inner.checkin(sender);
            check_status(method, status, bytes)
        })
        .await
    }

    /// Call `method` with `args` as JSON and return the reply body as a stream of bytes (for
    /// log and event streams). The timeout covers the call until the reply's headers arrive.
    pub async fn stream<A: Serialize + ?Sized>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<ByteStream, CallError> {
        self.stream_with_options(method, args, CallOptions::default()).await
    }

    /// [`Client::stream`] with per-call options.
    pub async fn stream_with_options<A: Serialize + ?Sized>(
        &self,
        method: &str,
        args: &A,
        opts: CallOptions,
    ) -> Result<ByteStream, CallError> {
        let path = path_of(method)?;
        let body = encode(method, args)?;
        let inner = &self.inner;
        let (resp, sender) =
            self.bounded(method, opts, inner.send_buffered(method, &path, body)).await?;
        let status = resp.status();
        if status != StatusCode::OK {
            let bytes = read_limited(method, &inner.addr, resp.into_body(), 1 << 20).await?;
            return Err(plugin_error(method, status, &bytes));
        }
        Ok(ByteStream {
            method: method.to_owned(),
            addr: inner.addr.to_string(),
            body: resp.into_body(),
            sender: Some(sender),
            pool: Arc::downgrade(inner),
        })
    }

    /// Call `method` with the bytes of `reader` as the body (streamed, chunked) and decode
    /// the JSON reply. The body is read once, so the call is retried only when the
    /// connection failed before any of it was sent.
    pub async fn send_file<R, T>(&self, method: &str, reader: R) -> Result<T, CallError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        T: DeserializeOwned,
    {
        self.send_file_with_options(method, reader, CallOptions::default()).await
    }

    /// [`Client::send_file`] with per-call options.
    pub async fn send_file_with_options<R, T>(
        &self,
        method: &str,
        reader: R,
        opts: CallOptions,
    ) -> Result<T, CallError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        T: DeserializeOwned,
    {
        let path = path_of(method)?;
        let inner = &self.inner;
        let body = ReaderBody { reader, buf: vec![0; 64 * 1024].into_boxed_slice(), done: false }
            .boxed_unsync();
        let req = inner.request(&path, body, None);
        let reply = self
            .bounded(method, opts, async {
                let (resp, sender) = inner.send_once_with_retry(method, req).await?;
                let status = resp.status();
                let bytes =
                    read_limited(method, &inner.addr, resp.into_body(), inner.max_response_bytes)
                        .await?;
                inner.checkin(sender);
                check_status(method, status, bytes)
            })
            .await?;
        decode(method, &reply)
    }

    async fn bounded<T>(
        &self,
        method: &str,
        opts: CallOptions,
        fut: impl std::future::Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        match opts.timeout.or(self.inner.timeout) {
            Some(after) => tokio::time::timeout(after, fut)
                .await
                .unwrap_or_else(|_| Err(CallError::Timeout { method: method.to_owned(), after })),
            None => fut.await,
        }
    }
}

impl Inner {
    fn request(&self, path: &str, body: Body, len: Option<usize>) -> Request<Body> {
        let mut req = Request::new(body);
        *req.method_mut() = http::Method::POST;
        // `path` was validated by `path_of`.
        if let Ok(uri) = path.parse() {
            *req.uri_mut() = uri;
        }
        let h = req.headers_mut();
        h.insert(HOST, self.host.clone());
        h.insert(ACCEPT, HeaderValue::from_static(VERSION_MIMETYPE));
        if let Some(len) = len {
            h.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        req
    }

    /// Send a buffered body, resending it whole on connection failures per the policy.
    async fn send_buffered(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<(Response<Incoming>, SendRequest<Body>), CallError> {
        let started = Instant::now();
        let mut retries = 0;
        let mut fresh = false;
        loop {
            let len = body.len();
            let req = self.request(path, full(body.clone()), Some(len));
            let err = match self.attempt(req, fresh).await {
                Ok(ok) => return Ok(ok),
                Err(AttemptError::Connect(e, _)) => self.connect_error(method, e),
                Err(AttemptError::Transport(e, _, reused)) => {
                    // A kept-alive connection the plugin closed meanwhile: try a new one at
                    // once, before any backoff.
                    if reused && !fresh {
                        fresh = true;
                        continue;
                    }
                    self.transport_error(method, e)
                }
            };
            let delay = self.retry.backoff(retries);
            if self.retry.gives_up(delay, started.elapsed()) {
                return Err(err);
            }
            tracing::warn!(addr = %self.addr, error = %err, "unable to connect to plugin, retrying in {delay:?}");
            tokio::time::sleep(delay).await;
            retries += 1;
        }
    }

    /// Send a streamed body: retried only while the request comes back unsent.
    async fn send_once_with_retry(
        &self,
        method: &str,
        mut req: Request<Body>,
    ) -> Result<(Response<Incoming>, SendRequest<Body>), CallError> {
        let started = Instant::now();
        let mut retries = 0;
        let mut fresh = false;
        loop {
            let (err, back) = match self.attempt(req, fresh).await {
                Ok(ok) => return Ok(ok),
                Err(AttemptError::Connect(e, back)) => (self.connect_error(method, e), back),
                Err(AttemptError::Transport(_, Some(back), true)) if !fresh => {
                    fresh = true;
                    req = back;
                    continue;
                }
                Err(AttemptError::Transport(e, back, _)) => (self.transport_error(method, e), back),
            };
            let Some(back) = back else { return Err(err) };
            let delay = self.retry.backoff(retries);
            if self.retry.gives_up(delay, started.elapsed()) {
                return Err(err);
            }
            tracing::warn!(addr = %self.addr, error = %err, "unable to connect to plugin, retrying in {delay:?}");
            tokio::time::sleep(delay).await;
            retries += 1;
            req = back;
        }
    }

    fn connect_error(&self, method: &str, source: std::io::Error) -> CallError {
        CallError::Connect { method: method.to_owned(), addr: self.addr.to_string(), source }
    }

    fn transport_error(&self, method: &str, source: hyper::Error) -> CallError {
        CallError::Transport { method: method.to_owned(), addr: self.addr.to_string(), source }
    }

    /// One attempt on a pooled connection, or a new one when `fresh` or none is idle.
    async fn attempt(
        &self,
        req: Request<Body>,
        fresh: bool,
    ) -> Result<(Response<Incoming>, SendRequest<Body>), AttemptError> {
        let pooled = if fresh { None } else { self.checkout() };
        let mut reused = pooled.is_some();
        let mut sender = match pooled {
            Some(s) => s,
            None => match self.connect().await {
                Ok(s) => s,
                Err(e) => return Err(AttemptError::Connect(e, Some(req))),
            },
        };
        if sender.ready().await.is_err() {
            reused = false;
            sender = match self.connect().await {
                Ok(s) => s,
                Err(e) => return Err(AttemptError::Connect(e, Some(req))),
            };
            if let Err(e) = sender.ready().await {
                return Err(AttemptError::Transport(e, Some(req), false));
            }
        }
        match sender.try_send_request(req).await {
            Ok(resp) => Ok((resp, sender)),
            Err(mut e) => {
                let back = e.take_message();
                Err(AttemptError::Transport(e.into_error(), back, reused))
            }
        }
    }

    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = pool.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < self.max_idle {
            pool.push(sender);
        }
    }

    async fn connect(&self) -> std::io::Result<SendRequest<Body>> {
        let fut = async {
            if let Some(path) = self.addr.unix_path() {
                let s = tokio::net::UnixStream::connect(path).await?;
                return handshake(s).await;
            }
            let (host, port) = self.addr.tcp_host_port().unwrap_or(("localhost", 0));
            let tcp = tokio::net::TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            match &self.tls {
                Some((connector, name)) => {
                    let s = connector.connect(name.clone(), tcp).await?;
                    handshake(s).await
                }
                None => handshake(tcp).await,
            }
        };
        match tokio::time::timeout(self.connect_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
        }
    }
}

async fn handshake<S>(stream: S) -> std::io::Result<SendRequest<Body>>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "plugin connection ended");
        }
    });
    Ok(sender)
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

fn path_of(method: &str) -> Result<String, CallError> {
    let path = if method.starts_with('/') { method.to_owned() } else { format!("/{method}") };
    match path.parse::<http::uri::PathAndQuery>() {
        Ok(_) if !method.trim_start_matches('/').is_empty() => Ok(path),
        _ => Err(CallError::InvalidMethod { method: method.to_owned() }),
    }
}

fn encode<A: Serialize + ?Sized>(method: &str, args: &A) -> Result<Bytes, CallError> {
    let mut v = serde_json::to_vec(args)
        .map_err(|source| CallError::Encode { method: method.to_owned(), source })?;
    // Moby's encoder ends the body with a newline; some plugins read line by line.
    v.push(b'\n');
    Ok(v.into())
}

fn decode<R: DeserializeOwned>(method: &str, body: &[u8]) -> Result<R, CallError> {
    let decode_err = |source| CallError::Decode { method: method.to_owned(), source };
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"null").map_err(decode_err);
    }
    // Like Go's decoder, read the first JSON value and ignore what follows.
    let mut it = serde_json::Deserializer::from_slice(body).into_iter::<R>();
    match it.next() {
        Some(r) => r.map_err(decode_err),
        None => serde_json::from_slice(b"null").map_err(decode_err),
    }
}

fn check_status(method: &str, status: StatusCode, body: Bytes) -> Result<Bytes, CallError> {
    if status == StatusCode::OK {
        Ok(body)
    } else {
        Err(plugin_error(method, status, &body))
    }
}

fn plugin_error(method: &str, status: StatusCode, body: &[u8]) -> CallError {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.err.is_empty() => e.err,
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    CallError::Plugin { method: method.to_owned(), status: status.as_u16(), message }
}

async fn read_limited(
    method: &str,
    addr: &Address,
    mut body: Incoming,
    limit: usize,
) -> Result<Bytes, CallError> {
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| CallError::Transport {
            method: method.to_owned(),
            addr: addr.to_string(),
            source,
        })?;
        let Ok(data) = frame.into_data() else { continue };
        let total = buf.len() + first.as_ref().map_or(0, Bytes::len) + data.len();
        if total > limit {
            return Err(CallError::TooLarge { method: method.to_owned(), limit });
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(f) => {
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// The body of a streamed reply ([`Client::stream`]), chunk by chunk. The connection returns
/// to the pool when the stream ends.
pub struct ByteStream {
    method: String,
    addr: String,
    body: Incoming,
    sender: Option<SendRequest<Body>>,
    pool: Weak<Inner>,
}

impl fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteStream").field("method", &self.method).finish_non_exhaustive()
    }
}

impl Stream for ByteStream {
    type Item = Result<Bytes, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    if let (Some(sender), Some(pool)) = (self.sender.take(), self.pool.upgrade()) {
                        pool.checkin(sender);
                    }
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(source))) => {
                    self.sender = None;
                    return Poll::Ready(Some(Err(CallError::Transport {
                        method: self.method.clone(),
                        addr: self.addr.clone(),
                        source,
                    })));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}

/// A request body read from an `AsyncRead`, chunk by chunk.
struct ReaderBody<R> {
    reader: R,
    buf: Box<[u8]>,
    done: bool,
}

impl<R: AsyncRead + Unpin> hyper::body::Body for ReaderBody<R> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let mut read = tokio::io::ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.reader).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Ok(())) => {
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(read.filled())))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_matches_moby() {
        let p = RetryPolicy::default();
        let s = |n| p.backoff(n).as_secs();
        assert_eq!([s(0), s(1), s(2), s(4), s(6), s(10), s(40)], [1, 2, 4, 16, 30, 30, 30]);
        let z = Duration::ZERO;
        for secs in [1, 2, 10] {
            assert!(!p.gives_up(Duration::from_secs(secs), z));
        }
        for secs in [30, 40] {
            assert!(p.gives_up(Duration::from_secs(secs), z));
        }
        assert_eq!(p.schedule().iter().sum::<Duration>(), Duration::from_secs(15));
        assert!(RetryPolicy::never().schedule().is_empty());
        let short = RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(100));
        let ms: Vec<u128> = short.schedule().iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [10, 20, 40]);
    }

    #[test]
    fn errors_name_the_method() {
        let e = plugin_error(
            "VolumeDriver.Mount",
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"Err":"boom"}"#,
        );
        assert_eq!(e.to_string(), "VolumeDriver.Mount: boom");
        let e = plugin_error("X.Y", StatusCode::NOT_FOUND, b"404 page not found\n");
        assert_eq!(e.to_string(), "X.Y: 404 page not found\n");
        assert!(e.is_not_found());
        let e = plugin_error("X.Y", StatusCode::BAD_REQUEST, br#"{"Err":""}"#);
        assert_eq!(e.to_string(), r#"X.Y: {"Err":""}"#);
    }

    #[test]
    fn replies_decode_like_go() {
        let v: serde_json::Value = decode("m", b"{\"a\":1}\n{\"b\":2}").unwrap();
        assert_eq!(v["a"], 1);
        let () = decode("m", b"").unwrap();
        let n: Option<u8> = decode("m", b"  \n").unwrap();
        assert_eq!(n, None);
        assert!(matches!(decode::<u8>("m", b"garbage"), Err(CallError::Decode { .. })));
        assert!(path_of("").is_err());
        assert!(path_of("bad method").is_err());
        assert_eq!(path_of("Plugin.Activate").unwrap(), "/Plugin.Activate");
    }
}
