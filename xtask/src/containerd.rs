//! A private containerd (and, for the benchmark, a private dockerd on it) for the xtask tasks
//! that run managed plugins: `cargo xtask bench-enable` and the v2 part of `cargo xtask demo`.
//!
//! Everything lives in a temp dir under `/tmp` (short: unix socket paths are limited to 108
//! bytes): containerd's root, state, socket and config, and dockerd's data root, exec root
//! and API socket. Each daemon is stopped by PID when its guard drops, whatever happened, and
//! the containerd guard then kills the shims and container inits it finds in its state
//! directory, also by PID.
//!
//! The managed side runs in `crates/containerd/examples/managed.rs` (the manager on the
//! containerd executor): xtask itself never links containerd-client, so it builds without
//! `protoc`, which `cargo xtask setup` installs.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A temp dir removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = PathBuf::from(format!("/tmp/{prefix}{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon we started, stopped by PID on drop: SIGTERM, a bounded wait, then SIGKILL.
pub struct Process {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Result<Process> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        Ok(Process { name, child, log: log.to_owned() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until `socket` accepts a connection, failing if the process dies first.
    fn wait_for(&mut self, socket: &Path, deadline: Duration) -> Result<()> {
        let end = Instant::now() + deadline;
        loop {
            if UnixStream::connect(socket).is_ok() {
                return Ok(());
            }
            if !self.running() {
                bail!("{} exited before answering:\n{}", self.name, self.log_tail());
            }
            if Instant::now() >= end {
                bail!(
                    "{} did not answer on {} in {deadline:?}:\n{}",
                    self.name,
                    socket.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if !self.running() {
            return;
        }
        signal(self.pid(), "TERM");
        let end = Instant::now() + Duration::from_secs(15);
        while self.running() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill -SIG pid` (xtask has no libc binding; the `kill` utility is in every Debian).
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The resident memory of process `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A private containerd in `<dir>/ctd`.
pub struct Containerd {
    pub socket: PathBuf,
    state: PathBuf,
    process: Option<Process>,
}

impl Containerd {
    pub fn start(dir: &Path) -> Result<Containerd> {
        let base = dir.join("ctd");
        let (root, state) = (base.join("root"), base.join("state"));
        let socket = base.join("c.sock");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&state)?;
        let config = base.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}.ttrpc\"\n\
                 [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
                root.display(),
                state.display(),
                socket.display(),
                socket.display()
            ),
        )?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&config);
        cmd.env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let mut process = Process::spawn("containerd", cmd, &base.join("containerd.log"))?;
        process.wait_for(&socket, Duration::from_secs(20))?;
        Ok(Containerd { socket, state, process: Some(process) })
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
        // Shims and container inits survive containerd: kill them by PID (inits first).
        let tasks = self.state.join("io.containerd.runtime.v2.task");
        let mut pids = Vec::new();
        for ns in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
            for bundle in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                for (order, file) in [(0, "init.pid"), (1, "shim.pid")] {
                    if let Ok(text) = std::fs::read_to_string(bundle.path().join(file)) {
                        if let Ok(pid) = text.trim().parse::<u32>() {
                            pids.push((order, pid));
                        }
                    }
                }
            }
        }
        // A shim can outlive its bundle: find the rest by the socket they were started for.
        for proc_dir in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = proc_dir.file_name().to_str().and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let raw = std::fs::read(proc_dir.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            let socket = self.socket.as_os_str().as_encoded_bytes();
            let is_shim = args.first().is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
            if is_shim && args.windows(2).any(|w| w[0] == b"-address" && w[1] == socket) {
                pids.push((1, pid));
            }
        }
        pids.sort();
        pids.dedup();
        for (_, pid) in pids {
            signal(pid, "KILL");
        }
    }
}

/// A private dockerd on a given containerd, in `<dir>/dkd`, plugins in its own namespace.
pub struct Dockerd {
    pub socket: PathBuf,
    pub process: Process,
}

