//! `NetworkDriver`: libnetwork's remote network drivers (libnetwork `drivers/remote/api/api.go`).
//!
//! Keys are read as Go reads them (case-insensitive, unknown keys ignored, `null` is the zero
//! value) and written in the daemon's casing. Replies leave `Err` out when it is empty.
//! Free-form option maps are kept as [`serde_json::Value`]s: their keys vary by version.
//!
//! ```
//! use dockplug_protocol::network::{JoinResponse, NetworkMethod};
//! let r: JoinResponse = serde_json::from_str(
//!     r#"{"interfacename":{"srcname":"veth0","dstprefix":"eth"},"gateway":"172.18.0.1"}"#,
//! )?;
//! assert_eq!(r.interface_name.unwrap().src_name, "veth0");
//! assert_eq!(NetworkMethod::Join.as_str(), "NetworkDriver.Join");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::gojson::go_json;

/// The `Implements` entry of a network plugin.
pub const IMPLEMENTS: &str = "NetworkDriver";

/// A free-form options object (`map[string]interface{}` on the daemon side).
pub type Options = Map<String, Value>;

crate::subsystem::methods! {
    /// The `NetworkDriver` endpoints.
    NetworkMethod, "NetworkDriver", {
        /// `NetworkDriver.GetCapabilities` (empty body; mandatory: failure means the driver
        /// is not registered).
        GetCapabilities => "GetCapabilities",
        /// `NetworkDriver.GwAllocCheck` (Moby 28+, only if `GwAllocChecker` was true).
        GwAllocCheck => "GwAllocCheck",
        /// `NetworkDriver.AllocateNetwork` (swarm manager, global-scope drivers).
        AllocateNetwork => "AllocateNetwork",
        /// `NetworkDriver.FreeNetwork` (swarm manager, global-scope drivers).
        FreeNetwork => "FreeNetwork",
        /// `NetworkDriver.CreateNetwork`.
        CreateNetwork => "CreateNetwork",
        /// `NetworkDriver.DeleteNetwork`.
        DeleteNetwork => "DeleteNetwork",
        /// `NetworkDriver.CreateEndpoint`.
        CreateEndpoint => "CreateEndpoint",
        /// `NetworkDriver.EndpointOperInfo`.
        EndpointOperInfo => "EndpointOperInfo",
        /// `NetworkDriver.DeleteEndpoint`.
        DeleteEndpoint => "DeleteEndpoint",
        /// `NetworkDriver.Join`.
        Join => "Join",
        /// `NetworkDriver.Leave`.
        Leave => "Leave",
        /// `NetworkDriver.ProgramExternalConnectivity` (a 404 is tolerated).
        ProgramExternalConnectivity => "ProgramExternalConnectivity",
        /// `NetworkDriver.RevokeExternalConnectivity` (a 404 is tolerated).
        RevokeExternalConnectivity => "RevokeExternalConnectivity",
        /// `NetworkDriver.DiscoverNew`.
        DiscoverNew => "DiscoverNew",
        /// `NetworkDriver.DiscoverDelete`.
        DiscoverDelete => "DiscoverDelete",
    }
}

/// `RouteType` of a static route whose `NextHop` is required.
pub const ROUTE_NEXT_HOP: i32 = 0;
/// `RouteType` of a directly connected route (no `NextHop`).
pub const ROUTE_CONNECTED: i32 = 1;
/// `DiscoveryType` of node discovery, the only type the daemon forwards.
pub const DISCOVERY_NODE: i32 = 1;

/// A reported scope that the daemon refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// `Scope` or `ConnectivityScope` is neither `local` nor `global` (case-sensitive).
    #[error("invalid capability: expecting 'local' or 'global', got {value:?} for {field}")]
    InvalidScope {
        /// `Scope` or `ConnectivityScope`.
        field: &'static str,
        /// The rejected value.
        value: String,
    },
}

/// A network driver's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Networks exist on one host.
    Local,
    /// Networks span the swarm (the driver also gets `AllocateNetwork`/`FreeNetwork`).
    Global,
}

