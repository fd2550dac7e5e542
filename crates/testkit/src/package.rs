//! localvol packaged as a v2 (managed) plugin: a directory holding `config.json` and a
//! `rootfs/` with the binary, the shared libraries it links and the dynamic loader. That
//! directory is what `docker plugin create NAME DIR` takes; `cargo xtask package localvol`
//! and the integration tests both package it here, so they package the same thing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

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

/// Packages the localvol `binary` as a v2 plugin directory at `out` (replaced if present):
/// `out/config.json` and `out/rootfs/`. Returns `out`.
pub fn localvol_plugin(binary: &Path, out: &Path) -> Result<PathBuf, Error> {
    let io = |what: String| move |e| Error::io(what, e);
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(format!("remove {}", out.display())))?;
    }
    let rootfs = out.join("rootfs");
    for dir in ["run/docker/plugins", "data", "tmp", "proc", "sys", "dev", "etc"] {
        let d = rootfs.join(dir);
        std::fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
    }
    std::fs::copy(binary, rootfs.join("localvol"))
        .map_err(io(format!("copy {} into the rootfs", binary.display())))?;
    for lib in shared_libraries(binary)? {
        let rel = lib.strip_prefix("/").unwrap_or(&lib);
        let dest = rootfs.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        // `copy` follows symlinks: the rootfs gets the library itself under the linked name.
        std::fs::copy(&lib, &dest).map_err(io(format!("copy {}", lib.display())))?;
    }
    write_file(&out.join("config.json"), localvol_config().as_bytes())?;
    Ok(out.to_owned())
}

/// The absolute paths of the shared libraries `binary` needs, the dynamic loader included,
/// as `ldd` resolves them. A static binary needs none.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, Error> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| Error::io(format!("run ldd {}", binary.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if text.contains("not a dynamic executable") || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(Error::protocol(format!("ldd {}", binary.display()), stderr.trim()));
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
                return Err(Error::protocol(format!("ldd {}", binary.display()), line.trim()));
            }
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// The total size in bytes of the regular files below `dir` (a packaged rootfs).
pub fn tree_size(dir: &Path) -> u64 {
    crate::process::read_dir(dir)
        .into_iter()
        .map(|p| match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => tree_size(&p),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let io = |e| Error::io(format!("write {}", path.display()), e);
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_binary_is_packaged_alone_and_a_dynamic_one_with_its_loader() {
        let busybox = crate::program("busybox").unwrap();
        assert_eq!(shared_libraries(&busybox).unwrap(), Vec::<PathBuf>::new());
        let dir = tempfile::tempdir().unwrap();
        let out = localvol_plugin(&busybox, &dir.path().join("p")).unwrap();
        assert!(out.join("config.json").is_file());
        assert_eq!(tree_size(&out.join("rootfs")), std::fs::metadata(&busybox).unwrap().len());

        let sh = Path::new("/bin/sh");
        let libs = shared_libraries(sh).unwrap();
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("ld-linux")), "{libs:?}");
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("libc.so")), "{libs:?}");
    }
}
