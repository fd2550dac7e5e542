//! The managed side of the xtask tasks that run v2 plugins (`bench-enable`, the v2 part of
//! `demo`): building localvol and `crates/containerd/examples/managed.rs` (the manager on the
//! containerd executor), and running that example.
//!
//! xtask itself never links containerd-client, so it builds without `protoc`, which
//! `cargo xtask setup` installs; the daemons come from `dockplug-testkit`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::setup;

/// Builds localvol and the `managed` example in `profile` (`dev` for the demo, which reuses
/// the test suite's build; `release` for the benchmark) and packages localvol as a v2 plugin
/// directory in `dir`; returns (plugin dir, example binary).
pub fn build(dir: &Path, profile: &str) -> Result<(PathBuf, PathBuf)> {
    let what = ["-p", "dockplug-containerd", "--example", "managed"];
    let (plugin, out) = build_with_localvol(profile, &what, dir)?;
    Ok((plugin, out.join("examples").join("managed")))
}

/// Builds localvol and `also` (cargo selection arguments, e.g. `["-p", "dockplug-daemon",
/// "--bin", "dockplugd"]`) in `profile`, and packages localvol as a v2 plugin directory in
/// `dir/plugin`; returns (plugin dir, the profile's output directory).
pub fn build_with_localvol(profile: &str, also: &[&str], dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut args = vec!["build", "--quiet", "--profile", profile];
    args.extend(["-p", "dockplug-localvol", "--bin", "localvol"]);
    args.extend(also);
    let targets: Vec<&str> =
        also.windows(2).filter(|w| w[0] == "--bin" || w[0] == "--example").map(|w| w[1]).collect();
    setup::step(&format!("build localvol and {} ({profile})", targets.join(", ")), &args, &[])?;
    let out = setup::profile_dir(profile);
    let plugin =
        dockplug_testkit::package::localvol_plugin(&out.join("localvol"), &dir.join("plugin"))
            .context("package localvol as a v2 plugin")?;
    Ok((plugin, out))
}

/// Runs the `managed` example with `args`; prints its output and returns its
/// `result <key> <value>` lines as pairs.
pub fn run(example: &Path, args: &[&str], paths: &[&Path]) -> Result<Vec<(String, f64)>> {
    let mut cmd = Command::new(example);
    cmd.args(args).args(paths).stderr(Stdio::inherit());
    let out = cmd.output().context("run the managed example")?;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| !l.starts_with("result ")) {
        println!("{line}");
    }
    if !out.status.success() {
        bail!("the managed example failed ({})", out.status);
    }
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("result "))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect())
}

/// The plugin directory as a build context (a tar of `config.json` and `rootfs/`), plus
/// `extra_dir/<file>` when `extra` is `(extra_dir, file)`: a one-file difference, because
/// dockerd refuses a second plugin whose rootfs layer it already stores.
pub fn plugin_context(plugin: &Path, extra: Option<(&Path, &str)>) -> Result<Vec<u8>> {
    let mut cmd = Command::new("tar");
    cmd.arg("-C").arg(plugin).args(["-cf", "-", "config.json", "rootfs"]);
    if let Some((dir, file)) = extra {
        cmd.arg("-C").arg(dir).arg(file);
    }
    let out = cmd.output().context("run tar")?;
    if !out.status.success() {
        bail!("tar of {} failed", plugin.display());
    }
    Ok(out.stdout)
}
