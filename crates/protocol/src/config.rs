//! The v2 plugin `config.json` ([`PluginConfig`]): what a plugin author writes, what a
//! registry stores as the config blob (`application/vnd.docker.plugin.v1+json`), and the
//! `Config` of the Engine API plugin object.
//!
//! **Reading** follows Go's decoder, as dockerd does (see [`crate::gojson`]): keys match
//! case-insensitively (`description`, `interface.types`, `linux.capabilities`, `workdir`),
//! `null` is accepted for every member and gives the zero value, and **unknown keys are
//! ignored and not kept**. We drop them on purpose: dockerd decodes into its typed struct and
//! writes that back, so a config we re-write (at `create`, in a pushed blob, in an inspect
//! reply) has exactly the keys, and so the bytes and digest, dockerd's would have.
//!
//! **Writing** emits what dockerd emits: keys in the Go struct's (alphabetical) order, the
//! swagger-required keys always, `ProtocolScheme`, `DockerVersion`, `UID`, `GID` and `rootfs`
//! only when set, and `null` for a list that was absent or `null` (kept apart from `[]`:
//! lists are `Option<Vec<_>>`). Use [`crate::gojson::to_vec_line`] for the byte-exact blob.
//!
//! ```
//! use dockplug_protocol::PluginConfig;
//! let c: PluginConfig = serde_json::from_str(
//!     r#"{"description":"sshFS","interface":{"types":["docker.volumedriver/1.0"],"socket":"s.sock"}}"#,
//! )?;
//! assert!(c.provides("VolumeDriver"));
//! assert_eq!(c.interface.socket, "s.sock");
//! assert!(serde_json::to_string(&c)?.starts_with(r#"{"Args":{"Description":"","Name":"","Settable":null,"Value":null},"Description":"sshFS""#));
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::common::PROTOCOL_SCHEME_HTTP_V1;
use crate::gojson::{go_json, string_list};
use crate::interface::InterfaceType;

/// The media type of a plugin config blob in a registry.
pub const PLUGIN_CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.plugin.v1+json";

/// The `rootfs.type` dockerd writes.
pub const ROOTFS_TYPE_LAYERS: &str = "layers";

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// A plugin's `config.json` (Moby's `plugin.Config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginConfig {
    /// `Args`: the arguments appended to the entrypoint, and whether users may set them.
    #[serde(rename = "Args")]
    pub args: PluginArgs,
    /// `Description`, shown by `docker plugin ls`.
    #[serde(rename = "Description")]
    pub description: String,
    /// `DockerVersion`: the daemon version that created the plugin (Docker 20.10 to 28 set
    /// it; omitted when empty).
    #[serde(rename = "DockerVersion", skip_serializing_if = "String::is_empty")]
    pub docker_version: String,
    /// `Documentation`: a URL.
    #[serde(rename = "Documentation")]
    pub documentation: String,
    /// `Entrypoint`: the process argv before `Settings.Args`.
    #[serde(rename = "Entrypoint", deserialize_with = "string_list")]
    pub entrypoint: Option<Vec<String>>,
    /// `Env`: environment variables, settable or not.
    #[serde(rename = "Env")]
    pub env: Option<Vec<PluginEnv>>,
    /// `Interface`: the types the plugin implements and its socket.
    #[serde(rename = "Interface")]
    pub interface: PluginInterface,
    /// `IpcHost`: run in the host IPC namespace.
    #[serde(rename = "IpcHost")]
    pub ipc_host: bool,
    /// `Linux`: capabilities and devices.
    #[serde(rename = "Linux")]
    pub linux: PluginLinux,
    /// `Mounts`: extra mounts.
    #[serde(rename = "Mounts")]
    pub mounts: Option<Vec<PluginMount>>,
    /// `Network`: the network mode.
    #[serde(rename = "Network")]
    pub network: PluginNetwork,
    /// `PidHost`: run in the host PID namespace.
    #[serde(rename = "PidHost")]
    pub pid_host: bool,
    /// `PropagatedMount`: the path inside the plugin whose mounts propagate to the host.
    #[serde(rename = "PropagatedMount")]
    pub propagated_mount: String,
    /// `User`: parsed but, as in Moby, not applied to the process.
    #[serde(rename = "User")]
    pub user: PluginUser,
    /// `WorkDir`: the working directory (`""` means `/`).
    #[serde(rename = "WorkDir")]
    pub work_dir: String,
    /// `rootfs`: the layers, set by the daemon at create (omitted when absent).
    #[serde(rename = "rootfs", skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PluginRootfs>,
}

