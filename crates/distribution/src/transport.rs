//! One HTTP/1.1 exchange with a registry over hyper and (for `https`) rustls: connect with a
//! deadline, wait for the reply headers with a deadline, follow a bounded number of redirects
//! (never carrying credentials to another host), and read bodies with a size bound and a
//! deadline on every read.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use crate::config::{host_of, RegistryConfig};
use crate::DistributionError;

/// A request body.
pub(crate) type ReqBody = BoxBody<Bytes, io::Error>;

/// An empty request body.
pub(crate) fn empty() -> ReqBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A request body from bytes.
pub(crate) fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// HTTPS or plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scheme {
    /// TLS (verified unless the registry is insecure).
    Https,
    /// Plain HTTP (insecure registries only, after HTTPS failed).
    Http,
}

impl Scheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// The connection layer shared by every request of a client.
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) config: Arc<RegistryConfig>,
    tls: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map only caches immutable configurations; a panic elsewhere cannot corrupt it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `host` and port of an authority (`[::1]:5000` gives `::1`, 5000).
fn host_port(authority: &str, scheme: Scheme) -> (String, u16) {
    let host = host_of(authority).to_owned();
    let after_host =
        authority.strip_prefix('[').map_or(authority, |r| r.split_once(']').map_or("", |(_, a)| a));
    let port =
        after_host.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(match scheme {
            Scheme::Https => 443,
            Scheme::Http => 80,
        });
    (host, port)
}

impl Transport {
    pub(crate) fn new(config: Arc<RegistryConfig>) -> Self {
        Self { config, tls: Mutex::new(HashMap::new()) }
    }

    fn tls_config(&self, authority: &str) -> Result<Arc<rustls::ClientConfig>, DistributionError> {
        if let Some(c) = lock(&self.tls).get(authority) {
            return Ok(c.clone());
        }
        let c = crate::tls::client_config(
            authority,
            self.config.certs_dir.as_deref(),
            self.config.is_insecure(authority),
        )?;
        lock(&self.tls).insert(authority.to_owned(), c.clone());
        Ok(c)
    }

    async fn connect(
        &self,
        scheme: Scheme,
        authority: &str,
    ) -> Result<hyper::client::conn::http1::SendRequest<ReqBody>, DistributionError> {
        let conn_err = |source| DistributionError::Connect { host: authority.to_owned(), source };
        let (host, port) = host_port(authority, scheme);
        let deadline = self.config.connect_timeout;
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "connect deadline passed");
        let tcp =
            tokio::time::timeout(deadline, tokio::net::TcpStream::connect((host.as_str(), port)))
                .await
                .map_err(|_| conn_err(timed_out()))?
                .map_err(conn_err)?;
        let _ = tcp.set_nodelay(true);
        match scheme {
            Scheme::Http => self.handshake(TokioIo::new(tcp), authority).await,
            Scheme::Https => {
                let config = self.tls_config(authority)?;
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| conn_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
                let tls = tokio::time::timeout(
                    deadline,
                    tokio_rustls::TlsConnector::from(config).connect(name, tcp),
                )
                .await
                .map_err(|_| conn_err(timed_out()))?
                .map_err(conn_err)?;
                self.handshake(TokioIo::new(tls), authority).await
            }
        }
    }

    async fn handshake<T>(
        &self,
        io: TokioIo<T>,
        authority: &str,
    ) -> Result<hyper::client::conn::http1::SendRequest<ReqBody>, DistributionError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (send, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| {
            DistributionError::Connect { host: authority.to_owned(), source: io::Error::other(e) }
        })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    /// Sends one request to `url` (absolute) and returns the reply headers. GET and HEAD
    /// follow redirects (at most [`RegistryConfig::max_redirects`]); `Authorization` is
    /// dropped when a redirect leaves the host.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        mut headers: HeaderMap,
        body: ReqBody,
    ) -> Result<Response<Incoming>, DistributionError> {
        let first = url.to_owned();
        let mut url = url.to_owned();
        let mut body = Some(body);
        let mut method = method;
        for _ in 0..=self.config.max_redirects {
            let uri: Uri =
                url.parse().map_err(|_| DistributionError::BadRedirect { url: url.clone() })?;
            let (scheme, authority) = match (uri.scheme_str(), uri.authority()) {
                (Some("https"), Some(a)) => (Scheme::Https, a.as_str().to_owned()),
                (Some("http"), Some(a)) => (Scheme::Http, a.as_str().to_owned()),
                _ => return Err(DistributionError::BadRedirect { url }),
            };
            let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
            let mut send = self.connect(scheme, &authority).await?;
            let mut req = Request::builder()
                .method(method.clone())
                .uri(path)
                .body(body.take().unwrap_or_else(empty))
                .map_err(|_| DistributionError::BadRedirect { url: url.clone() })?;
            *req.headers_mut() = headers.clone();
            if let Ok(v) = HeaderValue::from_str(&authority) {
                req.headers_mut().insert(header::HOST, v);
            }
            if let Ok(v) = HeaderValue::from_str(&self.config.user_agent) {
                req.headers_mut().insert(header::USER_AGENT, v);
            }
            let timeout = self.config.request_timeout;
            let resp = tokio::time::timeout(timeout, send.send_request(req))
                .await
                .map_err(|_| DistributionError::Timeout {
                    method: method.to_string(),
                    url: url.clone(),
                    after: timeout,
                })?
                .map_err(|source| DistributionError::Http {
                    method: method.to_string(),
                    url: url.clone(),
                    source,
                })?;
            let redirect = matches!(
                resp.status(),
                StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
            );
            if !redirect || !(method == Method::GET || method == Method::HEAD) {
                return Ok(resp);
            }
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| DistributionError::BadRedirect { url: url.clone() })?;
            let next = resolve_location(scheme, &authority, location);
            let next_authority =
                next.parse::<Uri>().ok().and_then(|u| u.authority().map(|a| a.to_string()));
            if next_authority.as_deref() != Some(authority.as_str()) {
                headers.remove(header::AUTHORIZATION);
            }
            if resp.status() == StatusCode::SEE_OTHER {
                method = Method::GET;
            }
            url = next;
        }
        Err(DistributionError::TooManyRedirects { url: first, limit: self.config.max_redirects })
    }
}

