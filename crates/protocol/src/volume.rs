//! `VolumeDriver`: volume plugins (Moby `volume/drivers/proxy.go`).
//!
//! Requests are what the daemon sends; replies are what a plugin answers with status 200.
//! Keys are read as Go reads them (case-insensitive, unknown keys ignored, `null` is the zero
//! value) and written in the daemon's casing.
//! Every reply but [`CapabilitiesResponse`] carries `Err` (empty means success), as the
//! daemon's own reply structs do. Failures work best as a non-200 status plus
//! [`ErrorBody`](crate::ErrorBody).
//!
//! ```
//! use dockplug_protocol::volume::{CreateRequest, VolumeMethod};
//! let req: CreateRequest = serde_json::from_str(r#"{"Name":"vol1","Opts":null}"#)?;
//! assert_eq!(req.name, "vol1");
//! assert_eq!(req.opts, None);
//! assert_eq!(serde_json::to_string(&req)?, r#"{"Name":"vol1","Opts":null}"#);
//! assert_eq!(VolumeMethod::Create.as_str(), "VolumeDriver.Create");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gojson::go_json;
use crate::timestamp::Timestamp;

/// The `Implements` entry of a volume plugin.
pub const IMPLEMENTS: &str = "VolumeDriver";

crate::subsystem::methods! {
    /// The `VolumeDriver` endpoints.
    VolumeMethod, "VolumeDriver", {
        /// `VolumeDriver.Create` (2 min timeout).
        Create => "Create",
        /// `VolumeDriver.Remove`.
        Remove => "Remove",
        /// `VolumeDriver.Mount` (2 min timeout).
        Mount => "Mount",
        /// `VolumeDriver.Path`.
        Path => "Path",
        /// `VolumeDriver.Unmount`.
        Unmount => "Unmount",
        /// `VolumeDriver.Get`.
        Get => "Get",
        /// `VolumeDriver.List`.
        List => "List",
        /// `VolumeDriver.Capabilities` (optional: any error means scope `local`).
        Capabilities => "Capabilities",
    }
}

impl VolumeMethod {
    /// The daemon's per-request timeout for this call, in seconds (`Create` and `Mount`:
    /// 2 minutes; the rest: 1 minute).
    pub const fn timeout_secs(self) -> u64 {
        match self {
            Self::Create | Self::Mount => 120,
            _ => 60,
        }
    }
}

/// `VolumeDriver.Create` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct CreateRequest {
    /// The volume name. The daemon does not validate names for plugin drivers: the plugin
    /// must.
    #[serde(rename = "Name")]
    pub name: String,
    /// The `-o` options. `None` is JSON `null` (implicit creation through `docker run -v`);
    /// `docker volume create` without options sends `{}`.
    #[serde(rename = "Opts")]
    pub opts: Option<BTreeMap<String, String>>,
}

/// A request that names a volume: `Remove`, `Path` and `Get`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct NameRequest {
    /// The volume name.
    #[serde(rename = "Name")]
    pub name: String,
}

/// `VolumeDriver.Remove` request.
pub type RemoveRequest = NameRequest;
/// `VolumeDriver.Path` request.
pub type PathRequest = NameRequest;
/// `VolumeDriver.Get` request.
pub type GetRequest = NameRequest;

/// `VolumeDriver.Mount` and `VolumeDriver.Unmount` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct MountRequest {
    /// The volume name.
    #[serde(rename = "Name")]
    pub name: String,
    /// A fresh random 64-hex id per container mount point (not the container id); the
    /// matching `Unmount` carries the same id.
    #[serde(rename = "ID")]
    pub id: String,
}

/// `VolumeDriver.Unmount` request.
pub type UnmountRequest = MountRequest;

/// The `{}` request of `VolumeDriver.List` and `VolumeDriver.Capabilities`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct EmptyRequest {}

/// `VolumeDriver.List` request (`{}`).
pub type ListRequest = EmptyRequest;
/// `VolumeDriver.Capabilities` request (`{}`).
pub type CapabilitiesRequest = EmptyRequest;

/// A reply that carries only an error: `Create`, `Remove` and `Unmount`.
pub type ErrResponse = crate::ErrorBody;
/// `VolumeDriver.Create` reply.
pub type CreateResponse = ErrResponse;
/// `VolumeDriver.Remove` reply.
pub type RemoveResponse = ErrResponse;
/// `VolumeDriver.Unmount` reply.
pub type UnmountResponse = ErrResponse;

/// `VolumeDriver.Mount` and `VolumeDriver.Path` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct MountResponse {
    /// v1: an absolute host path. v2: a path inside the plugin, under its
    /// `PropagatedMount` to be visible on the host.
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    /// Error message; empty means success.
    #[serde(rename = "Err")]
    pub err: String,
}

/// `VolumeDriver.Path` reply.
pub type PathResponse = MountResponse;

