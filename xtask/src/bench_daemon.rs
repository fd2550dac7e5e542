//! `cargo xtask bench-daemon`: the docker CLI against dockplugd and a private dockerd on one
//! private containerd, the same sequence, alternating daemon by daemon in each round; prints
//! median times and their ratio (dockplugd / dockerd). Not part of `ci`.
//!
//! dockplugd is the `daemon` profile's build (as it ships). Measured: `docker plugin create`, `enable`, `disable`, `rm`, `install` (from a private
//! registry on loopback; pull and enable) as the CLI's wall time; each daemon's resident
//! memory (VmRSS, and its anonymous part beside it) idle, with 1 and with 20 plugins enabled;
//! a restart with 20 enabled, until `GET /plugins` answers and until all 20 plugin sockets
//! accept.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dockplug_testkit::http::{self, Request};
use dockplug_testkit::{
    rss_kib, wait_until, Containerd, Dockerd, DockerdOptions, Dockplugd, DockplugdOptions, Registry,
};

use crate::bench_all::{median, Figure, Goal};
use crate::{managed, setup};

const ROUNDS: usize = 5;
const FLEET: usize = 20;
const RESTARTS: usize = 2;
/// Where dockerd 20.10 puts v2 plugin sockets (fixed in Moby, `<this>/<id>/<socket>`).
const DOCKERD_PLUGIN_SOCKETS: &str = "/run/docker/plugins";

