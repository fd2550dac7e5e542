use dockplug_protocol::network::*;
use serde_json::json;

use super::support::{canonical, golden, printed};

const NET: &str = "8f3a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
const EP: &str = "1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c";

#[test]
fn capabilities() {
    let r: CapabilitiesResponse = golden(r#"{"Scope": "local", "ConnectivityScope": "global"}"#);
    assert_eq!(r.scope(), Ok(Scope::Local));
    assert_eq!(r.connectivity_scope(), Ok(Scope::Global));
    let r: CapabilitiesResponse = golden(r#"{"Scope": "global", "GwAllocChecker": true}"#);
    assert!(r.gw_alloc_checker);
    assert_eq!(r.connectivity_scope(), Ok(Scope::Global));
    let r: CapabilitiesResponse = canonical(r#"{"scope":"Global"}"#, r#"{"Scope":"Global"}"#);
    assert!(r.scope().is_err(), "the daemon compares the scope case-sensitively");
}

#[test]
fn create_network() {
    let r: CreateNetworkRequest = golden(&format!(
        r#"{{"NetworkID": "{NET}", "Options": {{"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {{"mtu": "1450"}}}}, "IPv4Data": [{{"AddressSpace": "LocalDefault", "Pool": "172.18.0.0/16", "Gateway": "172.18.0.1/16", "AuxAddresses": {{"router": "172.18.0.254/16"}}}}], "IPv6Data": []}}"#
    ));
    assert_eq!(r.network_id, NET);
    let v4 = &r.ipv4_data[0];
    assert_eq!(v4.gateway.as_deref(), Some("172.18.0.1/16"), "CIDR keeps the host bits");
    assert_eq!(v4.aux_addresses.as_ref().unwrap()["router"], "172.18.0.254/16");
    assert!(r.ipv6_data.is_empty());
    assert_eq!(r.options.as_ref().unwrap()["com.docker.network.generic"], json!({"mtu": "1450"}));
    // IPAMData leaves nil keys out, never null.
    let d: IpamData = canonical(
        r#"{"AddressSpace": "x", "Pool": null, "Gateway": null, "AuxAddresses": null}"#,
        r#"{"AddressSpace": "x"}"#,
    );
    assert_eq!(printed(&d), r#"{"AddressSpace":"x"}"#);
    // Null lists read as empty and print as [].
    canonical::<CreateNetworkRequest>(
        r#"{"NetworkID": "n", "IPv4Data": null, "Options": null}"#,
        r#"{"NetworkID": "n", "Options": null, "IPv4Data": [], "IPv6Data": []}"#,
    );
    let r: ErrResponse = golden("{}");
    assert_eq!(r, ErrResponse::default());
    let r: ErrResponse = golden(r#"{"Err": "network 8f3a1c2b not found"}"#);
    assert_eq!(r.err, "network 8f3a1c2b not found");
    let r: ErrResponse = canonical(r#"{"ERR": "x"}"#, r#"{"Err": "x"}"#);
    assert_eq!(r.err, "x");
    golden::<DeleteNetworkRequest>(&format!(r#"{{"NetworkID": "{NET}"}}"#));
}

#[test]
fn endpoints() {
    let r: CreateEndpointRequest = golden(&format!(
        r#"{{"NetworkID": "{NET}", "EndpointID": "{EP}", "Interface": {{"Address": "172.18.0.2/16", "AddressIPv6": "", "MacAddress": ""}}, "Options": {{"com.docker.network.endpoint.exposedports": [{{"Proto": 6, "Port": 80}}]}}}}"#
    ));
    assert_eq!(r.interface.address, "172.18.0.2/16");
    let r: CreateEndpointResponse = canonical(
        r#"{"Interface": {"MacAddress": "02:42:ac:12:00:02"}}"#,
        r#"{"Interface": {"Address": "", "AddressIPv6": "", "MacAddress": "02:42:ac:12:00:02"}}"#,
    );
    assert_eq!(r.interface.unwrap().mac_address, "02:42:ac:12:00:02");
    let r: CreateEndpointResponse = canonical(r#"{"Interface": null}"#, "{}");
    assert!(r.interface.is_none());
    let r: CreateEndpointRequest = canonical(
        r#"{"NetworkID":"n","EndpointID":"e","Options":null}"#,
        r#"{"NetworkID":"n","EndpointID":"e","Interface":{"Address":"","AddressIPv6":"","MacAddress":""},"Options":null}"#,
    );
    assert!(r.options.is_none());
    golden::<EndpointRequest>(&format!(r#"{{"NetworkID": "{NET}", "EndpointID": "{EP}"}}"#));
    let r: EndpointInfoResponse = golden(r#"{"Value": {"id": "x", "n": 1}}"#);
    assert_eq!(r.value.unwrap()["n"], 1);
}

#[test]
fn join() {
    let r: JoinRequest = golden(&format!(
        r#"{{"NetworkID": "{NET}", "EndpointID": "{EP}", "SandboxKey": "/var/run/docker/netns/4f6d2a1b9c3e", "Options": {{}}}}"#
    ));
    assert_eq!(r.sandbox_key, "/var/run/docker/netns/4f6d2a1b9c3e");
    assert_eq!(r.options, Some(Default::default()));
    let r: JoinResponse = golden(
        r#"{"InterfaceName": {"SrcName": "veth1a2b3c", "DstPrefix": "eth"}, "Gateway": "172.18.0.1", "StaticRoutes": [{"Destination": "10.10.0.0/16", "RouteType": 0, "NextHop": "172.18.0.254"}, {"Destination": "10.20.0.0/24", "RouteType": 1}], "DisableGatewayService": false}"#,
    );
    assert_eq!(r.interface_name.as_ref().unwrap().dst_prefix, "eth");
    assert_eq!(r.static_routes[0].route_type, ROUTE_NEXT_HOP);
    assert_eq!(r.static_routes[1].route_type, ROUTE_CONNECTED);
    // DstName is read (and ignored by the daemon).
    let r: JoinResponse = golden(
        r#"{"InterfaceName": {"SrcName": "v", "DstPrefix": "eth", "DstName": "eth5"}, "GatewayIPv6": "fe80::1", "DisableGatewayService": true}"#,
    );
    assert_eq!(r.interface_name.unwrap().dst_name, "eth5");
    let r: JoinResponse = canonical(
        r#"{"StaticRoutes": null, "err": "no veth"}"#,
        r#"{"DisableGatewayService": false, "Err": "no veth"}"#,
    );
    assert_eq!(r.err, "no veth");
    golden::<ProgramExternalConnectivityRequest>(
        r#"{"NetworkID": "n", "EndpointID": "e", "Options": {"com.docker.network.driver.private.no_proxy_6to4": true}}"#,
    );
}

#[test]
fn discovery_allocation_gateway_check() {
    let r: DiscoveryNotification = golden(
        r#"{"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.5", "BindAddress": "0.0.0.0", "Self": false}}"#,
    );
    let node = r.node_data().unwrap();
    assert_eq!(node.address, "10.0.0.5");
    assert!(!node.is_self);
    // The docs' lower-case `self` folds to `Self`.
    let r: DiscoveryNotification =
        golden(r#"{"DiscoveryType": 1, "DiscoveryData": {"Address": "a", "self": true}}"#);
    assert!(r.node_data().unwrap().is_self);
    let r: DiscoveryNotification = golden(r#"{"DiscoveryType": 2, "DiscoveryData": {}}"#);
    assert!(r.node_data().is_none());

    let r: AllocateNetworkResponse =
        golden(r#"{"Options": {"com.docker.network.generic": "{\"parent\":\"eth0\"}"}}"#);
    assert!(r.options.is_some());
    // AllocateNetwork's options are map<str,str> in the daemon: an object value is a decode
    // error, as in Go.
    assert!(serde_json::from_str::<AllocateNetworkResponse>(
        r#"{"Options": {"com.docker.network.generic": {"parent": "eth0"}}}"#
    )
    .is_err());
    golden::<AllocateNetworkRequest>(
        r#"{"NetworkID": "n", "Options": {"a": "b"}, "IPv4Data": [{"AddressSpace": "GlobalDefault", "Pool": "10.0.0.0/24"}], "IPv6Data": null}"#,
    );
    golden::<FreeNetworkRequest>(r#"{"NetworkID": "n"}"#);
    let r: GwAllocCheckResponse = golden(r#"{"SkipIPv4": true, "SkipIPv6": false}"#);
    assert!(r.skip_ipv4 && !r.skip_ipv6);
    let r: GwAllocCheckRequest =
        golden(r#"{"Options": {"com.docker.network.generic": {"parent": "eth0"}}}"#);
    assert_eq!(r.options.unwrap()["com.docker.network.generic"]["parent"], "eth0");
}

#[test]
fn method_names() {
    assert_eq!(NetworkMethod::DiscoverNew.as_str(), "NetworkDriver.DiscoverNew");
    assert_eq!(
        NetworkMethod::from_path("/NetworkDriver.ProgramExternalConnectivity").unwrap(),
        NetworkMethod::ProgramExternalConnectivity
    );
    assert!(NetworkMethod::from_path("/NetworkDriver.Nope").is_err());
}
