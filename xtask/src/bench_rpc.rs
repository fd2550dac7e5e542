//! The v1 RPC figures of `cargo xtask bench-all` (the `rpc` section): `VolumeDriver.Get`
//! calls per second, rounds alternating, medians kept.
//!
//! - dockplug's v1 client (`dockplug bench`) against Moby's (`xtask/bench-go`, Moby's
//!   `pkg/plugins` client), both on one Go net/http plugin server (`bench-go-ref serve`), at
//!   C=1 and C=8;
//! - dockplug's SDK server (localvol) against that Go server, the same client (ours) at C=8.
//!
//! Beside calls/s, the CPU time per call of each client (its own `getrusage`) and of the Go
//! server while it served that client (`/proc/<pid>/stat`): on 2 cores shared by client and
//! server, the server's share bounds what any client can reach at C=8.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dockplug_testkit::Daemon;

use crate::bench::Run;
use crate::bench_all::{median, Figure, Goal};
use crate::{bench, bench_discovery, setup};

const METHOD: &str = "VolumeDriver.Get";
const ARGS: &str = r#"{"Name":"bench-volume"}"#;

/// One run: calls/s, the client's CPU ns per call, and the server's CPU ns per call while it
/// served the run (from `/proc/<server>/stat`).
#[derive(Clone, Copy)]
struct Sample {
    calls_per_sec: f64,
    client_ns: f64,
    server_ns: f64,
}

/// User plus system time of `pid` so far, in ns (`/proc/<pid>/stat` counts in USER_HZ, 100
/// a second on Linux).
fn cpu_ns(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        f.get(i).context("short /proc stat")?.parse::<f64>().context("bad /proc stat")
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Ok((ticks(11)? + ticks(12)?) * 1e7)
}

fn capture(cmd: &mut Command, who: &str, server: u32, n: usize) -> Result<Sample> {
    let before = cpu_ns(server)?;
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("run {who}"))?;
    let server_ns = (cpu_ns(server)? - before) / n as f64;
    if !out.status.success() {
        bail!("{who} failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let run = Run::parse(line)?;
    if run.errors > 0.0 {
        bail!("{who}: {} calls failed", run.errors);
    }
    let client_ns = bench_discovery::field(line, "cpu_ns_per_call")?;
    Ok(Sample { calls_per_sec: run.calls_per_sec, client_ns, server_ns })
}

fn medians(v: &[Sample]) -> Sample {
    let m = |f: fn(&Sample) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    Sample {
        calls_per_sec: m(|s| s.calls_per_sec),
        client_ns: m(|s| s.client_ns),
        server_ns: m(|s| s.server_ns),
    }
}

/// The section: seven figures.
pub fn figures(quick: bool) -> Result<Vec<Figure>> {
    let (rounds, n) = if quick { (3, 10_000) } else { (5, 20_000) };
    setup::step(
        "build dockplug and localvol (release)",
        &[
            "build",
            "--quiet",
            "--release",
            "-p",
            "dockplug-cli",
            "-p",
            "dockplug-localvol",
            "--bin",
            "localvol",
            "--bin",
            "dockplug",
        ],
        &[],
    )?;
    let bin = setup::profile_dir("release");
    let dockplug = bin.join("dockplug");
    let tmp = dockplug_testkit::temp_dir("dprpc")?;
    let go_client = bench::build_go_client(tmp.path())?;
    let go_ref = bench_discovery::build_go_ref(tmp.path())?;

    let go_sock = tmp.path().join("go.sock");
    let go_server = bench_discovery::serve(
        &go_ref,
        std::slice::from_ref(&go_sock),
        &tmp.path().join("go.log"),
    )?;
    let lv_sock = tmp.path().join("lv.sock");
    let mut cmd = Command::new(bin.join("localvol"));
    cmd.arg("--socket").arg(&lv_sock).arg("--root").arg(tmp.path().join("lvroot"));
    cmd.env("LOCALVOL_LOG", "warn");
    let mut localvol = Daemon::spawn("localvol", cmd, &tmp.path().join("lv.log"))?;
    let (go_pid, lv_pid) = (go_server.pid(), localvol.pid());
    localvol.wait_ready(&format!("on {}", lv_sock.display()), Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&lv_sock).is_ok()
    })?;
    let (go_addr, lv_addr) =
        (format!("unix://{}", go_sock.display()), format!("unix://{}", lv_sock.display()));
    for addr in [&go_addr, &lv_addr] {
        let out = Command::new(&dockplug)
            .args(["call", "--addr", addr, "VolumeDriver.Create", ARGS])
            .output()
            .context("run dockplug call")?;
        if !out.status.success() {
            bail!("VolumeDriver.Create on {addr}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let ours = |addr: &str, server: u32, c: usize| -> Result<Sample> {
        capture(
            Command::new(&dockplug).args([
                "bench",
                "--addr",
                addr,
                METHOD,
                ARGS,
                "-n",
                &n.to_string(),
                "-c",
                &c.to_string(),
                "--json",
            ]),
            "dockplug bench",
            server,
            n,
        )
    };
    let moby = |c: usize| -> Result<Sample> {
        capture(
            Command::new(&go_client).args([
                go_addr.as_str(),
                METHOD,
                ARGS,
                &n.to_string(),
                &c.to_string(),
            ]),
            "bench-go",
            go_pid,
            n,
        )
    };

    let mut figures = Vec::new();
    for c in [1usize, 8] {
        let (mut a, mut b, mut sdk) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            if round % 2 == 0 {
                b.push(moby(c)?);
                a.push(ours(&go_addr, go_pid, c)?);
            } else {
                a.push(ours(&go_addr, go_pid, c)?);
                b.push(moby(c)?);
            }
            if c == 8 {
                sdk.push(ours(&lv_addr, lv_pid, c)?);
            }
        }
        let (a, b) = (medians(&a), medians(&b));
        figures.push(Figure::new(
            format!("v1 client calls/s on the Go server, C={c} (vs Moby's client)"),
            "calls/s",
            a.calls_per_sec,
            b.calls_per_sec,
            Goal::AtLeast(2.5),
        ));
        figures.push(Figure::new(
            format!("v1 client CPU per call on the Go server, C={c} (vs Moby's client)"),
            "ns",
            a.client_ns,
            b.client_ns,
            Goal::AtMost(0.4),
        ));
        figures.push(Figure::new(
            format!("Go server CPU per call serving our client vs Moby's, C={c}"),
            "ns",
            a.server_ns,
            b.server_ns,
            Goal::None,
        ));
        // With client and server on 2 cores, a client that cost nothing would make the calls
        // at most (Moby's client + the server) / (the server) times as fast.
        println!(
            "xtask: C={c}: client + server CPU per call: ours {:.1} µs, Moby's {:.1} µs; a client costing nothing would make at most {:.2}x Moby's calls/s",
            (a.client_ns + a.server_ns) / 1e3,
            (b.client_ns + b.server_ns) / 1e3,
            (b.client_ns + b.server_ns) / a.server_ns.max(1.0)
        );
        if c == 8 {
            figures.push(Figure::new(
                "SDK server (localvol) calls/s vs the Go server, our client, C=8",
                "calls/s",
                medians(&sdk).calls_per_sec,
                a.calls_per_sec,
                Goal::AtLeast(1.5),
            ));
        }
    }
    drop(localvol);
    Ok(figures)
}
