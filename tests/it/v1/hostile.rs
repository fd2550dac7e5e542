//! Hostile input: every case ends in a typed error within its bound, never a panic or a hang.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use dockplug_v1::discovery::MAX_SPEC_BYTES;
use dockplug_v1::{CallError, CallOptions, Client, DiscoveryError, LocalRegistry};
use serde_json::Value;

use super::server::{PluginServer, RawServer, Reply};
use super::{quick_retry, tempdir};

fn spec_registry(dir: &std::path::Path) -> LocalRegistry {
    LocalRegistry::with_dirs([dir.join("run")], [dir.join("etc")])
}

#[test]
fn garbage_and_oversized_spec_files() {
    let dir = tempdir();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let r = spec_registry(dir.path());
    std::fs::write(etc.join("bin.spec"), [0xff, 0x00, 0xfe, 0x13]).unwrap();
    assert!(matches!(r.plugin("bin"), Err(DiscoveryError::BadJson { .. })));
    std::fs::write(etc.join("junk.json"), "{\"Addr\": \"tcp://1.2.3.4:5\", ").unwrap();
    assert!(matches!(r.plugin("junk"), Err(DiscoveryError::BadJson { .. })));
    std::fs::write(etc.join("big.spec"), vec![b'a'; MAX_SPEC_BYTES as usize + 1]).unwrap();
    assert!(matches!(r.plugin("big"), Err(DiscoveryError::TooLarge { .. })));
    std::fs::write(etc.join("bigj.json"), vec![b' '; 10 << 20]).unwrap();
    assert!(matches!(r.plugin("bigj"), Err(DiscoveryError::TooLarge { .. })));
}

#[test]
fn unreadable_files_symlink_loops_and_fifos() {
    let dir = tempdir();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let r = spec_registry(dir.path());
    // A directory where a spec file should be.
    std::fs::create_dir_all(etc.join("d.spec")).unwrap();
    assert!(matches!(r.plugin("d"), Err(DiscoveryError::NotAFile { .. })));
    // A FIFO would block a reader forever.
    nix::unistd::mkfifo(&etc.join("fifo.spec"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let started = Instant::now();
    assert!(matches!(r.plugin("fifo"), Err(DiscoveryError::NotAFile { .. })));
    assert!(started.elapsed() < Duration::from_secs(1));
    // A symlink loop.
    symlink(etc.join("b.spec"), etc.join("a.spec")).unwrap();
    symlink(etc.join("a.spec"), etc.join("b.spec")).unwrap();
    match r.plugin("a") {
        Err(DiscoveryError::Io { path, .. }) => assert_eq!(path, etc.join("a.spec")),
        other => panic!("{other:?}"),
    }
    // A spec directory that is a file is unreadable as a directory.
    std::fs::write(dir.path().join("run"), "not a dir").unwrap();
    assert!(matches!(r.scan(), Err(DiscoveryError::Io { .. })));
    // Dangling symlinks are simply not there.
    let r2 = LocalRegistry::with_dirs([dir.path().join("run2")], [dir.path().join("etc2")]);
    std::fs::create_dir_all(dir.path().join("run2")).unwrap();
    symlink(dir.path().join("gone.sock"), dir.path().join("run2/gone.sock")).unwrap();
    assert!(matches!(r2.plugin("gone"), Err(DiscoveryError::NotFound { .. })));
    assert!(r2.scan().unwrap().is_empty());
}

#[tokio::test]
async fn a_dangling_socket_fails_fast_without_retry() {
    let dir = tempdir();
    let path = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let c = Client::builder(format!("unix://{}", path.display()).parse().unwrap())
        .retry(dockplug_v1::RetryPolicy::never())
        .build()
        .unwrap();
    let started = Instant::now();
    let e = c.call::<_, Value>("X.Y", &1).await.unwrap_err();
    assert!(e.is_refused(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

fn quick(addr: &str) -> Client {
    Client::builder(addr.parse().unwrap())
        .retry(quick_retry())
        .timeout(Some(Duration::from_secs(5)))
        .max_response_bytes(1 << 20)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_plugin_that_hangs_times_out() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("h.sock"), |_, _| Reply::Hang).await;
    let opts = CallOptions::new().timeout(Duration::from_millis(100));
    let started = Instant::now();
    let e = quick(&server.addr).call_with_options::<_, Value>("X.Y", &1, opts).await.unwrap_err();
    assert!(e.is_timeout());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_plugin_that_closes_mid_reply() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("m.sock"), |_, _| {
        Reply::Partial(bytes::Bytes::from_static(b"{\"Mountpoint\": \"/da"))
    })
    .await;
    let e = quick(&server.addr).call::<_, Value>("X.Y", &1).await.unwrap_err();
    assert!(matches!(e, CallError::Transport { .. }), "{e:?}");
    assert_eq!(server.count(), 1, "a reply had started: not resent");
}

#[tokio::test]
async fn a_plugin_that_replies_with_garbage() {
    let dir = tempdir();
    let server =
        PluginServer::unix(&dir.path().join("g.sock"), |_, _| Reply::ok("<html>oops")).await;
    let e = quick(&server.addr).call::<_, Value>("X.Y", &1).await.unwrap_err();
    assert!(matches!(e, CallError::Decode { .. }), "{e:?}");

    let raw = RawServer::unix(&dir.path().join("r.sock"), b"SSH-2.0-OpenSSH\r\n\r\n").await;
    let started = Instant::now();
    let e = quick(&raw.addr).call::<_, Value>("X.Y", &1).await.unwrap_err();
    assert!(matches!(e, CallError::Transport { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_plugin_that_replies_with_a_huge_body() {
    let dir = tempdir();
    let server = PluginServer::unix(&dir.path().join("b.sock"), |_, _| Reply::Huge(50 << 20)).await;
    let started = Instant::now();
    let e = quick(&server.addr).call::<_, Value>("X.Y", &1).await.unwrap_err();
    assert!(matches!(e, CallError::TooLarge { limit: 1048576, .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
