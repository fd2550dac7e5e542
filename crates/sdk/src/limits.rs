//! What one client may hold of a server: connections, time and bytes.
//!
//! Without bounds a client that connects and never sends a request (or sends its headers a
//! byte a minute, or never reads the reply) keeps a descriptor and a task of the plugin
//! forever; a few thousand such clients exhaust the plugin's descriptors. [`Limits`] bounds
//! each of those, and every connection is watched against them: a connection that breaks a
//! limit is closed and its descriptor freed. A call whose handler is still running is never
//! cut off: the handler's own time is the author's business (dockerd gives up after its own
//! per-call timeouts).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Bounds on what clients can hold of a [`Server`](crate::Server): set them with
/// [`PluginBuilder::limits`](crate::PluginBuilder::limits) or
/// [`Server::limits`](crate::Server::limits).
///
/// The defaults suit a plugin that a daemon calls: dockerd sends each request at once, keeps
/// idle connections for at most 90 s (Go's `http.Transport` default; Moby's plugin client
/// uses 30 s), and never has hundreds of calls open on one plugin.
///
/// ```
/// use std::time::Duration;
/// use dockplug_sdk::Limits;
/// let limits = Limits::default()
///     .header_timeout(Duration::from_secs(5))
///     .max_connections(64);
/// assert_eq!(limits.idle, Duration::from_secs(120));
/// # let _ = limits;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// From the first byte of a request to the end of its headers (default 10 s); also the
    /// bound on a TLS handshake.
    pub header: Duration,
    /// A connection with no call in flight and no request started (default 120 s, longer
    /// than any client's idle-connection expiry, so a client never races our close).
    pub idle: Duration,
    /// Reading a request body once its headers are in (default 60 s; `408` after it).
    pub body: Duration,
    /// A reply the client does not read: how long a write may stay blocked (default 60 s).
    pub write: Duration,
    /// Connections served at once (default 512). Further clients wait in the listen
    /// backlog until one ends; their descriptors are not ours meanwhile.
    pub connections: usize,
    /// Bytes of a request line and headers (default 64 KiB; `431` above it).
    pub header_bytes: usize,
    /// Bytes of a request body (default 16 MiB; `413` above it).
    pub body_bytes: usize,
}

/// The smallest read buffer hyper accepts.
const MIN_HEADER_BYTES: usize = 8192;

impl Default for Limits {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            body: Duration::from_secs(60),
            write: Duration::from_secs(60),
            connections: 512,
            header_bytes: 64 << 10,
            body_bytes: crate::router::MAX_BODY,
        }
    }
}

impl Limits {
    /// Sets [`Limits::header`].
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.header = d;
        self
    }
    /// Sets [`Limits::idle`].
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle = d;
        self
    }
    /// Sets [`Limits::body`].
    pub fn body_timeout(mut self, d: Duration) -> Self {
        self.body = d;
        self
    }
    /// Sets [`Limits::write`].
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.write = d;
        self
    }
    /// Sets [`Limits::connections`] (at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }
    /// Sets [`Limits::header_bytes`] (at least 8 KiB, hyper's smallest buffer).
    pub fn max_header_bytes(mut self, n: usize) -> Self {
        self.header_bytes = n.max(MIN_HEADER_BYTES);
        self
    }
    /// Sets [`Limits::body_bytes`].
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.body_bytes = n;
        self
    }
}

// ---- one connection's state ----

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// Where a connection is, as the watchdog sees it. A new connection starts in `HEAD`.
/// Transitions: `IDLE` → `HEAD` (bytes of a request arrive), → `BUSY` (the headers are parsed and a call starts), → `IDLE` (the last
/// call's reply has been handed to the connection).
///
/// Every transition happens while the connection's future is polled (in its reads and writes,
/// its service and its reply bodies), and [`watch`] polls the [`Watchdog`] right after it in
/// the same task: the state is only touched from one task, so relaxed atomics suffice, and a
/// transition wakes nothing.
pub(crate) struct ConnState {
    start: Instant,
    phase: AtomicU8,
    /// Milliseconds since `start` at the last phase change.
    since: AtomicU64,
    /// Calls in flight (pipelined requests may overlap their replies).
    busy: AtomicU64,
    /// Milliseconds since `start` + 1 when a write started to block; 0 when none is.
    write_blocked: AtomicU64,
}

