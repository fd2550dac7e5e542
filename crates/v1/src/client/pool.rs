//! Connections: opening one (unix socket, TCP, TLS over TCP, either through an HTTP proxy),
//! keeping idle ones for reuse, and one attempt of a request on a pooled or fresh connection.
//!
//! The pool follows Moby's plugin transport (`go-connections` `sockets/sockets.go
//! ConfigureTransport`): at most 6 idle connections (past that the longest idle is closed),
//! each closed after 30 s unused. Both are [`super::ClientBuilder`] settings.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::Body;
use super::retry::AttemptError;
use super::Inner;

/// The idle connections of one client.
pub(super) struct Pool {
    state: Arc<Mutex<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    /// Oldest first.
    conns: Vec<(SendRequest<Body>, Instant)>,
    /// Whether a task is closing expired connections.
    reaping: bool,
}

impl Pool {
    pub(super) fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(Idle { conns: Vec::new(), reaping: false })),
            max_idle,
            idle_timeout,
        }
    }

    /// A poisoned lock only means a panic elsewhere; the list of connections is still valid.
    fn lock(state: &Mutex<Idle>) -> MutexGuard<'_, Idle> {
        state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used live connection, if one is idle.
    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = Self::lock(&self.state);
        let now = Instant::now();
        while let Some((s, since)) = idle.conns.pop() {
            if !s.is_closed() && now.duration_since(since) < self.idle_timeout {
                return Some(s);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Body>) {
        if sender.is_closed() || self.max_idle == 0 {
            return;
        }
        let mut idle = Self::lock(&self.state);
        idle.conns.push((sender, Instant::now()));
        if idle.conns.len() > self.max_idle {
            // Dropping the sender closes its connection.
            idle.conns.remove(0);
        }
        if !idle.reaping {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                idle.reaping = true;
                rt.spawn(reap(Arc::downgrade(&self.state), self.idle_timeout));
            }
        }
    }
}

/// Close idle connections as they pass `timeout`; ends when none is left (or the client is
/// gone).
async fn reap(state: Weak<Mutex<Idle>>, timeout: Duration) {
    // If the runtime drops this task, the next check-in starts another.
    struct Done(Option<Weak<Mutex<Idle>>>);
    impl Drop for Done {
        fn drop(&mut self) {
            if let Some(state) = self.0.take().and_then(|w| w.upgrade()) {
                Pool::lock(&state).reaping = false;
            }
        }
    }
    let mut done = Done(Some(state.clone()));
    loop {
        let next = {
            let Some(state) = state.upgrade() else { return };
            let mut idle = Pool::lock(&state);
            let now = Instant::now();
            idle.conns.retain(|(s, since)| !s.is_closed() && now.duration_since(*since) < timeout);
            match idle.conns.first() {
                Some((_, since)) => *since + timeout,
                None => {
                    // Cleared under the lock, so a check-in now starts a new task.
                    idle.reaping = false;
                    done.0 = None;
                    return;
                }
            }
        };
        tokio::time::sleep_until(next.into()).await;
    }
}

impl Inner {
    /// One attempt on a pooled connection, or a new one when `fresh` or none is idle.
    pub(super) async fn attempt(
        &self,
        req: Request<Body>,
        fresh: bool,
    ) -> Result<(Response<Incoming>, SendRequest<Body>), AttemptError> {
        let pooled = if fresh { None } else { self.pool.checkout() };
        let mut reused = pooled.is_some();
        // Opening a connection is boxed: its future (TLS, proxy tunnel) is large, and every
        // call would otherwise carry and move it.
        let mut sender = match pooled {
            Some(s) => s,
            None => match Box::pin(self.connect()).await {
                Ok(s) => s,
                Err(e) => return Err(AttemptError::Connect(e, Some(req))),
            },
        };
        if sender.ready().await.is_err() {
            reused = false;
            sender = match Box::pin(self.connect()).await {
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

    /// Return a connection whose reply was read to the end, for the next call.
    pub(super) fn checkin(&self, sender: SendRequest<Body>) {
        self.pool.checkin(sender);
    }

    async fn connect(&self) -> std::io::Result<SendRequest<Body>> {
        let fut = async {
            if let Some(path) = self.addr.unix_path() {
                let s = tokio::net::UnixStream::connect(path).await?;
                return handshake(s).await;
            }
            let (host, port) = self.addr.tcp_host_port().unwrap_or(("localhost", 0));
            let user_agent = self.user_agent.to_str().unwrap_or_default();
            let tcp = match (&self.proxy, &self.tls) {
                (None, _) => {
                    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
                    tcp.set_nodelay(true)?;
                    tcp
                }
                (Some(proxy), None) => proxy.connect().await?,
                (Some(proxy), Some(_)) => {
                    let authority = match host.contains(':') {
                        true => format!("[{host}]:{port}"),
                        false => format!("{host}:{port}"),
                    };
                    proxy.tunnel(&authority, user_agent).await?
                }
            };
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
