//! Plugins that abuse the v1 client: each is a raw socket server in this process that
//! misbehaves one way, then waits for the client to hang up. Every call must end in a typed
//! error within its deadline, the client must close its connection (no descriptor kept on a
//! broken plugin), memory must stay bounded, and calls to a sound plugin must go on
//! meanwhile.

use std::path::Path;
use std::time::{Duration, Instant};

use dockplug_v1::{CallError, Client, RetryPolicy};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::measure::{own_rss_kib, server_conns, Row};
use crate::support::eventually;

/// How a hostile plugin treats one connection.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Accept and never read or answer.
    Silent,
    /// Read the request, send part of a reply, close.
    CloseMidReply,
    /// Read the request, answer with bytes that are not HTTP.
    Garbage,
    /// A 200 with a chunked body that never ends.
    EndlessBody,
    /// A status line, then headers one byte every 50 ms, forever.
    TrickleHeaders,
    /// A 200 with a body that is not JSON.
    NotJson,
    /// A 200 with 1 MB of `[`.
    DeeplyNested,
}

/// The call timeout of the client under test.
const TIMEOUT: Duration = Duration::from_millis(500);
/// The reply limit of the client under test.
const MAX_REPLY: usize = 1 << 20;

/// A hostile plugin: its socket, and the times at which clients hung up.
struct Hostile {
    socket: std::path::PathBuf,
    hangups: mpsc::UnboundedReceiver<Instant>,
    _dir: tempfile::TempDir,
}

/// Reads one request (headers and the `Content-Length` body); false at end of stream.
async fn read_request(s: &mut UnixStream) -> bool {
    let mut buf = vec![0u8; 64 << 10];
    let mut got = Vec::new();
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < head_end + len {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    true
}

async fn misbehave(s: &mut UnixStream, act: Act) {
    if matches!(act, Act::NotJson | Act::DeeplyNested) {
        // Complete replies: the client may reuse the connection, so answer every request.
        while read_request(s).await {
            if reply_once(s, act).await.is_err() {
                return;
            }
        }
        return;
    }
    if !matches!(act, Act::Silent) && !read_request(s).await {
        return;
    }
    let _ = reply_once(s, act).await;
}

async fn reply_once(s: &mut UnixStream, act: Act) -> std::io::Result<()> {
    match act {
        Act::Silent => Ok(()),
        Act::CloseMidReply => {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Mountpoint\": \"/da")
                .await
        }
        Act::Garbage => s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\xff\xfe\x00garbage\r\n\r\n").await,
        Act::EndlessBody => {
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            s.write_all(head).await?;
            let chunk = format!("{:x}\r\n{}\r\n", 16 << 10, " ".repeat(16 << 10));
            loop {
                s.write_all(chunk.as_bytes()).await?;
            }
        }
        Act::TrickleHeaders => {
            s.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ").await?;
            loop {
                s.write_all(b"a").await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Act::NotJson => {
            let body = "<html><body>502 Bad Gateway</body></html>";
            let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            s.write_all(reply.as_bytes()).await
        }
        Act::DeeplyNested => {
            let body = "[".repeat(1_000_000);
            let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            s.write_all(reply.as_bytes()).await
        }
    }
}

impl Hostile {
    async fn start(act: Act) -> Hostile {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("hostile.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let (tx, hangups) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    misbehave(&mut s, act).await;
                    if matches!(act, Act::CloseMidReply) {
                        // The close: our side of the stream ends here.
                        let _ = s.shutdown().await;
                    }
                    // Wait (bounded) for the client to hang up.
                    let mut buf = [0u8; 1024];
                    let end = tokio::time::timeout(Duration::from_secs(30), async {
                        loop {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(_) => {}
                            }
                        }
                    });
                    if end.await.is_ok() {
                        let _ = tx.send(Instant::now());
                    }
                });
            }
        });
        Hostile { socket, hangups, _dir: dir }
    }
}

fn client(socket: &Path) -> Client {
    Client::builder(format!("unix://{}", socket.display()).parse().unwrap())
        .retry(RetryPolicy::never())
        .timeout(Some(TIMEOUT))
        .max_response_bytes(MAX_REPLY)
        .build()
        .unwrap()
}

/// What the client may do with its connection after the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Hang up: the connection is broken or its state unknown.
    HangUp,
    /// Keep it for reuse: the reply was complete HTTP, only its body was bad. Further calls
    /// must reuse it, never pile up connections.
    Pool,
}