/// A volume as a plugin describes it in `Get` and `List` replies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Volume {
    /// The volume name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Where the volume is (see [`MountResponse::mountpoint`]); left out when empty.
    #[serde(rename = "Mountpoint", skip_serializing_if = "String::is_empty")]
    pub mountpoint: String,
    /// Creation time. Must be absent, `null` or RFC 3339: `""` fails the daemon's decode
    /// of the whole reply, so it fails here too.
    #[serde(rename = "CreatedAt", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Free-form status shown by `docker volume inspect` (`Get` only; `List` ignores it).
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Volume {
    /// A volume with a name and mount point, no time and no status.
    pub fn new(name: impl Into<String>, mountpoint: impl Into<String>) -> Self {
        Self { name: name.into(), mountpoint: mountpoint.into(), ..Self::default() }
    }
}

/// `VolumeDriver.Get` reply.
///
/// `"Volume": null` with an empty `Err` is "no such volume" to the daemon. A non-null volume
/// with no error makes the daemon skip `Create`, so unknown names must get an error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct GetResponse {
    /// The volume; left out when `None`.
    #[serde(rename = "Volume", skip_serializing_if = "Option::is_none")]
    pub volume: Option<Volume>,
    /// Error message; empty means success.
    #[serde(rename = "Err")]
    pub err: String,
}

/// `VolumeDriver.List` reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ListResponse {
    /// The volumes; `null` reads as empty, empty is written as `[]`.
    #[serde(rename = "Volumes")]
    pub volumes: Vec<Volume>,
    /// Error message; empty means success.
    #[serde(rename = "Err")]
    pub err: String,
}

/// The scope a volume driver reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One host (the default, and what any unknown value means).
    #[default]
    Local,
    /// One creation serves the whole cluster.
    Global,
}

impl Scope {
    /// The canonical wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Global => "global",
        }
    }

    /// How the daemon reads a reported scope: lower-cased, `global` is global, anything else
    /// (empty included) is local.
    pub fn from_reported(s: &str) -> Self {
        if s.eq_ignore_ascii_case("global") {
            Self::Global
        } else {
            Self::Local
        }
    }
}

/// The `Capabilities` object of a volume driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Capabilities {
    /// The scope as sent; see [`Capabilities::scope`] for what the daemon makes of it.
    #[serde(rename = "Scope")]
    pub scope: String,
}

impl Capabilities {
    /// Capabilities with a canonical scope.
    pub fn new(scope: Scope) -> Self {
        Self { scope: scope.as_str().to_owned() }
    }

    /// The scope as the daemon reads it.
    pub fn scope(&self) -> Scope {
        Scope::from_reported(&self.scope)
    }
}

/// `VolumeDriver.Capabilities` reply. `Err` is left out when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct CapabilitiesResponse {
    /// The capabilities.
    #[serde(rename = "Capabilities")]
    pub capabilities: Capabilities,
    /// Error message; empty means success (any error means scope `local`).
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
}

go_json!(
    CreateRequest,
    NameRequest,
    MountRequest,
    EmptyRequest,
    MountResponse,
    Volume,
    GetResponse,
    ListResponse,
    Capabilities,
    CapabilitiesResponse,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        assert_eq!(VolumeMethod::ALL.len(), 8);
        for m in VolumeMethod::ALL {
            assert_eq!(m.as_str().parse::<VolumeMethod>().unwrap(), *m);
            assert_eq!(VolumeMethod::from_path(m.path()).unwrap(), *m);
        }
        assert_eq!(VolumeMethod::Mount.path(), "/VolumeDriver.Mount");
        assert!("VolumeDriver.create".parse::<VolumeMethod>().is_err());
        assert_eq!(crate::subsystem::Subsystem::Volume.implements(), IMPLEMENTS);
        assert_eq!(crate::subsystem::Subsystem::Volume.endpoint_prefix(), VolumeMethod::PREFIX);
    }

    #[test]
    fn scope_rules() {
        let caps: CapabilitiesResponse =
            serde_json::from_str(r#"{"Capabilities":{"Scope":"GLOBAL"}}"#).unwrap();
        assert_eq!(caps.capabilities.scope(), Scope::Global);
        let caps: CapabilitiesResponse =
            serde_json::from_str(r#"{"Capabilities":{"Scope":"cluster"}}"#).unwrap();
        assert_eq!(caps.capabilities.scope(), Scope::Local);
        let caps: CapabilitiesResponse = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(caps.capabilities.scope(), Scope::Local);
    }

    #[test]
    fn empty_created_at_is_an_error() {
        let r = serde_json::from_str::<GetResponse>(r#"{"Volume":{"Name":"v","CreatedAt":""}}"#);
        assert!(r.is_err());
        let r: GetResponse =
            serde_json::from_str(r#"{"Volume":{"Name":"v","CreatedAt":null}}"#).unwrap();
        assert_eq!(r.volume.unwrap().created_at, None);
    }
}
