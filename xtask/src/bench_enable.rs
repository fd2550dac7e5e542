//! `cargo xtask bench-enable`: enable-to-ready latency of the packaged localvol with our
//! manager on the containerd executor, side by side with dockerd enabling the same plugin
//! directory on the same private containerd, round by round alternating (who goes first
//! alternates too); then the resident memory of each with 20 plugins enabled. Prints the
//! ratios; not part of `ci`.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use dockplug_testkit::{rss_kib, Containerd, Dockerd, DockerdOptions};

use crate::bench_all::{median, Figure, Goal};
use crate::{managed, setup};

const ROUNDS: usize = 7;
const FLEET: usize = 20;
const TAR: &str = "application/x-tar";

/// Runs the benchmark and prints the table.
pub fn run() -> Result<()> {
    let m = measure(ROUNDS)?;
    print(&m);
    Ok(())
}

/// The `enable` section of `cargo xtask bench-all`: enable-to-ready and memory with 20
/// enabled, as figures.
pub fn figures(quick: bool) -> Result<Vec<Figure>> {
    let m = measure(if quick { 3 } else { ROUNDS })?;
    print(&m);
    Ok(vec![
        Figure::new(
            format!("enable to ready, manager API (median of {})", m.rounds),
            "ms",
            m.ours_enable,
            m.docker_enable,
            Goal::AtMost(0.1),
        ),
        Figure::new(
            format!("resident memory, {FLEET} enabled (manager process vs dockerd)"),
            "MiB",
            m.ours_rss / 1024.0,
            m.docker_rss / 1024.0,
            Goal::AtMost(0.1),
        ),
    ])
}

struct Measured {
    rounds: usize,
    ours_enable: f64,
    docker_enable: f64,
    ours_rss: f64,
    docker_rss: f64,
}

fn measure(rounds: usize) -> Result<Measured> {
    setup::debian_packages(setup::INTEGRATION_PACKAGES)?;
    let tmp = dockplug_testkit::temp_dir("dpb")?;
    let (plugin, example) = managed::build(tmp.path(), "release")?;
    let containerd = Containerd::start()?;

    // Ours, in a process of its own (the manager and the executor, nothing else): one round
    // per run of the example, so that its rounds alternate with dockerd's.
    let work = tmp.path().join("m");
    let ours = |rounds: usize, fleet: usize| {
        managed::run(
            &example,
            &["bench", "--rounds", &rounds.to_string(), "--fleet", &fleet.to_string()],
            &[
                Path::new("--containerd"),
                &containerd.socket,
                Path::new("--plugin"),
                &plugin,
                Path::new("--work"),
                &work,
            ],
        )
    };

    // dockerd on the same containerd, same plugin directory.
    let options = DockerdOptions {
        containerd: Some(containerd.socket.clone()),
        namespace: "bench".to_owned(),
        plugins_namespace: "plugins.bench".to_owned(),
        log_level: "warn".to_owned(),
    };
    let dockerd = Dockerd::start_with(&tmp.path().join("dkd"), &options)?;
    let context = managed::plugin_context(&plugin, None)?;
    let (mut ours_enable, mut docker_enable) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let theirs = || -> Result<f64> {
            let name = format!("bench{round}:latest");
            dockerd.ok("POST", &format!("/plugins/create?name={name}"), &context, TAR)?;
            let started = Instant::now();
            dockerd.ok("POST", &format!("/plugins/{name}/enable?timeout=0"), b"", "text/plain")?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            println!("bench: dockerd enable #{round}: {ms:.1} ms");
            dockerd.ok("POST", &format!("/plugins/{name}/disable"), b"", "text/plain")?;
            dockerd.ok("DELETE", &format!("/plugins/{name}"), b"", "text/plain")?;
            Ok(ms)
        };
        let mine = || -> Result<Vec<f64>> {
            Ok(ours(1, 0)?.into_iter().filter(|(k, _)| k == "enable_ms").map(|(_, v)| v).collect())
        };
        if round % 2 == 0 {
            ours_enable.extend(mine()?);
            docker_enable.push(theirs()?);
        } else {
            docker_enable.push(theirs()?);
            ours_enable.extend(mine()?);
        }
    }
    let ours_enable = median(&ours_enable);
    let docker_enable = median(&docker_enable);
    let ours_rss =
        ours(0, FLEET)?.iter().find(|(k, _)| k == "rss_kib").map(|(_, v)| *v).unwrap_or(f64::NAN);
    for i in 0..FLEET {
        let name = format!("fleet{i}:latest");
        // dockerd refuses a second plugin whose rootfs layer it already stores ("content
        // sha256:...: already exists"): give each a one-file difference.
        let extra = tmp.path().join("fleet").join(i.to_string());
        std::fs::create_dir_all(extra.join("rootfs"))?;
        std::fs::write(extra.join("rootfs").join("fleet-id"), i.to_string())?;
        let context = managed::plugin_context(&plugin, Some((&extra, "rootfs/fleet-id")))?;
        dockerd.ok("POST", &format!("/plugins/create?name={name}"), &context, TAR)?;
        dockerd.ok("POST", &format!("/plugins/{name}/enable?timeout=0"), b"", "text/plain")?;
    }
    let docker_rss = rss_kib(dockerd.daemon.pid()).map(|k| k as f64).unwrap_or(f64::NAN);
    for i in 0..FLEET {
        let name = format!("fleet{i}:latest");
        let _ =
            dockerd.request("POST", &format!("/plugins/{name}/disable?force=1"), b"", "text/plain");
        let _ = dockerd.request("DELETE", &format!("/plugins/{name}?force=1"), b"", "text/plain");
    }

    Ok(Measured { rounds, ours_enable, docker_enable, ours_rss, docker_rss })
}

fn print(m: &Measured) {
    let Measured { rounds, ours_enable, docker_enable, ours_rss, docker_rss } = *m;
    println!();
    println!("| measure | dockplug (manager + containerd executor) | dockerd 20.10 | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| enable-to-ready, median of {rounds} | {ours_enable:.1} ms | {docker_enable:.1} ms | {:.3} (target <= 0.1) |",
        ours_enable / docker_enable
    );
    println!(
        "| resident memory, {FLEET} plugins enabled | {:.1} MiB | {:.1} MiB | {:.3} |",
        ours_rss / 1024.0,
        docker_rss / 1024.0,
        ours_rss / docker_rss
    );
}
