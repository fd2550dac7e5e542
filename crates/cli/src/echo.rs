//! `dockplug serve-echo`: a minimal v1 plugin that answers `Plugin.Activate` and echoes every
//! other call, the target `cargo xtask bench` points both clients at.

use std::convert::Infallible;
use std::path::Path;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const MANIFEST: &[u8] = br#"{"Implements":["VolumeDriver"]}"#;

async fn reply(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let activate = req.uri().path() == "/Plugin.Activate";
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body = if activate { Bytes::from_static(MANIFEST) } else { body };
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/vnd.docker.plugins.v1+json"),
    );
    Ok(resp)
}

/// Serve until killed, on a unix socket (replacing a stale file) or a TCP address.
pub async fn serve(socket: Option<&Path>, tcp: Option<&str>) -> Result<()> {
    enum L {
        Unix(tokio::net::UnixListener),
        Tcp(tokio::net::TcpListener),
    }
    let listener = match (socket, tcp) {
        (Some(path), _) => {
            let _ = std::fs::remove_file(path);
            L::Unix(
                tokio::net::UnixListener::bind(path)
                    .with_context(|| format!("listen on {}", path.display()))?,
            )
        }
        (None, Some(addr)) => L::Tcp(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on {addr}"))?,
        ),
        (None, None) => anyhow::bail!("serve-echo needs a socket path or --tcp ADDR"),
    };
    loop {
        let io: Box<dyn Io> = match &listener {
            L::Unix(l) => Box::new(l.accept().await?.0),
            L::Tcp(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        };
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(io), hyper::service::service_fn(reply))
                .await;
        });
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}
