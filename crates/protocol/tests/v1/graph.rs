use dockplug_protocol::graph::*;

use super::support::{canonical, golden, printed};

#[test]
fn init_and_requests() {
    let r: InitRequest = golden(
        r#"{"Home": "/var/lib/docker/plug", "Opts": ["size=10G"], "UIDMaps": [{"container_id": 0, "host_id": 100000, "size": 65536}], "GIDMaps": null}"#,
    );
    assert_eq!(r.uid_maps.unwrap()[0].host_id, 100_000);
    assert!(r.gid_maps.is_none());
    // The docs' ContainerID/HostID spelling does not fold to container_id.
    let r: IdMap = canonical(
        r#"{"ContainerID": 1, "HostID": 2, "Size": 3}"#,
        r#"{"container_id": 0, "host_id": 0, "size": 3}"#,
    );
    assert_eq!(r.size, 3);
    let r: Request = golden(
        r#"{"ID": "abc", "Parent": "def", "MountLabel": "l", "StorageOpt": {"size": "1G"}}"#,
    );
    assert_eq!(r.storage_opt["size"], "1G");
    assert_eq!(printed(&Request { id: "x".into(), ..Request::default() }), r#"{"ID":"x"}"#);
    golden::<Request>("{}");
}

#[test]
fn responses() {
    let r: Response = golden(r#"{"Capabilities": {"ReproducesExactDiffs": true}}"#);
    assert!(r.capabilities.unwrap().reproduces_exact_diffs);
    let r: Response = canonical(r#"{"ReproducesExactDiffs": true}"#, "{}");
    assert!(r.capabilities.is_none(), "the flat form of the docs is not read");
    let r: Response = golden(r#"{"Status": [["Backing Filesystem", "extfs"], ["Dirs", "3"]]}"#);
    assert_eq!(r.status[1], ["Dirs".to_owned(), "3".to_owned()]);
    let r: Response = golden(
        r#"{"Changes": [{"Path": "/a", "Kind": 1}, {"Path": "/b", "Kind": 2}, {"Path": "/c", "Kind": 0}]}"#,
    );
    assert_eq!(r.changes[0].kind, CHANGE_ADD);
    let r: Response =
        golden(r#"{"Dir": "/mnt/x", "Exists": true, "Size": 42, "Metadata": {"k": "v"}}"#);
    assert!(r.exists);
    let r: Response = golden(r#"{"Err": "no such layer"}"#);
    assert_eq!(r.err, "no such layer");
    assert!(serde_json::from_str::<Response>(r#"{"Status": [["only one"]]}"#).is_err());
}

#[test]
fn every_method_name() {
    let names: Vec<&str> = GraphMethod::ALL.iter().map(|m| m.as_str()).collect();
    assert_eq!(
        names,
        [
            "GraphDriver.Init",
            "GraphDriver.Capabilities",
            "GraphDriver.Create",
            "GraphDriver.CreateReadWrite",
            "GraphDriver.Remove",
            "GraphDriver.Get",
            "GraphDriver.Put",
            "GraphDriver.Exists",
            "GraphDriver.Status",
            "GraphDriver.GetMetadata",
            "GraphDriver.Cleanup",
            "GraphDriver.Diff",
            "GraphDriver.Changes",
            "GraphDriver.ApplyDiff",
            "GraphDriver.DiffSize",
        ]
    );
    assert_eq!(
        GraphMethod::from_path(&apply_diff_path("l1", "l0")).unwrap(),
        GraphMethod::ApplyDiff
    );
}
