//! In-process v1 plugin servers for the tests: a hyper server on a temp-dir unix socket or a
//! loopback port (optionally TLS), a scriptable reply per request, and a record of what was
//! received. A test CA made with rcgen for the TLS cases.

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The request target as sent: origin form (`/M`) or, through a proxy, absolute form.
    pub uri: String,
    pub user_agent: Option<String>,
    pub accept_encoding: Option<String>,
    pub host: String,
    pub accept: String,
    pub content_length: Option<String>,
    pub body: Bytes,
}

/// What the server does with a request.
pub enum Reply {
    /// A status and a body.
    Status(u16, String),
    /// Never answer.
    Hang,
    /// Close the connection without answering.
    Drop,
    /// Declare a long body, send `Bytes`, then break the connection.
    Partial(Bytes),
    /// A 200 with a body of `n` bytes, streamed.
    Huge(usize),
    /// A 200 whose body is the text gzip-compressed (`Content-Encoding: gzip`).
    Gzip(String),
}

impl Reply {
    pub fn ok(body: &str) -> Reply {
        Reply::Status(200, body.to_owned())
    }
}

pub type Script = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

/// A running plugin server; stopped when dropped.
pub struct PluginServer {
    pub addr: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<AtomicUsize>,
    /// Connections that have ended (closed by either side).
    pub closed: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for PluginServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PluginServer {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Serve `script` on a unix socket at `path`.
    pub async fn unix(
        path: &Path,
        script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = Arc::new(tokio::net::UnixListener::bind(path).unwrap());
        let addr = format!("unix://{}", path.display());
        Self::spawn(addr, Arc::new(script), move || {
            let l = Arc::clone(&listener);
            async move { l.accept().await.map(|(s, _)| Some(Box::new(s) as Box<dyn Io>)) }
        })
    }

    /// Serve `script` on a loopback TCP port (plain HTTP, address `tcp://`).
    pub async fn tcp(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = Arc::new(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = format!("tcp://{}", listener.local_addr().unwrap());
        Self::spawn(addr, Arc::new(script), move || {
            let l = Arc::clone(&listener);
            async move { l.accept().await.map(|(s, _)| Some(Box::new(s) as Box<dyn Io>)) }
        })
    }

    /// Serve `script` over TLS on a loopback port (address `https://localhost:port`).
    pub async fn tls(
        ca: &TestCa,
        client_ca: bool,
        script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::tls_versions(ca, client_ca, rustls::DEFAULT_VERSIONS, script).await
    }

    /// [`PluginServer::tls`] speaking only the given TLS versions.
    pub async fn tls_versions(
        ca: &TestCa,
        client_ca: bool,
        versions: &[&'static rustls::SupportedProtocolVersion],
        script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = Arc::new(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        let port = listener.local_addr().unwrap().port();
        let acceptor =
            tokio_rustls::TlsAcceptor::from(ca.server_config_versions(client_ca, versions));
        let addr = format!("https://localhost:{port}");
        Self::spawn(addr, Arc::new(script), move || {
            let l = Arc::clone(&listener);
            let acceptor = acceptor.clone();
            async move {
                let (s, _) = l.accept().await?;
                // A failed handshake is the client's problem: the connection is dropped.
                Ok(acceptor.accept(s).await.ok().map(|t| Box::new(t) as Box<dyn Io>))
            }
        })
    }

    fn spawn<F, Fut>(addr: String, script: Script, accept: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::io::Result<Option<Box<dyn Io>>>> + Send,
    {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (seen2, conns2, closed2) =
            (Arc::clone(&seen), Arc::clone(&connections), Arc::clone(&closed));
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let io = match accept().await {
                    Ok(Some(io)) => io,
                    Ok(None) => continue,
                    Err(_) => return,
                };
                conns2.fetch_add(1, Ordering::SeqCst);
                let (script, seen) = (Arc::clone(&script), Arc::clone(&seen2));
                let closed = Arc::clone(&closed2);
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, Arc::clone(&script), Arc::clone(&seen))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(io), svc)
                        .await;
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        PluginServer { addr, seen, connections, closed, task }
    }
}

pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type RespBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

async fn handle(
    req: Request<Incoming>,
    script: Script,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<RespBody>, std::io::Error> {
    let header =
        |name: &str| req.headers().get(name).map(|v| v.to_str().unwrap_or_default().to_owned());
    let (method, path, uri) =
        (req.method().to_string(), req.uri().path().to_owned(), req.uri().to_string());
    let (user_agent, accept_encoding) = (header("user-agent"), header("accept-encoding"));
    let (host, accept, content_length) = (
        header("host").unwrap_or_default(),
        header("accept").unwrap_or_default(),
        header("content-length"),
    );
    let body = req.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
    let record =
        Seen { method, path, uri, user_agent, accept_encoding, host, accept, content_length, body };
    let n = {
        let mut s = seen.lock().unwrap();
        s.push(record.clone());
        s.len() - 1
    };
    let full = |b: Bytes| {
        http_body_util::Full::new(b).map_err(|never: Infallible| match never {}).boxed_unsync()
    };
    match script(&record, n) {
        Reply::Status(code, body) => Ok(Response::builder()
            .status(code)
            .header("content-type", "application/vnd.docker.plugins.v1+json")
            .body(full(Bytes::from(body)))
            .unwrap()),
        Reply::Hang => std::future::pending().await,
        Reply::Drop => Err(std::io::Error::other("dropped on purpose")),
        Reply::Partial(b) => Ok(Response::builder()
            .status(200)
            .header("content-length", "100000")
            .body(
                Failing {
                    first: Some(b),
                    pause: Box::pin(tokio::time::sleep(std::time::Duration::from_millis(50))),
                }
                .boxed_unsync(),
            )
            .unwrap()),
        Reply::Gzip(text) => Ok(Response::builder()
            .status(200)
            .header("content-encoding", "gzip")
            .body(full(Bytes::from(gzip_stored(text.as_bytes()))))
            .unwrap()),
        Reply::Huge(n) => {
            Ok(Response::builder().status(200).body(Zeros { left: n }.boxed_unsync()).unwrap())
        }
    }
}

/// `data` as a gzip member of stored (uncompressed) deflate blocks: what any gzip reader
/// accepts, made without a compression library.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    out.extend_from_slice(&(!crc).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// A body that yields one chunk, waits long enough for it to be flushed, and then fails,
/// breaking the connection mid-reply.
struct Failing {
    first: Option<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Failing {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(b) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::other("broken on purpose")))),
        }
    }
}