impl Scope {
    /// The wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Global => "global",
        }
    }

    fn parse(field: &'static str, value: &str) -> Result<Self, CapabilityError> {
        match value {
            "local" => Ok(Self::Local),
            "global" => Ok(Self::Global),
            _ => Err(CapabilityError::InvalidScope { field, value: value.to_owned() }),
        }
    }
}

/// `NetworkDriver.GetCapabilities` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct CapabilitiesResponse {
    /// `local` or `global`, exactly.
    #[serde(rename = "Scope")]
    pub scope: String,
    /// `local` or `global`; empty means the same as `Scope`.
    #[serde(rename = "ConnectivityScope", skip_serializing_if = "String::is_empty")]
    pub connectivity_scope: String,
    /// Moby 28+: ask for `GwAllocCheck` before each `CreateNetwork`.
    #[serde(rename = "GwAllocChecker", skip_serializing_if = "is_false")]
    pub gw_alloc_checker: bool,
    /// Error message; empty means success.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
}

impl CapabilitiesResponse {
    /// The scope, checked as the daemon checks it at registration.
    pub fn scope(&self) -> Result<Scope, CapabilityError> {
        Scope::parse("Scope", &self.scope)
    }

    /// The connectivity scope: empty means [`CapabilitiesResponse::scope`].
    pub fn connectivity_scope(&self) -> Result<Scope, CapabilityError> {
        if self.connectivity_scope.is_empty() {
            self.scope()
        } else {
            Scope::parse("ConnectivityScope", &self.connectivity_scope)
        }
    }
}

/// A reply with only an error: `{}` on success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ErrResponse {
    /// Error message; empty means success. The daemon reports it as `remote: <Err>`.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
}

impl ErrResponse {
    /// A reply carrying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { err: message.into() }
    }
}

/// `NetworkDriver.GwAllocCheck` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct GwAllocCheckRequest {
    /// The same options `CreateNetwork` will get.
    #[serde(rename = "Options")]
    pub options: Option<Options>,
}

/// `NetworkDriver.GwAllocCheck` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct GwAllocCheckResponse {
    /// Do not reserve an IPv4 gateway address from IPAM.
    #[serde(rename = "SkipIPv4")]
    pub skip_ipv4: bool,
    /// Do not reserve an IPv6 gateway address from IPAM.
    #[serde(rename = "SkipIPv6")]
    pub skip_ipv6: bool,
    /// Error message; empty means success.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
}

/// The IPAM data of one pool. CIDR strings keep their host bits (`"172.18.0.1/16"`).
/// Keys other than `AddressSpace` are left out when unset, never `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct IpamData {
    /// The address space the pool belongs to.
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// The pool, CIDR.
    #[serde(rename = "Pool", skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The gateway, CIDR with the pool's prefix length.
    #[serde(rename = "Gateway", skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Auxiliary addresses by name, each CIDR.
    #[serde(rename = "AuxAddresses", skip_serializing_if = "Option::is_none")]
    pub aux_addresses: Option<BTreeMap<String, String>>,
}

/// `NetworkDriver.AllocateNetwork` request (swarm manager).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct AllocateNetworkRequest {
    /// The network id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Driver options (string values only here).
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    /// IPv4 pools.
    #[serde(rename = "IPv4Data")]
    pub ipv4_data: Option<Vec<IpamData>>,
    /// IPv6 pools.
    #[serde(rename = "IPv6Data")]
    pub ipv6_data: Option<Vec<IpamData>>,
}

/// `NetworkDriver.AllocateNetwork` reply: options handed to `CreateNetwork` on the workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct AllocateNetworkResponse {
    /// Options for the workers.
    #[serde(rename = "Options", skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    /// Error message; empty means success.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
}

/// A request that names a network: `FreeNetwork` and `DeleteNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct NetworkRequest {
    /// The network id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// `NetworkDriver.FreeNetwork` request.
