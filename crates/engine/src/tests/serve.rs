//! [`Engine::serve`] over a real unix socket: the wire form of headers, the header-read
//! timeout, a client that disconnects mid-pull, graceful shutdown ending event streams.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use super::fake::{Fake, Script};
use crate::{Engine, EngineConfig};

struct Server {
    path: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), crate::ServeError>>,
    _dir: tempfile::TempDir,
}

fn start(fake: Fake, config: EngineConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let engine = Engine::builder(fake).config(config).build();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        engine
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    Server { path, stop: Some(stop), task, _dir: dir }
}

/// Reads until `needle` appears or the peer closes; bounded by a deadline.
async fn read_until(s: &mut UnixStream, needle: &str) -> String {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&buf).contains(needle) {
            let n = s.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("reply in time");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn headers_on_the_wire_are_dockerds() {
    let server = start(Fake::default(), EngineConfig::default());
    let mut s = UnixStream::connect(&server.path).await.unwrap();
    s.write_all(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n").await.unwrap();
    let head = read_until(&mut s, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for h in [
        "Api-Version: 1.41\r\n",
        "Ostype: linux\r\n",
        "Docker-Experimental: false\r\n",
        "Content-Length: 0\r\n",
        "Pragma: no-cache\r\n",
    ] {
        assert!(head.contains(h), "{h:?} in {head}");
    }
    assert!(head.contains("Server: Docker/"), "{head}");
    assert_eq!(head.matches("Content-Length").count(), 1, "{head}");
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n").await.unwrap();
    let reply = read_until(&mut s, "\r\n\r\nOK").await;
    assert!(reply.contains("Content-Length: 2\r\n"), "{reply}");
    assert!(reply.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{reply}");
    // The connection is kept alive for the next request.
    s.write_all(b"GET /v1.41/plugins/nope/json HTTP/1.1\r\nHost: docker\r\n\r\n").await.unwrap();
    let reply = read_until(&mut s, "}\n").await;
    assert!(reply.starts_with("HTTP/1.1 404 Not Found\r\n"), "{reply}");
    assert!(reply.contains("Content-Type: application/json\r\n"), "{reply}");
    assert!(reply.ends_with("{\"message\":\"plugin \\\"nope\\\" not found\"}\n"), "{reply}");
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_header_timeout() {
    let config =
        EngineConfig { header_read_timeout: Duration::from_millis(300), ..Default::default() };
    let server = start(Fake::default(), config);
    let mut s = UnixStream::connect(&server.path).await.unwrap();
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: d").await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("closed by the server")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn a_client_leaving_mid_pull_cancels_it() {
    let fake = Fake::default();
    fake.script(Script::Hang);
    let server = start(fake.clone(), EngineConfig::default());
    let mut s = UnixStream::connect(&server.path).await.unwrap();
    let body = br#"[]"#;
    let req = format!(
        "POST /v1.41/plugins/pull?remote=vieux%2Fsshfs HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let head = read_until(&mut s, "Downloading").await;
    assert!(head.contains("Docker-Plugin-Name: vieux/sshfs:latest\r\n"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    let dropped = fake.dropped.notified();
    drop(s);
    tokio::time::timeout(Duration::from_secs(10), dropped).await.expect("the pull was cancelled");
    assert!(fake.state.lock().unwrap().cancelled);
}

#[tokio::test]
async fn shutdown_ends_event_streams_and_returns() {
    let mut server = start(Fake::default(), EngineConfig::default());
    let mut s = UnixStream::connect(&server.path).await.unwrap();
    s.write_all(b"GET /v1.41/events HTTP/1.1\r\nHost: d\r\n\r\n").await.unwrap();
    let head = read_until(&mut s, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    server.stop.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("serve returns well before the grace period");
    result.unwrap().unwrap();
    // The stream was ended with its last chunk.
    let rest = read_until(&mut s, "0\r\n\r\n").await;
    assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}");
    assert!(UnixStream::connect(&server.path).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn an_early_answer_to_create_is_read_by_a_client_still_sending() {
    let server = start(Fake::default(), EngineConfig::default());
    let mut s = UnixStream::connect(&server.path).await.unwrap();
    let body = vec![0u8; 4 << 20];
    let head = format!(
        "POST /v1.41/plugins/create?name=taken HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let write = async {
        s.write_all(head.as_bytes()).await?;
        s.write_all(&body).await
    };
    tokio::time::timeout(Duration::from_secs(10), write)
        .await
        .expect("the server reads the whole body")
        .expect("and does not close on the client");
    let reply = read_until(&mut s, "}\n").await;
    assert!(reply.starts_with("HTTP/1.1 409 Conflict\r\n"), "{reply}");
    assert!(reply.ends_with("{\"message\":\"plugin taken:latest already exists\"}\n"), "{reply}");
}

#[tokio::test]
async fn create_takes_a_chunked_body() {
    let fake = Fake::default();
    let server = start(fake.clone(), EngineConfig::default());
    let mut s = UnixStream::connect(&server.path).await.unwrap();
    let head = "POST /v1.41/plugins/create?name=myorg%2Fmyplug HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![1u8; 70_000];
    for _ in 0..3 {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.unwrap();
        s.write_all(&chunk).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let reply = read_until(&mut s, "\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 204 No Content\r\n"), "{reply}");
    assert_eq!(fake.calls(), ["create myorg/myplug"]);
    assert_eq!(fake.state.lock().unwrap().context_bytes, 3 * chunk.len());
}
