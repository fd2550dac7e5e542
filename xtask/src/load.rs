//! `cargo xtask load [--requests N] [--fleet N] [--installs N] [--rounds N] [--release]`: a
//! measurement, not a test. A private dockplugd on a private containerd with `--fleet` (20) copies of the
//! packaged localvol enabled; then, all at once, `--requests` (1,000) concurrent Engine API
//! requests (`GET /plugins` and `GET /plugins/NAME/json`, alternating, each on its own
//! connection) and `--installs` (20) concurrent `docker plugin install`s of different plugins
//! from one private registry. Prints p50/p99/max latency, errors, and dockplugd's resident
//! memory before, at peak (sampled every 20 ms), right after and a few seconds after.
//! `--rounds` repeats the burst (removing the previous round's installs first), so memory
//! that does not come back shows as growth from round to round. Debug build unless
//! `--release` (then the `daemon` profile, dockplugd as it ships).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dockplug_testkit::http::{self, Request};
use dockplug_testkit::{rss_kib, Containerd, Dockplugd, DockplugdOptions, Registry};

use crate::setup;

/// How long after a burst the settled memory is read.
const SETTLE: Duration = Duration::from_secs(3);

/// Parses the arguments and runs the measurement.
pub fn task(args: &[String]) -> Result<()> {
    let (mut requests, mut fleet, mut installs, mut release) = (1000usize, 20usize, 20usize, false);
    let mut rounds = 1usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| -> Result<usize> {
            it.next()
                .with_context(|| format!("{flag} needs a value"))?
                .parse()
                .with_context(|| format!("{flag} takes a number"))
        };
        match a.as_str() {
            "--requests" => requests = value("--requests")?,
            "--fleet" => fleet = value("--fleet")?,
            "--installs" => installs = value("--installs")?,
            "--rounds" => rounds = value("--rounds")?.max(1),
            "--release" => release = true,
            other => bail!("load: unknown argument {other:?}"),
        }
    }
    setup::debian_packages(setup::INTEGRATION_PACKAGES)?;
    let mut build = vec!["build", "--quiet", "-p", "dockplug-daemon", "--bin", "dockplugd"];
    build.extend(["-p", "dockplug-localvol", "--bin", "localvol"]);
    if release {
        build.extend(["--profile", "daemon"]);
    }
    setup::step("build dockplugd and localvol", &build, &[])?;
    let bin = setup::profile_dir(if release { "daemon" } else { "debug" });

    let tmp = dockplug_testkit::temp_dir("dpl")?;
    let plugin =
        dockplug_testkit::package::localvol_plugin(&bin.join("localvol"), &tmp.path().join("p"))?;
    let plugin = plugin.to_str().context("a UTF-8 path")?.to_owned();
    let containerd = Containerd::start()?;
    let registry = Registry::plain()?;
    let mut options = DockplugdOptions::new(bin.join("dockplugd"));
    options.containerd = Some(containerd.socket.clone());
    options.plugins_namespace = Some(containerd.namespace.clone());
    options.args =
        vec!["--insecure-registry".into(), registry.host(), "--log-level".into(), "warn".into()];
    let home = dockplug_testkit::temp_dir("dp")?;
    let d = Dockplugd::start(home.path(), &options)?;
    let docker = |args: &[&str]| -> Result<()> {
        let out = d.docker(args)?;
        if !out.status.success() {
            bail!("docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };

    println!("load: pushing {installs} plugins to {} and enabling {fleet}", registry.host());
    let remotes: Vec<String> =
        (0..installs).map(|i| format!("{}/load/p{i}", registry.host())).collect();
    for r in &remotes {
        docker(&["plugin", "create", r, &plugin])?;
        docker(&["plugin", "push", r])?;
        docker(&["plugin", "rm", r])?;
    }
    let names: Vec<String> = (0..fleet).map(|i| format!("e{i}")).collect();
    for n in &names {
        docker(&["plugin", "create", n, &plugin])?;
        docker(&["plugin", "enable", n])?;
    }
    let pid = d.pid().context("dockplugd runs")?;
    let mut failed = Vec::new();
    for round in 1..=rounds {
        let r = burst(&d, pid, round, requests, &names, &remotes)?;
        let listed = d.docker(&["plugin", "ls", "-q"])?;
        let count = String::from_utf8_lossy(&listed.stdout).lines().count();
        // What the daemon holds once the burst is over (it trims its heap when quiet).
        std::thread::sleep(SETTLE);
        let settled = rss_kib(pid).context("read VmRSS")?;
        r.print(round, rounds, release, fleet, count, settled);
        if !r.errors.is_empty() || !r.install_errors.is_empty() || count != fleet + installs {
            failed.push(format!(
                "round {round}: {} API errors, {} install errors, {count} plugins listed",
                r.errors.len(),
                r.install_errors.len()
            ));
        }
        if round < rounds {
            for i in 0..installs {
                docker(&["plugin", "rm", "-f", &format!("i{round}-{i}")])?;
            }
        }
    }
    if !failed.is_empty() {
        bail!("load: {}", failed.join("; "));
    }
    drop(d);
    Ok(())
}

/// What one burst measured.
struct Round {
    requests: usize,
    lat: Vec<Duration>,
    errors: Vec<String>,
    api_wall: Duration,
    installs: usize,
    install_lat: Vec<Duration>,
    install_errors: Vec<String>,
    all_wall: Duration,
    rss_before: u64,
    peak: u64,
    rss_after: u64,
}

/// `requests` concurrent API requests and one install per remote, all released at once;
/// round `round` installs under the aliases `i<round>-<n>`.
fn burst(
    d: &Dockplugd,
    pid: u32,
    round: usize,
    requests: usize,
    names: &[String],
    remotes: &[String],
) -> Result<Round> {
    let rss_before = rss_kib(pid).context("read VmRSS")?;

    // Peak memory while the load runs.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let start = Arc::new(Barrier::new(requests + remotes.len() + 1));
    let mut api = Vec::with_capacity(requests);
    for i in 0..requests {
        let (start, socket) = (start.clone(), d.socket.clone());
        let path = if i % 2 == 0 || names.is_empty() {
            "/plugins".to_owned()
        } else {
            format!("/plugins/{}/json", names[i % names.len()])
        };
        let t = std::thread::Builder::new().stack_size(256 << 10).spawn(move || {
            start.wait();
            let t0 = Instant::now();
            let r = http::unix(&socket, &Request::get(&path), Duration::from_secs(60));
            let ok = r
                .as_ref()
                .is_ok_and(|r| r.status == 200 && matches!(r.body.first(), Some(b'[' | b'{')));
            (t0.elapsed(), ok, r.err().map(|e| e.to_string()))
        })?;
        api.push(t);
    }
    let mut pulls = Vec::with_capacity(remotes.len());
    for (i, r) in remotes.iter().enumerate() {
        let (start, host, cfg, r) =
            (start.clone(), d.host.clone(), d.dir.join("cli-config"), r.clone());
        let docker_cli = dockplug_testkit::program("docker")?;
        let alias = format!("i{round}-{i}");
        pulls.push(std::thread::spawn(move || {
            start.wait();
            let t0 = Instant::now();
            let out = std::process::Command::new(docker_cli)
                .args(["plugin", "install", "--grant-all-permissions", "--alias", &alias, &r])
                .env("DOCKER_HOST", host)
                .env("DOCKER_CONFIG", cfg)
                .output();
            let ok = out.as_ref().is_ok_and(|o| o.status.success());
            let err = out
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_else(|e| e.to_string());
            (t0.elapsed(), ok, err)
        }));
    }
    let t0 = Instant::now();
    start.wait();
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for t in api {
        let (took, ok, err) = t.join().map_err(|_| anyhow::anyhow!("a request thread panicked"))?;
        lat.push(took);
        if !ok {
            errors.push(err.unwrap_or_else(|| "not a 200 JSON reply".into()));
        }
    }
    let api_wall = t0.elapsed();
    let mut install_lat = Vec::new();
    let mut install_errors = Vec::new();
    for t in pulls {
        let (took, ok, err) =
            t.join().map_err(|_| anyhow::anyhow!("an install thread panicked"))?;
        install_lat.push(took);
        if !ok {
            install_errors.push(err);
        }
    }
    let all_wall = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let rss_after = rss_kib(pid).context("read VmRSS")?;
    lat.sort();
    install_lat.sort();
    Ok(Round {
        requests,
        lat,
        errors,
        api_wall,
        installs: remotes.len(),
        install_lat,
        install_errors,
        all_wall,
        rss_before,
        peak: peak.load(Ordering::Relaxed),
        rss_after,
    })
}

impl Round {
    fn print(
        &self,
        round: usize,
        rounds: usize,
        release: bool,
        fleet: usize,
        count: usize,
        settled: u64,
    ) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let pct = |v: &[Duration], p: f64| {
            v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().map(ms).unwrap_or(0.0)
        };
        let mb = |kib: u64| kib as f64 / 1024.0;
        let requests = self.requests;
        println!(
            "\nload: dockplugd ({} build), {fleet} plugins enabled, round {round} of {rounds}",
            if release { "daemon profile" } else { "debug" }
        );
        println!("| figure | value |");
        println!("|---|---|");
        println!("| concurrent API requests (list, inspect) | {requests} |");
        println!(
            "| API p50 / p99 / max (ms) | {:.1} / {:.1} / {:.1} |",
            pct(&self.lat, 0.5),
            pct(&self.lat, 0.99),
            pct(&self.lat, 1.0)
        );
        println!("| API errors | {} |", self.errors.len());
        println!("| API wall time, all {requests} (ms) | {:.0} |", ms(self.api_wall));
        println!("| concurrent installs (pull + enable) | {} |", self.installs);
        println!(
            "| install p50 / max (ms) | {:.0} / {:.0} |",
            pct(&self.install_lat, 0.5),
            pct(&self.install_lat, 1.0)
        );
        println!("| install errors | {} |", self.install_errors.len());
        println!("| wall time, everything (ms) | {:.0} |", ms(self.all_wall));
        println!(
            "| dockplugd RSS before / peak / after / {} s later (MB) | {:.1} / {:.1} / {:.1} / {:.1} |",
            SETTLE.as_secs(),
            mb(self.rss_before),
            mb(self.peak),
            mb(self.rss_after),
            mb(settled)
        );
        println!("| plugins listed after | {count} (expected {}) |", fleet + self.installs);
        for e in self.errors.iter().take(5).chain(self.install_errors.iter().take(5)) {
            println!("error: {}", e.trim());
        }
    }
}
