//! The v1 RPC figures of `cargo xtask bench-all` (the `rpc` section): `VolumeDriver.Get`
//! calls per second, rounds alternating, medians kept.
//!
//! - dockplug's v1 client (`dockplug bench`) against Moby's (`xtask/bench-go`, Moby's
//!   `pkg/plugins` client), both on one Go net/http plugin server (`bench-go-ref serve`), at
//!   C=1 and C=8;
//! - dockplug's SDK server (localvol) against that Go server, the same client (ours) at C=8.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dockplug_testkit::Daemon;

use crate::bench::Run;
use crate::bench_all::{median, Figure, Goal};
use crate::{bench, bench_discovery, setup};

const METHOD: &str = "VolumeDriver.Get";
const ARGS: &str = r#"{"Name":"bench-volume"}"#;

fn capture(cmd: &mut Command, who: &str) -> Result<f64> {
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("run {who}"))?;
    if !out.status.success() {
        bail!("{who} failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let run = Run::parse(text.lines().last().unwrap_or_default())?;
    if run.errors > 0.0 {
        bail!("{who}: {} calls failed", run.errors);
    }
    Ok(run.calls_per_sec)
}

/// The section: three figures.
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
    let _go_server = bench_discovery::serve(
        &go_ref,
        std::slice::from_ref(&go_sock),
        &tmp.path().join("go.log"),
    )?;
    let lv_sock = tmp.path().join("lv.sock");
    let mut cmd = Command::new(bin.join("localvol"));
    cmd.arg("--socket").arg(&lv_sock).arg("--root").arg(tmp.path().join("lvroot"));
    cmd.env("LOCALVOL_LOG", "warn");
    let mut localvol = Daemon::spawn("localvol", cmd, &tmp.path().join("lv.log"))?;
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
    let ours = |addr: &str, c: usize| -> Result<f64> {
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
        )
    };
    let moby = |c: usize| -> Result<f64> {
        capture(
            Command::new(&go_client).args([
                go_addr.as_str(),
                METHOD,
                ARGS,
                &n.to_string(),
                &c.to_string(),
            ]),
            "bench-go",
        )
    };

    let mut figures = Vec::new();
    for c in [1usize, 8] {
        let (mut a, mut b, mut sdk) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            if round % 2 == 0 {
                b.push(moby(c)?);
                a.push(ours(&go_addr, c)?);
            } else {
                a.push(ours(&go_addr, c)?);
                b.push(moby(c)?);
            }
            if c == 8 {
                sdk.push(ours(&lv_addr, c)?);
            }
        }
        figures.push(Figure::new(
            format!("v1 client calls/s on the Go server, C={c} (vs Moby's client)"),
            "calls/s",
            median(&a),
            median(&b),
            Goal::AtLeast(2.5),
        ));
        if c == 8 {
            figures.push(Figure::new(
                "SDK server (localvol) calls/s vs the Go server, our client, C=8",
                "calls/s",
                median(&sdk),
                median(&a),
                Goal::AtLeast(1.5),
            ));
        }
    }
    drop(localvol);
    Ok(figures)
}
