//! `cargo xtask demo`: build localvol and the demo client, then run the demo, which starts
//! localvol, discovers and activates it with dockplug-v1 and drives a volume through its
//! life, printing a transcript with timings (crates/localvol/examples/demo.rs).

use anyhow::{bail, Result};

use crate::setup;

/// Build what the demo needs and run it.
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
    crate::containerd::demo_v2()?;
    Ok(())
}
