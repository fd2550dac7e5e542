use dockplug_protocol::ipam::*;
use dockplug_protocol::ErrorBody;

use super::support::{canonical, golden};

#[test]
fn capabilities_and_spaces() {
    let r: CapabilitiesResponse =
        golden(r#"{"RequiresMACAddress": true, "RequiresRequestReplay": false}"#);
    assert!(r.requires_mac_address);
    canonical::<CapabilitiesResponse>(
        "{}",
        r#"{"RequiresMACAddress": false, "RequiresRequestReplay": false}"#,
    );
    let r: AddressSpacesResponse = golden(
        r#"{"LocalDefaultAddressSpace": "LocalDefault", "GlobalDefaultAddressSpace": "GlobalDefault"}"#,
    );
    assert_eq!(r.local_default_address_space, "LocalDefault");
}

#[test]
fn pools() {
    let r: RequestPoolRequest = golden(
        r#"{"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "Options": {"com.example.zone": "a"}, "V6": false}"#,
    );
    assert_eq!(r.options.unwrap()["com.example.zone"], "a");
    let r: RequestPoolRequest = golden(
        r#"{"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "Options": null, "V6": true}"#,
    );
    assert!(r.v6 && r.options.is_none());
    let r: RequestPoolResponse = golden(
        r#"{"PoolID": "LocalDefault/10.20.0.0/24", "Pool": "10.20.0.0/24", "Data": {"com.docker.network.gateway": "10.20.0.1/24"}}"#,
    );
    assert_eq!(r.data.unwrap()[GATEWAY_KEY], "10.20.0.1/24");
    golden::<ReleasePoolRequest>(r#"{"PoolID": "LocalDefault/10.20.0.0/24"}"#);
}

#[test]
fn addresses() {
    let r: RequestAddressRequest = golden(
        r#"{"PoolID": "LocalDefault/10.20.0.0/24", "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}"#,
    );
    assert_eq!(r.options.unwrap()[REQUEST_ADDRESS_TYPE_KEY], GATEWAY_KEY);
    let r: RequestAddressRequest = golden(
        r#"{"PoolID": "LocalDefault/10.20.0.0/24", "Address": "10.20.0.7", "Options": {"com.docker.network.endpoint.name": "web", "com.docker.network.endpoint.macaddress": "02:42:0a:14:00:07"}}"#,
    );
    let opts = r.options.unwrap();
    assert_eq!(opts[MAC_ADDRESS_KEY], "02:42:0a:14:00:07");
    assert_eq!(opts[ENDPOINT_NAME_KEY], "web");
    let r: RequestAddressResponse = golden(r#"{"Address": "10.20.0.7/24", "Data": {}}"#);
    assert_eq!(r.address, "10.20.0.7/24");
    golden::<ReleaseAddressRequest>(
        r#"{"PoolID": "LocalDefault/10.20.0.0/24", "Address": "10.20.0.7"}"#,
    );
}

#[test]
fn error_key_is_error() {
    let r: ErrResponse = golden(r#"{"Error": "pool exhausted"}"#);
    assert_eq!(r.error, "pool exhausted");
    let r: ErrResponse =
        canonical(r#"{"error": "pool exhausted"}"#, r#"{"Error": "pool exhausted"}"#);
    assert_eq!(r.error, "pool exhausted");
    // A 200 `Err` is not an error to dockerd: RequestAddress then has no address.
    let r: RequestAddressResponse = canonical(r#"{"Err": "pool exhausted"}"#, r#"{"Address": ""}"#);
    assert!(r.error.is_empty() && r.address.is_empty());
    let r: ErrResponse = canonical(r#"{"Err": "pool exhausted"}"#, "{}");
    assert!(r.error.is_empty());
    // The failure body satisfies both readers.
    let f: FailureBody = golden(r#"{"Err": "pool exhausted", "Error": "pool exhausted"}"#);
    assert_eq!(f, FailureBody::new("pool exhausted"));
    let e: ErrorBody = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(e.err, "pool exhausted");
    let e: ErrResponse = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(e.error, "pool exhausted");
}
