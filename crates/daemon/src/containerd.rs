//! Which containerd plugins run on: the one `--containerd` names, else the system containerd
//! if its socket answers, else a private containerd this daemon starts under its exec root
//! and supervises, as dockerd does (`libcontainerd/supervisor`): its own config, root, state
//! and socket, a PID file so a daemon that crashed adopts it instead of starting a second,
//! restarted when it dies, stopped by PID (SIGTERM, then SIGKILL) when the daemon exits.
//! Plugins survive a containerd restart in their shims.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::watch;

use crate::config::Config;

/// How long a private containerd may take to answer on its socket.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a stopping containerd gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The pause before a private containerd that died is started again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The containerd in use.
#[derive(Debug)]
pub enum Containerd {
    /// Someone else's: `--containerd` or the system containerd.
    External(PathBuf),
    /// Ours: stopped by [`Containerd::stop`].
    Private(Private),
}

/// A private containerd and the task supervising it.
#[derive(Debug)]
pub struct Private {
    socket: PathBuf,
    stop: watch::Sender<bool>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Containerd {
    /// Picks or starts containerd for `config`.
    pub async fn choose(config: &Config) -> anyhow::Result<Containerd> {
        if let Some(socket) = &config.containerd {
            tracing::info!(socket = %socket.display(), "using containerd given by --containerd");
            return Ok(Containerd::External(socket.clone()));
        }
        if answers(&config.system_containerd).await {
            tracing::info!(socket = %config.system_containerd.display(), "using the system containerd");
            return Ok(Containerd::External(config.system_containerd.clone()));
        }
        Ok(Containerd::Private(Private::start(config).await?))
    }

    /// containerd's gRPC socket.
    pub fn socket(&self) -> &Path {
        match self {
            Containerd::External(s) => s,
            Containerd::Private(p) => &p.socket,
        }
    }

    /// Stops a private containerd (by PID) and waits for it; nothing for an external one.
    pub async fn stop(self) {
        if let Containerd::Private(p) = self {
            let _ = p.stop.send(true);
            let _ = p.supervisor.await;
        }
    }
}

/// Whether a unix socket accepts a connection.
async fn answers(socket: &Path) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::UnixStream::connect(socket)).await,
        Ok(Ok(_))
    )
}

struct Layout {
    dir: PathBuf,
    socket: PathBuf,
    config: PathBuf,
    pidfile: PathBuf,
    binary: PathBuf,
}

impl Private {
    async fn start(config: &Config) -> anyhow::Result<Private> {
        let dir = config.containerd_exec_dir();
        let layout = Layout {
            socket: dir.join("containerd.sock"),
            config: dir.join("containerd.toml"),
            pidfile: dir.join("containerd.pid"),
            binary: config.containerd_binary.clone(),
            dir,
        };
        let root = config.containerd_root();
        let state = layout.dir.join("daemon");
        for d in [&layout.dir, &root, &state] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let level = if config.log_filter == "debug" { "debug" } else { "warn" };
        let toml = config_toml(&root, &state, &layout.socket, level);
        let tmp = layout.config.with_extension("toml.tmp");
        std::fs::write(&tmp, toml)
            .and_then(|()| std::fs::rename(&tmp, &layout.config))
            .with_context(|| format!("cannot write {}", layout.config.display()))?;

        let (stop, stopped) = watch::channel(false);
        let running = match adoptable(&layout).await {
            Some(pid) => {
                tracing::info!(pid, socket = %layout.socket.display(), "containerd is still running, adopting it");
                Running::Adopted(pid)
            }
            None => spawn(&layout).await?,
        };
        let socket = layout.socket.clone();
        let supervisor = tokio::spawn(supervise(layout, running, stopped));
        Ok(Private { socket, stop, supervisor })
    }
}

/// A private containerd process: our child, or one a previous daemon started.
enum Running {
    Child(tokio::process::Child),
    Adopted(u32),
}

impl Running {
    fn pid(&self) -> Option<u32> {
        match self {
            Running::Child(c) => c.id(),
            Running::Adopted(pid) => Some(*pid),
        }
    }

    /// Resolves when the process has exited.
    async fn exited(&mut self) {
        match self {
            Running::Child(c) => {
                let _ = c.wait().await;
            }
            Running::Adopted(pid) => {
                while alive(*pid) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// The containerd named by our PID file, if it still runs and answers on our socket.
async fn adoptable(layout: &Layout) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(&layout.pidfile).ok()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "containerd" && answers(&layout.socket).await).then_some(pid)
}

fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
        .unwrap_or(true);
    kill(Pid::from_raw(raw), None).is_ok() && !zombie
}

async fn spawn(layout: &Layout) -> anyhow::Result<Running> {
    let _ = std::fs::remove_file(&layout.socket);
    let mut cmd = tokio::process::Command::new(&layout.binary);
    cmd.arg("--config").arg(&layout.config);
    // The runc shim finds `runc` on PATH; Debian installs it in /usr/sbin.
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{path}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| {
        format!("cannot start a private containerd ({})", layout.binary.display())
    })?;
    let pid = child.id().unwrap_or(0);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(relay(out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(relay(err));
    }
    let tmp = layout.pidfile.with_extension("pid.tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, &layout.pidfile))
        .with_context(|| format!("cannot write {}", layout.pidfile.display()))?;
    let deadline = tokio::time::Instant::now() + START_DEADLINE;
    loop {
        if answers(&layout.socket).await {
            tracing::info!(pid, socket = %layout.socket.display(), "started a private containerd");
            return Ok(Running::Child(child));
        }
        if let Some(status) = child.try_wait()? {
            bail!("the private containerd exited while starting ({status})");
        }
        if tokio::time::Instant::now() >= deadline {
            stop_pid(pid, &mut Running::Child(child)).await;
            bail!("the private containerd did not answer within {}s", START_DEADLINE.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lines containerd writes, as our own log records.
async fn relay(stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "containerd", "{line}");
    }
}

async fn supervise(layout: Layout, mut running: Running, mut stop: watch::Receiver<bool>) {
    loop {
        let stopping = tokio::select! {
            () = running.exited() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            if let Some(pid) = running.pid() {
                stop_pid(pid, &mut running).await;
            }
            let _ = std::fs::remove_file(&layout.pidfile);
            return;
        }
        tracing::error!("the private containerd exited, starting it again");
        loop {
            if *stop.borrow() {
                return;
            }
            let stopping = tokio::select! {
                () = tokio::time::sleep(RESTART_DELAY) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopping {
                return;
            }
            match spawn(&layout).await {
                Ok(r) => {
                    running = r;
                    break;
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot restart containerd"),
            }
        }
    }
}

/// SIGTERM by PID, a bounded wait, then SIGKILL.
async fn stop_pid(pid: u32, running: &mut Running) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, running.exited()).await.is_err() {
        tracing::warn!(pid, "containerd did not stop on SIGTERM, sending SIGKILL");
        let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        let _ = tokio::time::timeout(STOP_GRACE, running.exited()).await;
    }
    tracing::info!(pid, "stopped the private containerd");
}

fn config_toml(root: &Path, state: &Path, socket: &Path, level: &str) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
# Plugins need no CRI, tracing, metrics or debug listener.
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""
  level = "{level}"

[metrics]
  address = ""
"#,
        root = root.display(),
        state = state.display(),
        socket = socket.display(),
    )
}
