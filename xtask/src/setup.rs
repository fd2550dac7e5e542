//! Prerequisites: what `cargo xtask` installs on a fresh machine before it runs anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Install everything the CI run needs.
pub fn all() -> Result<()> {
    rustup_components(&["rustfmt", "clippy"])?;
    cargo_tool("cargo-deny", "cargo-deny", "0.20")?;
    debian_packages(INTEGRATION_PACKAGES)?;
    Ok(())
}

/// Run `cargo <args>` as a named CI step, failing the run if it fails.
pub fn step(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let started = std::time::Instant::now();
    println!("xtask: ==> {name}: cargo {}", args.join(" "));
    let mut cmd = Command::new(cargo());
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let status = cmd.status().with_context(|| format!("start `cargo {}`", args.join(" ")))?;
    if !status.success() {
        bail!("step `{name}` failed ({status})");
    }
    println!("xtask: <== {name}: ok in {:.1?}", started.elapsed());
    Ok(())
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The workspace root (xtask's manifest dir is `<root>/xtask`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_owned).unwrap_or_default()
}

/// The target directory cargo builds into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Where cargo puts the binaries of `profile` (`dev` builds into `debug`).
pub fn profile_dir(profile: &str) -> PathBuf {
    target_dir().join(if profile == "dev" { "debug" } else { profile })
}

fn have(program: &str, probe: &[&str]) -> bool {
    Command::new(program)
        .args(probe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn rustup_components(components: &[&str]) -> Result<()> {
    let missing: Vec<&str> = components
        .iter()
        .copied()
        .filter(|c| {
            let probe =
                if *c == "rustfmt" { ["fmt", "--version"] } else { ["clippy", "--version"] };
            !have(&cargo(), &probe)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("xtask: installing rustup components {missing:?}");
    let status = Command::new("rustup").args(["component", "add"]).args(&missing).status()?;
    if !status.success() {
        bail!("rustup component add {missing:?} failed");
    }
    Ok(())
}

/// Install a cargo subcommand from crates.io when `cargo <sub> --version` does not answer.
pub fn cargo_tool(krate: &str, bin: &str, version: &str) -> Result<()> {
    let sub = bin.trim_start_matches("cargo-");
    if have(&cargo(), &[sub, "--version"]) {
        return Ok(());
    }
    println!(
        "xtask: {bin} is missing; installing {krate} {version} from crates.io (a few minutes)"
    );
    let status = Command::new(cargo())
        .args(["install", "--locked", krate, "--version", &format!("^{version}")])
        // A tool for CI needs no link-time optimisation: this halves its build on 2 cores.
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .status()?;
    if !status.success() {
        bail!("cargo install {krate} failed");
    }
    Ok(())
}

/// The Debian packages the integration suite runs against, as `(probe binary, package)`:
/// the real peers (dockerd and the docker CLI, containerd, runc).
pub const INTEGRATION_PACKAGES: &[(&str, &str)] = &[
    ("dockerd", "docker.io"),
    ("containerd", "containerd"),
    ("runc", "runc"),
    // containerd-client compiles containerd's protos at build time.
    ("protoc", "protobuf-compiler"),
    // The containerd tests run plugins from a rootfs holding the static busybox.
    ("busybox", "busybox-static"),
    // The registry tests run private OCI registries (distribution 2.8).
    ("docker-registry", "docker-registry"),
];

/// Install Debian packages whose probe is missing (`(probe, package)` pairs; a probe is a
/// binary looked up on PATH, or an absolute path that must exist).
/// Runs `apt-get update` once first, as a fresh machine needs.
pub fn debian_packages(wanted: &[(&str, &str)]) -> Result<()> {
    let present = |probe: &str| {
        if probe.starts_with('/') {
            std::path::Path::new(probe).exists()
        } else {
            on_path(probe)
        }
    };
    let missing: Vec<&str> =
        wanted.iter().filter(|(probe, _)| !present(probe)).map(|(_, pkg)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("xtask: installing Debian packages {missing:?}");
    let status = Command::new("apt-get").arg("update").arg("-qq").status()?;
    if !status.success() {
        bail!("apt-get update failed");
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("apt-get install {missing:?} failed");
    }
    Ok(())
}

/// Whether `bin` is an executable on PATH (or in the sbin directories apt installs into).
pub fn on_path(bin: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/usr/local/sbin"])
        .any(|dir| Path::new(dir).join(bin).is_file());
    found
}
