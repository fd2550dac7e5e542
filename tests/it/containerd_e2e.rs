//! End to end: the manager on the containerd executor, with the packaged localvol v2 plugin,
//! against a private containerd and runc, called through dockplug-v1 on its socket in the
//! manager's exec root.

use std::io::Cursor;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use dockplug_containerd::{ContainerdConfig, ContainerdExecutor};
use dockplug_manager::{
    Delivery, Event, EventFilter, LookupMode, Manager, ManagerConfig, ManagerError, OutputStream,
    RunState, Subscription,
};
use dockplug_v1::Client;
use serde_json::{json, Value};

use crate::support::containerd::Containerd;
use crate::support::{localvol, program};

mod shim;

const DEADLINE: Duration = Duration::from_secs(30);

/// localvol's `PropagatedMount`, where its volumes live.
const PROPAGATED_MOUNT: &str = "/data";

/// A private containerd, a short exec root (socket paths stay under 108 bytes), the manager's
/// root and the packaged localvol.
struct Env {
    containerd: Containerd,
    exec_root: tempfile::TempDir,
    plugin_dir: PathBuf,
}

impl Env {
    fn new() -> Env {
        let containerd = Containerd::start();
        let exec_root = tempfile::Builder::new().prefix("x").tempdir_in("/tmp").unwrap();
        let plugin_dir = localvol::packaged(&containerd.path("localvol"));
        Env { containerd, exec_root, plugin_dir }
    }

    async fn manager(&self, live_restore: bool) -> Manager<ContainerdExecutor> {
        let config = ContainerdConfig::new(&self.containerd.socket, self.containerd.path("fifo"))
            .with_namespace(&self.containerd.namespace);
        let executor = ContainerdExecutor::connect(config).await.expect("connect to containerd");
        let mut config = ManagerConfig::new(self.containerd.path("plugins"), self.exec_root.path());
        config.live_restore = live_restore;
        config.start_timeout = Duration::from_secs(20);
        Manager::new(config, executor).await.expect("open the manager")
    }

    /// The build context of the packaged plugin, its entrypoint replaced when given.
    fn context(&self, entrypoint: Option<&[&str]>) -> Cursor<Vec<u8>> {
        let dir = match entrypoint {
            None => self.plugin_dir.clone(),
            Some(entrypoint) => {
                let dir = self.containerd.path(&format!("variant{}", entrypoint.len()));
                let out =
                    Command::new("cp").arg("-a").arg(&self.plugin_dir).arg(&dir).output().unwrap();
                assert!(out.status.success());
                let file = dir.join("config.json");
                let mut config: Value =
                    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
                config["Entrypoint"] = json!(entrypoint);
                std::fs::write(&file, serde_json::to_vec(&config).unwrap()).unwrap();
                dir
            }
        };
        let out = Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .args(["-cf", "-", "config.json", "rootfs"])
            .output()
            .unwrap();
        assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
        Cursor::new(out.stdout)
    }

    fn client(&self, id: &str) -> Client {
        let socket = self.exec_root.path().join(id).join(localvol::LOCALVOL_SOCKET);
        Client::new(&format!("unix://{}", socket.display()), None).unwrap()
    }

