//! The HTTP client of the v1 plugin protocol: `POST /<Method>` over a unix socket or TCP
//! (with TLS for `https://`), JSON in and out, kept-alive connections, Moby's retry backoff.
//!
//! # Retries
//!
//! A call that cannot reach the plugin is retried with Moby's backoff ([`RetryPolicy`]: wait
//! 1 s, doubling, and give up once the next wait would pass 30 s since the first attempt:
//! attempts at about 0, 1, 3, 7 and 15 s). Two things Moby does we do not (difference 4):
//!
//! * a request whose body was already consumed is **never resent**: [`Client::send_file`]
//!   streams its body, so it is retried only when the connection failed before any of it was
//!   sent; JSON calls keep their body and resend it whole;
//! * a call that **timed out is never retried**: the timeout bounds the whole call, retries
//!   and reading the reply included, so a slow non-idempotent call (`VolumeDriver.Create`) is
//!   not delivered twice.
//!
//! Any HTTP reply ends the retries; only status 200 is success (difference 5, kept: it is the
//! wire contract).
//!
//! # Transport
//!
//! As Moby's plugin transport (`go-connections` `sockets/sockets.go ConfigureTransport`):
//! unix sockets are dialled directly and ask for no compression; TCP addresses go through the
//! environment's proxy when it names one ([`ProxyConfig`]), send `Accept-Encoding: gzip` and
//! have gzip replies decompressed (bounded like any reply). Connections are kept alive: at
//! most 6 idle, each closed after 30 s unused ([`ClientBuilder::max_idle`],
//! [`ClientBuilder::idle_timeout`]). Every request carries `User-Agent: dockplug/<version>`
//! ([`USER_AGENT`]) unless the builder is given another.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dockplug_protocol::common::VERSION_MIMETYPE;
use http::header::{
    ACCEPT, ACCEPT_ENCODING, CONTENT_LENGTH, HOST, PROXY_AUTHORIZATION,
    USER_AGENT as USER_AGENT_HEADER,
};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::AsyncRead;

use crate::address::{Address, AddressError};
use crate::tls::{self, TlsOptions};

mod body;
mod error;
mod pool;
mod proxy;
mod retry;

pub use body::ByteStream;
pub use error::{CallError, ClientError};
pub use proxy::{Proxy, ProxyConfig, ProxyError};
pub use retry::RetryPolicy;

use pool::Pool;

/// The `User-Agent` the client sends unless told otherwise: `dockplug/<version>`. (Moby's
/// client sends Go's default, `Go-http-client/1.1`; a daemon embedding this crate may set its
/// own with [`ClientBuilder::user_agent`].)
pub const USER_AGENT: &str = concat!("dockplug/", env!("CARGO_PKG_VERSION"));

use body::{decode, encode, full, is_gzip, read_limited, target_of, Body, Inflate, ReaderBody};
use error::{check_status, plugin_error};
use retry::Resend;

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

