//! The privileges a v2 plugin asks for ([`PluginPrivilege`]): computed from its config
//! exactly as Moby does, shown by `GET /plugins/privileges`, granted in the body of
//! `POST /plugins/pull` and `/upgrade`, and checked against the pulled config.
//!
//! `GET /plugins/privileges` replies `null` when a plugin needs none (Moby's nil list), so a
//! server should write `None` for an empty list: see [`privileges_reply`].
//!
//! ```
//! use dockplug_protocol::PluginConfig;
//! let c: PluginConfig = serde_json::from_str(r#"{"network":{"type":"host"},"linux":{"capabilities":["CAP_SYS_ADMIN"]}}"#)?;
//! let p = c.privileges();
//! assert_eq!(serde_json::to_string(&p)?, concat!(
//!     r#"[{"Name":"network","Description":"permissions to access a network","Value":["host"]},"#,
//!     r#"{"Name":"capabilities","Description":"list of additional capabilities required","Value":["CAP_SYS_ADMIN"]}]"#));
//! dockplug_protocol::privileges::validate_privileges(&p, &p)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::config::PluginConfig;
use crate::gojson::{go_json, string_list};

/// One privilege: what it is, why, and the values (Moby's `PluginPrivilege`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginPrivilege {
    /// `Name`: `network`, `mount`, `device`, `capabilities`, ...
    #[serde(rename = "Name")]
    pub name: String,
    /// `Description`: a fixed text per name; ignored when comparing grants.
    #[serde(rename = "Description")]
    pub description: String,
    /// `Value`: the values asked for (`null` reads as `[]`).
    #[serde(rename = "Value", deserialize_with = "string_list_or_empty")]
    pub value: Vec<String>,
}

go_json!(PluginPrivilege);

fn string_list_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(string_list(d)?.unwrap_or_default())
}

impl PluginPrivilege {
    /// A privilege with one or more values.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        name: impl Into<String>,
        description: impl Into<String>,
        value: I,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            value: value.into_iter().map(Into::into).collect(),
        }
    }
}

/// `Name` of the network privilege.
pub const NETWORK: &str = "network";
/// `Name` of the host IPC namespace privilege.
pub const HOST_IPC: &str = "host ipc namespace";
/// `Name` of the host PID namespace privilege.
pub const HOST_PID: &str = "host pid namespace";
/// `Name` of a mount privilege.
pub const MOUNT: &str = "mount";
/// `Name` of a device privilege.
pub const DEVICE: &str = "device";
/// `Name` of the all-devices privilege.
pub const ALLOW_ALL_DEVICES: &str = "allow-all-devices";
/// `Name` of the capabilities privilege.
pub const CAPABILITIES: &str = "capabilities";

/// The privileges `config` asks for, in Moby's order and with its texts: network (unless the
/// type is `""`, `null` or `bridge`; `none` does ask), host IPC, host PID, one per mount with
/// a source, one per device with a path, all devices, capabilities.
pub fn compute_privileges(config: &PluginConfig) -> Vec<PluginPrivilege> {
    let mut out = Vec::new();
    let net = config.network.r#type.as_str();
    if !matches!(net, "" | "null" | "bridge") {
        out.push(PluginPrivilege::new(NETWORK, "permissions to access a network", [net]));
    }
    if config.ipc_host {
        out.push(PluginPrivilege::new(HOST_IPC, "allow access to host ipc namespace", ["true"]));
    }
    if config.pid_host {
        out.push(PluginPrivilege::new(HOST_PID, "allow access to host pid namespace", ["true"]));
    }
    for source in config.mounts().iter().filter_map(|m| m.source.as_deref()) {
        out.push(PluginPrivilege::new(MOUNT, "host path to mount", [source]));
    }
    for path in config.devices().iter().filter_map(|d| d.path.as_deref()) {
        out.push(PluginPrivilege::new(DEVICE, "host device to access", [path]));
    }
    if config.linux.allow_all_devices {
        out.push(PluginPrivilege::new(
            ALLOW_ALL_DEVICES,
            "allow 'rwm' access to all devices",
            ["true"],
        ));
    }
    if !config.capabilities().is_empty() {
        out.push(PluginPrivilege::new(
            CAPABILITIES,
            "list of additional capabilities required",
            config.capabilities().iter().cloned(),
        ));
    }
    out
}