/// An absolute URL for a `Location` value (absolute, or a path on the same origin).
pub(crate) fn resolve_location(scheme: Scheme, authority: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else if location.starts_with('/') {
        format!("{}://{authority}{location}", scheme.as_str())
    } else {
        format!("{}://{authority}/{location}", scheme.as_str())
    }
}

/// Reads a whole body of at most `limit` bytes, each read within `timeout`.
pub(crate) async fn read_bounded(
    resp: Response<Incoming>,
    limit: u64,
    url: &str,
    timeout: Duration,
) -> Result<Bytes, DistributionError> {
    let too_large = || DistributionError::TooLarge { url: url.to_owned(), limit };
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = resp.into_body();
    let mut out = BytesMut::new();
    while let Some(frame) = next_frame(&mut body, url, timeout).await? {
        if out.len() as u64 + frame.len() as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&frame);
    }
    Ok(out.freeze())
}

/// The next data chunk of a body (`None` at its end), within `timeout`.
pub(crate) async fn next_frame(
    body: &mut Incoming,
    url: &str,
    timeout: Duration,
) -> Result<Option<Bytes>, DistributionError> {
    loop {
        let frame = tokio::time::timeout(timeout, body.frame()).await.map_err(|_| {
            DistributionError::Timeout { method: "GET".into(), url: url.to_owned(), after: timeout }
        })?;
        match frame {
            None => return Ok(None),
            Some(Err(source)) => {
                return Err(DistributionError::Http {
                    method: "GET".into(),
                    url: url.to_owned(),
                    source,
                })
            }
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct ErrorsBody {
    #[serde(default)]
    errors: Vec<RegistryErrorItem>,
}

#[derive(serde::Deserialize)]
struct RegistryErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The registry's error text of a failed reply (`code: message`, `; `-joined), from at most
/// 64 KiB of body; the raw text (cut at 200 bytes) when it is not the registry's JSON.
pub(crate) async fn error_text(resp: Response<Incoming>, url: &str, timeout: Duration) -> String {
    let body = match read_bounded(resp, 64 << 10, url, timeout).await {
        Ok(b) => b,
        Err(_) => return String::new(),
    };
    if let Ok(e) = serde_json::from_slice::<ErrorsBody>(&body) {
        if !e.errors.is_empty() {
            return e
                .errors
                .iter()
                .map(|i| format!("{}: {}", i.code.to_lowercase().replace('_', " "), i.message))
                .collect::<Vec<_>>()
                .join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    let cut = text.char_indices().nth(200).map_or(text.len(), |(i, _)| i);
    text[..cut].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_and_locations() {
        assert_eq!(host_port("[::1]:5000", Scheme::Http), ("::1".into(), 5000));
        assert_eq!(host_port("[::1]", Scheme::Https), ("::1".into(), 443));
        assert_eq!(host_port("127.0.0.1:5000", Scheme::Https), ("127.0.0.1".into(), 5000));
        assert_eq!(host_port("reg.example", Scheme::Http), ("reg.example".into(), 80));
        assert_eq!(
            resolve_location(Scheme::Http, "h:1", "/v2/x?_state=a"),
            "http://h:1/v2/x?_state=a"
        );
        assert_eq!(resolve_location(Scheme::Https, "h:1", "http://o/p"), "http://o/p");
    }
}
