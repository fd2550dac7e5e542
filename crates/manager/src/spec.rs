//! The runtime spec of a plugin, generated as Moby's `InitSpec` does (Linux).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use dockplug_protocol::Plugin;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

/// Why a spec could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A mount has no source.
    #[error("mount source is not specified")]
    MountSource,
    /// A device has no path.
    #[error("device path is not specified")]
    DevicePath,
    /// A device could not be read.
    #[error("error gathering device information while adding custom device \"{path}\": {reason}")]
    Device {
        /// The device path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The generated spec does not decode as an OCI spec (a bug).
    #[error("invalid runtime spec")]
    Invalid(#[source] serde_json::Error),
}

/// Where things live for one plugin.
pub(crate) struct SpecPaths<'a> {
    /// `<Root>/<id>` (its `rootfs/` and `propagated-mount/`).
    pub plugin_dir: &'a Path,
    /// `<ExecRoot>/<id>`: the bundle and socket directory.
    pub exec_dir: &'a Path,
}

const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn default_mounts() -> Vec<Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777"]}),
    ]
}

fn dev_major(dev: u64) -> i64 {
    (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)) as i64
}

fn dev_minor(dev: u64) -> i64 {
    ((dev & 0xff) | ((dev >> 12) & !0xff)) as i64
}

