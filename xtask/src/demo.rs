//! `cargo xtask demo`: the v1 part builds localvol and the demo client and runs the demo,
//! which starts localvol, discovers and activates it with dockplug-v1 and drives a volume
//! through its life, printing a transcript with timings (crates/localvol/examples/demo.rs).
//! The v2 part packages localvol, then on a private containerd creates it, enables it,
//! creates and mounts a volume through the v1 client, disables and removes it, printing each
//! step's time (crates/containerd/examples/managed.rs). The last part is the docker CLI
//! driving dockplugd through a private registry (`demo_daemon.rs`).

use std::path::Path;

use anyhow::{bail, Result};
use dockplug_testkit::Containerd;

use crate::{demo_daemon, managed, setup};

/// Builds what the demo needs and runs both parts.
pub fn run() -> Result<()> {
    println!(
        "xtask demo: building localvol and the demo client (the first build takes a few minutes)"
    );
    setup::step(
        "build localvol and the demo",
        &["build", "--quiet", "-p", "dockplug-localvol", "--bin", "localvol", "--example", "demo"],
        &[],
    )?;
    let status = std::process::Command::new(setup::cargo())
        .args(["run", "--quiet", "-p", "dockplug-localvol", "--example", "demo"])
        .status()?;
    if !status.success() {
        bail!("the demo failed ({status})");
    }
    v2()?;
    demo_daemon::run()
}

/// The v2 part, on a private containerd.
fn v2() -> Result<()> {
    setup::debian_packages(setup::INTEGRATION_PACKAGES)?;
    let tmp = dockplug_testkit::temp_dir("dpd")?;
    let (plugin, example) = managed::build(tmp.path(), "dev")?;
    let containerd = Containerd::start()?;
    println!("demo v2: private containerd at {}", containerd.socket.display());
    let work = tmp.path().join("m");
    managed::run(
        &example,
        &["demo", "--containerd"],
        &[&containerd.socket, Path::new("--plugin"), &plugin, Path::new("--work"), &work],
    )?;
    Ok(())
}
