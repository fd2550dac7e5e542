//! Clients that abuse an SDK server: half-open connections, trickled headers, idle
//! keep-alive connections, slow readers, oversized headers and bodies, a flood past the
//! connection bound. Each server runs in this process on its own socket with short
//! [`Limits`]; its connections are counted exactly from `/proc/net/unix`. The last case runs
//! localvol (an SDK plugin binary) with the default limits, to measure descriptors and memory
//! of a real plugin process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockplug::protocol::volume::{CreateRequest, MountRequest, Volume};
use dockplug_sdk::{Limits, Plugin, PluginResult, UnixListen, VolumeDriver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use super::measure::{fds, own_fds, own_rss_kib, rss_kib, server_conns, Row};
use crate::support::eventually;

/// A volume driver whose `List` reply is about `LIST_BYTES` long (for slow readers); counts
/// the `List` calls it answered.
struct Big(Arc<AtomicUsize>);

const LIST_BYTES: usize = 1 << 20;

impl VolumeDriver for Big {
    async fn create(&self, _: CreateRequest) -> PluginResult<()> {
        Ok(())
    }
    async fn remove(&self, _: String) -> PluginResult<()> {
        Ok(())
    }
    async fn get(&self, name: String) -> PluginResult<Volume> {
        Ok(Volume::new(name, "/v"))
    }
    async fn list(&self) -> PluginResult<Vec<Volume>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let n = LIST_BYTES / 64;
        Ok((0..n).map(|i| Volume::new(format!("volume-{i:020}"), "/some/mount/point")).collect())
    }
    async fn mount(&self, _: MountRequest) -> PluginResult<String> {
        Ok("/v".into())
    }
    async fn unmount(&self, _: MountRequest) -> PluginResult<()> {
        Ok(())
    }
}

fn short_limits() -> Limits {
    Limits::default()
        .header_timeout(Duration::from_secs(1))
        .idle_timeout(Duration::from_secs(2))
        .body_timeout(Duration::from_secs(1))
        .write_timeout(Duration::from_secs(1))
        .max_connections(4096)
        .max_header_bytes(16 << 10)
        .max_body_bytes(1 << 20)
}

/// A server in this process, stopped when dropped.
struct Served {
    socket: PathBuf,
    lists: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve(limits: Limits) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("p.sock");
    let lists = Arc::new(AtomicUsize::new(0));
    let plugin = Plugin::builder().volume(Big(lists.clone())).limits(limits).build();
    let server = plugin.bind_unix(UnixListen::new(&socket)).await.unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    Served { socket, lists, stop: Some(tx), _dir: dir }
}

/// `POST /<method>` on a new connection; the status code of the reply.
async fn call(socket: &Path, method: &str, body: &str) -> u16 {
    let mut s = UnixStream::connect(socket).await.unwrap();
    let req = format!(
        "POST /{method} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    status_of(&reply)
}

fn status_of(reply: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(reply);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Reads until the server closes; how long that took.
async fn until_closed(s: &mut UnixStream, bound: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let r = tokio::time::timeout(bound, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(r.is_ok(), "the server kept the connection past {bound:?}");
    started.elapsed()
}

#[tokio::test]
async fn half_open_connections_are_dropped_after_the_header_timeout() {
    const N: usize = 2000;
    let served = serve(short_limits()).await;
    let (fds0, rss0) = (own_fds(), own_rss_kib());
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(UnixStream::connect(&served.socket).await.unwrap());
    }
    let opened = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || async { server_conns(&served.socket) == N }).await,
        "the server accepted {} of {N}",
        server_conns(&served.socket)
    );
    let (fds_peak, rss_peak) = (own_fds(), own_rss_kib());
    let deadline = Duration::from_secs(1) + Duration::from_secs(4);
    let freed = eventually(deadline, || async { server_conns(&served.socket) == 0 }).await;
    let measured = opened.elapsed();
    assert!(freed, "{} connections still held", server_conns(&served.socket));
    assert!(measured >= Duration::from_millis(900), "dropped before the timeout: {measured:?}");
    // The clients see the close.
    until_closed(&mut clients[0], Duration::from_secs(1)).await;
    let (fds1, rss1) = (own_fds(), own_rss_kib());
    drop(clients);
    eprintln!(
        "hostile: sdk {N} half-open connections: process fds {fds0} -> {fds_peak} (peak, both \
         ends) -> {fds1}; rss {rss0} -> {rss_peak} -> {rss1} KiB"
    );
    Row {
        case: "sdk: 2000 half-open connections (header timeout 1 s)",
        deadline,
        measured,
        fds: Some((N, server_conns(&served.socket))),
        rss_kib: Some((rss_peak, rss1)),
    }
    .report();
    // The server still answers.
    assert_eq!(call(&served.socket, "Plugin.Activate", "").await, 200);
}