/// Runs one hostile case: the call's error must satisfy `expect` within `deadline`, the
/// client must hang up within a second of it (or, for a complete reply, keep one pooled
/// connection and no more), and memory stays bounded.
async fn case(
    name: &str,
    act: Act,
    deadline: Duration,
    after: After,
    expect: impl Fn(&CallError) -> bool,
) {
    let mut plugin = Hostile::start(act).await;
    let c = client(&plugin.socket);
    let rss0 = own_rss_kib();
    let started = Instant::now();
    let e = c.call::<_, Value>("VolumeDriver.Mount", &serde_json::json!({"Name": "v"})).await;
    let measured = started.elapsed();
    let e = e.expect_err("a hostile plugin's call must fail");
    assert!(expect(&e), "{name}: unexpected error {e:?}");
    let conns_at_error = server_conns(&plugin.socket);
    match after {
        After::HangUp => {
            // The client does not keep (or pool) the broken connection.
            let hung_up = tokio::time::timeout(Duration::from_secs(2), plugin.hangups.recv()).await;
            assert!(hung_up.is_ok(), "{name}: the client kept its connection to the plugin");
            assert!(
                eventually(Duration::from_secs(2), || async { server_conns(&plugin.socket) == 0 })
                    .await
            );
        }
        After::Pool => {
            for _ in 0..5 {
                let e = c.call::<_, Value>("VolumeDriver.Mount", &serde_json::json!({})).await;
                assert!(e.is_err_and(|e| expect(&e)));
            }
            assert!(server_conns(&plugin.socket) <= 1, "{name}: connections pile up");
        }
    }
    let rss1 = own_rss_kib();
    Row {
        case: name,
        deadline,
        measured,
        fds: Some((conns_at_error, server_conns(&plugin.socket))),
        rss_kib: Some((rss0, rss1)),
    }
    .report();
}

#[tokio::test]
async fn accepts_and_never_answers() {
    case(
        "v1: plugin accepts, never answers",
        Act::Silent,
        TIMEOUT + Duration::from_secs(1),
        After::HangUp,
        |e| e.is_timeout(),
    )
    .await;
}

#[tokio::test]
async fn closes_mid_reply() {
    case(
        "v1: plugin closes mid-reply",
        Act::CloseMidReply,
        Duration::from_secs(1),
        After::HangUp,
        |e| matches!(e, CallError::Transport { .. }),
    )
    .await;
}

#[tokio::test]
async fn answers_garbage() {
    case("v1: plugin answers garbage", Act::Garbage, Duration::from_secs(1), After::HangUp, |e| {
        matches!(e, CallError::Transport { .. })
    })
    .await;
}

#[tokio::test]
async fn streams_an_endless_body() {
    case(
        "v1: plugin streams an endless body (limit 1 MiB)",
        Act::EndlessBody,
        TIMEOUT + Duration::from_secs(1),
        After::HangUp,
        |e| matches!(e, CallError::TooLarge { limit: MAX_REPLY, .. }) || e.is_timeout(),
    )
    .await;
}

#[tokio::test]
async fn trickles_its_headers() {
    case(
        "v1: plugin trickles headers, 1 byte/50 ms",
        Act::TrickleHeaders,
        TIMEOUT + Duration::from_secs(1),
        After::HangUp,
        |e| e.is_timeout(),
    )
    .await;
}

#[tokio::test]
async fn answers_200_with_a_non_json_body() {
    case(
        "v1: plugin answers 200 with HTML",
        Act::NotJson,
        Duration::from_secs(1),
        After::Pool,
        |e| matches!(e, CallError::Decode { .. }),
    )
    .await;
}

#[tokio::test]
async fn answers_200_with_a_deeply_nested_body() {
    case(
        "v1: plugin answers 200 with 1 MB of '['",
        Act::DeeplyNested,
        Duration::from_secs(2),
        After::Pool,
        |e| matches!(e, CallError::Decode { .. } | CallError::TooLarge { .. }),
    )
    .await;
}

#[tokio::test]
async fn other_plugins_are_served_while_one_hangs() {
    let silent = Hostile::start(Act::Silent).await;
    let dir = tempfile::tempdir().unwrap();
    let good_socket = dir.path().join("good.sock");
    let good = dockplug_sdk::Plugin::builder()
        .build()
        .bind_unix(dockplug_sdk::UnixListen::new(&good_socket))
        .await
        .unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(good.run_until(async {
        let _ = rx.await;
    }));
    let hanging = client(&silent.socket);
    let sound = client(&good_socket);
    let hung = tokio::spawn(async move {
        hanging.call::<_, Value>("VolumeDriver.Mount", &serde_json::json!({})).await
    });
    let started = Instant::now();
    for _ in 0..20 {
        let r: Value = sound.call("Plugin.Activate", &serde_json::json!({})).await.unwrap();
        assert!(r.get("Implements").is_some());
    }
    let measured = started.elapsed();
    assert!(hung.await.unwrap().unwrap_err().is_timeout());
    let _ = stop.send(());
    Row {
        case: "v1: 20 calls to a sound plugin while another hangs",
        deadline: TIMEOUT,
        measured,
        fds: None,
        rss_kib: None,
    }
    .report();
}
