//! v1 discovery side by side with Moby's `pkg/plugins` (the `discovery` section of
//! `cargo xtask bench-all`): a scan of 600 entries (400 sockets, 200 `.spec` files), both
//! repeated (median of the scans in one process; ours reuses an unchanged directory's
//! listing) and the first of a fresh process (both sides read the directories), the
//! lookup of one name (a spec file: the longest path), and a cold `GetAll("VolumeDriver")`
//! that activates all 600 — every entry served by one Go process (`bench-go-ref serve`), the
//! same server for both sides. Each round is a fresh process per side (cold means nothing
//! activated yet), sides alternating; figures are medians over rounds.
//!
//! Also home of [`build_go_ref`], the Go reference program both this section and the RPC
//! section run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dockplug_testkit::Daemon;

use crate::bench_all::{median, Figure, Goal};
use crate::{bench, setup};

const SOCKETS: usize = 400;
const SPECS: usize = 200;
/// Scans and lookups per process, of which the median is kept.
const INNER: &str = "50";

/// Builds `xtask/bench-go-ref` into `tmp`, against Moby's `pkg/plugins` from Debian's
/// sources, copied unchanged into a GOPATH overlay in `tmp` with one added file
/// (`bench_dirs.go`: sets the discovery directories, exposes the local lookup).
pub fn build_go_ref(tmp: &Path) -> Result<PathBuf> {
    bench::prerequisites()?;
    let overlay = tmp.join("gopath");
    let pkg = overlay.join("src/github.com/docker/docker/pkg/plugins");
    std::fs::create_dir_all(&pkg)?;
    for entry in std::fs::read_dir(bench::MOBY_PLUGINS)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".go") && !name.ends_with("_test.go") {
            std::fs::copy(entry.path(), pkg.join(&name))?;
        }
    }
    let src = setup::workspace_root().join("xtask/bench-go-ref");
    std::fs::copy(src.join("bench_dirs.go.in"), pkg.join("bench_dirs.go"))?;
    let bin = tmp.join("bench-go-ref");
    println!("xtask: building the Go reference program against {}", bench::MOBY_PLUGINS);
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GOPATH", format!("{}:{}", overlay.display(), bench::GOPATH))
        .env("GO111MODULE", "off")
        .env("GOCACHE", tmp.join("gocache"))
        .env("GOFLAGS", "")
        .status()
        .context("run go build")?;
    if !status.success() {
        bail!("go build of xtask/bench-go-ref failed");
    }
    Ok(bin)
}

/// Starts `bench-go-ref serve` on `sockets`; ready when the last one accepts.
pub fn serve(go_ref: &Path, sockets: &[PathBuf], log: &Path) -> Result<Daemon> {
    let mut cmd = Command::new(go_ref);
    cmd.arg("serve").args(sockets);
    let mut server = Daemon::spawn("bench-go-ref serve", cmd, log)?;
    let last = sockets.last().context("no sockets")?.clone();
    server.wait_ready(&format!("on {}", last.display()), Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&last).is_ok()
    })?;
    Ok(server)
}

#[derive(Default)]
struct Samples {
    first_scan: Vec<f64>,
    scan: Vec<f64>,
    lookup: Vec<f64>,
    getall: Vec<f64>,
}

/// The number after `"key":` in a JSON line of numbers.
pub(crate) fn field(line: &str, key: &str) -> Result<f64> {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat).with_context(|| format!("no {key} in {line:?}"))?;
    let rest = &line[at + pat.len()..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().with_context(|| format!("bad {key} in {line:?}"))
}

