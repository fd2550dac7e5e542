//! Packaging localvol as a v2 (managed) plugin: a directory holding `config.json` and a
//! `rootfs/` with the binary, the shared libraries it links and the dynamic loader. That
//! directory is what `docker plugin create NAME DIR` takes.
//!
//! This file uses the standard library only, so the integration tests include it as is
//! (`#[path]`) and package exactly what `cargo xtask package localvol` packages.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The socket file name localvol creates inside its rootfs, in `/run/docker/plugins/`.
pub const LOCALVOL_SOCKET: &str = "localvol.sock";

/// Where localvol keeps its volumes inside the plugin: its `PropagatedMount`.
pub const LOCALVOL_PROPAGATED_MOUNT: &str = "/data";

/// The `config.json` of the localvol v2 plugin, in the daemon's canonical casing.
pub fn localvol_config() -> String {
    format!(
        r#"{{
  "Description": "localvol: local-directory volumes, built on dockplug-sdk",
  "Documentation": "https://example.invalid/dockplug/localvol",
  "Entrypoint": ["/localvol", "--socket", "/run/docker/plugins/{LOCALVOL_SOCKET}", "--root", "{LOCALVOL_PROPAGATED_MOUNT}"],
  "WorkDir": "/",
  "Interface": {{"Types": ["docker.volumedriver/1.0"], "Socket": "{LOCALVOL_SOCKET}"}},
  "Network": {{"Type": ""}},
  "Linux": {{"Capabilities": null, "AllowAllDevices": false, "Devices": null}},
  "PropagatedMount": "{LOCALVOL_PROPAGATED_MOUNT}",
  "IpcHost": false,
  "PidHost": false,
  "Mounts": null,
  "Env": [{{"Name": "LOCALVOL_LOG", "Description": "log filter", "Settable": ["value"], "Value": "info"}}],
  "Args": {{"Name": "", "Description": "", "Settable": null, "Value": null}}
}}
"#
    )
}

/// Package the localvol `binary` as a v2 plugin directory at `out` (replaced if present):
/// `out/config.json` and `out/rootfs/`. Returns `out`.
pub fn localvol_plugin(binary: &Path, out: &Path) -> io::Result<PathBuf> {
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    let rootfs = out.join("rootfs");
    for dir in ["run/docker/plugins", "data", "tmp", "proc", "sys", "dev", "etc"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    std::fs::copy(binary, rootfs.join("localvol"))?;
    for lib in shared_libraries(binary)? {
        let rel = lib.strip_prefix("/").unwrap_or(&lib);
        let dest = rootfs.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // `copy` follows symlinks: the rootfs gets the library itself under the linked name.
        std::fs::copy(&lib, &dest)?;
    }
    write_file(&out.join("config.json"), localvol_config().as_bytes())?;
    Ok(out.to_owned())
}

/// The absolute paths of the shared libraries `binary` needs, the dynamic loader included,
/// as `ldd` resolves them. A static binary needs none.
pub fn shared_libraries(binary: &Path) -> io::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable")
            || String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(io::Error::other(format!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, or the loader on its own:
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; `linux-vdso.so.1 (0x...)` has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            if line.contains("not found") {
                return Err(io::Error::other(format!("ldd: {}", line.trim())));
            }
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `cargo xtask package localvol [--out DIR]`: build localvol and package it (default
/// output: `<target>/plugins/localvol`), then print how to install it.
pub fn task(args: &[String]) -> io::Result<()> {
    let usage = || io::Error::other("usage: cargo xtask package localvol [--out DIR]");
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("localvol") {
        return Err(usage());
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let mut out = target.join("plugins").join("localvol");
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().map(PathBuf::from).ok_or_else(usage)?,
            _ => return Err(usage()),
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("xtask: ==> cargo build -p dockplug-localvol --bin localvol");
    let status = Command::new(cargo)
        .args(["build", "-p", "dockplug-localvol", "--bin", "localvol"])
        .current_dir(&workspace)
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("cargo build failed ({status})")));
    }
    let dir = localvol_plugin(&target.join("debug").join("localvol"), &out)?;
    println!("xtask: packaged the localvol v2 plugin in {}", dir.display());
    println!("       install it with: docker plugin create localvol {}", dir.display());
    println!("                        docker plugin enable localvol");
    Ok(())
}
