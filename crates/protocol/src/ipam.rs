//! `IpamDriver`: remote IP address management (libnetwork `ipams/remote/api/api.go`).
//!
//! The error key of a **200** reply is `Error`, not `Err`: the daemon's decoder does not fold
//! `Err` into `Error`, so a 200 `{"Err":"x"}` is a success to dockerd, and to these types.
//! A non-200 reply is read with the common `{"Err": ...}` body; [`FailureBody`] carries both
//! keys and works with any status.
//!
//! ```
//! use dockplug_protocol::ipam::{ErrResponse, IpamMethod};
//! let r: ErrResponse = serde_json::from_str(r#"{"Err":"pool exhausted"}"#)?;
//! assert!(r.error.is_empty()); // success, as dockerd reads it
//! let r: ErrResponse = serde_json::from_str(r#"{"error":"pool exhausted"}"#)?;
//! assert_eq!(r.error, "pool exhausted");
//! assert_eq!(IpamMethod::RequestPool.as_str(), "IpamDriver.RequestPool");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gojson::go_json;

/// The `Implements` entry of an IPAM plugin.
pub const IMPLEMENTS: &str = "IpamDriver";

/// `RequestPool` reply `Data` key naming the gateway (CIDR) of the pool.
pub const GATEWAY_KEY: &str = "com.docker.network.gateway";
/// `RequestAddress` option key: what the address is for.
pub const REQUEST_ADDRESS_TYPE_KEY: &str = "RequestAddressType";
/// `RequestAddress` option key carrying the endpoint's MAC (with `RequiresMACAddress`).
pub const MAC_ADDRESS_KEY: &str = "com.docker.network.endpoint.macaddress";
/// `RequestAddress` option key carrying the endpoint name.
pub const ENDPOINT_NAME_KEY: &str = "com.docker.network.endpoint.name";

crate::subsystem::methods! {
    /// The `IpamDriver` endpoints.
    IpamMethod, "IpamDriver", {
        /// `IpamDriver.GetCapabilities` (empty body; optional).
        GetCapabilities => "GetCapabilities",
        /// `IpamDriver.GetDefaultAddressSpaces` (empty body).
        GetDefaultAddressSpaces => "GetDefaultAddressSpaces",
        /// `IpamDriver.RequestPool`.
        RequestPool => "RequestPool",
        /// `IpamDriver.ReleasePool`.
        ReleasePool => "ReleasePool",
        /// `IpamDriver.RequestAddress`.
        RequestAddress => "RequestAddress",
        /// `IpamDriver.ReleaseAddress`.
        ReleaseAddress => "ReleaseAddress",
    }
}

/// A reply with only an error: `{}` on success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ErrResponse {
    /// Error message; empty means success. The daemon reports it as `remote: <Error>`.
    #[serde(rename = "Error", skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `IpamDriver.ReleasePool` reply.
pub type ReleasePoolResponse = ErrResponse;
/// `IpamDriver.ReleaseAddress` reply.
pub type ReleaseAddressResponse = ErrResponse;

/// A failure body that every reader understands: `{"Err": m, "Error": m}`. Send it with a
/// non-200 status (the daemon then reports `IpamDriver.<Method>: <Err>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct FailureBody {
    /// The message, for the non-200 path.
    #[serde(rename = "Err")]
    pub err: String,
    /// The same message, for a 200 reader.
    #[serde(rename = "Error")]
    pub error: String,
}

impl FailureBody {
    /// Both keys set to `message`.
    pub fn new(message: impl Into<String>) -> Self {
        let err = message.into();
        Self { error: err.clone(), err }
    }
}

/// `IpamDriver.GetCapabilities` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct CapabilitiesResponse {
    /// The daemon passes a MAC in `RequestAddress` options.
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
    /// The daemon replays pool and gateway requests at start.
    #[serde(rename = "RequiresRequestReplay")]
    pub requires_request_replay: bool,
    /// Error message; empty means success.
    #[serde(rename = "Error", skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `IpamDriver.GetDefaultAddressSpaces` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct AddressSpacesResponse {
    /// The local default address space name.
    #[serde(rename = "LocalDefaultAddressSpace")]
    pub local_default_address_space: String,
    /// The global default address space name.
    #[serde(rename = "GlobalDefaultAddressSpace")]
    pub global_default_address_space: String,
    /// Error message; empty means success.
    #[serde(rename = "Error", skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `IpamDriver.RequestPool` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct RequestPoolRequest {
    /// The address space.
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// The wanted pool, CIDR, or `""` for the driver's choice.
    #[serde(rename = "Pool")]
    pub pool: String,
    /// A sub-pool to allocate from, CIDR, or `""`. Non-empty with an empty `Pool` is invalid.
    #[serde(rename = "SubPool")]
    pub sub_pool: String,
    /// Driver options.
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    /// An IPv6 pool.
    #[serde(rename = "V6")]
    pub v6: bool,
}

/// `IpamDriver.RequestPool` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct RequestPoolResponse {
    /// An id for the pool, used in later calls.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The pool, CIDR.
    #[serde(rename = "Pool")]
    pub pool: String,
    /// Extra data, e.g. [`GATEWAY_KEY`].
    #[serde(rename = "Data", skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    /// Error message; empty means success.
    #[serde(rename = "Error", skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `IpamDriver.ReleasePool` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ReleasePoolRequest {
    /// The pool id from `RequestPool`.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct RequestAddressRequest {
    /// The pool id.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The preferred address, a plain IP, or `""` for any.
    #[serde(rename = "Address")]
    pub address: String,
    /// Options such as [`REQUEST_ADDRESS_TYPE_KEY`] or [`MAC_ADDRESS_KEY`].
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
}

/// `IpamDriver.RequestAddress` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct RequestAddressResponse {
    /// The address, CIDR. Empty is the daemon's error "no address returned".
    #[serde(rename = "Address")]
    pub address: String,
    /// Extra data.
    #[serde(rename = "Data", skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    /// Error message; empty means success.
    #[serde(rename = "Error", skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `IpamDriver.ReleaseAddress` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ReleaseAddressRequest {
    /// The pool id.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address, a plain IP.
    #[serde(rename = "Address")]
    pub address: String,
}

go_json!(
    ErrResponse,
    FailureBody,
    CapabilitiesResponse,
    AddressSpacesResponse,
    RequestPoolRequest,
    RequestPoolResponse,
    ReleasePoolRequest,
    RequestAddressRequest,
    RequestAddressResponse,
    ReleaseAddressRequest,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        assert_eq!(IpamMethod::ALL.len(), 6);
        assert_eq!(crate::subsystem::Subsystem::Ipam.implements(), IMPLEMENTS);
        assert_eq!(crate::subsystem::Subsystem::Ipam.endpoint_prefix(), IpamMethod::PREFIX);
    }

    #[test]
    fn err_is_not_error() {
        let r: RequestAddressResponse =
            serde_json::from_str(r#"{"Err":"pool exhausted"}"#).unwrap();
        assert_eq!(r, RequestAddressResponse::default());
        let f = FailureBody::new("x");
        assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"Err":"x","Error":"x"}"#);
        let e: crate::ErrorBody = serde_json::from_str(r#"{"Err":"x","Error":"x"}"#).unwrap();
        assert_eq!(e.err, "x");
    }
}
