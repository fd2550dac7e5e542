//! The volume routes of dockplugd answer as dockerd's do: the same v1 plugin (an SDK volume
//! driver served from this process) behind a private dockerd (found through a uniquely
//! named spec file in `/etc/docker/plugins`, the one place dockerd 20.10 looks) and behind
//! dockplugd (the same spec file in a `--spec-dir` of its own), the same Engine API requests
//! to both, the replies compared byte for byte.

use std::path::Path;

use dockplug_sdk::{Plugin, SpecFile, UnixListen};
use dockplug_testkit::Containerd;

use super::MemDriver;
use crate::daemon::dockplugd::Dockplugd;
use crate::support::dockerd::Dockerd;

/// Where dockerd 20.10 reads v1 spec files.
const DOCKERD_SPEC_DIR: &str = "/etc/docker/plugins";

/// The requests, in order: (method, path, JSON body).
fn sequence(driver: &str) -> Vec<(&'static str, String, String)> {
    let create = format!(
        r#"{{"Name":"pv","Driver":"{driver}","DriverOpts":{{"a":"b"}},"Labels":{{"l":"1"}}}}"#
    );
    let filter = format!("/v1.41/volumes?filters=%7B%22driver%22%3A%5B%22{driver}%22%5D%7D");
    vec![
        ("POST", "/v1.41/volumes/create".to_owned(), create.clone()),
        ("POST", "/v1.41/volumes/create".to_owned(), create),
        ("GET", "/v1.41/volumes/pv".to_owned(), String::new()),
        ("GET", "/v1.41/volumes".to_owned(), String::new()),
        ("GET", filter, String::new()),
        ("GET", "/v1.41/volumes/nope".to_owned(), String::new()),
        ("DELETE", "/v1.41/volumes/pv".to_owned(), String::new()),
        ("DELETE", "/v1.41/volumes/pv".to_owned(), String::new()),
        ("DELETE", "/v1.41/volumes/pv?force=1".to_owned(), String::new()),
    ]
}

/// Removes the spec file when the test ends, however it ends.
struct SpecGuard(std::path::PathBuf);

impl Drop for SpecGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn volume_replies_are_dockerds_for_the_same_v1_plugin() {
    let name = format!("dockplug-itpar-{}", std::process::id());
    let dir = tempfile::Builder::new().prefix("par").tempdir_in("/tmp").unwrap();
    let own_specs = dir.path().join("specs");
    std::fs::create_dir_all(&own_specs).unwrap();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let driver = MemDriver { root: dir.path().join("data"), ..MemDriver::default() };
    let socket = dir.path().join("pv.sock");
    let listen = UnixListen::new(&socket).spec_file(SpecFile::new(DOCKERD_SPEC_DIR, name.as_str()));
    let server =
        rt.block_on(Plugin::builder().volume(driver.clone()).build().bind_unix(listen)).unwrap();
    let _spec = SpecGuard(Path::new(DOCKERD_SPEC_DIR).join(format!("{name}.spec")));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    std::fs::write(own_specs.join(format!("{name}.spec")), format!("unix://{}", socket.display()))
        .unwrap();

    let dockerd = Dockerd::start(&dir.path().join("dockerd"));
    let containerd = Containerd::start().expect("containerd");
    let d = Dockplugd::start_with(&[
        "--containerd".into(),
        containerd.socket.clone().into(),
        "--containerd-plugins-namespace".into(),
        containerd.namespace.clone().into(),
        "--spec-dir".into(),
        own_specs.clone().into(),
        "--socket-dir".into(),
        dir.path().join("no-sockets").into(),
    ]);

    // Each daemon runs the whole sequence against the same driver, dockerd first; the
    // driver is empty again after each.
    let theirs: Vec<_> = sequence(&name)
        .into_iter()
        .map(|(method, path, body)| {
            let r = dockerd.request(method, &path, body.as_bytes(), "application/json").unwrap();
            (r.status, r.text())
        })
        .collect();
    assert!(driver.volumes.lock().unwrap().is_empty());
    for ((method, path, body), theirs) in sequence(&name).into_iter().zip(theirs) {
        let ours = d.request(method, &path, body.as_bytes());
        assert_eq!(
            (ours.status, ours.text()),
            theirs,
            "{method} {path}: dockplugd (left) and dockerd (right) differ"
        );
    }
    assert!(driver.volumes.lock().unwrap().is_empty());
    let _ = stop.send(());
}
