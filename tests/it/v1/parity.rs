//! What Moby's plugin transport does besides the calls themselves (`go-connections`
//! `sockets/sockets.go ConfigureTransport`, `tlsconfig.Client`): the environment's proxy for
//! TCP plugins, gzip on TCP, the pool's idle limits, a `.json` spec's `TLSConfig.MinVersion`;
//! and our own `User-Agent`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dockplug_v1::tls::{TLS12, TLS13};
use dockplug_v1::{
    CallError, Client, ClientError, LocalRegistry, Plugin, PluginOptions, ProxyConfig, RetryPolicy,
    TlsError, TlsOptions, USER_AGENT,
};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::server::{PluginServer, Reply, Seen, TestCa};
use super::tempdir;

fn echo() -> impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static {
    |seen, _| Reply::Status(200, String::from_utf8_lossy(&seen.body).into_owned())
}

/// Wait for `cond` with a deadline of 5 s.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The head of one request a proxy received: its first line and `Proxy-Authorization`.
#[derive(Debug, Clone)]
struct ProxySeen {
    line: String,
    authorization: Option<String>,
}

/// A forward proxy on loopback that sends every connection to `upstream` (one local
/// server), whatever host it names: `CONNECT` is tunnelled, any other request is passed on
/// as it came (absolute form). Only the first request head of a connection is recorded.
struct TestProxy {
    addr: String,
    seen: Arc<Mutex<Vec<ProxySeen>>>,
    task: JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProxy {
    async fn start(upstream: std::net::SocketAddr, deny_connect: bool) -> TestProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<ProxySeen>>> = Arc::default();
        let seen2 = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let seen = Arc::clone(&seen2);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                        if head.len() > 65_536 {
                            return;
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let line = text.lines().next().unwrap_or_default().to_owned();
                    let authorization = text.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("proxy-authorization").then(|| v.trim().to_owned())
                    });
                    let connect = line.starts_with("CONNECT ");
                    seen.lock().unwrap().push(ProxySeen { line, authorization });
                    if connect && deny_connect {
                        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
                        return;
                    }
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    if connect {
                        let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        let reply = b"HTTP/1.1 200 Connection established\r\n\r\n";
                        if client.write_all(reply).await.is_err()
                            || up.write_all(&head[end..]).await.is_err()
                        {
                            return;
                        }
                    } else if up.write_all(&head).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                });
            }
        });
        TestProxy { addr, seen, task }
    }

    fn seen(&self) -> Vec<ProxySeen> {
        self.seen.lock().unwrap().clone()
    }
}

fn socket_addr(server: &PluginServer) -> std::net::SocketAddr {
    let hostport = server.addr.rsplit("://").next().unwrap();
    let port = hostport.rsplit(':').next().unwrap();
    format!("127.0.0.1:{port}").parse().unwrap()
}

#[tokio::test]
async fn tcp_plugins_go_through_the_proxy_in_absolute_form() {
    let server = PluginServer::tcp(echo()).await;
    let upstream = socket_addr(&server);
    let proxy = TestProxy::start(upstream, false).await;
    // A name only the proxy resolves (it sends everything to the local server).
    let addr = format!("tcp://plugin.test:{}", upstream.port());
    let config = ProxyConfig::none().http_proxy(format!("http://user:pw@{}", proxy.addr));
    let c = Client::builder(addr.parse().unwrap())
        .proxy(config)
        .retry(RetryPolicy::never())
        .build()
        .unwrap();
    let n: u32 = c.call("Test.Echo", &1).await.unwrap();
    assert_eq!(n, 1);
    let n: u32 = c.call("Test.Echo", &2).await.unwrap();
    assert_eq!(n, 2);

    let target = format!("http://plugin.test:{}/Test.Echo", upstream.port());
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "one kept-alive connection to the proxy: {seen:?}");
    assert_eq!(seen[0].line, format!("POST {target} HTTP/1.1"));
    assert_eq!(seen[0].authorization.as_deref(), Some("Basic dXNlcjpwdw=="), "user:pw");
    let req = server.requests();
    assert_eq!(req.len(), 2);
    assert_eq!(req[0].uri, target);
    assert_eq!(req[0].path, "/Test.Echo");
    assert_eq!(req[0].host, format!("plugin.test:{}", upstream.port()));
}

