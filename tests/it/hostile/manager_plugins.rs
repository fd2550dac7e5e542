//! v2 plugins that abuse the manager, on a private containerd: one that never creates its
//! socket, one that creates it after Moby's window (12 s), one that crashes in a loop, one
//! that floods its output, one that ignores SIGTERM. Each is the packaged localvol with a
//! static busybox beside it and a shell entrypoint that misbehaves. Every case is bounded
//! and measured, and the manager's other calls are timed while the plugin misbehaves: none
//! may wait on it (no lock held across a wait).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockplug_containerd::{ContainerdConfig, ContainerdExecutor};
use dockplug_manager::{Manager, ManagerConfig, ManagerError};
use dockplug_protocol::filters::PluginListFilter;
use serde_json::{json, Value};

use super::measure::{own_rss_kib, Row};
use crate::support::containerd::Containerd;
use crate::support::{localvol, program};

const SOCKET: &str = "/run/docker/plugins/localvol.sock";

/// A private containerd, the manager on it, and the packaged localvol with busybox added.
struct Env {
    containerd: Containerd,
    exec_root: tempfile::TempDir,
    plugin_dir: PathBuf,
}

impl Env {
    fn new() -> Env {
        let containerd = Containerd::start();
        let exec_root = tempfile::Builder::new().prefix("h").tempdir_in("/tmp").unwrap();
        let plugin_dir = localvol::packaged(&containerd.path("localvol"));
        let bin = plugin_dir.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(program("busybox"), bin.join("busybox")).unwrap();
        for applet in ["sh", "sleep", "yes", "true"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        Env { containerd, exec_root, plugin_dir }
    }

    async fn manager(
        &self,
        tune: impl FnOnce(&mut ManagerConfig),
    ) -> Arc<Manager<ContainerdExecutor>> {
        let config = ContainerdConfig::new(&self.containerd.socket, self.containerd.path("fifo"))
            .with_namespace(&self.containerd.namespace);
        let executor = ContainerdExecutor::connect(config).await.expect("connect to containerd");
        let mut config = ManagerConfig::new(self.containerd.path("plugins"), self.exec_root.path());
        config.share_propagated_mounts = false;
        tune(&mut config);
        Arc::new(Manager::new(config, executor).await.expect("open the manager"))
    }

    /// The build context with `script` as the entrypoint (`/bin/sh -c script`).
    fn context(&self, script: &str) -> Cursor<Vec<u8>> {
        let file = self.plugin_dir.join("config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        config["Entrypoint"] = json!(["/bin/sh", "-c", script]);
        std::fs::write(&file, serde_json::to_vec(&config).unwrap()).unwrap();
        let out = Command::new("tar")
            .arg("-C")
            .arg(&self.plugin_dir)
            .args(["-cf", "-", "config.json", "rootfs"])
            .output()
            .unwrap();
        assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
        Cursor::new(out.stdout)
    }

    /// Running tasks of the private namespace, as `(container id, pid)`.
    fn running(&self) -> Vec<(String, u32)> {
        let out = Command::new(program("ctr"))
            .arg("--address")
            .arg(&self.containerd.socket)
            .arg("--namespace")
            .arg(&self.containerd.namespace)
            .args(["tasks", "list"])
            .output()
            .unwrap();
        assert!(out.status.success(), "ctr: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (id, pid, status) = (f.next()?, f.next()?, f.next()?);
                let pid: u32 = pid.parse().ok()?;
                (status == "RUNNING").then(|| (id.to_owned(), pid))
            })
            .collect()
    }

    fn exec_dir(&self) -> &Path {
        self.exec_root.path()
    }
}

fn localvol(args: &str) -> String {
    format!("/localvol --socket {SOCKET} --root /data{args}")
}

/// While `work` runs, calls `list` and `inspect` every 50 ms; the slowest one.
async fn while_timing<T>(
    m: &Arc<Manager<ContainerdExecutor>>,
    name: &str,
    work: impl std::future::Future<Output = T>,
) -> (T, Duration) {
    let worst = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let probe = {
        let (m, name, worst) = (m.clone(), name.to_owned(), worst.clone());
        tokio::spawn(async move {
            loop {
                let t = Instant::now();
                let _ = m.list(&PluginListFilter::all());
                let _ = m.inspect(&name);
                let us = t.elapsed().as_micros() as u64;
                worst.fetch_max(us, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let out = work.await;
    probe.abort();
    (out, Duration::from_micros(worst.load(std::sync::atomic::Ordering::SeqCst)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_never_creates_its_socket() {
    let env = Env::new();
    let m = env.manager(|_| {}).await;
    m.create_from_context(env.context("sleep 3600"), "hostile/never").await.unwrap();
    let window = Duration::from_secs(3);
    let started = Instant::now();
    let (r, worst) =
        while_timing(&m, "hostile/never", m.enable("hostile/never", Some(window))).await;
    let measured = started.elapsed();
    assert!(matches!(r, Err(ManagerError::SocketTimeout { .. })), "{r:?}");
    assert!(worst < Duration::from_millis(500), "list/inspect waited {worst:?}");
    assert!(!m.inspect("hostile/never").unwrap().enabled);
    assert!(env.running().is_empty(), "a task was left running: {:?}", env.running());
    Row {
        case: "manager: plugin never creates its socket (enable timeout 3 s)",
        deadline: window + Duration::from_secs(5),
        measured,
        fds: None,
        rss_kib: None,
    }
    .report();
    eprintln!("hostile: manager never-socket: slowest list/inspect meanwhile {worst:.2?}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_creates_its_socket_past_mobys_window() {
    let env = Env::new();
    let m = env.manager(|_| {}).await;
    let script = format!("sleep 12; exec {}", localvol(""));
    m.create_from_context(env.context(&script), "hostile/late").await.unwrap();
    let started = Instant::now();
    // Moby's effective window, the manager's default: 9.5 s.
    let (r, worst) = while_timing(&m, "hostile/late", m.enable("hostile/late", None)).await;
    let measured = started.elapsed();
    assert!(matches!(r, Err(ManagerError::SocketTimeout { .. })), "{r:?}");
    assert!(worst < Duration::from_millis(500), "list/inspect waited {worst:?}");
    assert!(env.running().is_empty(), "the late plugin was left running");
    // It never comes up later either: stopped, not only given up on.
    let socket = env.exec_dir().join(m.inspect("hostile/late").unwrap().id).join("localvol.sock");
    assert!(!socket.exists());
    Row {
        case: "manager: plugin creates its socket at 12 s (window 9.5 s)",
        deadline: Duration::from_millis(9500) + Duration::from_secs(5),
        measured,
        fds: None,
        rss_kib: None,
    }
    .report();
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_crashes_in_a_loop() {
    let env = Env::new();
    let m = env
        .manager(|c| {
            c.restart.initial = Duration::from_millis(200);
            c.restart.max = Duration::from_secs(2);
        })
        .await;
    // Up (socket served) for a second, then the init exits 3.
    let script = format!("{} & sleep 1; exit 3", localvol(""));
    m.create_from_context(env.context(&script), "hostile/crash").await.unwrap();
    m.enable("hostile/crash", None).await.unwrap();
    let rss0 = own_rss_kib();
    let started = Instant::now();
    let watch = Duration::from_secs(8);
    let mut pids = std::collections::BTreeSet::new();
    let (_, worst) = while_timing(&m, "hostile/crash", async {
        while started.elapsed() < watch {
            for (_, pid) in env.running() {
                pids.insert(pid);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let measured = started.elapsed();
    // Restarted (more than one process seen), with a backoff (not spinning).
    assert!(pids.len() >= 2, "no restart seen: {pids:?}");
    assert!(pids.len() <= 8, "restarts without backoff: {} in {watch:?}", pids.len());
    assert!(worst < Duration::from_millis(500), "list/inspect waited {worst:?}");
    let t = Instant::now();
    let _ = m.disable("hostile/crash", true).await;
    let disable = t.elapsed();
    assert!(
        crate::support::eventually(Duration::from_secs(10), || async { env.running().is_empty() })
            .await
    );
    eprintln!(
        "hostile: manager crash loop: {} processes in {watch:?}, disable took {disable:.2?}, \
         slowest list/inspect {worst:.2?}",
        pids.len()
    );
    Row {
        case: "manager: plugin crashes every second (8 s watched, then disable)",
        deadline: watch + Duration::from_secs(2),
        measured,
        fds: Some((pids.len(), env.running().len())),
        rss_kib: Some((rss0, own_rss_kib())),
    }
    .report();
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_floods_its_output() {
    let env = Env::new();
    let m = env.manager(|_| {}).await;
    let script =
        format!("yes 'flood flood flood flood flood flood flood flood' & exec {}", localvol(""));
    m.create_from_context(env.context(&script), "hostile/flood").await.unwrap();
    let rss0 = own_rss_kib();
    let started = Instant::now();
    m.enable("hostile/flood", None).await.unwrap();
    let id = m.inspect("hostile/flood").unwrap().id;
    let client = dockplug_v1::Client::new(
        &format!("unix://{}", env.exec_dir().join(&id).join("localvol.sock").display()),
        None,
    )
    .unwrap();
    // Five seconds of flood; the plugin keeps answering and the manager's memory stays flat.
    let mut calls = 0;
    let (_, worst) = while_timing(&m, "hostile/flood", async {
        while started.elapsed() < Duration::from_secs(5) {
            let r: Value = client.call("VolumeDriver.List", &json!({})).await.unwrap();
            assert!(r.get("Volumes").is_some() || r.get("Err").is_some());
            calls += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let measured = started.elapsed();
    let rss1 = own_rss_kib();
    let tail: usize = m.logs("hostile/flood").unwrap().iter().map(|l| l.text.len() + 1).sum();
    assert!(tail <= 64 << 10, "the output tail holds {tail} bytes");
    assert!(rss1 < rss0 + 64 * 1024, "memory grew from {rss0} to {rss1} KiB under the flood");
    assert!(worst < Duration::from_millis(500), "list/inspect waited {worst:?}");
    eprintln!("hostile: manager flood: {calls} calls answered, tail {tail} bytes kept");
    Row {
        case: "manager: plugin floods stdout for 5 s",
        deadline: Duration::from_secs(5) + Duration::from_secs(5),
        measured,
        fds: None,
        rss_kib: Some((rss0, rss1)),
    }
    .report();
    m.disable("hostile/flood", true).await.unwrap();
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_ignores_sigterm() {
    let env = Env::new();
    let stop = Duration::from_secs(2);
    let m = env.manager(|c| c.stop_timeout = stop).await;
    let script = format!("trap '' TERM; {} & while true; do sleep 1; done", localvol(""));
    m.create_from_context(env.context(&script), "hostile/deaf").await.unwrap();
    m.enable("hostile/deaf", None).await.unwrap();
    assert_eq!(env.running().len(), 1);
    let started = Instant::now();
    let (r, worst) = while_timing(&m, "hostile/deaf", m.disable("hostile/deaf", false)).await;
    let measured = started.elapsed();
    r.unwrap();
    assert!(measured >= stop - Duration::from_millis(200), "killed before the stop timeout");
    assert!(env.running().is_empty(), "the plugin outlived SIGKILL");
    assert!(worst < Duration::from_millis(500), "list/inspect waited {worst:?}");
    Row {
        case: "manager: plugin ignores SIGTERM (stop timeout 2 s, then SIGKILL)",
        deadline: stop + stop + Duration::from_secs(2),
        measured,
        fds: None,
        rss_kib: None,
    }
    .report();
    m.shutdown().await;
}
