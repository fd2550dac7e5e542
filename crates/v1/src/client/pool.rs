//! Connections: opening one (unix socket, TCP, TLS over TCP), keeping idle ones for reuse,
//! and one attempt of a request on a pooled or fresh connection.

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::Body;
use super::retry::AttemptError;
use super::Inner;

impl Inner {
    /// One attempt on a pooled connection, or a new one when `fresh` or none is idle.
    pub(super) async fn attempt(
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

    /// Return a connection whose reply was read to the end, for the next call.
    pub(super) fn checkin(&self, sender: SendRequest<Body>) {
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