/// `Interface` of a plugin config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginInterface {
    /// `ProtocolScheme`: `""` or `moby.plugins.http/v1` (omitted when empty).
    #[serde(rename = "ProtocolScheme", skip_serializing_if = "String::is_empty")]
    pub protocol_scheme: String,
    /// `Socket`: the socket file name inside `/run/docker/plugins/`.
    #[serde(rename = "Socket")]
    pub socket: String,
    /// `Types`: the interface types.
    #[serde(rename = "Types")]
    pub types: Option<Vec<InterfaceType>>,
}

impl PluginInterface {
    /// The effective protocol: `ProtocolScheme`, or `moby.plugins.http/v1` when empty.
    pub fn protocol(&self) -> &str {
        if self.protocol_scheme.is_empty() {
            PROTOCOL_SCHEME_HTTP_V1
        } else {
            &self.protocol_scheme
        }
    }

    /// Whether the plugin speaks HTTP/JSON; any other scheme makes every HTTP subsystem
    /// refuse it ("plugin protocol not supported").
    pub fn is_http_v1(&self) -> bool {
        self.protocol() == PROTOCOL_SCHEME_HTTP_V1
    }

    /// The types, `[]` when `null`.
    pub fn types(&self) -> &[InterfaceType] {
        self.types.as_deref().unwrap_or_default()
    }
}

/// `Linux` of a plugin config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginLinux {
    /// `AllowAllDevices`: `rwm` on every device.
    #[serde(rename = "AllowAllDevices")]
    pub allow_all_devices: bool,
    /// `Capabilities`: e.g. `CAP_SYS_ADMIN`.
    #[serde(rename = "Capabilities", deserialize_with = "string_list")]
    pub capabilities: Option<Vec<String>>,
    /// `Devices`: host devices, copied into `Settings.Devices` at install.
    #[serde(rename = "Devices")]
    pub devices: Option<Vec<PluginDevice>>,
}

/// `Network` of a plugin config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginNetwork {
    /// `Type`: `""` (own, unconfigured netns), `host`, or another name (own netns).
    #[serde(rename = "Type")]
    pub r#type: String,
}

/// `User` of a plugin config (`{}` when both are zero).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginUser {
    /// `GID` (omitted when 0).
    #[serde(rename = "GID", skip_serializing_if = "is_zero_u32")]
    pub gid: u32,
    /// `UID` (omitted when 0).
    #[serde(rename = "UID", skip_serializing_if = "is_zero_u32")]
    pub uid: u32,
}

/// `rootfs` of a plugin config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginRootfs {
    /// `diff_ids`: the layer digests (dockerd records the *compressed* digest here).
    #[serde(rename = "diff_ids", deserialize_with = "string_list")]
    pub diff_ids: Option<Vec<String>>,
    /// `type`: `layers` (omitted when empty).
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub r#type: String,
}

impl PluginRootfs {
    /// `{"diff_ids": [...], "type": "layers"}`.
    pub fn layers<I: IntoIterator<Item = S>, S: Into<String>>(diff_ids: I) -> Self {
        Self {
            diff_ids: Some(diff_ids.into_iter().map(Into::into).collect()),
            r#type: ROOTFS_TYPE_LAYERS.to_owned(),
        }
    }
}

/// `Args` of a plugin config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginArgs {
    /// `Description`.
    #[serde(rename = "Description")]
    pub description: String,
    /// `Name`: the name `docker plugin set` uses.
    #[serde(rename = "Name")]
    pub name: String,
    /// `Settable`: `["value"]` when users may set it.
    #[serde(rename = "Settable", deserialize_with = "string_list")]
    pub settable: Option<Vec<String>>,
    /// `Value`: the default extra argv.
    #[serde(rename = "Value", deserialize_with = "string_list")]
    pub value: Option<Vec<String>>,
}