    /// `ctr <args>` in the plugins' namespace; its standard output.
    fn ctr(&self, args: &[&str]) -> String {
        let out = Command::new(program("ctr"))
            .arg("--address")
            .arg(&self.containerd.socket)
            .arg("--namespace")
            .arg(&self.containerd.namespace)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr tasks list` as (container id, pid, status).
    fn tasks(&self) -> Vec<(String, u32, String)> {
        self.ctr(&["tasks", "list"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?.to_owned(), f.next()?.parse().ok()?, f.next()?.to_owned()))
            })
            .collect()
    }

    fn running_pid(&self, id: &str) -> Option<u32> {
        self.tasks().into_iter().find(|(c, _, s)| c == id && s == "RUNNING").map(|(_, p, _)| p)
    }
}

async fn eventually<F, Fut>(cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    crate::support::eventually(DEADLINE, cond).await
}

async fn answers(client: &Client) -> bool {
    client.call::<_, Value>("VolumeDriver.List", &json!({})).await.is_ok()
}

/// The next delivery of `sub`, within the deadline.
async fn next_event(sub: &mut Subscription) -> Event {
    match tokio::time::timeout(DEADLINE, sub.recv()).await {
        Ok(Some(Delivery::Event(e))) => e,
        other => panic!("expected an event within {DEADLINE:?}, got {other:?}"),
    }
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localvol_runs_on_containerd_from_create_to_remove() {
    let env = Env::new();
    let m = env.manager(false).await;
    let plugin = m.create_from_context(env.context(None), "localvol:latest").await.expect("create");
    let enabled = m.enable("localvol", None).await.expect("enable");
    assert!(enabled.enabled);
    assert_eq!(m.state("localvol").unwrap(), RunState::Running);
    assert!(env.running_pid(&plugin.id).is_some(), "a running task: {:?}", env.tasks());

    let client = env.client(&plugin.id);
    let _: Value =
        client.call("VolumeDriver.Create", &json!({"Name": "vol1", "Opts": {}})).await.unwrap();
    let mounted: Value =
        client.call("VolumeDriver.Mount", &json!({"Name": "vol1", "ID": "c1"})).await.unwrap();
    let mountpoint = mounted["Mountpoint"].as_str().expect("a mountpoint").to_owned();
    assert!(mountpoint.starts_with(PROPAGATED_MOUNT), "{mountpoint}");
    // The volume lives in the propagated mount, visible on the host.
    let on_host = env
        .containerd
        .path("plugins")
        .join(&plugin.id)
        .join("propagated-mount")
        .join(mountpoint.trim_start_matches(PROPAGATED_MOUNT).trim_start_matches('/'));
    assert!(on_host.is_dir(), "{} on the host", on_host.display());
    let _: Value =
        client.call("VolumeDriver.Unmount", &json!({"Name": "vol1", "ID": "c1"})).await.unwrap();

    let disabled = m.disable("localvol", false).await.expect("disable");
    assert!(!disabled.enabled);
    assert!(env.tasks().is_empty(), "no task after disable: {:?}", env.tasks());
    assert!(!answers(&client).await, "the socket is gone");
    m.remove("localvol", false).await.expect("remove");
    assert!(!env.containerd.path("plugins").join(&plugin.id).exists(), "plugin dir removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_manager_reattaches_to_the_running_plugin() {
    let env = Env::new();
    let m = env.manager(true).await;
    let plugin = m.create_from_context(env.context(None), "localvol:latest").await.unwrap();
    m.enable("localvol", None).await.unwrap();
    let pid = env.running_pid(&plugin.id).expect("running");
    // In use once (a volume of it is mounted somewhere).
    m.get("localvol", "volumedriver", LookupMode::Acquire).unwrap();
    drop(m);

    let m = env.manager(true).await;
    assert_eq!(m.state("localvol").unwrap(), RunState::Running);
    assert_eq!(env.running_pid(&plugin.id), Some(pid), "the same process, re-attached");
    assert!(answers(&env.client(&plugin.id)).await, "still answering");
    let e = m.disable("localvol", false).await.unwrap_err();
    assert!(matches!(e, ManagerError::InUse { .. }), "the in-use count survived: {e}");

    // Re-attached means watched: a crash is seen and the plugin restarted.
    kill9(pid);
    assert!(
        eventually(|| async { env.running_pid(&plugin.id).is_some_and(|p| p != pid) }).await,
        "restarted after the crash: {:?}",
        env.tasks()
    );
    m.disable("localvol", true).await.unwrap();
    m.remove("localvol", true).await.unwrap();
}

/// What a manager killed while containerd deletes the task of a disabled plugin can leave
/// (containerd's `runtime/v2/shim.go` `shimTask.delete`, its context cancelled while it waits
/// for the shim): the shim has deleted its task, containerd still holds the shim for the id
/// but lists no task. Built here directly, after the manager is gone: the plugin's init
/// killed, its task deleted inside the shim (a ttrpc call to the shim), and, when
/// `without_container`, its container deleted too (the state a restore that only deleted the
/// container left). A new manager restores the plugin (recorded enabled): the start clears
/// what is left and the plugin runs again, and the old shim is gone.
async fn a_delete_cut_short_does_not_block_the_next_start(without_container: bool) {
    let env = Env::new();
    let m = env.manager(false).await;
    let plugin = m.create_from_context(env.context(None), "localvol:latest").await.unwrap();
    m.enable("localvol", None).await.unwrap();
    let pid = env.running_pid(&plugin.id).expect("running");
    drop(m);

    let socket = &env.containerd.socket;
    let old_shims = shim::pids(socket, &plugin.id);
    assert_eq!(old_shims.len(), 1, "one shim for the plugin");
    kill9(pid);
    assert!(
        eventually(|| async {
            env.tasks().iter().any(|(c, _, s)| *c == plugin.id && s == "STOPPED")
        })
        .await,
        "stopped: {:?}",
        env.tasks()
    );
    let code = shim::delete_task(&env.containerd.state, &env.containerd.namespace, &plugin.id);
    assert_eq!(code, 0, "the shim deleted its task");
    if without_container {
        env.ctr(&["containers", "rm", &plugin.id]);
        assert!(env.ctr(&["containers", "ls", "-q"]).trim().is_empty());
    }
    assert!(env.tasks().is_empty(), "containerd lists no task: {:?}", env.tasks());
    assert_eq!(shim::pids(socket, &plugin.id), old_shims, "the shim outlived its task");

    let m = env.manager(false).await;
    assert!(
        eventually(|| async {
            env.running_pid(&plugin.id).is_some()
                && m.state("localvol").ok() == Some(RunState::Running)
        })
        .await,
        "restored: {:?} {:?}",
        m.state("localvol"),
        env.tasks()
    );
    assert!(answers(&env.client(&plugin.id)).await, "answering after the restore");
    assert!(
        eventually(|| async {
            old_shims.iter().all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        })
        .await,
        "the old shim is gone: {:?}",
        shim::pids(socket, &plugin.id)
    );
    m.disable("localvol", false).await.unwrap();
    assert!(env.tasks().is_empty(), "no task after disable: {:?}", env.tasks());
    assert!(
        eventually(|| async { shim::pids(socket, &plugin.id).is_empty() }).await,
        "no shim after disable: {:?}",
        shim::pids(socket, &plugin.id)
    );
    m.remove("localvol", false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_deleted_only_in_its_shim_does_not_block_the_restore() {
    a_delete_cut_short_does_not_block_the_next_start(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_deleted_only_in_its_shim_and_no_container_do_not_block_the_restore() {
    a_delete_cut_short_does_not_block_the_next_start(true).await;
}

/// A shim containerd lost (a manager killed while containerd created or deleted the task:
/// containerd dropped the shim, the shim never shut down) is killed: by the restore of a
/// disabled plugin, and before the next task of its id is created (which would otherwise
/// reuse it, its socket being taken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shim_containerd_lost_is_killed_at_restore_and_before_a_start() {
    let env = Env::new();
    let m = env.manager(false).await;
    let plugin = m.create_from_context(env.context(None), "localvol:latest").await.unwrap();
    drop(m);
    let socket = &env.containerd.socket;
    let (ns, id) = (&env.containerd.namespace, &plugin.id);
    // Gone, or a zombie its new parent has not reaped yet.
    let gone = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
            .unwrap_or(true)
    };

    let lost = shim::start_lost(socket, ns, id, &env.containerd.path("lost1"));
    let m = env.manager(false).await;
    assert!(!m.inspect("localvol").unwrap().enabled);
    assert!(
        eventually(|| async { gone(lost) }).await,
        "the restore killed the lost shim: {:?}",
        shim::pids(socket, id)
    );

    let lost = shim::start_lost(socket, ns, id, &env.containerd.path("lost2"));
    m.enable("localvol", None).await.unwrap();
    assert!(
        eventually(|| async { gone(lost) }).await,
        "killed before the task was created, not reused: {:?}",
        shim::pids(socket, id)
    );
    let shims = shim::pids(socket, id);
    assert_eq!(shims.len(), 1, "the plugin's own shim: {shims:?}");
    assert!(env.running_pid(id).is_some(), "running: {:?}", env.tasks());
    assert!(answers(&env.client(id)).await);
    m.disable("localvol", false).await.unwrap();
    m.remove("localvol", false).await.unwrap();
    assert!(
        eventually(|| async { shim::pids(socket, id).is_empty() }).await,
        "no shim left: {:?}",
        shim::pids(socket, id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_plugin_is_restarted_and_a_containerd_restart_loses_no_exit() {
    let mut env = Env::new();
    let m = env.manager(false).await;
    let plugin = m.create_from_context(env.context(None), "localvol:latest").await.unwrap();
    m.enable("localvol", None).await.unwrap();
    let client = env.client(&plugin.id);
    let (mut events, _cancel) = m.subscribe(
        16,
        Some(vec![
            EventFilter::Crash { id: plugin.id.clone() },
            EventFilter::Restart { id: plugin.id.clone() },
        ]),
    );

    let first = env.running_pid(&plugin.id).expect("running");
    kill9(first);
    match next_event(&mut events).await {
        Event::Crash { plugin: p, exit_code, restart_in } => {
            assert_eq!(p.id, plugin.id);
            assert_eq!(exit_code, Some(128 + 9), "killed by SIGKILL");
            assert_eq!(restart_in, Some(Duration::from_millis(100)), "the first backoff");
        }
        e => panic!("expected a crash, got {e:?}"),
    }
    match next_event(&mut events).await {
        Event::Restart(p) => assert!(p.id == plugin.id && p.enabled, "{p:?}"),
        e => panic!("expected a restart, got {e:?}"),
    }
    assert!(
        eventually(|| async {
            env.running_pid(&plugin.id).is_some_and(|p| p != first)
                && m.state("localvol").ok() == Some(RunState::Running)
        })
        .await,
        "restarted after SIGKILL: {:?} {:?}",
        m.state("localvol"),
        env.tasks()
    );
    assert!(answers(&client).await, "answering after the restart");

    // containerd restarts under the manager; the event stream recovers.
    env.containerd.restart();
    let second = env.running_pid(&plugin.id).expect("still running after the containerd restart");
    kill9(second);
    assert!(
        eventually(|| async {
            env.running_pid(&plugin.id).is_some_and(|p| p != second)
                && m.state("localvol").ok() == Some(RunState::Running)
        })
        .await,
        "restarted after a crash following the containerd restart: {:?}",
        env.tasks()
    );
    assert!(answers(&client).await);
    m.disable("localvol", false).await.unwrap();
    m.remove("localvol", false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entrypoint_that_exits_at_once_fails_enable() {
    let env = Env::new();
    let m = env.manager(false).await;
    let ctx = env.context(Some(&["/localvol", "--no-such-flag"]));
    m.create_from_context(ctx, "broken:latest").await.unwrap();
    let started = Instant::now();
    let e = m.enable("broken", None).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "failed fast, not at the deadline");
    // The error ends with what the entrypoint wrote to stderr (clap's complaint).
    let said = "error: unexpected argument '--no-such-flag' found";
    match &e {
        ManagerError::ExitedWhileStarting { stderr, .. } => {
            assert!(stderr.starts_with(said), "{stderr:?}")
        }
        _ => panic!("{e}"),
    }
    let text = e.to_string();
    assert!(text.starts_with(&format!("plugin \"broken:latest\" exited while starting: {said}")));
    let logs = m.logs("broken").unwrap();
    assert!(
        logs.iter().any(|l| l.stream == OutputStream::Stderr && l.text == said),
        "the plugin's log keeps it: {logs:?}"
    );
    assert!(!m.inspect("broken").unwrap().enabled);
    assert!(
        eventually(|| async { env.tasks().is_empty() }).await,
        "nothing left: {:?}",
        env.tasks()
    );
    m.remove("broken", false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_never_opens_its_socket_fails_at_the_deadline() {
    let env = Env::new();
    let m = env.manager(false).await;
    let ctx =
        env.context(Some(&["/localvol", "--socket", "/tmp/elsewhere.sock", "--root", "/data"]));
    m.create_from_context(ctx, "mute:latest").await.unwrap();
    let started = Instant::now();
    let e = m.enable("mute", Some(Duration::from_secs(2))).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, ManagerError::SocketTimeout { .. }), "{e}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(15), "{took:?}");
    assert!(!m.inspect("mute").unwrap().enabled);
    assert!(env.tasks().is_empty(), "nothing left running: {:?}", env.tasks());
    m.remove("mute", false).await.unwrap();
}
