//! `cargo xtask bench`: dockplug's v1 client against Moby's Go client (`pkg/plugins`), side
//! by side, on the same plugin server in the same run.
//!
//! Steps: install `golang-go` and `golang-github-docker-docker-dev` when missing (Debian,
//! as root); build `dockplug` in release; build `xtask/bench-go` (our own driver of Moby's
//! client) in GOPATH mode against Debian's copy of moby; start `dockplug serve-echo` on a
//! unix socket in a temp dir; run both load generators at concurrency 1 and 8, alternating,
//! for a few rounds; print the median round of each and the ratios.
//!
//! Not part of `cargo xtask ci`: CI installs no Go.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dockplug_testkit::Daemon;

use crate::setup;

/// Where Debian's `golang-github-docker-docker-dev` puts Moby's sources (GOPATH layout).
pub(crate) const GOPATH: &str = "/usr/share/gocode";
pub(crate) const MOBY_PLUGINS: &str = "/usr/share/gocode/src/github.com/docker/docker/pkg/plugins";
const METHOD: &str = "VolumeDriver.Get";
const ARGS: &str = r#"{"Name":"bench-volume"}"#;
const ROUNDS: usize = 3;

/// One load generator's result, as both print it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Run {
    pub(crate) calls_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    pub(crate) errors: f64,
    cpu_ns_per_call: f64,
}

impl Run {
    pub(crate) fn parse(line: &str) -> Result<Run> {
        let field = |key: &str| -> Result<f64> {
            let pat = format!("\"{key}\":");
            let at = line.find(&pat).with_context(|| format!("no {key} in {line:?}"))?;
            let rest = &line[at + pat.len()..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            rest[..end].trim().parse().with_context(|| format!("bad {key} in {line:?}"))
        };
        Ok(Run {
            calls_per_sec: field("calls_per_sec")?,
            p50_us: field("p50_us")?,
            p99_us: field("p99_us")?,
            errors: field("errors")?,
            cpu_ns_per_call: field("cpu_ns_per_call")?,
        })
    }
}

/// Install the Go toolchain and Debian's moby sources when missing (a separate list from
/// `setup::all`, which CI runs).
pub fn prerequisites() -> Result<()> {
    setup::debian_packages(&[
        ("go", "golang-go"),
        (MOBY_PLUGINS, "golang-github-docker-docker-dev"),
    ])
}

/// Run the benchmark: `cargo xtask bench [-n N]`.
pub fn run(args: &[String]) -> Result<()> {
    let mut n: usize = 20_000;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" => {
                n = it.next().context("-n needs a number")?.parse().context("-n needs a number")?
            }
            other => bail!("unknown bench option {other:?} (usage: cargo xtask bench [-n N])"),
        }
    }
    prerequisites()?;
    setup::step("build dockplug (release)", &["build", "--release", "-p", "dockplug-cli"], &[])?;
    let dockplug = setup::profile_dir("release").join("dockplug");

    let tmp = std::env::temp_dir().join(format!("dockplug-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = bench(&dockplug, &tmp, n);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Builds `xtask/bench-go` (our driver of Moby's client) into `tmp`.
pub(crate) fn build_go_client(tmp: &Path) -> Result<std::path::PathBuf> {
    let go_bin = tmp.join("bench-go");
    println!("xtask: building the Go client driver against {MOBY_PLUGINS}");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&go_bin)
        .arg(".")
        .current_dir(setup::workspace_root().join("xtask/bench-go"))
        .env("GOPATH", GOPATH)
        .env("GO111MODULE", "off")
        .env("GOCACHE", tmp.join("gocache"))
        .env("GOFLAGS", "")
        .status()
        .context("run go build")?;
    if !status.success() {
        bail!("go build of xtask/bench-go failed");
    }

    Ok(go_bin)
}

fn bench(dockplug: &Path, tmp: &Path, n: usize) -> Result<()> {
    let go_bin = build_go_client(tmp)?;

    let socket = tmp.join("echo.sock");
    let mut cmd = Command::new(dockplug);
    cmd.arg("serve-echo").arg(&socket);
    let mut server = Daemon::spawn("dockplug serve-echo", cmd, &tmp.join("echo.log"))?;
    server.wait_ready(&format!("on {}", socket.display()), Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    })?;
    let addr = format!("unix://{}", socket.display());

    let capture = |cmd: &mut Command, who: &str| -> Result<Run> {
        let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("run {who}"))?;
        if !out.status.success() {
            bail!("{who} failed ({})", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Run::parse(text.lines().last().unwrap_or_default())
    };
    let median = |mut runs: Vec<Run>| -> Run {
        runs.sort_by(|a, b| a.calls_per_sec.total_cmp(&b.calls_per_sec));
        runs[runs.len() / 2]
    };

    println!(
        "xtask: {n} calls of {METHOD} per run, {ROUNDS} rounds, median round shown; server: dockplug serve-echo on a unix socket"
    );
    let mut rows = Vec::new();
    for c in [1usize, 8] {
        let (mut ours, mut go) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            go.push(capture(
                Command::new(&go_bin).args([&addr, METHOD, ARGS, &n.to_string(), &c.to_string()]),
                "bench-go",
            )?);
            ours.push(capture(
                Command::new(dockplug).args([
                    "bench",
                    "--addr",
                    &addr,
                    METHOD,
                    ARGS,
                    "-n",
                    &n.to_string(),
                    "-c",
                    &c.to_string(),
                    "--json",
                ]),
                "dockplug bench",
            )?);
        }
        rows.push((c, median(ours), median(go)));
    }
    drop(server);

    println!();
    println!(
        "{:<10} {:>3} {:>12} {:>9} {:>9} {:>12} {:>7}",
        "client", "c", "calls/s", "p50 µs", "p99 µs", "CPU ns/call", "errors"
    );
    for (c, ours, go) in &rows {
        for (who, r) in [("dockplug", ours), ("moby (Go)", go)] {
            println!(
                "{:<10} {:>3} {:>12.0} {:>9.0} {:>9.0} {:>12.0} {:>7.0}",
                who, c, r.calls_per_sec, r.p50_us, r.p99_us, r.cpu_ns_per_call, r.errors
            );
        }
    }
    println!();
    for (c, ours, go) in &rows {
        println!(
            "c={c}: calls/s ratio dockplug/Go = {:.2}x; CPU per call ratio dockplug/Go = {:.2}",
            ours.calls_per_sec / go.calls_per_sec,
            ours.cpu_ns_per_call / go.cpu_ns_per_call
        );
    }
    println!("targets: calls/s ratio at c=1 >= 1.5x; CPU per call ratio <= 0.5");
    Ok(())
}
