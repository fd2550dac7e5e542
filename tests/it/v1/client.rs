//! The client: Moby's `TestEchoInputOutput`, `TestFailedConnection`, `TestFailOnce`,
//! `TestClientStream`, `TestClientSendFile`, timeouts, TLS, keep-alive, error texts.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dockplug_v1::{Address, CallError, CallOptions, Client, ClientError, RetryPolicy, TlsOptions};
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::server::{PluginServer, Reply, TestCa};
use super::{quick_retry, tempdir};

fn echo() -> impl Fn(&super::server::Seen, usize) -> Reply + Send + Sync + 'static {
    |seen, _| Reply::Status(200, String::from_utf8_lossy(&seen.body).into_owned())
}

fn client(addr: &str) -> Client {
    Client::builder(addr.parse().unwrap()).retry(quick_retry()).build().unwrap()
}

#[tokio::test]
async fn echo_over_a_unix_socket_with_mobys_wire_format() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("echo.sock"), echo()).await;
    let c = client(&server.addr);
    let args = json!({"Name": "vol", "Opts": {"a": "<b>"}});
    let back: Value = c.call("Test.Echo", &args).await.unwrap();
    assert_eq!(back, args);
    let () = c.call_empty("Test.Empty").await.unwrap();

    let seen = server.requests();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/Test.Echo");
    assert_eq!(seen[0].host, "plugin.moby.localhost");
    assert_eq!(seen[0].accept, "application/vnd.docker.plugins.v1.2+json");
    assert!(seen[0].body.ends_with(b"}\n"), "JSON followed by a newline, as Go's encoder");
    assert_eq!(seen[0].content_length.as_deref(), Some(seen[0].body.len().to_string().as_str()));
    assert_eq!(seen[1].path, "/Test.Empty");
    assert!(seen[1].body.is_empty());
    assert_eq!(seen[1].content_length.as_deref(), Some("0"));
}

#[tokio::test]
async fn tcp_sends_host_and_port() {
    let server = PluginServer::tcp(echo()).await;
    let c = client(&server.addr);
    let n: u32 = c.call("Test.Echo", &7).await.unwrap();
    assert_eq!(n, 7);
    assert_eq!(format!("tcp://{}", server.requests()[0].host), server.addr);
    // http:// is the same transport; the URL path is dropped.
    let http = server.addr.replace("tcp://", "http://") + "/some/prefix";
    let n: u32 = client(&http).call("Test.Echo", &8).await.unwrap();
    assert_eq!(n, 8);
    assert_eq!(server.requests()[1].path, "/Test.Echo");
}

#[tokio::test]
async fn a_refused_connection_fails_without_retry() {
    let c = Client::builder("tcp://127.0.0.1:1".parse().unwrap())
        .retry(RetryPolicy::never())
        .build()
        .unwrap();
    let e = c.call::<_, Value>("Test.Echo", &1).await.unwrap_err();
    assert!(e.is_refused(), "{e:?}");
    assert!(matches!(e, CallError::Connect { .. }));
}

#[tokio::test]
async fn a_dropped_connection_is_retried_with_the_whole_body() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("once.sock"), |seen, n| {
        if n == 0 {
            Reply::Drop
        } else {
            Reply::Status(200, String::from_utf8_lossy(&seen.body).into_owned())
        }
    })
    .await;
    let back: Value = client(&server.addr).call("Test.Echo", &json!({"x": 1})).await.unwrap();
    assert_eq!(back, json!({"x": 1}));
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, seen[1].body, "the retried request carries the full body");
}

#[tokio::test]
async fn retries_follow_the_policy_schedule() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("drop.sock"), |_, _| Reply::Drop).await;
    let policy = quick_retry();
    let started = Instant::now();
    let e = client(&server.addr).call::<_, Value>("Test.Echo", &1).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, CallError::Transport { .. }), "{e:?}");
    // Attempts: the first, then one after each wait of the schedule (10, 20, 40, 80 ms).
    assert_eq!(server.count(), policy.schedule().len() + 1);
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_timeout_is_typed_prompt_and_never_retried() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("hang.sock"), |_, _| Reply::Hang).await;
    let c = client(&server.addr);
    let started = Instant::now();
    let opts = CallOptions::new().timeout(Duration::from_millis(50));
    let e = c.call_with_options::<_, Value>("Test.Hang", &1, opts).await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(e.to_string(), "Test.Hang: timed out after 50ms");
    // A client-wide timeout works the same way.
    let c = Client::builder(server.addr.parse().unwrap())
        .timeout(Some(Duration::from_millis(30)))
        .build()
        .unwrap();
    assert!(c.call::<_, Value>("Test.Hang", &1).await.unwrap_err().is_timeout());
    assert_eq!(server.count(), 2, "one request per call: no retry after a timeout");
}

