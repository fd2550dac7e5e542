//! `cargo xtask bench-registry`: install (pull + enable), pull only and push of the packaged
//! localvol through one private registry (Debian's docker-registry), dockplugd against
//! dockerd on one private containerd, both driven through the Engine API, rounds
//! alternating. Every round uses a plugin whose layer neither daemon has seen (a one-file
//! difference), so each pull downloads and each push uploads. Install is measured three ways:
//! through the Engine API (pull + enable), through the docker CLI (20.10, `/usr/bin/docker`:
//! privileges, pull, enable, the CLI's own start included) of a fresh remote, and through the
//! CLI of one remote installed again every round (as `bench-daemon` does). Push: each daemon
//! pushes the layer its own `create` made (ours compresses faster, so its layer is some 10%
//! larger) to a fresh repository; both sides send the same requests (HEAD 404 per blob, POST,
//! one PUT per blob, the manifest PUT), and most of the time is the registry taking in and
//! hashing the layer. Prints median ratios; not part of `ci`.
//!
//! `BENCH_REGISTRY_PROFILE=daemon` measures the `daemon` build (dockplugd as it ships, as
//! `bench-daemon` does; its localvol is smaller too); `BENCH_REGISTRY_LOGS=1` prints the
//! registry's access log (each request with its duration) and dockplugd's log at the end (run
//! with `DOCKPLUGD_LOG=warn,dockplug_manager::steps=debug` for the step timings).

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use dockplug_testkit::http::Response;
use dockplug_testkit::{
    Containerd, Dockerd, DockerdOptions, Dockplugd, DockplugdOptions, Registry,
};

use crate::bench_all::{median, Figure, Goal};
use crate::{managed, setup};

const ROUNDS: usize = 7;

/// One Engine API peer: a name for the table and a way to send a request.
trait Peer {
    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<Response>;
    /// The docker CLI (Debian's 20.10, `/usr/bin/docker`) against this daemon.
    fn docker(&self, args: &[&str]) -> Result<std::process::Output>;
}

struct Theirs(Dockerd);
struct Ours(Dockplugd);

impl Peer for Theirs {
    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<Response> {
        Ok(self.0.request(method, path, body, "application/json")?)
    }
    fn docker(&self, args: &[&str]) -> Result<std::process::Output> {
        Ok(self.0.docker(args)?)
    }
}

impl Peer for Ours {
    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<Response> {
        Ok(self.0.request(method, path, body)?)
    }
    fn docker(&self, args: &[&str]) -> Result<std::process::Output> {
        Ok(self.0.docker(args)?)
    }
}

/// `call`, failing unless 2xx; a pull or push stream with an error line fails too.
fn ok(peer: &dyn Peer, what: &str, method: &str, path: &str, body: &[u8]) -> Result<()> {
    let r = peer.call(method, path, body)?;
    let text = r.text();
    if !(200..300).contains(&r.status) || text.contains("\"errorDetail\"") {
        bail!("{what}: {method} {path}: {} {text}", r.status);
    }
    Ok(())
}

/// A build context of the plugin directory with `rootfs/bench-id` = `id`.
fn context(plugin: &Path, scratch: &Path, id: &str) -> Result<Vec<u8>> {
    let extra = scratch.join(id);
    std::fs::create_dir_all(extra.join("rootfs"))?;
    std::fs::write(extra.join("rootfs").join("bench-id"), id)?;
    managed::plugin_context(plugin, Some((&extra, "rootfs/bench-id")))
}