#[tokio::test]
async fn https_plugins_tunnel_through_connect() {
    let dir = tempdir();
    let ca = TestCa::new(dir.path());
    let server = PluginServer::tls(&ca, false, echo()).await;
    let upstream = socket_addr(&server);
    let proxy = TestProxy::start(upstream, false).await;
    let addr = format!("https://plugin.test:{}", upstream.port());
    let build = |proxy: &TestProxy| {
        Client::builder(addr.parse().unwrap())
            .tls(Some(TlsOptions::with_ca(&ca.ca_file)))
            .proxy(ProxyConfig::none().https_proxy(&proxy.addr).http_proxy("http://unused:1"))
            .retry(RetryPolicy::never())
            .build()
            .unwrap()
    };
    let n: u32 = build(&proxy).call("T.E", &3).await.unwrap();
    assert_eq!(n, 3);
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].line, format!("CONNECT plugin.test:{} HTTP/1.1", upstream.port()));
    let req = server.requests();
    assert_eq!(req[0].uri, "/T.E", "inside the tunnel the request is in origin form");
    assert_eq!(req[0].host, format!("plugin.test:{}", upstream.port()));

    let denying = TestProxy::start(upstream, true).await;
    let e = build(&denying).call::<_, u32>("T.E", &4).await.unwrap_err();
    assert!(matches!(e, CallError::Connect { .. }), "{e:?}");
    let text = format!("{:?}", e);
    assert!(text.contains("403"), "{text}");
}

#[tokio::test]
async fn unix_sockets_and_loopback_never_use_the_proxy() {
    let dir = tempdir();
    let unix = PluginServer::unix(&dir.path().join("p.sock"), echo()).await;
    let tcp = PluginServer::tcp(echo()).await;
    let proxy = TestProxy::start(socket_addr(&tcp), false).await;
    let config = ProxyConfig::none().http_proxy(&proxy.addr).https_proxy(&proxy.addr);
    for addr in [unix.addr.clone(), tcp.addr.clone(), tcp.addr.replace("127.0.0.1", "localhost")] {
        let c = Client::builder(addr.parse().unwrap()).proxy(config.clone()).build().unwrap();
        let n: u32 = c.call("T.E", &5).await.unwrap();
        assert_eq!(n, 5, "{addr}");
    }
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    // An unsupported proxy is refused when the client is built, naming the variable's value.
    let socks = ProxyConfig::none().http_proxy("socks5://proxy.example:1080");
    let e = Client::builder("tcp://plugin.test:1".parse().unwrap()).proxy(socks).build();
    assert!(matches!(e, Err(ClientError::Proxy(_))), "{e:?}");
}

#[tokio::test]
async fn user_agent_and_accept_encoding_as_documented() {
    let dir = tempdir();
    let unix = PluginServer::unix(&dir.path().join("ua.sock"), echo()).await;
    let tcp = PluginServer::tcp(echo()).await;
    for server in [&unix, &tcp] {
        let c = Client::new(&server.addr, None).unwrap();
        let _: u32 = c.call("T.E", &1).await.unwrap();
    }
    assert!(USER_AGENT.starts_with("dockplug/"));
    let (u, t) = (&unix.requests()[0], &tcp.requests()[0]);
    assert_eq!(u.user_agent.as_deref(), Some(USER_AGENT));
    assert_eq!(t.user_agent.as_deref(), Some(USER_AGENT));
    assert_eq!(u.accept_encoding, None, "no compression over unix sockets");
    assert_eq!(t.accept_encoding.as_deref(), Some("gzip"), "Go's transport asks for gzip");
    let c = Client::builder(tcp.addr.parse().unwrap()).user_agent("dockerd/28").build().unwrap();
    let _: u32 = c.call("T.E", &1).await.unwrap();
    assert_eq!(tcp.requests()[1].user_agent.as_deref(), Some("dockerd/28"));
}

#[tokio::test]
async fn gzip_replies_are_decompressed_on_tcp_only() {
    let reply = json!({"Volumes": [{"Name": "v", "Mountpoint": "/m"}], "Err": ""}).to_string();
    let text = reply.clone();
    let tcp = PluginServer::tcp(move |seen, _| match seen.path.as_str() {
        "/Bad.Gzip" => Reply::Status(200, "not gzip".into()),
        _ => Reply::Gzip(text.clone()),
    })
    .await;
    let c = Client::new(&tcp.addr, None).unwrap();
    let v: Value = c.call("VolumeDriver.List", &json!({})).await.unwrap();
    assert_eq!(v["Volumes"][0]["Name"], "v");
    let mut s = c.stream("LogDriver.ReadLogs", &json!({})).await.unwrap();
    let mut all = Vec::new();
    while let Some(chunk) = s.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(all, reply.as_bytes());

    // Over a unix socket nothing asked for gzip, so nothing is decompressed (as Moby).
    let dir = tempdir();
    let text = reply.clone();
    let unix =
        PluginServer::unix(&dir.path().join("gz.sock"), move |_, _| Reply::Gzip(text.clone()))
            .await;
    let raw = Client::new(&unix.addr, None)
        .unwrap()
        .call_raw("VolumeDriver.List", None, Default::default())
        .await
        .unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b]);
}

