//! localvol as a person runs it, called through dockplug-v1: state that survives a restart,
//! mounts counted per ID, hostile names refused, a live socket never stolen.

use std::process::Command;
use std::time::Duration;

use dockplug_v1::Client;
use serde_json::{json, Value};

use crate::support::localvol::{self, LocalVol};

async fn call(c: &Client, method: &str, body: Value) -> Result<Value, String> {
    c.call::<_, Value>(method, &body).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localvol_keeps_volumes_and_mounts_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let lv = LocalVol::start(dir.path(), None);
    let c = Client::new(&format!("unix://{}", lv.socket.display()), None).unwrap();
    call(&c, "VolumeDriver.Create", json!({"Name": "keep", "Opts": {"mode": "0700"}}))
        .await
        .unwrap();
    let mp = call(&c, "VolumeDriver.Mount", json!({"Name": "keep", "ID": "a"})).await.unwrap();
    call(&c, "VolumeDriver.Mount", json!({"Name": "keep", "ID": "b"})).await.unwrap();
    // The same ID again (a retried call) does not count twice.
    call(&c, "VolumeDriver.Mount", json!({"Name": "keep", "ID": "b"})).await.unwrap();
    let path = lv.root.join("volumes/keep");
    assert_eq!(mp["Mountpoint"], path.display().to_string());
    std::fs::write(path.join("data"), "kept").unwrap();
    drop(lv);

    let lv = LocalVol::start(dir.path(), None);
    let c = Client::new(&format!("unix://{}", lv.socket.display()), None).unwrap();
    let got = call(&c, "VolumeDriver.Get", json!({"Name": "keep"})).await.unwrap();
    assert_eq!(got["Volume"]["Status"], json!({"mounts": 2}));
    assert!(got["Volume"]["CreatedAt"].as_str().unwrap().ends_with('Z'));
    let err = call(&c, "VolumeDriver.Remove", json!({"Name": "keep"})).await.unwrap_err();
    assert_eq!(err, "VolumeDriver.Remove: volume keep is in use by 2 mount(s)");
    for id in ["a", "b", "b"] {
        call(&c, "VolumeDriver.Unmount", json!({"Name": "keep", "ID": id})).await.unwrap();
    }
    assert_eq!(std::fs::read_to_string(path.join("data")).unwrap(), "kept");
    call(&c, "VolumeDriver.Remove", json!({"Name": "keep"})).await.unwrap();
    assert!(!path.exists());
    let list = call(&c, "VolumeDriver.List", json!({})).await.unwrap();
    assert_eq!(list["Volumes"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localvol_refuses_hostile_names_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let lv = LocalVol::start(dir.path(), None);
    let c = Client::new(&format!("unix://{}", lv.socket.display()), None).unwrap();
    for name in ["../escape", "a/b", "", ".hidden"] {
        let err =
            call(&c, "VolumeDriver.Create", json!({"Name": name, "Opts": null})).await.unwrap_err();
        assert!(err.starts_with("VolumeDriver.Create: invalid volume name"), "{err}");
    }
    let err = call(&c, "VolumeDriver.Create", json!({"Name": "v", "Opts": {"size": "1G"}}))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        "VolumeDriver.Create: unknown option \"size\": localvol knows uid, gid and mode"
    );
    let err = call(&c, "VolumeDriver.Get", json!({"Name": "v"})).await.unwrap_err();
    assert_eq!(err, "VolumeDriver.Get: no such volume: v");
    assert!(!dir.path().join("escape").exists());
    assert_eq!(std::fs::read_dir(lv.root.join("volumes")).unwrap().count(), 0);
}

#[test]
fn a_second_localvol_never_steals_a_live_socket() {
    let dir = tempfile::tempdir().unwrap();
    let lv = LocalVol::start(dir.path(), None);
    let out = Command::new(localvol::binary())
        .arg("--socket")
        .arg(&lv.socket)
        .arg("--root")
        .arg(dir.path().join("other"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use by a live server"), "{err}");
    assert!(crate::support::wait_for_socket(&lv.socket, Duration::from_secs(1)));
}