/// `docker plugin install --grant-all-permissions --alias <alias> <remote>`, failing unless 0.
fn cli_install(peer: &dyn Peer, who: &str, alias: &str, remote: &str) -> Result<()> {
    let args = ["plugin", "install", "--grant-all-permissions", "--alias", alias, remote];
    let out = peer.docker(&args)?;
    if !out.status.success() {
        bail!("{who}: docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Runs the benchmark and prints the table.
pub fn run() -> Result<()> {
    measure(ROUNDS).map(drop)
}

/// The `registry` section of `cargo xtask bench-all`: install, pull and push as figures.
pub fn figures(quick: bool) -> Result<Vec<Figure>> {
    measure(if quick { 3 } else { ROUNDS })
}

fn measure(rounds: usize) -> Result<Vec<Figure>> {
    setup::debian_packages(setup::INTEGRATION_PACKAGES)?;
    let tmp = dockplug_testkit::temp_dir("dpr")?;
    // `BENCH_REGISTRY_PROFILE=daemon` measures dockplugd as it ships (bench-daemon's build).
    let profile = std::env::var("BENCH_REGISTRY_PROFILE").unwrap_or_else(|_| "release".into());
    let (plugin, out) = managed::build_with_localvol(
        &profile,
        &["-p", "dockplug-daemon", "--bin", "dockplugd"],
        tmp.path(),
    )?;
    let scratch = tmp.path().join("variants");
    let containerd = Containerd::start()?;
    let registry = Registry::plain()?;
    let host = registry.host();
    let theirs = Theirs(Dockerd::start_with(
        &tmp.path().join("dkd"),
        &DockerdOptions {
            containerd: Some(containerd.socket.clone()),
            namespace: "bench".to_owned(),
            plugins_namespace: "plugins.bench".to_owned(),
            log_level: "warn".to_owned(),
        },
    )?);
    let mut options = DockplugdOptions::new(out.join("dockplugd"));
    options.containerd = Some(containerd.socket.clone());
    options.plugins_namespace = Some("plugins.dpbench".to_owned());
    let ours = Ours(Dockplugd::start(&tmp.path().join("dpd"), &options)?);
    let peers: [(&str, &dyn Peer); 2] = [("dockerd", &theirs), ("dockplug", &ours)];

    // The registry gets one never-seen plugin per (peer, round, pull kind), pushed by dockerd.
    let publish = |id: &str| -> Result<String> {
        let name = format!("{host}/bench/{id}:1");
        let ctx = context(&plugin, &scratch, id)?;
        ok(&theirs, "prepare", "POST", &format!("/plugins/create?name={name}"), &ctx)?;
        ok(&theirs, "prepare", "POST", &format!("/plugins/{name}/push"), b"")?;
        ok(&theirs, "prepare", "DELETE", &format!("/plugins/{name}?force=1"), b"")?;
        Ok(name)
    };
    let mut results: Vec<(&str, &str, f64)> = Vec::new();
    // bench-daemon's install: one remote installed again every round (after `rm -f`).
    let again = publish("again")?;
    for round in 0..rounds {
        // Alternate who goes first.
        let order: Vec<usize> = if round % 2 == 0 { vec![0, 1] } else { vec![1, 0] };
        for &i in &order {
            let (who, peer) = peers[i];
            // install: pull + enable.
            let remote = publish(&format!("i{who}{round}"))?;
            let local = format!("inst{round}:latest");
            let ms = timed(|| {
                ok(
                    peer,
                    "pull",
                    "POST",
                    &format!("/plugins/pull?remote={remote}&name={local}"),
                    b"[]",
                )?;
                ok(peer, "enable", "POST", &format!("/plugins/{local}/enable?timeout=0"), b"")
            })?;
            println!("bench: {who} install #{round}: {ms:.1} ms");
            results.push((who, "install", ms));
            ok(peer, "disable", "POST", &format!("/plugins/{local}/disable?force=1"), b"")?;
            ok(peer, "remove", "DELETE", &format!("/plugins/{local}?force=1"), b"")?;
            // install through the docker CLI (privileges, pull, enable; the CLI's start too).
            let remote = publish(&format!("c{who}{round}"))?;
            let alias = format!("cli{round}:latest");
            let ms = timed(|| cli_install(peer, who, &alias, &remote))?;
            println!("bench: {who} cli-install #{round}: {ms:.1} ms");
            results.push((who, "cli-install", ms));
            ok(peer, "remove", "DELETE", &format!("/plugins/{alias}?force=1"), b"")?;
            let alias = format!("again{round}:latest");
            let ms = timed(|| cli_install(peer, who, &alias, &again))?;
            println!("bench: {who} cli-reinstall #{round}: {ms:.1} ms");
            results.push((who, "cli-reinstall", ms));
            ok(peer, "remove", "DELETE", &format!("/plugins/{alias}?force=1"), b"")?;
            // pull only.
            let remote = publish(&format!("p{who}{round}"))?;
            let local = format!("pull{round}:latest");
            let ms = timed(|| {
                ok(
                    peer,
                    "pull",
                    "POST",
                    &format!("/plugins/pull?remote={remote}&name={local}"),
                    b"[]",
                )
            })?;
            println!("bench: {who} pull #{round}: {ms:.1} ms");
            results.push((who, "pull", ms));
            ok(peer, "remove", "DELETE", &format!("/plugins/{local}?force=1"), b"")?;
            // push: a fresh plugin to a fresh repository.
            let name = format!("{host}/push{who}{round}/localvol:1");
            let ctx = context(&plugin, &scratch, &format!("u{who}{round}"))?;
            ok(peer, "create", "POST", &format!("/plugins/create?name={name}"), &ctx)?;
            let ms = timed(|| ok(peer, "push", "POST", &format!("/plugins/{name}/push"), b""))?;
            println!("bench: {who} push #{round}: {ms:.1} ms");
            results.push((who, "push", ms));
            ok(peer, "remove", "DELETE", &format!("/plugins/{name}?force=1"), b"")?;
        }
    }

    if std::env::var_os("BENCH_REGISTRY_LOGS").is_some() {
        // For finding the cost: the registry's access log (each request with its duration)
        // and dockplugd's log (its step timings with DOCKPLUGD_LOG=...steps=debug).
        println!(
            "--- registry log ---\n{}",
            std::fs::read_to_string(registry_log(&registry)).unwrap_or_default()
        );
        println!("--- dockplugd log ---\n{}", ours.0.log());
    }
    let layer_bytes: u64 = walk_size(&plugin.join("rootfs"));
    println!();
    println!(
        "| measure (median of {rounds}, rootfs {:.1} MB) | dockplugd | dockerd 20.10 | ratio |",
        layer_bytes as f64 / 1e6
    );
    println!("|---|---|---|---|");
    let mut figures = Vec::new();
    for (what, target) in [
        ("install", "<= 0.25"),
        ("cli-install", "<= 0.25"),
        ("cli-reinstall", "<= 0.25"),
        ("pull", ""),
        ("push", "<= 0.5"),
    ] {
        let of = |who: &str| {
            median(
                &results
                    .iter()
                    .filter(|r| r.0 == who && r.1 == what)
                    .map(|r| r.2)
                    .collect::<Vec<_>>(),
            )
        };
        let (o, t) = (of("dockplug"), of("dockerd"));
        let goal = if target.is_empty() { String::new() } else { format!(" (target {target})") };
        println!("| {what} | {o:.1} ms | {t:.1} ms | {:.3}{goal} |", o / t);
        let goal = match what {
            "install" | "cli-install" | "cli-reinstall" => Goal::AtMost(0.25),
            "push" => Goal::AtMost(0.5),
            _ => Goal::None,
        };
        let label = match what {
            "install" => "install from a registry (pull + enable), Engine API",
            "cli-install" => "install from a registry (pull + enable), docker CLI",
            "cli-reinstall" => "install of one remote again (after rm -f), docker CLI",
            "pull" => "pull from a registry, Engine API",
            _ => "push to a registry, Engine API",
        };
        figures.push(Figure::new(label, "ms", o, t, goal));
    }
    Ok(figures)
}

/// The newest `registry-*.log` in the registry's directory.
fn registry_log(registry: &Registry) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(registry.dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("registry-"))
        })
        .collect();
    logs.sort();
    logs.pop().unwrap_or_default()
}

/// Bytes under `dir` (regular files).
fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => total += walk_size(&e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}