/// One daemon as the benchmark drives it.
enum Target {
    Ours(Dockplugd),
    Theirs { dockerd: Option<Dockerd>, dir: PathBuf, options: DockerdOptions },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Ours(_) => "dockplugd",
            Target::Theirs { .. } => "dockerd",
        }
    }

    fn docker(&self, args: &[&str]) -> Result<String> {
        let out = match self {
            Target::Ours(d) => d.docker(args)?,
            Target::Theirs { dockerd, .. } => {
                dockerd.as_ref().context("dockerd runs")?.docker(args)?
            }
        };
        if !out.status.success() {
            bail!(
                "{}: docker {} failed: {}",
                self.name(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The CLI's wall time for `docker ARGS`, in ms.
    fn timed(&self, args: &[&str]) -> Result<f64> {
        let t = Instant::now();
        self.docker(args)?;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }

    fn pid(&self) -> Result<u32> {
        match self {
            Target::Ours(d) => d.pid().context("dockplugd runs"),
            Target::Theirs { dockerd, .. } => {
                Ok(dockerd.as_ref().context("dockerd runs")?.daemon.pid())
            }
        }
    }

    fn rss_mb(&self) -> Result<f64> {
        let kib = rss_kib(self.pid()?).context("read VmRSS")?;
        Ok(kib as f64 / 1024.0)
    }

    /// The anonymous part of the resident memory (`RssAnon`): heap, stacks, written data;
    /// the rest of VmRSS is file-backed (the binary's code and read-only data, libraries).
    fn anon_mb(&self) -> Result<f64> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("read RssAnon")?;
        Ok(kib as f64 / 1024.0)
    }

    /// Adds VmRSS as `metric` and RssAnon beside it.
    fn add_rss(&self, table: &mut Table, metric: &str) -> Result<()> {
        table.add(&format!("{metric} (MB)"), self.name(), self.rss_mb()?);
        table.add(&format!("{metric}, anonymous part (MB)"), self.name(), self.anon_mb()?);
        Ok(())
    }

    fn socket(&self) -> Result<PathBuf> {
        Ok(match self {
            Target::Ours(d) => d.socket.clone(),
            Target::Theirs { dockerd, .. } => {
                dockerd.as_ref().context("dockerd runs")?.socket.clone()
            }
        })
    }

    /// The socket of enabled plugin `id`.
    fn plugin_socket(&self, id: &str) -> PathBuf {
        match self {
            Target::Ours(d) => d.exec_root.join("plugins").join(id).join("localvol.sock"),
            Target::Theirs { .. } => {
                Path::new(DOCKERD_PLUGIN_SOCKETS).join(id).join("localvol.sock")
            }
        }
    }

    /// SIGTERM, start again; returns (ms until `GET /plugins` answers, ms until every
    /// plugin socket in `ids` accepts).
    fn restart(&mut self, ids: &[String]) -> Result<(f64, f64)> {
        let started = match self {
            Target::Ours(d) => {
                d.stop()?;
                let t = Instant::now();
                d.restart()?;
                t
            }
            Target::Theirs { dockerd, dir, options } => {
                drop(dockerd.take());
                let t = Instant::now();
                *dockerd = Some(Dockerd::start_with(dir, options)?);
                t
            }
        };
        let socket = self.socket()?;
        let listed = wait_until(Duration::from_secs(120), || {
            http::unix(&socket, &Request::get("/plugins"), Duration::from_secs(5))
                .is_ok_and(|r| r.status == 200)
        });
        let listed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let sockets: Vec<PathBuf> = ids.iter().map(|id| self.plugin_socket(id)).collect();
        let all = wait_until(Duration::from_secs(180), || {
            sockets.iter().all(|s| std::os::unix::net::UnixStream::connect(s).is_ok())
        });
        if !listed || !all {
            bail!("{}: plugins not back after a restart", self.name());
        }
        Ok((listed_ms, started.elapsed().as_secs_f64() * 1000.0))
    }
}

/// Runs the benchmark and prints the table.
pub fn run() -> Result<()> {
    measure(ROUNDS, RESTARTS).map(drop)
}

/// The `daemon` section of `cargo xtask bench-all`: every metric as a figure.
pub fn figures(quick: bool) -> Result<Vec<Figure>> {
    let table = if quick { measure(2, 1)? } else { measure(ROUNDS, RESTARTS)? };
    Ok(table.figures())
}

fn measure(rounds: usize, restarts: usize) -> Result<Table> {
    setup::debian_packages(setup::INTEGRATION_PACKAGES)?;
    let tmp = dockplug_testkit::temp_dir("dpbd")?;
    let (plugin, bin) = managed::build_with_localvol(
        "daemon",
        &["-p", "dockplug-daemon", "--bin", "dockplugd"],
        tmp.path(),
    )?;
    let plugin_dir = plugin.to_str().context("a UTF-8 path")?.to_owned();

    let containerd = Containerd::start()?;
    let registry = Registry::plain()?;
    let mut ours = DockplugdOptions::new(bin.join("dockplugd"));
    ours.containerd = Some(containerd.socket.clone());
    ours.plugins_namespace = Some(format!("{}-dpd", containerd.namespace));
    ours.args = vec!["--log-level".into(), "warn".into()];
    let theirs = DockerdOptions {
        containerd: Some(containerd.socket.clone()),
        namespace: format!("{}-dkd", containerd.namespace),
        plugins_namespace: format!("{}-dkdp", containerd.namespace),
        log_level: "warn".to_owned(),
    };
    let dkd_dir = tmp.path().join("dkd");
    // Its own short temp dir: plugin sockets are `<exec root>/plugins/<64 hex>/<socket>`, and
    // a unix socket path has 107 bytes at most.
    let home = dockplug_testkit::temp_dir("dp")?;
    let mut targets = vec![
        Target::Ours(Dockplugd::start(home.path(), &ours)?),
        Target::Theirs {
            dockerd: Some(Dockerd::start_with(&dkd_dir, &theirs)?),
            dir: dkd_dir,
            options: theirs,
        },
    ];
    let mut table = Table::default();
    for t in &targets {
        t.add_rss(&mut table, "RSS idle")?;
    }

    // The plugin in the registry, for the installs.
    let remote = format!("{}/bench/localvol", registry.host());
    targets[0].docker(&["plugin", "create", &remote, &plugin_dir])?;
    targets[0].docker(&["plugin", "push", &remote])?;
    targets[0].docker(&["plugin", "rm", &remote])?;

    for round in 0..rounds {
        for t in &targets {
            let name = format!("b{round}");
            table.add("create (ms)", t.name(), t.timed(&["plugin", "create", &name, &plugin_dir])?);
            table.add("enable (ms)", t.name(), t.timed(&["plugin", "enable", &name])?);
            if round == 0 {
                t.add_rss(&mut table, "RSS, 1 enabled")?;
            }
            table.add("disable (ms)", t.name(), t.timed(&["plugin", "disable", &name])?);
            table.add("rm (ms)", t.name(), t.timed(&["plugin", "rm", &name])?);
            let alias = format!("i{round}");
            table.add(
                "install (ms)",
                t.name(),
                t.timed(&[
                    "plugin",
                    "install",
                    "--grant-all-permissions",
                    "--alias",
                    &alias,
                    &remote,
                ])?,
            );
            t.docker(&["plugin", "rm", "-f", &alias])?;
        }
        println!("bench-daemon: round {} of {rounds} done", round + 1);
    }

    // The fleet: 20 plugins, each with a rootfs layer of its own (dockerd refuses a layer it
    // already stores).
    let mut fleet_ids: Vec<Vec<String>> = Vec::new();
    for t in &targets {
        let mut ids = Vec::new();
        for i in 0..FLEET {
            let dir = fleet_dir(&plugin, &tmp.path().join("fleet").join(i.to_string()), i)?;
            let name = format!("fleet{i}");
            t.docker(&["plugin", "create", &name, dir.to_str().context("a UTF-8 path")?])?;
            t.docker(&["plugin", "enable", &name])?;
            ids.push(t.docker(&["plugin", "inspect", "-f", "{{.Id}}", &name])?.trim().to_owned());
        }
        t.add_rss(&mut table, "RSS, 20 enabled")?;
        fleet_ids.push(ids);
    }
    for _ in 0..restarts {
        for (t, ids) in targets.iter_mut().zip(&fleet_ids) {
            let (listed, all) = t.restart(ids)?;
            table.add("restart, 20 enabled: until GET /plugins (ms)", t.name(), listed);
            table.add("restart, 20 enabled: until all 20 answer (ms)", t.name(), all);
        }
    }
    for (t, _) in targets.iter().zip(&fleet_ids) {
        for i in 0..FLEET {
            t.docker(&["plugin", "rm", "-f", &format!("fleet{i}")])?;
        }
    }
    let version = targets[0].docker(&["version", "--format", "{{.Client.Version}}"])?;
    println!(
        "\nbench-daemon: docker CLI {} (/usr/bin/docker), {rounds} rounds, {restarts} restarts",
        version.trim()
    );
    table.print();
    Ok(table)
}

/// A copy of the plugin directory with one more file, so its layer is its own.
fn fleet_dir(plugin: &Path, dir: &Path, i: usize) -> Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(plugin.join("config.json"))
        .arg(plugin.join("rootfs"))
        .arg(dir)
        .status()?;
    if !status.success() {
        bail!("cp -a {} failed", plugin.display());
    }
    std::fs::write(dir.join("rootfs").join("fleet-id"), i.to_string())?;
    Ok(dir.to_owned())
}

/// Samples per metric and daemon, printed as medians and their ratio.
#[derive(Default)]
struct Table {
    rows: Vec<(String, Vec<f64>, Vec<f64>)>,
}

impl Table {
    fn add(&mut self, metric: &str, daemon: &str, value: f64) {
        if !self.rows.iter().any(|r| r.0 == metric) {
            self.rows.push((metric.to_owned(), Vec::new(), Vec::new()));
        }
        if let Some(row) = self.rows.iter_mut().find(|r| r.0 == metric) {
            if daemon == "dockplugd" {
                row.1.push(value);
            } else {
                row.2.push(value);
            }
        }
    }

    /// The rows as `bench-all` figures (units from the metric names).
    fn figures(&self) -> Vec<Figure> {
        self.rows
            .iter()
            .map(|(metric, ours, theirs)| {
                let goal = match metric.as_str() {
                    "create (ms)" => Goal::AtMost(0.25),
                    "enable (ms)" => Goal::AtMost(0.1),
                    "install (ms)" => Goal::AtMost(0.25),
                    "RSS idle (MB)" => Goal::AtMost(0.15),
                    "RSS, 20 enabled (MB)" => Goal::AtMost(0.1),
                    "restart, 20 enabled: until GET /plugins (ms)" => Goal::AtMost(0.1),
                    _ => Goal::None,
                };
                let (name, unit) = match metric.rsplit_once(" (") {
                    Some((n, u)) => (n, if u.starts_with("MB") { "MB" } else { "ms" }),
                    None => (metric.as_str(), ""),
                };
                Figure::new(
                    format!("docker CLI: {name} (dockplugd vs dockerd)"),
                    unit,
                    median(ours),
                    median(theirs),
                    goal,
                )
            })
            .collect()
    }

    fn print(&self) {
        println!("| metric (median) | dockplugd | dockerd | ratio |");
        println!("|---|---:|---:|---:|");
        for (metric, ours, theirs) in &self.rows {
            let (a, b) = (median(ours), median(theirs));
            println!("| {metric} | {a:.1} | {b:.1} | {:.2}x |", a / b);
        }
    }
}