/// One `Env` entry of a plugin config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginEnv {
    /// `Description`.
    #[serde(rename = "Description")]
    pub description: String,
    /// `Name`: the variable.
    #[serde(rename = "Name")]
    pub name: String,
    /// `Settable`: `["value"]` when users may set it.
    #[serde(rename = "Settable", deserialize_with = "string_list")]
    pub settable: Option<Vec<String>>,
    /// `Value`: `null` leaves the variable out of the environment.
    #[serde(rename = "Value")]
    pub value: Option<String>,
}

/// One `Mounts` entry of a plugin config (also used in `Settings.Mounts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginMount {
    /// `Description`.
    #[serde(rename = "Description")]
    pub description: String,
    /// `Destination`: the path inside the plugin.
    #[serde(rename = "Destination")]
    pub destination: String,
    /// `Name`: the name `docker plugin set` uses.
    #[serde(rename = "Name")]
    pub name: String,
    /// `Options`: e.g. `["rbind", "rw"]`.
    #[serde(rename = "Options", deserialize_with = "string_list")]
    pub options: Option<Vec<String>>,
    /// `Settable`: `["source"]` when users may set it.
    #[serde(rename = "Settable", deserialize_with = "string_list")]
    pub settable: Option<Vec<String>>,
    /// `Source`: the host path; `null` must be set before enable.
    #[serde(rename = "Source")]
    pub source: Option<String>,
    /// `Type`: e.g. `bind`.
    #[serde(rename = "Type")]
    pub r#type: String,
}

/// One `Linux.Devices` entry of a plugin config (also used in `Settings.Devices`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginDevice {
    /// `Description`.
    #[serde(rename = "Description")]
    pub description: String,
    /// `Name`: the name `docker plugin set` uses.
    #[serde(rename = "Name")]
    pub name: String,
    /// `Path`: the host device; `null` must be set before enable.
    #[serde(rename = "Path")]
    pub path: Option<String>,
    /// `Settable`: `["path"]` when users may set it.
    #[serde(rename = "Settable", deserialize_with = "string_list")]
    pub settable: Option<Vec<String>>,
}

go_json!(
    PluginConfig,
    PluginInterface,
    PluginLinux,
    PluginNetwork,
    PluginUser,
    PluginRootfs,
    PluginArgs,
    PluginEnv,
    PluginMount,
    PluginDevice,
);

/// A `config.json` that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not JSON, or a member of the wrong type.
    #[error("invalid plugin config")]
    Json(#[source] serde_json::Error),
}

impl PluginConfig {
    /// Reads a `config.json` with Go's rules (see the module docs).
    ///
    /// # Errors
    /// [`ConfigError::Json`] for malformed JSON or a member of the wrong type.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        serde_json::from_slice(bytes).map_err(ConfigError::Json)
    }

    /// The config blob as dockerd stores and pushes it: Go's encoding plus a newline.
    ///
    /// # Errors
    /// Only for an interface type that cannot be printed.
    pub fn to_blob(&self) -> Result<Vec<u8>, serde_json::Error> {
        crate::gojson::to_vec_line(self)
    }

    /// Whether one of the interface types provides the v1 subsystem `v1_name` (Moby's
    /// `FilterByCap`: prefix `docker`, capability equal to the lower-cased name).
    pub fn provides(&self, v1_name: &str) -> bool {
        self.interface.types().iter().any(|t| t.provides(v1_name))
    }

    /// `Entrypoint`, `[]` when `null`.
    pub fn entrypoint(&self) -> &[String] {
        self.entrypoint.as_deref().unwrap_or_default()
    }

    /// `Env`, `[]` when `null`.
    pub fn env(&self) -> &[PluginEnv] {
        self.env.as_deref().unwrap_or_default()
    }

    /// `Mounts`, `[]` when `null`.
    pub fn mounts(&self) -> &[PluginMount] {
        self.mounts.as_deref().unwrap_or_default()
    }

    /// `Linux.Devices`, `[]` when `null`.
    pub fn devices(&self) -> &[PluginDevice] {
        self.linux.devices.as_deref().unwrap_or_default()
    }

    /// `Linux.Capabilities`, `[]` when `null`.
    pub fn capabilities(&self) -> &[String] {
        self.linux.capabilities.as_deref().unwrap_or_default()
    }

    /// The privileges this config asks for, as Moby computes them.
    pub fn privileges(&self) -> Vec<crate::privileges::PluginPrivilege> {
        crate::privileges::compute_privileges(self)
    }
}

