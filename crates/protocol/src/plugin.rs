//! The Engine API plugin object ([`Plugin`]), returned by `GET /plugins/{name}/json` and
//! `GET /plugins`, and persisted by the manager as `<root>/<id>/config.json`.
//!
//! Reading and writing follow the same rules as [`crate::config`]: Go's case-insensitive
//! keys, `null` accepted everywhere, unknown keys ignored (not kept); output in the Go field
//! order with `Id` and `PluginReference` omitted when empty.
//!
//! ```
//! use dockplug_protocol::{Plugin, PluginConfig};
//! use dockplug_protocol::plugin::PluginSettings;
//! let config: PluginConfig = serde_json::from_str(
//!     r#"{"Env":[{"Name":"DEBUG","Settable":["value"],"Value":"0"}],"Args":{"Value":["-v"]}}"#,
//! )?;
//! let settings = PluginSettings::from_config(&config);
//! assert_eq!(serde_json::to_string(&settings)?, r#"{"Args":["-v"],"Devices":[],"Env":["DEBUG=0"],"Mounts":[]}"#);
//! let p = Plugin { name: "test:latest".into(), config, settings, ..Plugin::default() };
//! assert!(serde_json::to_string(&p)?.contains(r#""Enabled":false,"Name":"test:latest","Settings""#));
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::config::{PluginConfig, PluginDevice, PluginMount};
use crate::gojson::{go_json, string_list};

pub use crate::config::{PluginArgs, PluginEnv};

/// A v2 plugin as the Engine API shows it (Moby's `plugin.Plugin`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Plugin {
    /// `Config`: the plugin's `config.json`, with `rootfs`.
    #[serde(rename = "Config")]
    pub config: PluginConfig,
    /// `Enabled`: whether it runs.
    #[serde(rename = "Enabled")]
    pub enabled: bool,
    /// `Id`: 64 hex characters (omitted when empty).
    #[serde(rename = "Id", skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// `Name`: the local name, with its tag (`vieux/sshfs:latest`).
    #[serde(rename = "Name")]
    pub name: String,
    /// `PluginReference`: the remote it was pulled from (omitted when empty).
    #[serde(rename = "PluginReference", skip_serializing_if = "String::is_empty")]
    pub plugin_reference: String,
    /// `Settings`: what users set with `docker plugin set`.
    #[serde(rename = "Settings")]
    pub settings: PluginSettings,
}

/// `Settings` of a plugin: the values in force, initialised from the config at install.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PluginSettings {
    /// `Args`: appended to the entrypoint.
    #[serde(rename = "Args", deserialize_with = "string_list")]
    pub args: Option<Vec<String>>,
    /// `Devices`: host devices.
    #[serde(rename = "Devices")]
    pub devices: Option<Vec<PluginDevice>>,
    /// `Env`: `NAME=value` entries.
    #[serde(rename = "Env", deserialize_with = "string_list")]
    pub env: Option<Vec<String>>,
    /// `Mounts`: extra mounts.
    #[serde(rename = "Mounts")]
    pub mounts: Option<Vec<PluginMount>>,
}

go_json!(Plugin, PluginSettings);

impl PluginSettings {
    /// The settings a freshly installed plugin starts with (Moby's `InitEmptySettings`):
    /// copies of the config's mounts, devices and args, and `NAME=value` for each env entry
    /// with a non-null value. All four lists are present (possibly empty), never `null`.
    pub fn from_config(config: &PluginConfig) -> Self {
        Self {
            args: Some(config.args.value.clone().unwrap_or_default()),
            devices: Some(config.devices().to_vec()),
            env: Some(
                config
                    .env()
                    .iter()
                    .filter_map(|e| e.value.as_ref().map(|v| format!("{}={v}", e.name)))
                    .collect(),
            ),
            mounts: Some(config.mounts().to_vec()),
        }
    }

    /// `Args`, `[]` when `null`.
    pub fn args(&self) -> &[String] {
        self.args.as_deref().unwrap_or_default()
    }

    /// `Devices`, `[]` when `null`.
    pub fn devices(&self) -> &[PluginDevice] {
        self.devices.as_deref().unwrap_or_default()
    }

    /// `Env`, `[]` when `null`.
    pub fn env(&self) -> &[String] {
        self.env.as_deref().unwrap_or_default()
    }

    /// `Mounts`, `[]` when `null`.
    pub fn mounts(&self) -> &[PluginMount] {
        self.mounts.as_deref().unwrap_or_default()
    }
}

impl Plugin {
    /// A new, disabled plugin with settings initialised from `config`.
    pub fn new(id: impl Into<String>, name: impl Into<String>, config: PluginConfig) -> Self {
        let settings = PluginSettings::from_config(&config);
        Self {
            config,
            enabled: false,
            id: id.into(),
            name: name.into(),
            plugin_reference: String::new(),
            settings,
        }
    }

    /// Whether the plugin provides the v1 subsystem `v1_name` (see [`PluginConfig::provides`]).
    pub fn provides(&self, v1_name: &str) -> bool {
        self.config.provides(v1_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_and_reference_are_omitted_when_empty() {
        let s = serde_json::to_string(&Plugin::default()).unwrap();
        assert!(s.ends_with(r#""Enabled":false,"Name":"","Settings":{"Args":null,"Devices":null,"Env":null,"Mounts":null}}"#), "{s}");
        assert!(!s.contains("\"Id\"") && !s.contains("PluginReference"));
    }

    #[test]
    fn settings_skip_null_env_values() {
        let c: PluginConfig = serde_json::from_str(
            r#"{"Env":[{"Name":"A","Value":"1"},{"Name":"B","Value":null},{"Name":"C","Value":""}]}"#,
        )
        .unwrap();
        assert_eq!(PluginSettings::from_config(&c).env(), ["A=1", "C="]);
    }

    #[test]
    fn lower_case_plugin_object() {
        let p: Plugin = serde_json::from_str(
            r#"{"id":"abc","name":"n:1","enabled":true,"settings":{"env":["A=1"]},"config":{"workdir":"/"}}"#,
        )
        .unwrap();
        assert_eq!((p.id.as_str(), p.name.as_str(), p.enabled), ("abc", "n:1", true));
        assert_eq!(p.settings.env(), ["A=1"]);
        assert_eq!(p.config.work_dir, "/");
    }
}