impl Dockerd {
    pub fn start(dir: &Path, containerd: &Containerd) -> Result<Dockerd> {
        let base = dir.join("dkd");
        let socket = base.join("d.sock");
        std::fs::create_dir_all(&base)?;
        let mut cmd = Command::new("dockerd");
        cmd.arg("--containerd")
            .arg(&containerd.socket)
            .arg("--data-root")
            .arg(base.join("data"))
            .arg("--exec-root")
            .arg(base.join("x"))
            .arg("--pidfile")
            .arg(base.join("d.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--containerd-namespace",
                "bench",
                "--containerd-plugins-namespace",
                "plugins.bench",
            ])
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .args(["--storage-driver", "vfs", "--log-level", "warn"]);
        cmd.env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let mut process = Process::spawn("dockerd", cmd, &base.join("dockerd.log"))?;
        process.wait_for(&socket, Duration::from_secs(60))?;
        Ok(Dockerd { socket, process })
    }

    /// One Engine API request over the unix socket; returns (status, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<(u16, String)> {
        let mut stream = UnixStream::connect(&self.socket).context("connect to dockerd")?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        if let Err(e) = stream.write_all(body) {
            // dockerd may answer (an error) and close before taking the whole body.
            if e.kind() != std::io::ErrorKind::ConnectionReset
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e).context("send the request body to dockerd");
            }
        }
        // dockerd stops reading a tar at its end-of-archive blocks, so the record padding tar
        // adds stays unread and closing makes the kernel reset the connection: a reset after
        // the reply has arrived is not an error.
        let mut reply = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !reply.is_empty() => {
                    break
                }
                Err(e) => return Err(e).context("read dockerd's reply"),
            }
        }
        let text = String::from_utf8_lossy(&reply).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no HTTP status in dockerd's reply: {text:.200}"))?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Ok((status, body))
    }

    /// `request`, failing unless the status is 2xx.
    pub fn ok(&self, method: &str, path: &str, body: &[u8], content_type: &str) -> Result<String> {
        let (status, reply) = self.request(method, path, body, content_type)?;
        if !(200..300).contains(&status) {
            bail!("dockerd {method} {path}: {status} {reply}");
        }
        Ok(reply)
    }
}

/// The workspace root (xtask's manifest dir is `<root>/xtask`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_owned).unwrap_or_default()
}

/// The target directory cargo builds into.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds localvol and the `managed` example (`release` for the benchmark; the demo uses the
/// debug build the test suite already made), packages localvol as a v2 plugin directory in
/// `dir`; returns (plugin dir, example binary).
fn build_managed(dir: &Path, release: bool) -> Result<(PathBuf, PathBuf)> {
    let mut args = vec!["build", "--quiet", "-p", "dockplug-localvol", "--bin", "localvol"];
    args.extend(["-p", "dockplug-containerd", "--example", "managed"]);
    if release {
        args.push("--release");
    }
    crate::setup::step("build localvol and the managed example", &args, &[])?;
    let profile = target_dir().join(if release { "release" } else { "debug" });
    let plugin = crate::package::localvol_plugin(&profile.join("localvol"), &dir.join("plugin"))
        .context("package localvol as a v2 plugin")?;
    Ok((plugin, profile.join("examples").join("managed")))
}

/// Runs the `managed` example; returns its `result <key> <value>` lines as pairs.
fn run_managed(example: &Path, args: &[&str], extra: &[&Path]) -> Result<Vec<(String, f64)>> {
    let mut cmd = Command::new(example);
    cmd.args(args);
    for p in extra {
        cmd.arg(p);
    }
    cmd.stderr(Stdio::inherit());
    let out = cmd.output().context("run the managed example")?;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| !l.starts_with("result ")) {
        println!("{line}");
    }
    if !out.status.success() {
        bail!("the managed example failed ({})", out.status);
    }
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("result "))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// The v2 part of `cargo xtask demo`: package localvol, then on a private containerd create
/// it, enable it, create and mount a volume through the v1 client, disable and remove it,
/// printing each step's time.
pub fn demo_v2() -> Result<()> {
    crate::setup::debian_packages(crate::setup::INTEGRATION_PACKAGES)?;
    let tmp = TempDir::new("dpd")?;
    let (plugin, example) = build_managed(&tmp.0, false)?;
    let containerd = Containerd::start(&tmp.0)?;
    println!("demo v2: private containerd at {}", containerd.socket.display());
    let work = tmp.0.join("m");
    run_managed(
        &example,
        &["demo", "--containerd"],
        &[&containerd.socket, Path::new("--plugin"), &plugin, Path::new("--work"), &work],
    )?;
    Ok(())
}