/// `left` zero bytes (as `0`s) in 64 KiB chunks.
struct Zeros {
    left: usize,
}

impl hyper::body::Body for Zeros {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'0'; n])))))
    }
}

/// A server that answers every connection with `reply` bytes (not HTTP) after reading the
/// request head, then closes.
pub struct RawServer {
    pub addr: String,
    task: JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    pub async fn unix(path: &Path, reply: &'static [u8]) -> Self {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = s.write_all(reply).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        RawServer { addr: format!("unix://{}", path.display()), task }
    }
}

/// A CA made for one test, with a server certificate for `localhost`/127.0.0.1 and a client
/// certificate, all written as PEM files in `dir`.
pub struct TestCa {
    pub ca_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "dockplug test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        // `plugin.test` is for calls through a proxy, which never resolves it locally.
        let names = ["localhost", "127.0.0.1", "plugin.test"].map(str::to_owned).to_vec();
        let params = CertificateParams::new(names).unwrap();
        let server = params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["client".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "client");
        let client = params.signed_by(&client_key, &ca, &ca_key).unwrap();

        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        TestCa {
            ca_file: write("ca.pem", &ca.pem()),
            client_cert_file: write("client.pem", &client.pem()),
            client_key_file: write("client-key.pem", &client_key.serialize_pem()),
            ca_pem: ca.pem(),
            server_cert_pem: server.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }

    /// The server side, speaking only `versions`: our certificate, and (when `client_ca`)
    /// client certificates required.
    pub fn server_config_versions(
        &self,
        client_ca: bool,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<_> = CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .unwrap();
        let builder = if client_ca {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(builder.with_single_cert(certs, key).unwrap())
    }
}