pub type FreeNetworkRequest = NetworkRequest;
/// `NetworkDriver.DeleteNetwork` request.
pub type DeleteNetworkRequest = NetworkRequest;

/// `NetworkDriver.CreateNetwork` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct CreateNetworkRequest {
    /// The network id (64 hex).
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Options, e.g. `com.docker.network.generic` (the user's `-o`), `enable_ipv6`.
    #[serde(rename = "Options")]
    pub options: Option<Options>,
    /// IPv4 pools (`[]` when none).
    #[serde(rename = "IPv4Data")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 pools (`[]` when none).
    #[serde(rename = "IPv6Data")]
    pub ipv6_data: Vec<IpamData>,
}

/// An endpoint's addresses. Empty strings mean unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct EndpointInterface {
    /// IPv4 CIDR, e.g. `172.18.0.2/16`.
    #[serde(rename = "Address")]
    pub address: String,
    /// IPv6 CIDR.
    #[serde(rename = "AddressIPv6")]
    pub address_ipv6: String,
    /// MAC, e.g. `02:42:ac:12:00:02`.
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
}

/// `NetworkDriver.CreateEndpoint` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct CreateEndpointRequest {
    /// The network id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// What the daemon already assigned (always sent).
    #[serde(rename = "Interface")]
    pub interface: EndpointInterface,
    /// Endpoint options (exposed ports, port maps, ...).
    #[serde(rename = "Options")]
    pub options: Option<Options>,
}

/// `NetworkDriver.CreateEndpoint` reply.
///
/// Set only the interface fields that were empty in the request (or none): changing a
/// field the daemon set is an error and the endpoint is rolled back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct CreateEndpointResponse {
    /// Addresses the driver chose.
    #[serde(rename = "Interface", skip_serializing_if = "Option::is_none")]
    pub interface: Option<EndpointInterface>,
    /// Error message; empty means success.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
}

/// A request that names an endpoint: `EndpointOperInfo`, `DeleteEndpoint`, `Leave` and
/// `RevokeExternalConnectivity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct EndpointRequest {
    /// The network id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// `NetworkDriver.EndpointOperInfo` request.
pub type EndpointInfoRequest = EndpointRequest;
/// `NetworkDriver.DeleteEndpoint` request.
pub type DeleteEndpointRequest = EndpointRequest;
/// `NetworkDriver.Leave` request.
pub type LeaveRequest = EndpointRequest;
/// `NetworkDriver.RevokeExternalConnectivity` request.
pub type RevokeExternalConnectivityRequest = EndpointRequest;

/// `NetworkDriver.EndpointOperInfo` reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct EndpointInfoResponse {
    /// Free-form operational data.
    #[serde(rename = "Value")]
    pub value: Option<Options>,
    /// Error message; empty means success.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
}

/// `NetworkDriver.Join` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct JoinRequest {
    /// The network id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Path of the container's network namespace.
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    /// Sandbox options.
    #[serde(rename = "Options")]
    pub options: Option<Options>,
}

/// The interface a driver hands over in `Join`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct InterfaceName {
    /// The host-side interface libnetwork moves into the container.
    #[serde(rename = "SrcName")]
    pub src_name: String,
    /// The name prefix inside the container (`eth` becomes `eth0`, ...).
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
    /// Present in the daemon's struct but ignored by it; left out when empty.
    #[serde(rename = "DstName", skip_serializing_if = "String::is_empty")]
    pub dst_name: String,
}

/// A static route for the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct StaticRoute {
    /// Destination, CIDR.
    #[serde(rename = "Destination")]
    pub destination: String,
    /// [`ROUTE_NEXT_HOP`] or [`ROUTE_CONNECTED`].
    #[serde(rename = "RouteType")]
    pub route_type: i32,
    /// Next hop IP (plain, not CIDR); left out when empty.
    #[serde(rename = "NextHop", skip_serializing_if = "String::is_empty")]
    pub next_hop: String,
}

