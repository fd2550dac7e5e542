//! A v2 plugin's `config.json`, read with Go's rules.
//!
//! Invariants: a config we accept writes to a blob that reads back as the same config, the
//! blob is a fixed point (it is content-addressed), and everything the manager derives from
//! a config (privileges, initial settings, interface types) is computed without a panic.

use dockplug_protocol::plugin::PluginSettings;
use dockplug_protocol::{Plugin, PluginConfig};

/// The target: see the module documentation.
pub fn plugin_config(data: &[u8]) {
    let Ok(config) = PluginConfig::from_slice(data) else { return };
    let blob = config.to_blob().expect("a config we read writes");
    let back = PluginConfig::from_slice(&blob).expect("our own config blob parses");
    assert_eq!(back, config, "config.json does not round-trip");
    assert_eq!(back.to_blob().expect("writes again"), blob, "config blob is not a fixed point");
    let _ = config.privileges();
    let _ = PluginSettings::from_config(&config);
    let _ = (config.interface.protocol(), config.interface.is_http_v1());
    for t in config.interface.types() {
        let _ = (t.capability(), t.to_string());
    }
    let plugin = Plugin::new("0".repeat(64), "fuzz:latest", config);
    let _ = plugin.provides("VolumeDriver");
    let json = dockplug_protocol::gojson::to_vec(&plugin).expect("an Engine API plugin writes");
    let _: Plugin = serde_json::from_slice(&json).expect("an Engine API plugin reads back");
}
