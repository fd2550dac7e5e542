//! `docker volume create/ls/inspect/rm` against dockplugd on the packaged localvol (v2, on a
//! private containerd) and on two v1 plugins (one found by its socket in `--socket-dir`,
//! one by a spec file in `--spec-dir`); `docker plugin disable` of a driver with volumes
//! fails with Moby's text and works once they are gone; the store outlives a restart
//! without counting its references twice.

use dockplug_sdk::Plugin;
use dockplug_testkit::Containerd;
use serde_json::Value;

use super::{daemon_error, lines, under, MemDriver, V1Plugins};
use crate::daemon::dockplugd::Dockplugd;
use crate::daemon::{cli_version, localvol_dir};

fn inspect(d: &Dockplugd, name: &str) -> Value {
    let out = d.docker_ok(&["volume", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

#[test]
fn volumes_on_v2_and_v1_drivers_through_the_docker_cli() {
    let containerd = Containerd::start().expect("containerd");
    let mut v1 = V1Plugins::new();
    let by_socket = MemDriver { root: v1.path("sockvol-data"), ..MemDriver::default() };
    let by_spec = MemDriver { root: v1.path("specvol-data"), ..MemDriver::default() };
    v1.serve_socket("sockvol", Plugin::builder().volume(by_socket.clone()).build());
    v1.serve_spec("specvol", Plugin::builder().volume(by_spec.clone()).build());
    let mut args = vec![
        "--containerd".into(),
        containerd.socket.clone().into(),
        "--containerd-plugins-namespace".into(),
        containerd.namespace.clone().into(),
    ];
    args.extend(v1.args());
    let mut d = Dockplugd::start_with(&args);
    let version = cli_version(&d);
    eprintln!("docker CLI {version} against dockplugd");
    assert!(version.starts_with("20.10"), "Debian's docker CLI is 20.10, got {version}");

    let plugin_dir = localvol_dir(d.dir.path());
    d.docker_ok(&["plugin", "create", "localvol", plugin_dir.to_str().unwrap()]);
    d.docker_ok(&["plugin", "enable", "localvol"]);
    let id = d.docker_ok(&["plugin", "inspect", "-f", "{{.Id}}", "localvol"]).trim().to_owned();

    // Create on each driver.
    assert_eq!(
        d.docker_ok(&["volume", "create", "-d", "localvol", "--label", "k=v", "v2vol"]),
        "v2vol\n"
    );
    assert_eq!(d.docker_ok(&["volume", "create", "-d", "sockvol", "-o", "size=1", "a1"]), "a1\n");
    assert_eq!(d.docker_ok(&["volume", "create", "--driver", "specvol", "a2"]), "a2\n");
    assert!(by_socket.volumes.lock().unwrap().contains_key("a1"));
    assert!(by_spec.volumes.lock().unwrap().contains_key("a2"));

    // ls: all three, each with its driver.
    let ls = d.docker_ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    let mut rows = lines(&ls);
    rows.sort_unstable();
    assert_eq!(rows, ["localvol:latest v2vol", "sockvol a1", "specvol a2"], "{ls}");
    let q = d.docker_ok(&["volume", "ls", "-q", "--filter", "driver=sockvol"]);
    assert_eq!(lines(&q), ["a1"]);
    let q = d.docker_ok(&["volume", "ls", "-q", "--filter", "label=k=v"]);
    assert_eq!(lines(&q), ["v2vol"]);

    // inspect: dockerd's shape; a v2 mount point on the host, under the plugin's
    // propagated mount.
    let v = inspect(&d, "v2vol");
    assert_eq!(v["Name"], "v2vol");
    assert_eq!(v["Driver"], "localvol:latest");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["k"], "v");
    assert_eq!(v["Options"], serde_json::json!({}));
    let mp = v["Mountpoint"].as_str().unwrap();
    let propagated = d.data_root.join("plugins").join(&id).join("propagated-mount");
    assert!(under(mp, &propagated), "{mp} not under {}", propagated.display());
    assert!(std::path::Path::new(mp).is_dir(), "localvol made {mp}");
    let v = inspect(&d, "a1");
    assert_eq!(v["Driver"], "sockvol");
    assert_eq!(v["Options"]["size"], "1");
    assert_eq!(v["Mountpoint"], v1.path("sockvol-data/a1").display().to_string());
    assert_eq!(inspect(&d, "a2")["Driver"], "specvol");
    let err = d.docker_err(&["volume", "inspect", "nope"]);
    assert!(err.contains("No such volume: nope"), "{err}");
    let raw = d.request("GET", "/v1.41/volumes/nope", b"");
    assert_eq!(raw.status, 404);
    assert_eq!(raw.text(), "{\"message\":\"get nope: no such volume\"}\n");

    // A name taken on another driver; a driver that does not exist.
    daemon_error(
        &d.docker_err(&["volume", "create", "-d", "sockvol", "v2vol"]),
        "create v2vol: driver 'localvol:latest' already has volume 'v2vol': volume name must be unique",
    );
    daemon_error(
        &d.docker_err(&["volume", "create", "-d", "nowhere", "x"]),
        "create x: error looking up volume plugin nowhere: plugin \"nowhere\" not found",
    );

    // The v2 driver has a volume: it cannot be disabled.
    daemon_error(
        &d.docker_err(&["plugin", "disable", "localvol"]),
        "plugin localvol:latest is in use",
    );

    // /info lists the drivers of both kinds.
    let info = d.docker_ok(&["info", "--format", "{{json .Plugins.Volume}}"]);
    let vols: Vec<String> = serde_json::from_str(info.trim()).unwrap();
    for name in ["localvol:latest", "sockvol", "specvol"] {
        assert!(vols.iter().any(|v| v == name), "{name} missing from {vols:?}");
    }

    // A restart keeps the volumes and does not count the reference twice: one rm frees it.
    d.restart();
    let ls = d.docker_ok(&["volume", "ls", "-q"]);
    assert_eq!(lines(&ls).len(), 3, "{ls}");
    assert_eq!(inspect(&d, "v2vol")["Labels"]["k"], "v");
    d.docker_ok(&["volume", "rm", "v2vol", "a1"]);
    d.docker_ok(&["volume", "rm", "a2"]);
    assert!(by_socket.volumes.lock().unwrap().is_empty());
    assert!(lines(&d.docker_ok(&["volume", "ls", "-q"])).is_empty());
    let err = d.docker_err(&["volume", "rm", "v2vol"]);
    assert!(err.contains("No such volume: v2vol"), "{err}");
    let raw = d.request("DELETE", "/v1.41/volumes/v2vol", b"");
    assert_eq!(
        (raw.status, raw.text()),
        (404, "{\"message\":\"get v2vol: no such volume\"}\n".to_owned())
    );
    d.docker_ok(&["volume", "rm", "-f", "v2vol"]);
    d.docker_ok(&["plugin", "disable", "localvol"]);
    // Disabled: its volumes can no longer be created.
    daemon_error(
        &d.docker_err(&["volume", "create", "-d", "localvol", "late"]),
        "create late: error looking up volume plugin localvol: plugin localvol",
    );
    assert!(
        d.docker_err(&["volume", "create", "-d", "localvol", "late"])
            .contains("found but disabled"),
        "a disabled driver is refused as disabled",
    );
    d.docker_ok(&["plugin", "rm", "localvol"]);
}