/// `NetworkDriver.Join` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct JoinResponse {
    /// The interface to move into the container.
    #[serde(rename = "InterfaceName", skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<InterfaceName>,
    /// IPv4 gateway, a plain IP (not CIDR).
    #[serde(rename = "Gateway", skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// IPv6 gateway, a plain IP.
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    /// Extra routes.
    #[serde(rename = "StaticRoutes", skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<StaticRoute>,
    /// Do not connect the container to `docker_gwbridge` when there is no gateway.
    #[serde(rename = "DisableGatewayService")]
    pub disable_gateway_service: bool,
    /// Error message; empty means success.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
}

/// `NetworkDriver.ProgramExternalConnectivity` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ProgramExternalConnectivityRequest {
    /// The network id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The sandbox options (as in `Join`).
    #[serde(rename = "Options")]
    pub options: Option<Options>,
}

/// `NetworkDriver.DiscoverNew` and `NetworkDriver.DiscoverDelete` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct DiscoveryNotification {
    /// [`DISCOVERY_NODE`] in practice.
    #[serde(rename = "DiscoveryType")]
    pub discovery_type: i32,
    /// Type-specific data; see [`DiscoveryNotification::node_data`].
    #[serde(rename = "DiscoveryData")]
    pub discovery_data: Value,
}

impl DiscoveryNotification {
    /// The data of a node discovery, or `None` for another type or unreadable data.
    pub fn node_data(&self) -> Option<NodeDiscoveryData> {
        if self.discovery_type != DISCOVERY_NODE {
            return None;
        }
        serde_json::from_value(self.discovery_data.clone()).ok()
    }
}

/// The data of a node discovery (`DiscoveryType` 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct NodeDiscoveryData {
    /// The node's address.
    #[serde(rename = "Address")]
    pub address: String,
    /// The node's bind address.
    #[serde(rename = "BindAddress")]
    pub bind_address: String,
    /// Whether the node is this one (`Self`, capital S, as the daemon sends it).
    #[serde(rename = "Self")]
    pub is_self: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

go_json!(
    CapabilitiesResponse,
    ErrResponse,
    GwAllocCheckRequest,
    GwAllocCheckResponse,
    IpamData,
    AllocateNetworkRequest,
    AllocateNetworkResponse,
    NetworkRequest,
    CreateNetworkRequest,
    EndpointInterface,
    CreateEndpointRequest,
    CreateEndpointResponse,
    EndpointRequest,
    EndpointInfoResponse,
    JoinRequest,
    InterfaceName,
    StaticRoute,
    JoinResponse,
    ProgramExternalConnectivityRequest,
    DiscoveryNotification,
    NodeDiscoveryData,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        assert_eq!(NetworkMethod::ALL.len(), 15);
        for m in NetworkMethod::ALL {
            assert_eq!(NetworkMethod::from_path(m.path()).unwrap(), *m);
        }
        assert_eq!(crate::subsystem::Subsystem::Network.implements(), IMPLEMENTS);
        assert_eq!(crate::subsystem::Subsystem::Network.endpoint_prefix(), NetworkMethod::PREFIX);
    }

    #[test]
    fn scope_checks() {
        let caps: CapabilitiesResponse =
            serde_json::from_str(r#"{"Scope":"local","ConnectivityScope":"global"}"#).unwrap();
        assert_eq!(caps.scope(), Ok(Scope::Local));
        assert_eq!(caps.connectivity_scope(), Ok(Scope::Global));
        let caps: CapabilitiesResponse = serde_json::from_str(r#"{"scope":"global"}"#).unwrap();
        assert_eq!(caps.connectivity_scope(), Ok(Scope::Global));
        let caps: CapabilitiesResponse = serde_json::from_str(r#"{"Scope":"Local"}"#).unwrap();
        assert!(matches!(caps.scope(), Err(CapabilityError::InvalidScope { .. })));
        let caps: CapabilitiesResponse = serde_json::from_str("{}").unwrap();
        assert!(caps.scope().is_err());
    }
}
