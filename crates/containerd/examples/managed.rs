//! The v2 plugin manager on the containerd executor, as a small program: what
//! `cargo xtask demo` (v2 part) and `cargo xtask bench` run against a private containerd.
//!
//! ```text
//! managed demo  --containerd SOCK --plugin DIR --work DIR
//! managed bench --containerd SOCK --plugin DIR --work DIR [--rounds N] [--fleet N]
//! ```
//!
//! `DIR` of `--plugin` is a v2 plugin directory (`config.json` + `rootfs/`, e.g. the packaged
//! localvol). `demo` creates it, enables it, creates and mounts a volume through the v1 client
//! on its socket, then disables and removes it, printing each step's time. `bench` prints
//! `result enable_ms <ms>` for each round (create, enable timed until the socket answers,
//! disable, remove) and `result rss_kib <KiB>` of this process with `--fleet` plugins enabled.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dockplug_containerd::{ContainerdConfig, ContainerdExecutor};
use dockplug_manager::{Manager, ManagerConfig};
use dockplug_v1::Client;
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

struct Args {
    mode: String,
    containerd: PathBuf,
    plugin: PathBuf,
    work: PathBuf,
    rounds: usize,
    fleet: usize,
}

fn args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mode =
        it.next().ok_or("usage: managed demo|bench --containerd SOCK --plugin DIR --work DIR")?;
    let mut a = Args {
        mode,
        containerd: PathBuf::new(),
        plugin: PathBuf::new(),
        work: PathBuf::new(),
        rounds: 5,
        fleet: 20,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--containerd" => a.containerd = value.into(),
            "--plugin" => a.plugin = value.into(),
            "--work" => a.work = value.into(),
            "--rounds" => a.rounds = value.parse()?,
            "--fleet" => a.fleet = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

/// The plugin directory as a build context (a tar of `config.json` and `rootfs/`).
fn context(dir: &Path) -> Result<Vec<u8>> {
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "config.json", "rootfs"])
        .output()?;
    if !out.status.success() {
        return Err(format!("tar failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(out.stdout)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The manager's exec root must be short: `<exec root>/<64 hex id>/<socket>` is a unix socket
/// path (108 bytes at most).
struct ExecRoot(PathBuf);

impl ExecRoot {
    fn new() -> Result<ExecRoot> {
        let dir = PathBuf::from(format!("/tmp/dpx{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(ExecRoot(dir))
    }
}

impl Drop for ExecRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn manager(a: &Args, exec_root: &Path) -> Result<Manager<ContainerdExecutor>> {
    let config = ContainerdConfig::new(&a.containerd, a.work.join("fifo"));
    let executor = ContainerdExecutor::connect(config).await?;
    let mut config = ManagerConfig::new(a.work.join("root"), exec_root);
    config.start_timeout = Duration::from_secs(20);
    Ok(Manager::new(config, executor).await?)
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

async fn demo(a: &Args) -> Result<()> {
    let exec_root = ExecRoot::new()?;
    let t = Instant::now();
    let m = manager(a, &exec_root.0).await?;
    println!(
        "demo v2: connected to containerd and opened the manager in {:.1} ms",
        ms(t.elapsed())
    );

    let t = Instant::now();
    let plugin = m.create_from_context(Cursor::new(context(&a.plugin)?), "localvol:latest").await?;
    println!(
        "demo v2: created {} ({}) in {:.1} ms",
        plugin.name,
        &plugin.id[..12],
        ms(t.elapsed())
    );

    let t = Instant::now();
    m.enable("localvol", None).await?;
    println!("demo v2: enabled on containerd, socket answering, in {:.1} ms", ms(t.elapsed()));

    let socket = exec_root.0.join(&plugin.id).join(&plugin.config.interface.socket);
    let client = Client::new(&format!("unix://{}", socket.display()), None)?;
    let t = Instant::now();
    let _: Value = client.call("VolumeDriver.Create", &json!({"Name": "demo", "Opts": {}})).await?;
    let mounted: Value =
        client.call("VolumeDriver.Mount", &json!({"Name": "demo", "ID": "demo-caller"})).await?;
    println!(
        "demo v2: volume created and mounted at {} in {:.1} ms",
        mounted["Mountpoint"].as_str().unwrap_or("?"),
        ms(t.elapsed())
    );
    let _: Value =
        client.call("VolumeDriver.Unmount", &json!({"Name": "demo", "ID": "demo-caller"})).await?;
    let _: Value = client.call("VolumeDriver.Remove", &json!({"Name": "demo"})).await?;

    let t = Instant::now();
    m.disable("localvol", false).await?;
    println!("demo v2: disabled in {:.1} ms", ms(t.elapsed()));
    let t = Instant::now();
    m.remove("localvol", false).await?;
    println!("demo v2: removed in {:.1} ms", ms(t.elapsed()));
    m.shutdown().await;
    Ok(())
}

async fn bench(a: &Args) -> Result<()> {
    let exec_root = ExecRoot::new()?;
    let m = manager(a, &exec_root.0).await?;
    // The context is streamed from a file, as dockerd streams its request body.
    let context_file = a.work.join("context.tar");
    std::fs::create_dir_all(&a.work)?;
    std::fs::write(&context_file, context(&a.plugin)?)?;
    for round in 0..a.rounds {
        let name = format!("bench{round}:latest");
        m.create_from_context(std::fs::File::open(&context_file)?, &name).await?;
        let t = Instant::now();
        m.enable(&name, None).await?;
        let took = ms(t.elapsed());
        println!("bench: dockplug enable #{round}: {took:.1} ms");
        println!("result enable_ms {took:.3}");
        m.disable(&name, false).await?;
        m.remove(&name, false).await?;
    }
    let mut names = Vec::new();
    for i in 0..a.fleet {
        let name = format!("fleet{i}:latest");
        m.create_from_context(std::fs::File::open(&context_file)?, &name).await?;
        m.enable(&name, None).await?;
        names.push(name);
    }
    println!("result rss_kib {}", rss_kib().unwrap_or(0));
    for name in &names {
        m.disable(name, true).await?;
        m.remove(name, true).await?;
    }
    m.shutdown().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let result = match args() {
        Ok(a) if a.mode == "demo" => demo(&a).await,
        Ok(a) if a.mode == "bench" => bench(&a).await,
        Ok(a) => Err(format!("unknown mode {}", a.mode).into()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("managed: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}
