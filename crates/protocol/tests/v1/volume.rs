use dockplug_protocol::volume::*;
use dockplug_protocol::{ErrorBody, Manifest};
use serde_json::Value;

use super::support::{calls, canonical, golden, printed, round_trip, Call};

#[test]
fn create_samples() {
    let r: CreateRequest = golden(r#"{"Name": "vol1", "Opts": {"size": "10G", "type": "ssd"}}"#);
    assert_eq!(r.opts.as_ref().unwrap()["size"], "10G");
    let r: CreateRequest = golden(r#"{"Name": "vol1", "Opts": null}"#);
    assert_eq!(r.opts, None);
    assert_eq!(printed(&r), r#"{"Name":"vol1","Opts":null}"#);
    let r: CreateRequest = golden(r#"{"Name": "vol1", "Opts": {}}"#);
    assert_eq!(r.opts, Some(Default::default()));
    // Missing keys and null strings are zero values; lower-case keys are accepted.
    let r: CreateRequest = canonical(r#"{"name": null}"#, r#"{"Name": "", "Opts": null}"#);
    assert_eq!(r, CreateRequest::default());
    let r: CreateResponse = golden(r#"{"Err": ""}"#);
    assert_eq!(r.err, "");
}

#[test]
fn mount_samples() {
    let r: MountRequest = golden(
        r#"{"Name": "vol1", "ID": "b87d7442095999a92b65b3d9691e697b61713829cc0ffd1bb72e4ccd51aa4d6c"}"#,
    );
    assert_eq!(r.id.len(), 64);
    assert_eq!(
        printed(&r),
        r#"{"Name":"vol1","ID":"b87d7442095999a92b65b3d9691e697b61713829cc0ffd1bb72e4ccd51aa4d6c"}"#
    );
    let r: MountRequest = canonical(r#"{"name":"v","id":"x"}"#, r#"{"Name":"v","ID":"x"}"#);
    assert_eq!(r.id, "x");
    let r: MountResponse = golden(r#"{"Mountpoint": "/var/lib/myplugin/volumes/vol1", "Err": ""}"#);
    assert_eq!(r.mountpoint, "/var/lib/myplugin/volumes/vol1");
    golden::<MountResponse>(r#"{"Mountpoint": "/data/vol1", "Err": ""}"#);
    let r: PathResponse =
        canonical(r#"{"mountpoint": "/data/vol1"}"#, r#"{"Mountpoint": "/data/vol1", "Err": ""}"#);
    assert_eq!(r.mountpoint, "/data/vol1");
    let r: MountResponse = canonical(r#"{"err": "busy"}"#, r#"{"Mountpoint": "", "Err": "busy"}"#);
    assert_eq!(r.err, "busy");
    // Keys fold like Go's decoder does, whatever the case; unknown keys are ignored.
    let r: MountResponse = canonical(
        r#"{"MOUNTPOINT": "/x", "eRR": "", "Extra": [1]}"#,
        r#"{"Mountpoint": "/x", "Err": ""}"#,
    );
    assert_eq!(r.mountpoint, "/x");
}

#[test]
fn get_samples() {
    let r: GetResponse = golden(
        r#"{"Volume": {"Name": "vol1", "Mountpoint": "/data/vol1", "CreatedAt": "2024-05-01T12:00:00Z", "Status": {"size": "10G"}}, "Err": ""}"#,
    );
    let v = r.volume.unwrap();
    assert_eq!(v.created_at.unwrap().as_str(), "2024-05-01T12:00:00Z");
    assert_eq!(v.status.unwrap()["size"], "10G");
    let r: GetResponse = golden(r#"{"Err": "no such volume: vol1"}"#);
    assert!(r.volume.is_none());
    assert_eq!(r.err, "no such volume: vol1");
    let r: GetResponse = canonical(r#"{"Volume": null, "Err": ""}"#, r#"{"Err": ""}"#);
    assert!(r.volume.is_none());
    // Go's zero time round-trips; "" fails the decode like the daemon's.
    let r: GetResponse =
        golden(r#"{"Volume": {"Name": "v", "CreatedAt": "0001-01-01T00:00:00Z"}, "Err": ""}"#);
    assert!(r.volume.unwrap().created_at.unwrap().is_zero());
    assert!(serde_json::from_str::<GetResponse>(r#"{"Volume": {"Name": "v", "CreatedAt": ""}}"#)
        .is_err());
    assert!(serde_json::from_str::<GetResponse>(r#"{"Volume": {"Name": "v", "CreatedAt": 5}}"#)
        .is_err());
    golden::<GetRequest>(r#"{"Name": "vol1"}"#);
}

#[test]
fn list_and_capabilities_samples() {
    let r: ListResponse = golden(
        r#"{"Volumes": [{"Name": "vol1", "Mountpoint": "/data/vol1"}, {"Name": "vol2"}], "Err": ""}"#,
    );
    assert_eq!(r.volumes.len(), 2);
    assert_eq!(r.volumes[1], Volume::new("vol2", ""));
    let r: ListResponse = canonical(r#"{"Volumes": null}"#, r#"{"Volumes": [], "Err": ""}"#);
    assert!(r.volumes.is_empty());
    golden::<ListRequest>("{}");
    let r: CapabilitiesResponse = golden(r#"{"Capabilities": {"Scope": "global"}}"#);
    assert_eq!(r.capabilities.scope(), Scope::Global);
    let r: CapabilitiesResponse = canonical(
        r#"{"capabilities": {"scope": "GLOBAL"}}"#,
        r#"{"Capabilities": {"Scope": "GLOBAL"}}"#,
    );
    assert_eq!(r.capabilities.scope(), Scope::Global);
    let r: CapabilitiesResponse = golden(r#"{"Capabilities": {"Scope": "cluster"}}"#);
    assert_eq!(r.capabilities.scope(), Scope::Local);
    assert_eq!(
        printed(&CapabilitiesResponse {
            capabilities: Capabilities::new(Scope::Local),
            ..Default::default()
        }),
        r#"{"Capabilities":{"Scope":"local"}}"#
    );
    let r: ErrorBody = golden(r#"{"Err": "backend unavailable"}"#);
    assert_eq!(r.err, "backend unavailable");
}

/// Parse a captured request and reply with the types of its method, check that each prints
/// back to the same JSON, and return how many calls were checked.
fn check_capture(jsonl: &str) -> usize {
    let calls = calls(jsonl);
    for call in &calls {
        check_call(call);
    }
    calls.len()
}

fn same<T>(body: &Value) -> T
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let json = body.to_string();
    canonical::<T>(&json, &json)
}

fn check_call(call: &Call) {
    if call.method == "Plugin.Activate" {
        let m: Manifest = same(&call.response);
        assert!(m.implements(IMPLEMENTS));
        return;
    }
    let method: VolumeMethod = call.method.parse().unwrap();
    let req = call.request.as_ref().expect("every volume call has a request body");
    match method {
        VolumeMethod::Create => drop(same::<CreateRequest>(req)),
        VolumeMethod::Remove | VolumeMethod::Path | VolumeMethod::Get => {
            drop(same::<NameRequest>(req))
        }
        VolumeMethod::Mount | VolumeMethod::Unmount => drop(same::<MountRequest>(req)),
        VolumeMethod::List | VolumeMethod::Capabilities => drop(same::<EmptyRequest>(req)),
    }
    if call.status != 200 {
        let e: ErrorBody = same(&call.response);
        assert!(!e.err.is_empty(), "{call:?}");
        return;
    }
    let err = match method {
        VolumeMethod::Create | VolumeMethod::Remove | VolumeMethod::Unmount => {
            same::<ErrResponse>(&call.response).err
        }
        VolumeMethod::Mount | VolumeMethod::Path => {
            let r = same::<MountResponse>(&call.response);
            assert!(r.mountpoint.starts_with('/'));
            r.err
        }
        VolumeMethod::Get => {
            let r = same::<GetResponse>(&call.response);
            assert!(r.volume.unwrap().status.unwrap().contains_key("mounts"));
            r.err
        }
        VolumeMethod::List => {
            let r = same::<ListResponse>(&call.response);
            assert!(!r.volumes.is_empty());
            r.err
        }
        VolumeMethod::Capabilities => {
            let r = same::<CapabilitiesResponse>(&call.response);
            assert_eq!(r.capabilities.scope(), Scope::Local);
            r.err
        }
    };
    assert_eq!(err, "", "{call:?}");
}

#[test]
fn dockerd_v1_capture() {
    let n = check_capture(include_str!("../golden/dockerd-v1-calls.jsonl"));
    assert_eq!(n, 39);
}

#[test]
fn dockerd_v2_capture() {
    let n = check_capture(include_str!("../golden/dockerd-v2-calls.jsonl"));
    assert_eq!(n, 48);
}

#[test]
fn round_trip_keeps_status_numbers() {
    let r: GetResponse = round_trip(
        r#"{"Volume":{"Name":"v","Status":{"mounts":0,"ratio":0.5,"nested":{"a":[1]}}}}"#,
    );
    let status = r.volume.unwrap().status.unwrap();
    assert_eq!(status["mounts"], 0);
    assert_eq!(status["ratio"], 0.5);
}