/// Builds a [`Client`] with non-default settings.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    addr: Address,
    tls: Option<TlsOptions>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    retry: RetryPolicy,
    max_idle: usize,
    idle_timeout: Duration,
    max_response_bytes: usize,
    proxy: Option<ProxyConfig>,
    user_agent: Option<String>,
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

    /// How many idle connections are kept for reuse (default 6, as Moby); past that the
    /// longest idle one is closed.
    pub fn max_idle(mut self, n: usize) -> Self {
        self.max_idle = n;
        self
    }

    /// How long an idle connection is kept before it is closed (default 30 s, as Moby).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The proxies for TCP addresses (default: [`ProxyConfig::from_env`], read at
    /// [`ClientBuilder::build`]). Unix sockets never use one.
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The `User-Agent` sent with every call (default [`USER_AGENT`]).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
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
        // A unix socket never goes through a proxy: the environment is not even read.
        let proxy = match (self.addr.unix_path(), self.proxy) {
            (Some(_), _) => None,
            (None, config) => config.unwrap_or_else(ProxyConfig::from_env).proxy_for(&self.addr)?,
        };
        let proxy_authorization = match proxy.as_ref().and_then(Proxy::authorization) {
            Some(a) => Some(HeaderValue::from_str(a).map_err(|_| ProxyError::Invalid {
                value: proxy.as_ref().map(ToString::to_string).unwrap_or_default(),
            })?),
            None => None,
        };
        let user_agent = self.user_agent.unwrap_or_else(|| USER_AGENT.to_owned());
        let user_agent = HeaderValue::from_str(&user_agent)
            .map_err(|_| ClientError::UserAgent { value: user_agent.clone() })?;
        // Go's transport asks for gzip on TCP and decompresses the reply itself; over unix
        // sockets Moby turns compression off (`go-connections` `sockets.ConfigureTransport`).
        let gzip = self.addr.unix_path().is_none();
        // Every request's headers, in the order they are sent; `Content-Length` is set per
        // call (and removed for a streamed body).
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(HOST, host.clone());
        headers.insert(USER_AGENT_HEADER, user_agent.clone());
        headers.insert(ACCEPT, HeaderValue::from_static(VERSION_MIMETYPE));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        if gzip {
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let (Some(auth), None) = (&proxy_authorization, &tls) {
            headers.insert(PROXY_AUTHORIZATION, auth.clone());
        }
        Ok(Client {
            inner: Arc::new(Inner {
                headers,
                addr: self.addr,
                tls,
                proxy,
                user_agent,
                gzip,
                pool: Pool::new(self.max_idle, self.idle_timeout),
                timeout: self.timeout,
                connect_timeout: self.connect_timeout,
                retry: self.retry,
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
    /// The headers every request carries (see [`ClientBuilder::build`]).
    headers: HeaderMap,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// The proxy this address is reached through, from the builder's [`ProxyConfig`].
    proxy: Option<Proxy>,
    user_agent: HeaderValue,
    /// Whether to ask for gzip and decompress replies (TCP, as Go's transport does).
    gzip: bool,
    pool: Pool,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    retry: RetryPolicy,
    max_response_bytes: usize,
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
            max_idle: 6,
            idle_timeout: Duration::from_secs(30),
            proxy: None,
            user_agent: None,
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
        let target = target_of(method)?;
        let body = body.unwrap_or_default();
        let limit = self.inner.max_response_bytes;
        let inner = &self.inner;
        self.bounded(method, opts, async {
            let (resp, sender) = inner.send_buffered(method, &target, body).await?;
            let status = resp.status();
            let bytes = read_limited(method, &inner.addr, resp, inner.gzip, limit).await?;
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
        let target = target_of(method)?;
        let body = encode(method, args)?;
        let inner = &self.inner;
        let (resp, sender) =
            self.bounded(method, opts, inner.send_buffered(method, &target, body)).await?;
        let status = resp.status();
        if status != StatusCode::OK {
            let bytes = read_limited(method, &inner.addr, resp, inner.gzip, 1 << 20).await?;
            return Err(plugin_error(method, status, &bytes));
        }
        let inflate = (inner.gzip && is_gzip(&resp)).then(Inflate::new);
        Ok(ByteStream {
            method: method.to_owned(),
            addr: inner.addr.to_string(),
            body: resp.into_body(),
            inflate,
            pending: Bytes::new(),
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
        let target = target_of(method)?;
        let inner = &self.inner;
        let body = ReaderBody::new(reader).boxed_unsync();
        let req = inner.request(&target, body, None);
        let reply = self
            .bounded(method, opts, async {
                let (resp, sender) = inner.send(method, &target, req, Resend::OnlyUnsent).await?;
                let status = resp.status();
                let limit = inner.max_response_bytes;
                let bytes = read_limited(method, &inner.addr, resp, inner.gzip, limit).await?;
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
    /// Send a buffered body, resending it whole on connection failures per the policy.
    async fn send_buffered(
        &self,
        method: &str,
        target: &Uri,
        body: Bytes,
    ) -> Result<(http::Response<hyper::body::Incoming>, SendRequest<Body>), CallError> {
        let req = self.request(target, full(body.clone()), Some(body.len()));
        self.send(method, target, req, Resend::Whole(body)).await
    }

    /// The request for `target` (from `target_of`): the client's headers, the body's length
    /// when it is known.
    pub(super) fn request(&self, target: &Uri, body: Body, len: Option<usize>) -> Request<Body> {
        let mut req = Request::new(body);
        *req.method_mut() = http::Method::POST;
        // Through a proxy (not a tunnel), the request names the plugin in absolute form, as
        // Go's transport writes it.
        *req.uri_mut() = match (&self.proxy, self.tls.is_some()) {
            (Some(_), false) => format!("http://{}{target}", self.addr.host_header())
                .parse()
                .unwrap_or_else(|_| target.clone()),
            _ => target.clone(),
        };
        let h = req.headers_mut();
        *h = self.headers.clone();
        match len {
            Some(len) => h.insert(CONTENT_LENGTH, HeaderValue::from(len)),
            None => h.remove(CONTENT_LENGTH),
        };
        req
    }
}