#[tokio::test]
async fn idle_connections_expire_and_at_most_six_are_kept() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("idle.sock"), echo()).await;
    let c = Client::builder(server.addr.parse().unwrap())
        .idle_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let _: u32 = c.call("T.E", &1).await.unwrap();
    eventually("the idle connection to close", || server.closed.load(Ordering::SeqCst) == 1).await;
    let _: u32 = c.call("T.E", &2).await.unwrap();
    assert_eq!(server.connections.load(Ordering::SeqCst), 2, "a new connection after expiry");

    // Eight streams held open at once need eight connections; six stay idle afterwards.
    let server = PluginServer::unix(&dir.path().join("six.sock"), echo()).await;
    let c = Client::new(&server.addr, None).unwrap();
    let mut streams = Vec::new();
    for i in 0..8 {
        streams.push(c.stream("T.S", &i).await.unwrap());
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 8);
    for mut s in streams {
        while let Some(chunk) = s.next().await {
            chunk.unwrap();
        }
    }
    eventually("two connections past the idle limit to close", || {
        server.closed.load(Ordering::SeqCst) == 2
    })
    .await;
    for i in 0..6 {
        let _: u32 = c.call("T.E", &i).await.unwrap();
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 8, "the six idle ones are reused");
}

#[tokio::test]
async fn min_version_of_a_json_spec_is_honoured() {
    let dir = tempdir();
    let ca = TestCa::new(dir.path());
    let tls12 = PluginServer::tls_versions(&ca, false, &[&rustls::version::TLS12], echo()).await;
    let client = |min: u16| {
        Client::builder(tls12.addr.parse().unwrap())
            .tls(Some(TlsOptions::with_ca(&ca.ca_file).min_version(min)))
            .retry(RetryPolicy::never())
            .build()
    };
    for min in [0, TLS12] {
        let n: u32 = client(min).unwrap().call("T.E", &1).await.unwrap();
        assert_eq!(n, 1);
    }
    let e = client(TLS13).unwrap().call::<_, u32>("T.E", &1).await.unwrap_err();
    assert!(matches!(e, CallError::Connect { .. }), "a TLS 1.2 server refused: {e:?}");
    assert!(matches!(client(0x0301), Err(ClientError::Tls(TlsError::MinVersionTooLow { .. }))));
    assert!(matches!(client(0x9999), Err(ClientError::Tls(TlsError::InvalidMinVersion { .. }))));

    // The same through discovery: `TLSConfig.MinVersion` of a `.json` spec file.
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    let spec = |name: &str, min: u16| {
        let body =
            json!({"Addr": tls12.addr, "TLSConfig": {"CAFile": ca.ca_file, "MinVersion": min}});
        std::fs::write(specs.join(format!("{name}.json")), body.to_string()).unwrap();
    };
    spec("old", TLS12);
    spec("new", TLS13);
    let dirs = LocalRegistry::with_dirs(Vec::<String>::new(), [&specs]);
    let opts = PluginOptions::default().retry(RetryPolicy::never());
    let old = dirs.plugin("old").unwrap();
    assert_eq!(old.tls.as_ref().unwrap().min_version, TLS12);
    let new = Plugin::from_spec(dirs.plugin("new").unwrap(), opts).unwrap();
    let e = new.client().call::<_, u32>("T.E", &1).await.unwrap_err();
    assert!(matches!(e, CallError::Connect { .. }), "{e:?}");
    let old = Plugin::from_spec(old, opts).unwrap();
    let n: u32 = old.client().call("T.E", &2).await.unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn manifest_keys_are_case_insensitive() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("m.sock"), |_, _| {
        Reply::ok(r#"{"iMPLEMENTS":["VolumeDriver"],"Extra":1}"#)
    })
    .await;
    let p = Plugin::new("m", server.addr.parse().unwrap(), PluginOptions::default()).unwrap();
    let m = p.activate().await.unwrap();
    assert!(m.implements("VolumeDriver"), "{m:?}");
}