/// The device nodes at `path` (a node, a symlink to one, or a directory of them).
fn gather_devices(path: &str) -> Result<Vec<(String, fs::Metadata)>, SpecError> {
    let err = |reason: String| SpecError::Device { path: path.to_owned(), reason };
    let meta = fs::metadata(path).map_err(|e| err(e.to_string()))?;
    let ft = meta.file_type();
    if ft.is_char_device() || ft.is_block_device() {
        return Ok(vec![(path.to_owned(), meta)]);
    }
    if !ft.is_dir() {
        return Err(err("not a device node".to_owned()));
    }
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(path)];
    let mut budget = 100_000usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return Err(err("too many entries".to_owned()));
            }
            let Ok(m) = fs::symlink_metadata(entry.path()) else { continue };
            let ft = m.file_type();
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_char_device() || ft.is_block_device() {
                out.push((entry.path().to_string_lossy().into_owned(), m));
            }
        }
    }
    if out.is_empty() {
        return Err(err("no device nodes found".to_owned()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Generates the runtime spec of `plugin` (its `Settings` and `Config`).
pub(crate) fn init_spec(plugin: &Plugin, paths: &SpecPaths<'_>) -> Result<Spec, SpecError> {
    let config = &plugin.config;
    let settings = &plugin.settings;
    let rootfs = paths.plugin_dir.join("rootfs");

    let mut namespaces = vec!["mount", "network", "uts", "pid", "ipc"];
    // Default mounts, minus a `/dev/...` one the plugin mounts itself (Moby's intent).
    let mut mounts: Vec<Value> = default_mounts()
        .into_iter()
        .filter(|m| {
            let dest = m["destination"].as_str().unwrap_or_default();
            !(dest.starts_with("/dev/") && settings.mounts().iter().any(|s| s.destination == dest))
        })
        .collect();
    let mut rootfs_propagation = None;
    if !config.propagated_mount.is_empty() {
        mounts.push(json!({
            "destination": config.propagated_mount,
            "type": "bind",
            "source": paths.plugin_dir.join("propagated-mount"),
            "options": ["rbind", "rw", "rshared"],
        }));
        rootfs_propagation = Some("rshared");
    }
    for m in config.mounts() {
        let source = m.source.as_deref().ok_or(SpecError::MountSource)?;
        mounts.push(json!({
            "destination": m.destination,
            "type": m.r#type,
            "source": source,
            "options": m.options.clone().unwrap_or_default(),
        }));
    }
    mounts.push(json!({
        "destination": "/run/docker/plugins",
        "type": "bind",
        "source": paths.exec_dir,
        "options": ["rbind", "rshared"],
    }));
    let net = config.network.r#type.as_str();
    if !net.is_empty() {
        if net == "host" {
            namespaces.retain(|n| *n != "network");
        }
        for f in ["/etc/hosts", "/etc/resolv.conf"] {
            mounts.push(
                json!({"destination": f, "type": "bind", "source": f, "options": ["rbind", "ro"]}),
            );
        }
    }
    if config.pid_host {
        namespaces.retain(|n| *n != "pid");
    }
    if config.ipc_host {
        namespaces.retain(|n| *n != "ipc");
    }

    let mut device_rules = if config.linux.allow_all_devices {
        vec![json!({"allow": true, "access": "rwm"})]
    } else {
        let mut r = vec![json!({"allow": false, "access": "rwm"})];
        for (major, minor) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)] {
            r.push(json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}));
        }
        r.push(json!({"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
        r
    };
    let mut devices = Vec::new();
    for d in settings.devices() {
        let path = d.path.as_deref().ok_or(SpecError::DevicePath)?;
        for (p, meta) in gather_devices(path)? {
            let kind = if meta.file_type().is_block_device() { "b" } else { "c" };
            let (major, minor) = (dev_major(meta.rdev()), dev_minor(meta.rdev()));
            devices.push(json!({
                "path": p, "type": kind, "major": major, "minor": minor,
                "fileMode": meta.mode() & 0o777, "uid": meta.uid(), "gid": meta.gid(),
            }));
            device_rules.push(json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": "rwm"}));
        }
    }

    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()];
    env.extend(settings.env().iter().cloned());
    let mut args: Vec<String> = config.entrypoint().to_vec();
    args.extend(settings.args().iter().cloned());
    let cwd = if config.work_dir.is_empty() { "/" } else { &config.work_dir };
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).collect();
    let extra: Vec<String> = config.capabilities().to_vec();
    caps.extend(extra.iter().cloned());

    let mut linux = json!({
        "namespaces": namespaces.iter().map(|n| json!({"type": n})).collect::<Vec<_>>(),
        "resources": {"devices": device_rules},
        "devices": devices,
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
            "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
            "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    });
    if let Some(p) = rootfs_propagation {
        linux["rootfsPropagation"] = json!(p);
    }
    let spec = json!({
        "ociVersion": "1.0.2",
        "root": {"path": rootfs, "readonly": false},
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "permitted": caps, "effective": caps, "inheritable": extra,
            },
            "noNewPrivileges": false,
        },
        "mounts": mounts,
        "linux": linux,
    });
    serde_json::from_value(spec).map_err(SpecError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(config: &str) -> Result<serde_json::Value, SpecError> {
        let config: dockplug_protocol::PluginConfig = serde_json::from_str(config).unwrap();
        let plugin = Plugin {
            settings: dockplug_protocol::plugin::PluginSettings::from_config(&config),
            config,
            ..Plugin::default()
        };
        let spec = init_spec(
            &plugin,
            &SpecPaths { plugin_dir: Path::new("/r/id"), exec_dir: Path::new("/x/id") },
        )?;
        Ok(serde_json::to_value(spec).unwrap())
    }

    #[test]
    fn defaults_of_an_empty_config() {
        let s = spec_of("{}").unwrap();
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["mount", "network", "uts", "pid", "ipc"]);
        assert_eq!(s["process"]["cwd"], "/");
        assert_eq!(s["process"]["user"]["uid"], 0);
        assert!(s["linux"]["rootfsPropagation"].is_null());
        let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules[0]["allow"], false);
        assert_eq!(rules.len(), 8);
        let dests: Vec<&str> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(dests.last(), Some(&"/run/docker/plugins"));
        assert!(!dests.contains(&"/etc/hosts"), "private network: no host files");
    }

    #[test]
    fn namespaces_devices_and_network() {
        let s = spec_of(
            r#"{"Network":{"Type":"bridge"},"IpcHost":true,
                "Linux":{"AllowAllDevices":true,"Devices":[{"Path":"/dev/null"}]}}"#,
        )
        .unwrap();
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["mount", "network", "uts", "pid"]);
        let dests: Vec<&str> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert!(dests.ends_with(&["/run/docker/plugins", "/etc/hosts", "/etc/resolv.conf"]));
        let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules[0], serde_json::json!({"allow": true, "access": "rwm"}));
        assert_eq!(s["linux"]["devices"][0]["type"], "c");
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            spec_of(r#"{"Mounts":[{"Destination":"/x"}]}"#),
            Err(SpecError::MountSource)
        ));
        assert!(matches!(
            spec_of(r#"{"Linux":{"Devices":[{"Name":"d"}]}}"#),
            Err(SpecError::DevicePath)
        ));
        let err = spec_of(r#"{"Linux":{"Devices":[{"Path":"/nonexistent-device"}]}}"#).unwrap_err();
        assert!(err.to_string().starts_with(
            "error gathering device information while adding custom device \"/nonexistent-device\""
        ));
        // A regular file is not a device.
        let file = tempfile::NamedTempFile::new().unwrap();
        let config = format!(r#"{{"Linux":{{"Devices":[{{"Path":{:?}}}]}}}}"#, file.path());
        assert!(matches!(spec_of(&config), Err(SpecError::Device { .. })));
    }
}
