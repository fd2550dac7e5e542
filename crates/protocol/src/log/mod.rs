//! `LogDriver`: logging plugins (Moby `daemon/logger/plugin.go` and `proxy.go`), and the log stream format in [`entry`].
//!
//! Note two places where the docs are wrong and these types follow the daemon: the
//! capabilities reply is wrapped (`{"Cap": {"ReadLogs": true}}`; a flat `{"ReadLogs": true}`
//! reads as false), and the `ReadLogs` request key is `Config`, not `ReadConfig`.
//!
//! ```
//! use dockplug_protocol::log::{CapabilitiesResponse, LogMethod};
//! let flat: CapabilitiesResponse = serde_json::from_str(r#"{"ReadLogs":true}"#)?;
//! assert!(!flat.cap.read_logs);
//! let wrapped: CapabilitiesResponse = serde_json::from_str(r#"{"Cap":{"ReadLogs":true}}"#)?;
//! assert!(wrapped.cap.read_logs);
//! assert_eq!(LogMethod::ReadLogs.as_str(), "LogDriver.ReadLogs");
//! # Ok::<(), serde_json::Error>(())
//! ```

pub mod entry;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gojson::go_json;
use crate::timestamp::Timestamp;

pub use entry::{FrameDecoder, FrameError, LogAttr, LogEntry, PartialLogEntryMetadata};

/// The `Implements` entry of a logging plugin.
pub const IMPLEMENTS: &str = "LogDriver";

/// The directory (inside the plugin, for v2) where the daemon creates the log FIFOs.
pub const FIFO_DIR: &str = "/run/docker/logging";

crate::subsystem::methods! {
    /// The `LogDriver` endpoints.
    LogMethod, "LogDriver", {
        /// `LogDriver.StartLogging`: read the FIFO `File` until EOF.
        StartLogging => "StartLogging",
        /// `LogDriver.StopLogging`: drain the FIFO, then reply (the daemon deletes it).
        StopLogging => "StopLogging",
        /// `LogDriver.Capabilities` (empty body; optional).
        Capabilities => "Capabilities",
        /// `LogDriver.ReadLogs`: the reply is a stream of framed [`LogEntry`]s.
        ReadLogs => "ReadLogs",
    }
}

/// What the daemon tells a log driver about the container. Every key is always sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Info {
    /// The `--log-opt` map as given (generic keys such as `mode` included).
    #[serde(rename = "Config")]
    pub config: Option<BTreeMap<String, String>>,
    /// The container id.
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    /// The container name, starting with `/`.
    #[serde(rename = "ContainerName")]
    pub container_name: String,
    /// The entrypoint.
    #[serde(rename = "ContainerEntrypoint")]
    pub container_entrypoint: String,
    /// The arguments.
    #[serde(rename = "ContainerArgs")]
    pub container_args: Option<Vec<String>>,
    /// The image id, `sha256:...`.
    #[serde(rename = "ContainerImageID")]
    pub container_image_id: String,
    /// The image name.
    #[serde(rename = "ContainerImageName")]
    pub container_image_name: String,
    /// When the container was created.
    #[serde(rename = "ContainerCreated")]
    pub container_created: Timestamp,
    /// The environment, `KEY=value`.
    #[serde(rename = "ContainerEnv")]
    pub container_env: Option<Vec<String>>,
    /// The labels.
    #[serde(rename = "ContainerLabels")]
    pub container_labels: Option<BTreeMap<String, String>>,
    /// Empty for plugin drivers.
    #[serde(rename = "LogPath")]
    pub log_path: String,
    /// `docker`.
    #[serde(rename = "DaemonName")]
    pub daemon_name: String,
}

/// `LogDriver.StartLogging` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct StartLoggingRequest {
    /// The FIFO to read, `/run/docker/logging/<id>` (inside the plugin for v2).
    #[serde(rename = "File")]
    pub file: String,
    /// The container.
    #[serde(rename = "Info")]
    pub info: Info,
}

/// `LogDriver.StopLogging` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct StopLoggingRequest {
    /// The FIFO given to `StartLogging`.
    #[serde(rename = "File")]
    pub file: String,
}

/// `StartLogging` and `StopLogging` reply: `{"Err": ""}`.
pub type ErrResponse = crate::ErrorBody;

/// What a log driver can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Capability {
    /// The driver serves `ReadLogs` (`docker logs`).
    #[serde(rename = "ReadLogs")]
    pub read_logs: bool,
}

/// `LogDriver.Capabilities` reply; `Err` is left out when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct CapabilitiesResponse {
    /// The capabilities, wrapped in `Cap`.
    #[serde(rename = "Cap")]
    pub cap: Capability,
    /// Error message; empty means success.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
}

/// Which entries `ReadLogs` should return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ReadConfig {
    /// Entries at or after this time; the zero time means from the start.
    #[serde(rename = "Since")]
    pub since: Timestamp,
    /// Entries up to this time; the zero time means no limit.
    #[serde(rename = "Until")]
    pub until: Timestamp,
    /// The last N entries; `-1` means all, `0` none.
    #[serde(rename = "Tail")]
    pub tail: i64,
    /// Keep the stream open for new entries.
    #[serde(rename = "Follow")]
    pub follow: bool,
}

impl ReadConfig {
    /// Whether an entry at `time_nano` passes `Since` and `Until` as the daemon filters.
    pub fn admits(&self, time_nano: i64) -> bool {
        let t = i128::from(time_nano);
        (self.since.is_zero() || t >= self.since.unix_nanos())
            && (self.until.is_zero() || t <= self.until.unix_nanos())
    }
}

/// `LogDriver.ReadLogs` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ReadLogsRequest {
    /// The container.
    #[serde(rename = "Info")]
    pub info: Info,
    /// What to read (the key is `Config`, not the docs' `ReadConfig`).
    #[serde(rename = "Config")]
    pub config: ReadConfig,
}

go_json!(
    Info,
    StartLoggingRequest,
    StopLoggingRequest,
    Capability,
    CapabilitiesResponse,
    ReadConfig,
    ReadLogsRequest,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(LogMethod::ALL.len(), 4);
        assert_eq!(crate::subsystem::Subsystem::Log.implements(), IMPLEMENTS);
        assert_eq!(crate::subsystem::Subsystem::Log.endpoint_prefix(), LogMethod::PREFIX);
    }

    #[test]
    fn read_config_filter() {
        let c: ReadConfig = serde_json::from_str(
            r#"{"Since":"1970-01-01T00:00:01Z","Until":"1970-01-01T00:00:02Z","Tail":-1}"#,
        )
        .unwrap();
        assert!(!c.admits(999_999_999));
        assert!(c.admits(1_000_000_000));
        assert!(c.admits(2_000_000_000));
        assert!(!c.admits(2_000_000_001));
        assert!(ReadConfig::default().admits(i64::MIN));
        assert!(serde_json::from_str::<ReadConfig>(r#"{"Since":""}"#).is_err());
    }
}