impl ConnState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            // A new connection owes its first request at once: the header bound applies.
            phase: AtomicU8::new(HEAD),
            since: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn enter(&self, phase: u8) {
        self.since.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// A call starts; the returned guard ends it when the reply body is dropped.
    pub(crate) fn call(self: &Arc<Self>) -> CallGuard {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.enter(BUSY);
        CallGuard(self.clone())
    }

    fn read_some(&self) {
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.enter(HEAD);
        }
    }

    fn write_pending(&self, pending: bool) {
        let was = self.write_blocked.load(Ordering::Relaxed);
        if pending && was == 0 {
            self.write_blocked.store(self.now_ms() + 1, Ordering::Relaxed);
        } else if !pending && was != 0 {
            self.write_blocked.store(0, Ordering::Relaxed);
        }
    }

    /// The next deadline and what it bounds, or `None` when a call runs unblocked.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        let at = |ms: u64, d: Duration| self.start + Duration::from_millis(ms) + d;
        let blocked = self.write_blocked.load(Ordering::Relaxed);
        if blocked != 0 {
            return Some((at(blocked - 1, limits.write), "reply not read"));
        }
        let since = self.since.load(Ordering::Relaxed);
        match self.phase.load(Ordering::Relaxed) {
            IDLE => Some((at(since, limits.idle), "idle")),
            HEAD => Some((at(since, limits.header), "request headers not complete")),
            _ => None,
        }
    }
}

/// Resolves when the connection breaks one of its limits, with the reason.
///
/// Its timer is moved earlier when the deadline does (a request starting on an idle
/// connection), never later: a deadline that moved on (the next request, the next reply)
/// is found when the timer fires, which then waits for the new one. So a connection serving
/// calls back to back touches the timer once per header timeout, not several times a call.
pub(crate) struct Watchdog {
    state: Arc<ConnState>,
    limits: Limits,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The deadline the timer waits for; `None` once it has fired.
    armed: Option<Instant>,
}

impl Watchdog {
    pub(crate) fn new(state: Arc<ConnState>, limits: Limits) -> Self {
        let start = state.start;
        Self { state, limits, timer: Box::pin(tokio::time::sleep_until(start)), armed: None }
    }
}

impl Future for Watchdog {
    type Output = &'static str;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
        let this = self.get_mut();
        loop {
            // A running call has no deadline; it ends while the connection is polled, and
            // this is polled right after.
            let Some((deadline, reason)) = this.state.deadline(&this.limits) else {
                return Poll::Pending;
            };
            match this.armed {
                Some(armed) if armed <= deadline => {}
                _ => {
                    this.timer.as_mut().reset(deadline);
                    this.armed = Some(deadline);
                }
            }
            match this.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    if deadline <= Instant::now() {
                        return Poll::Ready(reason);
                    }
                    // The deadline moved on since the timer was set: wait for the new one.
                    this.armed = None;
                }
            }
        }
    }
}

/// Ends a call when dropped (with the reply body).
pub(crate) struct CallGuard(Arc<ConnState>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.enter(IDLE);
        }
    }
}

/// A reply body that ends its call when hyper is done with it.
pub(crate) struct Tracked<B> {
    inner: B,
    _call: CallGuard,
}

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, call: CallGuard) -> Self {
        Self { inner, _call: call }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's byte stream, reporting reads and blocked writes to its [`ConnState`].
pub(crate) struct WatchedIo<IO> {
    io: IO,
    state: Arc<ConnState>,
}

impl<IO> WatchedIo<IO> {
    pub(crate) fn new(io: IO, state: Arc<ConnState>) -> Self {
        Self { io, state }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WatchedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.read_some();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WatchedIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        this.state.write_pending(r.is_pending());
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.state.write_pending(r.is_pending());
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.state.write_pending(r.is_pending());
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_shutdown(cx);
        this.state.write_pending(r.is_pending());
        r
    }
}

/// Runs `conn` until it ends or breaks `limits`; in the second case it is dropped (its
/// descriptor closed) and the reason logged.
pub(crate) async fn watch<F, E>(conn: F, state: Arc<ConnState>, limits: Limits)
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    // The connection first: the watchdog reads the state it left (see `ConnState`).
    tokio::select! {
        biased;
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended");
            }
        }
        reason = Watchdog::new(state, limits) => tracing::debug!(reason, "connection closed: over its limit"),
    }
}