#[tokio::test]
async fn errors_carry_method_and_message() {
    let dir = tempdir();
    let server =
        PluginServer::unix(&dir.path().join("err.sock"), |seen, _| match seen.path.as_str() {
            "/A.Err" => Reply::Status(500, r#"{"Err":"volume is busy"}"#.into()),
            "/A.Raw" => Reply::Status(404, "404 page not found\n".into()),
            "/A.Empty" => Reply::Status(400, r#"{"Err":""}"#.into()),
            _ => Reply::Status(201, "{}".into()),
        })
        .await;
    let c = client(&server.addr);
    let e = c.call::<_, Value>("A.Err", &1).await.unwrap_err();
    assert!(matches!(&e, CallError::Plugin { status: 500, method, message }
        if method == "A.Err" && message == "volume is busy"));
    assert_eq!(e.to_string(), "A.Err: volume is busy");
    let e = c.call::<_, Value>("A.Raw", &1).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.to_string(), "A.Raw: 404 page not found\n");
    let e = c.call::<_, Value>("A.Empty", &1).await.unwrap_err();
    assert_eq!(e.to_string(), r#"A.Empty: {"Err":""}"#);
    let e = c.call::<_, Value>("A.Created", &1).await.unwrap_err();
    assert!(matches!(e, CallError::Plugin { status: 201, .. }), "only 200 is success");
    assert_eq!(server.count(), 4, "HTTP replies are never retried");
}

#[tokio::test]
async fn stream_returns_the_body() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("s.sock"), echo()).await;
    let c = client(&server.addr);
    let mut s = c.stream("Test.Stream", &json!({"Follow": true})).await.unwrap();
    let mut all = Vec::new();
    while let Some(chunk) = s.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(all, b"{\"Follow\":true}\n");
    // The connection went back to the pool.
    let _: Value = c.call("Test.Echo", &1).await.unwrap();
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn send_file_streams_the_reader() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("f.sock"), |seen, _| {
        Reply::Status(200, json!({"Len": seen.body.len()}).to_string())
    })
    .await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let reply: Value = client(&server.addr)
        .send_file("Test.Upload", std::io::Cursor::new(data.clone()))
        .await
        .unwrap();
    assert_eq!(reply["Len"], 300_000);
    assert_eq!(server.requests()[0].body.as_ref(), data.as_slice());
}

#[tokio::test]
async fn send_file_is_not_resent_once_its_body_went_out() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("f.sock"), |_, _| Reply::Drop).await;
    let e = client(&server.addr)
        .send_file::<_, Value>("Test.Upload", std::io::Cursor::new(vec![1u8; 1000]))
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Transport { .. }), "{e:?}");
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn connections_are_kept_alive() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("k.sock"), echo()).await;
    let c = client(&server.addr);
    for i in 0..20 {
        let n: u32 = c.call("Test.Echo", &i).await.unwrap();
        assert_eq!(n, i);
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    // Concurrent callers open at most one connection each and reuse them.
    let calls = (0..8).map(|i| {
        let c = c.clone();
        async move { c.call::<_, u32>("Test.Echo", &i).await.unwrap() }
    });
    futures_util::future::join_all(calls).await;
    assert!(server.connections.load(Ordering::SeqCst) <= 9);
}

#[tokio::test]
async fn tls_with_a_test_ca() {
    let dir = tempdir();
    let ca = TestCa::new(dir.path());
    let server = PluginServer::tls(&ca, false, echo()).await;
    let addr: Address = server.addr.parse().unwrap();
    let build = |tls: Option<TlsOptions>| {
        Client::builder(addr.clone()).tls(tls).retry(RetryPolicy::never()).build().unwrap()
    };
    let n: u32 = build(Some(TlsOptions::with_ca(&ca.ca_file))).call("T.E", &1).await.unwrap();
    assert_eq!(n, 1);
    let n: u32 = build(Some(TlsOptions::insecure())).call("T.E", &2).await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(server.requests()[0].host, addr.host_header());
    // Without the CA, the system roots do not know the server.
    let e = build(None).call::<_, u32>("T.E", &3).await.unwrap_err();
    assert!(matches!(e, CallError::Connect { .. }), "{e:?}");

    // A server that wants a client certificate.
    let server = PluginServer::tls(&ca, true, echo()).await;
    let addr: Address = server.addr.parse().unwrap();
    let with_cert =
        TlsOptions::with_ca(&ca.ca_file).client_cert(&ca.client_cert_file, &ca.client_key_file);
    let c = Client::builder(addr.clone()).tls(Some(with_cert)).build().unwrap();
    let n: u32 = c.call("T.E", &4).await.unwrap();
    assert_eq!(n, 4);
    let c = Client::builder(addr)
        .tls(Some(TlsOptions::with_ca(&ca.ca_file)))
        .retry(RetryPolicy::never())
        .build()
        .unwrap();
    assert!(c.call::<_, u32>("T.E", &5).await.is_err());
}

#[test]
fn construction_errors_are_typed() {
    assert!(matches!(Client::new("ftp://x:1", None), Err(ClientError::Address(_))));
    assert!(matches!(Client::new("localhost:1", None), Err(ClientError::Address(_))));
    let missing = TlsOptions::with_ca("/nonexistent/ca.pem");
    assert!(matches!(Client::new("https://localhost:1", Some(&missing)), Err(ClientError::Tls(_))));
}