/// `cargo xtask bench-enable`: enable-to-ready latency of the packaged localvol with our manager on
/// the containerd executor, side by side with dockerd enabling the same plugin directory on
/// the same containerd; then the resident memory of each with 20 plugins enabled.
pub fn bench() -> Result<()> {
    const ROUNDS: usize = 7;
    const FLEET: usize = 20;
    crate::setup::debian_packages(crate::setup::INTEGRATION_PACKAGES)?;
    let tmp = TempDir::new("dpb")?;
    let (plugin, example) = build_managed(&tmp.0, true)?;
    let containerd = Containerd::start(&tmp.0)?;

    // Ours, in its own process (the manager and the executor, nothing else).
    let work = tmp.0.join("m");
    let ours = run_managed(
        &example,
        &["bench", "--rounds", &ROUNDS.to_string(), "--fleet", &FLEET.to_string(), "--containerd"],
        &[&containerd.socket, Path::new("--plugin"), &plugin, Path::new("--work"), &work],
    )?;
    let ours_enable =
        median(ours.iter().filter(|(k, _)| k == "enable_ms").map(|(_, v)| *v).collect());
    let ours_rss = ours.iter().find(|(k, _)| k == "rss_kib").map(|(_, v)| *v).unwrap_or(f64::NAN);

    // dockerd on the same containerd, same plugin directory.
    let dockerd = Dockerd::start(&tmp.0, &containerd)?;
    let context = {
        let out = Command::new("tar")
            .arg("-C")
            .arg(&plugin)
            .args(["-cf", "-", "config.json", "rootfs"])
            .output()
            .context("run tar")?;
        if !out.status.success() {
            bail!("tar of {} failed", plugin.display());
        }
        out.stdout
    };
    let tar = "application/x-tar";
    let mut docker_enable = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("bench{round}:latest");
        dockerd.ok("POST", &format!("/plugins/create?name={name}"), &context, tar)?;
        let started = Instant::now();
        dockerd.ok("POST", &format!("/plugins/{name}/enable?timeout=0"), b"", "text/plain")?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        println!("bench: dockerd enable #{round}: {ms:.1} ms");
        docker_enable.push(ms);
        dockerd.ok("POST", &format!("/plugins/{name}/disable"), b"", "text/plain")?;
        dockerd.ok("DELETE", &format!("/plugins/{name}"), b"", "text/plain")?;
    }
    let docker_enable = median(docker_enable);
    for i in 0..FLEET {
        let name = format!("fleet{i}:latest");
        // dockerd refuses a second plugin whose rootfs layer it already stores ("content
        // sha256:...: already exists"): give each a one-file difference.
        let extra = tmp.0.join("fleet").join(i.to_string());
        std::fs::create_dir_all(extra.join("rootfs"))?;
        std::fs::write(extra.join("rootfs").join("fleet-id"), i.to_string())?;
        let out = Command::new("tar")
            .arg("-C")
            .arg(&plugin)
            .args(["-cf", "-", "config.json", "rootfs", "-C"])
            .arg(&extra)
            .arg("rootfs/fleet-id")
            .output()
            .context("run tar")?;
        if !out.status.success() {
            bail!("tar for {name} failed");
        }
        dockerd.ok("POST", &format!("/plugins/create?name={name}"), &out.stdout, tar)?;
        dockerd.ok("POST", &format!("/plugins/{name}/enable?timeout=0"), b"", "text/plain")?;
    }
    let docker_rss = rss_kib(dockerd.process.pid()).map(|k| k as f64).unwrap_or(f64::NAN);
    for i in 0..FLEET {
        let name = format!("fleet{i}:latest");
        let _ =
            dockerd.request("POST", &format!("/plugins/{name}/disable?force=1"), b"", "text/plain");
        let _ = dockerd.request("DELETE", &format!("/plugins/{name}?force=1"), b"", "text/plain");
    }

    println!();
    println!("| measure | dockplug (manager + containerd executor) | dockerd 20.10 | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| enable-to-ready, median of {ROUNDS} | {ours_enable:.1} ms | {docker_enable:.1} ms | {:.3} (target <= 0.25) |",
        ours_enable / docker_enable
    );
    println!(
        "| resident memory, {FLEET} plugins enabled | {:.1} MiB | {:.1} MiB | {:.3} |",
        ours_rss / 1024.0,
        docker_rss / 1024.0,
        ours_rss / docker_rss
    );
    Ok(())
}
