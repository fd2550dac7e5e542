//! Against what a real dockerd (20.10) showed for the same plugin (`golden/`, copied from
//! the shared reference captures): privileges, settings after `docker plugin set`, and a
//! record in Moby's own on-disk format loaded as is.

use std::fs;

use serde_json::Value;

use super::{context, Fixture};
use crate::testexec::TestExecutor;

/// The name dockerd installed it under.
const NAME: &str = "127.0.0.1:5000/golden/rich:1";
const RICH_CONFIG: &str = include_str!("golden/plugin-config-rich.json");
const RICH_INSPECT: &str = include_str!("golden/engine-plugin-inspect-rich-settings.json");
const RICH_PRIVILEGES: &str = include_str!("golden/engine-plugin-privileges.json");

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[tokio::test]
async fn privileges_and_set_match_dockerd() {
    let f = Fixture::new().await;
    f.m.create_from_context(std::io::Cursor::new(context(RICH_CONFIG, false)), NAME).await.unwrap();
    let privileges = serde_json::to_value(f.m.privileges(NAME).unwrap()).unwrap();
    assert_eq!(privileges, json(RICH_PRIVILEGES));
    // `docker plugin set golden/vol:1 DEBUG=1 state.source=/tmp "args=-x -y" fuse.path=/dev/null`
    let args: Vec<String> = ["DEBUG=1", "state.source=/tmp", "args=-x -y", "fuse.path=/dev/null"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    f.m.set(NAME, &args).await.unwrap();
    let ours = serde_json::to_value(f.m.inspect(NAME).unwrap()).unwrap();
    let theirs = json(RICH_INSPECT);
    assert_eq!(ours["Settings"], theirs["Settings"]);
    assert_eq!(ours["Name"], theirs["Name"]);
    assert_eq!(ours["Enabled"], theirs["Enabled"]);
    // The config as dockerd shows it, but for what differs by construction: the layer
    // digest and the daemon version 20.10 stamped in.
    let strip = |mut v: Value| {
        let c = v["Config"].as_object_mut().unwrap();
        c.remove("rootfs");
        c.remove("DockerVersion");
        v["Config"].clone()
    };
    assert_eq!(strip(ours), strip(theirs));
}

#[tokio::test]
async fn a_record_written_by_dockerd_loads_as_is() {
    let f = Fixture::new().await;
    let theirs = json(RICH_INSPECT);
    let id = theirs["Id"].as_str().unwrap().to_owned();
    let dir = f.root().join(&id);
    fs::create_dir_all(dir.join("rootfs")).unwrap();
    let record = serde_json::json!({
        "plugin": theirs,
        "Rootfs": "/var/lib/docker/plugins/elsewhere/rootfs",
        "Config": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "Blobsums": null,
        "Manifest": "",
        "SwarmServiceID": "",
    });
    fs::write(dir.join("config.json"), serde_json::to_vec(&record).unwrap()).unwrap();
    let m = f.restart(TestExecutor::new()).await;
    let loaded = serde_json::to_value(m.inspect(NAME).unwrap()).unwrap();
    assert_eq!(loaded, json(RICH_INSPECT));
    assert_eq!(m.inspect(&id[..12]).unwrap().id, id);
    // And it runs: enable with a plugin that serves the golden socket name.
    let mut exec = TestExecutor::new();
    exec.socket_name = "harnessvol.sock".into();
    let m = f.restart(exec.clone()).await;
    m.enable(NAME, None).await.unwrap();
    let on_disk: Value =
        serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        on_disk["Rootfs"],
        dir.join("rootfs").to_str().unwrap(),
        "rootfs path reset to this root"
    );
    assert_eq!(on_disk["plugin"]["Enabled"], true);
}
