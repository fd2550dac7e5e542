//! The containerd executor against a real, private containerd and runc: create, start, output
//! into the sinks, signals, exit events, restore, stale containers, and the event stream
//! surviving a containerd restart. Each test has its own containerd (it starts in a fraction
//! of a second) and a busybox rootfs.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use dockplug_containerd::{ContainerdConfig, ContainerdExecutor};
use dockplug_manager::{Executor, ExecutorError, Exit, ExitReceiver, PluginStdio, Signal};
use oci_spec::runtime::{ProcessBuilder, RootBuilder, Spec};
use tokio::io::AsyncWrite;

use crate::support::containerd::{busybox_rootfs, Containerd};
use crate::support::program;

const DEADLINE: Duration = Duration::from_secs(20);

/// An output sink that keeps what it receives, and whether it was closed.
#[derive(Clone, Default)]
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    closed: Arc<Mutex<bool>>,
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
    fn closed(&self) -> bool {
        *self.closed.lock().unwrap()
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.bytes.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        *self.closed.lock().unwrap() = true;
        Poll::Ready(Ok(()))
    }
}

fn stdio() -> (PluginStdio, Capture, Capture) {
    let (out, err) = (Capture::default(), Capture::default());
    (PluginStdio::new(Box::pin(out.clone()), Box::pin(err.clone())), out, err)
}

/// A plugin ID (64 hex characters) made from a digit.
fn id(n: u8) -> String {
    format!("{n:x}").repeat(64)
}