/// The body of `GET /plugins/privileges`: `None` (JSON `null`) when nothing is needed, as
/// dockerd replies.
pub fn privileges_reply(privileges: Vec<PluginPrivilege>) -> Option<Vec<PluginPrivilege>> {
    (!privileges.is_empty()).then_some(privileges)
}

/// Granted privileges that differ from the required ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// Names or values differ (Moby's text, HTTP 500 at the API).
    #[error("incorrect privileges")]
    Incorrect,
}

/// Checks that `granted` is exactly `required`, ignoring descriptions and order (of the list
/// and of each value list), as Moby's `validatePrivileges`. Unlike Moby up to v28 every
/// element is compared, duplicates included (we sort by name *and* values), and the inputs
/// are left alone.
///
/// # Errors
/// [`PrivilegeError::Incorrect`] when they differ.
pub fn validate_privileges(
    required: &[PluginPrivilege],
    granted: &[PluginPrivilege],
) -> Result<(), PrivilegeError> {
    fn key(p: &PluginPrivilege) -> (&str, Vec<&str>) {
        let mut v: Vec<&str> = p.value.iter().map(String::as_str).collect();
        v.sort_unstable();
        (p.name.as_str(), v)
    }
    if required.len() != granted.len() {
        return Err(PrivilegeError::Incorrect);
    }
    let mut a: Vec<_> = required.iter().map(key).collect();
    let mut b: Vec<_> = granted.iter().map(key).collect();
    a.sort_unstable();
    b.sort_unstable();
    if a == b {
        Ok(())
    } else {
        Err(PrivilegeError::Incorrect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_rule() {
        for (t, asks) in
            [("", false), ("null", false), ("bridge", false), ("none", true), ("host", true)]
        {
            let mut c = PluginConfig::default();
            c.network.r#type = t.into();
            assert_eq!(compute_privileges(&c).iter().any(|p| p.name == NETWORK), asks, "{t}");
        }
    }

    #[test]
    fn null_source_and_path_ask_nothing() {
        let c: PluginConfig = serde_json::from_str(
            r#"{"Mounts":[{"Name":"m","Source":null},{"Source":"/a"}],"Linux":{"AllowAllDevices":true,"Devices":[{"Path":null},{"Path":"/dev/x"}]}}"#,
        )
        .unwrap();
        let p = compute_privileges(&c);
        let names: Vec<_> = p.iter().map(|p| (p.name.as_str(), p.value.join(","))).collect();
        assert_eq!(
            names,
            [
                ("mount", "/a".into()),
                ("device", "/dev/x".into()),
                ("allow-all-devices", "true".into())
            ]
        );
        assert_eq!(p[2].description, "allow 'rwm' access to all devices");
    }

    #[test]
    fn empty_reply_is_null() {
        assert_eq!(serde_json::to_string(&privileges_reply(Vec::new())).unwrap(), "null");
        let p = vec![PluginPrivilege::new("network", "", ["host"])];
        assert_eq!(
            serde_json::to_string(&privileges_reply(p)).unwrap(),
            r#"[{"Name":"network","Description":"","Value":["host"]}]"#
        );
    }

    #[test]
    fn validation() {
        let m = |v: &str| PluginPrivilege::new("mount", "x", [v]);
        let req = vec![m("/a"), m("/b"), PluginPrivilege::new("capabilities", "", ["B", "A"])];
        let granted =
            vec![PluginPrivilege::new("capabilities", "other", ["A", "B"]), m("/b"), m("/a")];
        assert_eq!(validate_privileges(&req, &granted), Ok(()));
        assert_eq!(validate_privileges(&[], &[]), Ok(()));
        // Moby up to v28 never compared the first sorted element; we do.
        assert_eq!(
            validate_privileges(&req, &[m("/a"), m("/c"), granted[0].clone()]),
            Err(PrivilegeError::Incorrect)
        );
        assert_eq!(validate_privileges(&req[..1], &req[..2]), Err(PrivilegeError::Incorrect));
        assert_eq!(
            validate_privileges(&req[..1], &[]).unwrap_err().to_string(),
            "incorrect privileges"
        );
    }

    #[test]
    fn granted_body_reads_case_insensitively() {
        let g: Vec<PluginPrivilege> = serde_json::from_str(
            r#"[{"name":"network","value":["host"]},{"Name":"x","Value":null}]"#,
        )
        .unwrap();
        assert_eq!(g[0], PluginPrivilege::new("network", "", ["host"]));
        assert!(g[1].value.is_empty());
    }
}