/// Whether a `Settable` list names `field`.
fn settable_has(settable: &Option<Vec<String>>, field: &str) -> bool {
    settable.as_deref().unwrap_or_default().iter().any(|s| s == field)
}

impl PluginEnv {
    /// Whether `docker plugin set NAME=...` may change the value.
    pub fn is_settable(&self) -> bool {
        settable_has(&self.settable, "value")
    }
}

impl PluginMount {
    /// Whether `docker plugin set NAME.source=...` may change the source.
    pub fn is_settable(&self) -> bool {
        settable_has(&self.settable, "source")
    }
}

impl PluginDevice {
    /// Whether `docker plugin set NAME.path=...` may change the path.
    pub fn is_settable(&self) -> bool {
        settable_has(&self.settable, "path")
    }
}

impl PluginArgs {
    /// Whether `docker plugin set NAME=...` may change the arguments.
    pub fn is_settable(&self) -> bool {
        settable_has(&self.settable, "value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_prints_like_dockerd() {
        let c: PluginConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            concat!(
                r#"{"Args":{"Description":"","Name":"","Settable":null,"Value":null},"Description":"","#,
                r#""Documentation":"","Entrypoint":null,"Env":null,"Interface":{"Socket":"","Types":null},"#,
                r#""IpcHost":false,"Linux":{"AllowAllDevices":false,"Capabilities":null,"Devices":null},"#,
                r#""Mounts":null,"Network":{"Type":""},"PidHost":false,"PropagatedMount":"","User":{},"WorkDir":""}"#
            )
        );
    }

    #[test]
    fn null_everywhere_is_accepted() {
        let c: PluginConfig = serde_json::from_str(
            r#"{"Args":null,"Description":null,"Entrypoint":[null,"x"],"Env":[null],"Interface":{"Types":null},
                "IpcHost":null,"Linux":{"Capabilities":null,"Devices":[null]},"Mounts":[{"Options":null,"Source":null}],
                "Network":null,"User":{"UID":null},"rootfs":{"diff_ids":null}}"#,
        )
        .unwrap();
        assert_eq!(c.entrypoint(), ["", "x"]);
        assert_eq!(c.env(), [PluginEnv::default()]);
        assert_eq!(c.devices(), [PluginDevice::default()]);
        assert_eq!(c.mounts()[0].source, None);
        assert_eq!(c.rootfs, Some(PluginRootfs::default()));
        assert!(c.interface.types.is_none());
    }

    #[test]
    fn wrong_types_are_typed_errors() {
        for bad in [
            r#"{"IpcHost":"true"}"#,
            r#"{"Interface":{"Types":[1]}}"#,
            r#"{"Interface":{"Types":"docker.volumedriver/1.0"}}"#,
            r#"{"User":{"UID":-1}}"#,
            r#"{"User":{"UID":4294967296}}"#,
            r#"{"Mounts":{}}"#,
            r#"[]"#,
            r#"{"Description":"x""#,
            "",
        ] {
            let e = PluginConfig::from_slice(bad.as_bytes()).unwrap_err();
            assert!(matches!(e, ConfigError::Json(_)), "{bad}");
            assert_eq!(e.to_string(), "invalid plugin config");
        }
    }

    #[test]
    fn protocol_scheme() {
        let mut i = PluginInterface::default();
        assert!(i.is_http_v1());
        i.protocol_scheme = "moby.plugins.grpc/v1".into();
        assert!(!i.is_http_v1());
        assert_eq!(
            serde_json::to_string(&i).unwrap(),
            r#"{"ProtocolScheme":"moby.plugins.grpc/v1","Socket":"","Types":null}"#
        );
    }

    #[test]
    fn user_and_rootfs_omit_zero_values() {
        let u = PluginUser { gid: 5, uid: 0 };
        assert_eq!(serde_json::to_string(&u).unwrap(), r#"{"GID":5}"#);
        let r = PluginRootfs { diff_ids: None, r#type: String::new() };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"diff_ids":null}"#);
        assert_eq!(
            serde_json::to_string(&PluginRootfs::layers(["sha256:ab"])).unwrap(),
            r#"{"diff_ids":["sha256:ab"],"type":"layers"}"#
        );
    }
}
