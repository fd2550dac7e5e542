//! The last part of `cargo xtask demo`: the docker CLI driving dockplugd. On a private
//! containerd and a private registry (Debian's docker-registry on loopback), the CLI creates
//! the packaged localvol, pushes it, removes it, installs it back from the registry (which
//! enables it), inspects it, disables and removes it; each step is printed with its time.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use dockplug_testkit::{Containerd, Dockplugd, DockplugdOptions, Registry};

use crate::managed;

/// Builds dockplugd and localvol (dev profile, as the tests), then runs the transcript.
pub fn run() -> Result<()> {
    let tmp = dockplug_testkit::temp_dir("dpdemo")?;
    let (plugin, bin) = managed::build_with_localvol(
        "dev",
        &["-p", "dockplug-daemon", "--bin", "dockplugd"],
        tmp.path(),
    )?;

    let containerd = Containerd::start()?;
    let registry = Registry::plain()?;
    let mut options = DockplugdOptions::new(bin.join("dockplugd"));
    options.containerd = Some(containerd.socket.clone());
    options.plugins_namespace = Some(containerd.namespace.clone());
    options.args = vec!["--insecure-registry".into(), registry.host()];
    let started = Instant::now();
    // Its own short temp dir: plugin sockets are `<exec root>/plugins/<64 hex>/<socket>`, and
    // a unix socket path has 107 bytes at most.
    let home = dockplug_testkit::temp_dir("dp")?;
    let d = Dockplugd::start(home.path(), &options)?;
    println!(
        "demo daemon: dockplugd answering on {} in {:.0} ms (private containerd, registry at {})",
        d.socket.display(),
        started.elapsed().as_secs_f64() * 1000.0,
        registry.host()
    );
    let version =
        docker(&d, &["version", "--format", "{{.Client.Version}} -> {{.Server.Version}}"])?;
    println!("demo daemon: docker CLI {} (client -> server)", version.trim());

    let remote = format!("{}/dockplug/localvol", registry.host());
    let plugin = plugin.to_str().context("a UTF-8 plugin path")?;
    step(&d, &["plugin", "create", &remote, plugin])?;
    step(&d, &["plugin", "push", &remote])?;
    step(&d, &["plugin", "rm", &remote])?;
    step(&d, &["plugin", "install", "--grant-all-permissions", &remote])?;
    step(&d, &["plugin", "inspect", "-f", "{{.Name}} enabled={{.Enabled}} id={{.Id}}", &remote])?;
    step(&d, &["plugin", "ls"])?;
    step(&d, &["plugin", "disable", &remote])?;
    step(&d, &["plugin", "rm", &remote])?;
    let leftover = docker(&d, &["plugin", "ls", "-q"])?;
    if !leftover.trim().is_empty() {
        bail!("plugins left after the demo: {leftover}");
    }
    Ok(())
}

/// Runs `docker ARGS` and returns its stdout, failing with its stderr.
fn docker(d: &Dockplugd, args: &[&str]) -> Result<String> {
    let out = d.docker(args)?;
    if !out.status.success() {
        bail!(
            "docker {} failed: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            d.log_tail()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One timed transcript step.
fn step(d: &Dockplugd, args: &[&str]) -> Result<()> {
    let t = Instant::now();
    let out = docker(d, args)?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let shown: Vec<&str> =
        args.iter().map(|a| if a.starts_with('/') { "DIR" } else { a }).collect();
    println!("demo daemon: $ docker {}   ({ms:.0} ms)", shown.join(" "));
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        println!("demo daemon:   {line}");
    }
    Ok(())
}
