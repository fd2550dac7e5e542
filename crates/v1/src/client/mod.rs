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

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dockplug_protocol::common::VERSION_MIMETYPE;
use http::header::{ACCEPT, CONTENT_LENGTH, HOST};
use http::{HeaderValue, Request, StatusCode};
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
mod retry;

pub use body::ByteStream;
pub use error::{CallError, ClientError};
pub use retry::RetryPolicy;

use body::{decode, encode, full, path_of, read_limited, Body, ReaderBody};
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
        let body = ReaderBody::new(reader).boxed_unsync();
        let req = inner.request(&path, body, None);
        let reply = self
            .bounded(method, opts, async {
                let (resp, sender) = inner.send(method, &path, req, Resend::OnlyUnsent).await?;
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
    /// Send a buffered body, resending it whole on connection failures per the policy.
    async fn send_buffered(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<(http::Response<hyper::body::Incoming>, SendRequest<Body>), CallError> {
        let req = self.request(path, full(body.clone()), Some(body.len()));
        self.send(method, path, req, Resend::Whole(body)).await
    }

    pub(super) fn request(&self, path: &str, body: Body, len: Option<usize>) -> Request<Body> {
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
}