/// A runtime spec running `script` with busybox sh in `rootfs`.
fn spec(rootfs: &Path, script: &str) -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(None);
    spec.set_root(Some(RootBuilder::default().path(rootfs).readonly(false).build().unwrap()));
    let process = ProcessBuilder::default()
        .args(vec!["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()])
        .env(vec!["PATH=/bin".to_owned()])
        .cwd("/")
        .build()
        .unwrap();
    spec.set_process(Some(process));
    spec
}

/// A test's world: a private containerd, a busybox rootfs, an executor and its exits.
struct World {
    containerd: Containerd,
    rootfs: PathBuf,
    executor: ContainerdExecutor,
    exits: ExitReceiver,
}

impl World {
    async fn new() -> World {
        let containerd = Containerd::start();
        let rootfs = busybox_rootfs(containerd.dir.path());
        let executor = connect(&containerd).await;
        let exits = executor.take_exits().expect("exit stream");
        World { containerd, rootfs, executor, exits }
    }

    fn touch(&self, name: &str) {
        touch(&self.rootfs, name);
    }

    fn ctr(&self, args: &[&str]) -> String {
        ctr(&self.containerd, args)
    }
}

/// Creates the file `/tmp/<name>` inside the rootfs (the plugins' scripts wait on them).
fn touch(rootfs: &Path, name: &str) {
    std::fs::write(rootfs.join("tmp").join(name), b"").unwrap();
}

fn config(containerd: &Containerd) -> ContainerdConfig {
    ContainerdConfig::new(&containerd.socket, containerd.path("fifo"))
        .with_namespace(&containerd.namespace)
}

async fn connect(containerd: &Containerd) -> ContainerdExecutor {
    ContainerdExecutor::connect(config(containerd)).await.expect("connect to containerd")
}

fn ctr(containerd: &Containerd, args: &[&str]) -> String {
    let out = Command::new(program("ctr"))
        .arg("--address")
        .arg(&containerd.socket)
        .arg("--namespace")
        .arg(&containerd.namespace)
        .args(args)
        .output()
        .expect("run ctr");
    assert!(out.status.success(), "ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn next_exit(exits: &mut ExitReceiver) -> Exit {
    tokio::time::timeout(DEADLINE, exits.recv())
        .await
        .expect("an exit within the deadline")
        .expect("exit stream open")
}

async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    crate::support::eventually(DEADLINE, || std::future::ready(cond())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_runs_and_its_output_and_exit_reach_the_manager() {
    let mut w = World::new().await;
    let p = id(1);
    let (io, out, err) = stdio();
    let script = "echo hello from stdout; echo hello from stderr >&2; exit 3";
    w.executor.create(&p, spec(&w.rootfs, script), io).await.expect("create");

    let exit = next_exit(&mut w.exits).await;
    assert_eq!(exit, Exit::new(p.clone(), Some(3)));
    // Output is drained and the sinks closed before the exit is reported.
    assert_eq!(out.text(), "hello from stdout\n");
    assert_eq!(err.text(), "hello from stderr\n");
    assert!(out.closed() && err.closed(), "sinks closed at exit");
    // Task, container and FIFOs are gone; the executor forgot the plugin.
    assert_eq!(w.ctr(&["containers", "list", "--quiet"]).trim(), "");
    assert!(!w.containerd.path("fifo").join(format!("{p}-stdout")).exists());
    assert!(matches!(w.executor.is_running(&p).await, Err(ExecutorError::NotFound { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_reach_the_init_process_and_unknown_plugins_are_not_found() {
    let mut w = World::new().await;
    let p = id(2);
    let (io, out, _) = stdio();
    let script = "trap 'echo got term; exit 0' TERM; echo ready; while true; do sleep 0.05; done";
    w.executor.create(&p, spec(&w.rootfs, script), io).await.expect("create");
    assert!(eventually(|| out.text().contains("ready")).await, "plugin printed ready");
    assert!(w.executor.is_running(&p).await.unwrap());

    w.executor.signal(&p, Signal::Term).await.expect("signal");
    assert_eq!(next_exit(&mut w.exits).await, Exit::new(p.clone(), Some(0)));
    assert!(out.text().contains("got term"), "output: {}", out.text());

    let unknown = id(9);
    let e = w.executor.signal(&unknown, Signal::Kill).await.unwrap_err();
    assert!(matches!(e, ExecutorError::NotFound { ref id } if *id == unknown), "{e}");
    assert_eq!(e.to_string(), format!("unknown plugin \"{unknown}\""));
    let e = w.executor.is_running(&unknown).await.unwrap_err();
    assert!(matches!(e, ExecutorError::NotFound { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_entrypoint_fails_create_and_leaves_nothing() {
    let w = World::new().await;
    let p = id(3);
    let (io, _, _) = stdio();
    let mut bad = spec(&w.rootfs, "unused");
    let process = ProcessBuilder::default()
        .args(vec!["/no/such/entrypoint".to_owned()])
        .cwd("/")
        .build()
        .unwrap();
    bad.set_process(Some(process));
    let e = w.executor.create(&p, bad, io).await.unwrap_err();
    let text = format!(
        "{e}: {}",
        std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
    );
    assert!(matches!(e, ExecutorError::Backend { operation: "create", .. }), "{text}");
    assert_eq!(w.ctr(&["containers", "list", "--quiet"]).trim(), "", "no container left");
    assert_eq!(w.ctr(&["tasks", "list", "--quiet"]).trim(), "", "no task left");
    assert!(w.containerd.leftover_pids().iter().all(|(kind, _)| kind != "init.pid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_container_of_the_same_id_is_replaced() {
    let World { containerd, rootfs, executor, .. } = World::new().await;
    let p = id(4);
    let (io, old_out, _) = stdio();
    executor
        .create(&p, spec(&rootfs, "echo old; while true; do sleep 0.05; done"), io)
        .await
        .unwrap();
    assert!(eventually(|| old_out.text().contains("old")).await);
    // A new executor (a restarted manager that does not restore) creates the same ID.
    drop(executor);
    let fresh = connect(&containerd).await;
    let mut exits = fresh.take_exits().unwrap();
    let (io, new_out, _) = stdio();
    fresh
        .create(&p, spec(&rootfs, "echo new; while true; do sleep 0.05; done"), io)
        .await
        .expect("replace");
    assert!(eventually(|| new_out.text().contains("new")).await, "the new plugin runs");
    assert!(fresh.is_running(&p).await.unwrap());
    assert_eq!(ctr(&containerd, &["tasks", "list", "--quiet"]).lines().count(), 1, "one task");
    // The replaced process's exit is not the current plugin's: nothing is reported for it.
    fresh.signal(&p, Signal::Kill).await.unwrap();
    assert_eq!(next_exit(&mut exits).await, Exit::new(p.clone(), Some(137)));
    assert!(exits.try_recv().is_err(), "exactly one exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_reattaches_a_running_plugin_and_cleans_up_a_stopped_one() {
    let World { containerd, rootfs, executor, .. } = World::new().await;
    let (alive, stopped) = (id(5), id(6));
    let (io, _, _) = stdio();
    let script = "while [ ! -e /tmp/stop5 ]; do \
        for f in /tmp/say*; do [ -e \"$f\" ] && echo \"$f\" && rm \"$f\"; done; sleep 0.02; \
        done; exit 5";
    executor.create(&alive, spec(&rootfs, script), io).await.unwrap();
    let (io, _, _) = stdio();
    executor
        .create(
            &stopped,
            spec(&rootfs, "while [ ! -e /tmp/stop6 ]; do sleep 0.02; done; exit 6"),
            io,
        )
        .await
        .unwrap();
    // The manager goes away; one plugin stops while nobody watches.
    drop(executor);
    touch(&rootfs, "stop6");
    assert!(
        eventually(|| ctr(&containerd, &["tasks", "list"])
            .lines()
            .any(|l| l.starts_with(&stopped) && l.contains("STOPPED")))
        .await,
        "plugin 6 stopped: {}",
        ctr(&containerd, &["tasks", "list"])
    );

    let fresh = connect(&containerd).await;
    let mut exits = fresh.take_exits().unwrap();
    let (io, out, _) = stdio();
    assert!(fresh.restore(&alive, io).await.expect("restore alive"), "running plugin re-attached");
    let (io, _, _) = stdio();
    assert!(
        !fresh.restore(&stopped, io).await.expect("restore stopped"),
        "stopped plugin is not alive"
    );
    let (io, _, _) = stdio();
    assert!(
        !fresh.restore(&id(7), io).await.expect("restore unknown"),
        "unknown plugin is not alive"
    );
    assert_eq!(
        ctr(&containerd, &["containers", "list", "--quiet"]).trim(),
        alive,
        "stopped container removed"
    );

    // Output after the restore reaches the new sink, through the same FIFOs.
    touch(&rootfs, "say1");
    assert!(
        eventually(|| out.text().contains("/tmp/say1")).await,
        "output after restore: {:?}",
        out.text()
    );
    assert!(fresh.is_running(&alive).await.unwrap());
    touch(&rootfs, "stop5");
    assert_eq!(next_exit(&mut exits).await, Exit::new(alive.clone(), Some(5)));
    assert!(exits.try_recv().is_err(), "no exit reported for the cleaned-up plugin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_are_not_missed_across_a_containerd_restart() {
    let mut w = World::new().await;
    let (first, second) = (id(8), id(0xa));
    let (io, _, _) = stdio();
    w.executor
        .create(
            &first,
            spec(&w.rootfs, "while [ ! -e /tmp/stop8 ]; do sleep 0.02; done; exit 8"),
            io,
        )
        .await
        .unwrap();
    let (io, _, _) = stdio();
    w.executor
        .create(
            &second,
            spec(&w.rootfs, "while [ ! -e /tmp/stopa ]; do sleep 0.02; done; exit 10"),
            io,
        )
        .await
        .unwrap();

    // containerd restarts under the executor: the stream breaks, is re-made, exits flow.
    w.containerd.restart();
    w.touch("stop8");
    assert_eq!(next_exit(&mut w.exits).await, Exit::new(first.clone(), Some(8)));

    // An exit while containerd is down is found by the reconciliation after it comes back.
    w.containerd.stop_daemon();
    let init = w
        .containerd
        .leftover_pids()
        .into_iter()
        .find(|(kind, _)| kind == "init.pid")
        .map(|(_, pid)| pid)
        .expect("the second plugin's init pid");
    w.touch("stopa");
    assert!(
        eventually(|| !Path::new(&format!("/proc/{init}/cmdline")).exists()
            || std::fs::read(format!("/proc/{init}/cmdline"))
                .map(|c| c.is_empty())
                .unwrap_or(true))
        .await,
        "the second plugin exited"
    );
    w.containerd.restart();
    assert_eq!(next_exit(&mut w.exits).await, Exit::new(second.clone(), Some(10)));
    assert_eq!(w.ctr(&["containers", "list", "--quiet"]).trim(), "", "both containers removed");
}