#[tokio::test]
async fn trickled_headers_are_cut_at_the_header_timeout() {
    let served = serve(short_limits()).await;
    let mut s = UnixStream::connect(&served.socket).await.unwrap();
    let started = Instant::now();
    let header = b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nX-Slow: ";
    s.write_all(header).await.unwrap();
    // One byte every 100 ms, for longer than the timeout; writes fail once the server
    // closed, which ends the trickle.
    let trickle = async {
        for _ in 0..100 {
            if s.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), trickle).await.ok();
    let deadline = Duration::from_secs(3);
    let measured = started.elapsed() + until_closed(&mut s, deadline).await;
    assert!(measured >= Duration::from_millis(900), "cut before the timeout: {measured:?}");
    assert_eq!(server_conns(&served.socket), 0);
    Row {
        case: "sdk: trickled headers, 1 byte/100 ms (header timeout 1 s)",
        deadline,
        measured,
        fds: None,
        rss_kib: None,
    }
    .report();
}

#[tokio::test]
async fn an_idle_keepalive_connection_is_closed_after_the_idle_timeout() {
    let served = serve(short_limits()).await;
    let mut s = UnixStream::connect(&served.socket).await.unwrap();
    s.write_all(b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(status_of(&buf[..n]), 200);
    let started = Instant::now();
    let deadline = Duration::from_secs(2) + Duration::from_secs(3);
    let measured = until_closed(&mut s, deadline).await;
    // Idle, not the (shorter) header bound, applies between calls.
    assert!(
        measured >= Duration::from_millis(1900),
        "closed before the idle timeout: {measured:?}"
    );
    assert!(started.elapsed() >= measured);
    Row {
        case: "sdk: idle keep-alive connection (idle timeout 2 s)",
        deadline,
        measured,
        fds: Some((1, server_conns(&served.socket))),
        rss_kib: None,
    }
    .report();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_slow_readers_are_dropped_and_others_are_served() {
    const N: usize = 50;
    let served = serve(short_limits()).await;
    let rss0 = own_rss_kib();
    let mut readers = Vec::new();
    for _ in 0..N {
        let mut s = UnixStream::connect(&served.socket).await.unwrap();
        s.write_all(
            b"POST /VolumeDriver.List HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .unwrap();
        readers.push(s);
    }
    let started = Instant::now();
    assert!(
        eventually(Duration::from_secs(20), || async { served.lists.load(Ordering::SeqCst) == N })
            .await,
        "{} of {N} List calls answered",
        served.lists.load(Ordering::SeqCst)
    );
    let held = server_conns(&served.socket);
    // Meanwhile another client is served at once.
    let t = Instant::now();
    assert_eq!(call(&served.socket, "Plugin.Activate", "").await, 200);
    let other = t.elapsed();
    assert!(other < Duration::from_secs(2), "another call waited {other:?}");
    let rss_peak = own_rss_kib();
    // Nobody reads: each reply blocks its writer, and the write timeout frees them all.
    // From the moment the last reply was handed over: the write timeout plus slack.
    let answered = Instant::now();
    let deadline = Duration::from_secs(1) + Duration::from_secs(4);
    let freed = eventually(deadline, || async { server_conns(&served.socket) == 0 }).await;
    let measured = answered.elapsed();
    eprintln!(
        "hostile: sdk slow readers: all {N} answered {:.2?} after the requests",
        answered - started
    );
    assert!(freed, "{} slow readers still held", server_conns(&served.socket));
    Row {
        case: "sdk: 50 slow readers of a 1 MiB reply (write timeout 1 s)",
        deadline,
        measured,
        fds: Some((held, server_conns(&served.socket))),
        rss_kib: Some((rss0, rss_peak)),
    }
    .report();
}

#[tokio::test]
async fn oversized_headers_and_bodies_are_refused() {
    let served = serve(short_limits()).await;
    // Headers past 16 KiB: 431, and the connection is closed.
    let started = Instant::now();
    let mut s = UnixStream::connect(&served.socket).await.unwrap();
    let big = format!(
        "POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply)).await;
    assert_eq!(status_of(&reply), 431, "{}", String::from_utf8_lossy(&reply));
    let measured = started.elapsed();
    Row {
        case: "sdk: 64 KiB of headers (limit 16 KiB) -> 431",
        deadline: Duration::from_secs(2),
        measured,
        fds: None,
        rss_kib: None,
    }
    .report();

    // A declared body past 1 MiB: 413 without reading it.
    let started = Instant::now();
    let mut s = UnixStream::connect(&served.socket).await.unwrap();
    s.write_all(
        b"POST /VolumeDriver.Create HTTP/1.1\r\nHost: plugin\r\nContent-Length: 1073741824\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(status_of(&buf[..n]), 413, "{}", String::from_utf8_lossy(&buf[..n]));
    Row {
        case: "sdk: 1 GiB declared body (limit 1 MiB) -> 413",
        deadline: Duration::from_secs(2),
        measured: started.elapsed(),
        fds: None,
        rss_kib: None,
    }
    .report();

    // An endless chunked body: 413 once the limit is passed.
    let started = Instant::now();
    let mut s = UnixStream::connect(&served.socket).await.unwrap();
    s.write_all(
        b"POST /VolumeDriver.Create HTTP/1.1\r\nHost: plugin\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 << 10, " ".repeat(64 << 10));
    let writer = async {
        for _ in 0..64 {
            if s.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply)).await;
    assert_eq!(status_of(&reply), 413, "{}", String::from_utf8_lossy(&reply));
    Row {
        case: "sdk: endless chunked body (limit 1 MiB) -> 413",
        deadline: Duration::from_secs(5),
        measured: started.elapsed(),
        fds: None,
        rss_kib: None,
    }
    .report();

    // A body trickled past the body timeout: 408.
    let started = Instant::now();
    let mut s = UnixStream::connect(&served.socket).await.unwrap();
    s.write_all(
        b"POST /VolumeDriver.Create HTTP/1.1\r\nHost: plugin\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply)).await;
    assert_eq!(status_of(&reply), 408, "{}", String::from_utf8_lossy(&reply));
    Row {
        case: "sdk: body never completed (body timeout 1 s) -> 408",
        deadline: Duration::from_secs(3),
        measured: started.elapsed(),
        fds: None,
        rss_kib: None,
    }
    .report();
    assert_eq!(server_conns(&served.socket), 0);
}

#[tokio::test]
async fn the_connection_bound_holds_and_a_waiting_client_is_served() {
    const BOUND: usize = 16;
    let served = serve(short_limits().max_connections(BOUND)).await;
    let mut idle = Vec::new();
    for _ in 0..(BOUND * 4) {
        idle.push(UnixStream::connect(&served.socket).await.unwrap());
    }
    assert!(
        eventually(Duration::from_secs(5), || async { server_conns(&served.socket) == BOUND })
            .await
    );
    let held = server_conns(&served.socket);
    assert_eq!(held, BOUND, "more connections served than the bound");
    // A real call waits for a permit: the half-open ones ahead of it are dropped batch by
    // batch (1 s each), and it is served.
    let started = Instant::now();
    let status = call(&served.socket, "Plugin.Activate", "").await;
    let measured = started.elapsed();
    assert_eq!(status, 200);
    Row {
        case: "sdk: 64 half-open + 1 real client, bound 16 (header timeout 1 s)",
        deadline: Duration::from_secs(4) + Duration::from_secs(4),
        measured,
        fds: Some((held, server_conns(&served.socket))),
        rss_kib: None,
    }
    .report();
}

#[test]
fn localvol_with_default_limits_under_1000_half_open_connections() {
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let lv = crate::support::localvol::LocalVol::start(dir.path(), None);
    let pid = lv.daemon.pid();
    let (fds0, rss0) = (fds(pid), rss_kib(pid));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut clients = Vec::new();
        let mut refused = 0;
        for _ in 0..N {
            // Past the bound and the backlog, connecting fails at once: no wait.
            match UnixStream::connect(&lv.socket).await {
                Ok(s) => clients.push(s),
                Err(_) => refused += 1,
            }
        }
        let bound = Limits::default().connections;
        let started = Instant::now();
        // Most of the bound is held at once. Not all of it: on a loaded machine the first
        // connections reach their header timeout while the last are still being accepted.
        assert!(
            eventually(Duration::from_secs(15), || async { fds(pid) >= fds0 + bound * 3 / 4 })
                .await,
            "localvol holds {} descriptors",
            fds(pid)
        );
        let (fds_peak, rss_peak) = (fds(pid), rss_kib(pid));
        assert!(fds_peak <= fds0 + bound + 2, "{fds_peak} descriptors: over the bound {bound}");
        // The default header timeout (10 s) frees the first batch.
        let deadline = Limits::default().header + Duration::from_secs(5);
        let freed = eventually(deadline, || async { fds(pid) < fds_peak }).await;
        let measured = started.elapsed();
        assert!(freed, "localvol still holds {} descriptors", fds(pid));
        drop(clients);
        assert!(
            eventually(Duration::from_secs(15), || async { fds(pid) <= fds0 }).await,
            "descriptors not returned: {} (was {fds0})",
            fds(pid)
        );
        eprintln!(
            "hostile: localvol {N} half-open ({refused} refused at connect): fds {fds0} -> \
             {fds_peak} -> {}; rss {rss0} -> {rss_peak} -> {} KiB ({} B per held connection)",
            fds(pid),
            rss_kib(pid),
            (rss_peak.saturating_sub(rss0) * 1024) / (fds_peak - fds0).max(1) as u64
        );
        Row {
            case: "localvol (default limits): 1000 half-open connections",
            deadline,
            measured,
            fds: Some((fds_peak, fds(pid))),
            rss_kib: Some((rss_peak, rss_kib(pid))),
        }
        .report();
    });
}
