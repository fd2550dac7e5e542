//! `cargo xtask package localvol [--out DIR]`: build localvol in the `plugin` profile
//! (release, stripped, see the root `Cargo.toml`), linked statically against glibc
//! (`+crt-static`: the rootfs then needs no shared libraries and no loader), and package it as
//! a v2 plugin directory (`config.json` + `rootfs/`, by `dockplug_testkit::package`, which the
//! integration tests use too); default output `<target>/plugins/localvol`. Prints the rootfs
//! size and how to install it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use dockplug_testkit::package;

use crate::setup;

/// The cargo profile packaged plugins are built in.
pub const PLUGIN_PROFILE: &str = "plugin";

/// Runs the task.
pub fn task(args: &[String]) -> Result<()> {
    const USAGE: &str = "usage: cargo xtask package localvol [--out DIR]";
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("localvol") {
        bail!(USAGE);
    }
    let mut out = setup::target_dir().join("plugins").join("localvol");
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--out", Some(dir)) => out = PathBuf::from(dir),
            _ => bail!(USAGE),
        }
    }
    // With an explicit --target, the flag reaches localvol and its dependencies but not the
    // build scripts and proc macros, which stay dynamic host programs.
    let host = host_triple()?;
    let static_crt = format!("target.{host}.rustflags=[\"-C\", \"target-feature=+crt-static\"]");
    setup::step(
        "build localvol (profile plugin, static)",
        &[
            "build",
            "--profile",
            PLUGIN_PROFILE,
            "--target",
            &host,
            "--config",
            &static_crt,
            "-p",
            "dockplug-localvol",
            "--bin",
            "localvol",
        ],
        &[],
    )?;
    let binary = setup::target_dir().join(&host).join(PLUGIN_PROFILE).join("localvol");
    let dir = package::localvol_plugin(&binary, &out)?;
    let size = package::tree_size(&dir.join("rootfs"));
    println!(
        "xtask: packaged the localvol v2 plugin in {} (rootfs {:.1} MB)",
        dir.display(),
        size as f64 / 1e6
    );
    println!("       install it with: docker plugin create localvol {}", dir.display());
    println!("                        docker plugin enable localvol");
    Ok(())
}

/// The triple rustc builds for by default (`host:` of `rustc -vV`).
fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc).arg("-vV").output().context("run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("no host triple in `rustc -vV`")
}