fn one(cmd: &mut Command, who: &str, into: &mut Samples) -> Result<()> {
    let out = cmd.stderr(Stdio::null()).output().with_context(|| format!("run {who}"))?;
    if !out.status.success() {
        bail!("{who} failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let (found, activated) = (field(line, "found")?, field(line, "activated")?);
    let want = (SOCKETS + SPECS) as f64;
    if found != want || activated != want {
        bail!("{who}: found {found}, activated {activated}, want {want} of each: {line}");
    }
    into.first_scan.push(field(line, "first_scan_us")?);
    into.scan.push(field(line, "scan_us")?);
    into.lookup.push(field(line, "lookup_us")?);
    into.getall.push(field(line, "getall_ms")?);
    Ok(())
}

/// The section: four figures.
pub fn figures(quick: bool) -> Result<Vec<Figure>> {
    let rounds = if quick { 5 } else { 11 };
    setup::step(
        "build the discovery bench (release)",
        &["build", "--quiet", "--release", "-p", "dockplug-v1", "--example", "bench_discovery"],
        &[],
    )?;
    let ours = setup::profile_dir("release").join("examples").join("bench_discovery");
    let tmp = dockplug_testkit::temp_dir("dpdisc")?;
    let go_ref = build_go_ref(tmp.path())?;
    let (sock_dir, spec_dir, srv_dir) =
        (tmp.path().join("sock"), tmp.path().join("spec"), tmp.path().join("srv"));
    for d in [&sock_dir, &spec_dir, &srv_dir] {
        std::fs::create_dir_all(d)?;
    }
    let mut sockets: Vec<PathBuf> =
        (0..SOCKETS).map(|i| sock_dir.join(format!("p{i}.sock"))).collect();
    for i in 0..SPECS {
        let s = srv_dir.join(format!("q{i}.sock"));
        std::fs::write(spec_dir.join(format!("q{i}.spec")), format!("unix://{}\n", s.display()))?;
        sockets.push(s);
    }
    let server = serve(&go_ref, &sockets, &tmp.path().join("serve.log"))?;
    // The repeated-scan figure is about directories a daemon finds unchanged: wait until
    // both were last changed more than 2 s ago (what our scan needs to reuse a listing).
    let settled = |d: &Path| {
        use std::os::unix::fs::MetadataExt;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let changed = std::fs::metadata(d).map(|m| m.ctime().max(m.mtime()));
        matches!((now, changed), (Ok(now), Ok(t)) if now.as_secs() as i64 >= t + 3)
    };
    if !dockplug_testkit::process::wait_until(Duration::from_secs(10), || {
        settled(&sock_dir) && settled(&spec_dir)
    }) {
        bail!("the discovery directories keep changing");
    }
    let name = format!("q{}", SPECS - 1);
    let args = |cmd: &mut Command| {
        cmd.arg(&sock_dir).arg(&spec_dir).arg(INNER).arg(&name);
    };
    let (mut a, mut b) = (Samples::default(), Samples::default());
    for round in 0..rounds {
        let mut mine = Command::new(&ours);
        args(&mut mine);
        let mut theirs = Command::new(&go_ref);
        theirs.arg("discovery");
        args(&mut theirs);
        if round % 2 == 0 {
            one(&mut mine, "bench_discovery", &mut a)?;
            one(&mut theirs, "bench-go-ref discovery", &mut b)?;
        } else {
            one(&mut theirs, "bench-go-ref discovery", &mut b)?;
            one(&mut mine, "bench_discovery", &mut a)?;
        }
    }
    drop(server);
    let n = SOCKETS + SPECS;
    Ok(vec![
        Figure::new(
            format!("v1 discovery: scan of {n} entries (repeated, directories unchanged)"),
            "µs",
            median(&a.scan),
            median(&b.scan),
            Goal::AtMost(0.5),
        ),
        // Our later scans reuse the listing of an unchanged directory; the first one reads
        // both directories as Moby's does every time (mostly the kernel's readdir).
        Figure::new(
            format!("v1 discovery: first scan of {n} entries in a fresh process"),
            "µs",
            median(&a.first_scan),
            median(&b.first_scan),
            Goal::None,
        ),
        Figure::new(
            "v1 discovery: lookup of one name (a spec file)",
            "µs",
            median(&a.lookup),
            median(&b.lookup),
            Goal::AtMost(0.5),
        ),
        Figure::new(
            format!("v1 discovery: GetAll cold of {n} (activates all)"),
            "ms",
            median(&a.getall),
            median(&b.getall),
            Goal::AtMost(0.5),
        ),
    ])
}
