//! The docker CLI (Debian's 20.10, [`DOCKER_CLI`](super::dockplugd::DOCKER_CLI)) drives
//! dockplugd on a private containerd: every `docker plugin` subcommand with the packaged
//! localvol, each failure with Moby's text, and `docker events --filter type=plugin`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dockplug_testkit::http::{self, Request};
use dockplug_testkit::Containerd;

use super::dockplugd::Dockplugd;
use super::{cli_version, localvol_dir, small_plugin_dir};

/// `Error response from daemon: <text>` as the CLI prints a daemon error.
fn daemon_error(stderr: &str, text: &str) {
    assert!(
        stderr.contains(&format!("Error response from daemon: {text}")),
        "expected the daemon's error {text:?}, the CLI printed: {stderr}"
    );
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_empty()).collect()
}

/// Whether the enabled plugin `id` answers `Plugin.Activate` on its socket.
fn plugin_answers(d: &Dockplugd, id: &str) -> bool {
    let socket = d.exec_root.join("plugins").join(id).join("localvol.sock");
    let req = Request { method: "POST", path: "/Plugin.Activate", headers: &[], body: b"" };
    http::unix(&socket, &req, Duration::from_secs(5))
        .is_ok_and(|r| r.status == 200 && r.text().contains("VolumeDriver"))
}

#[test]
fn every_plugin_subcommand_with_mobys_texts() {
    let containerd = Containerd::start().expect("containerd");
    let d = Dockplugd::start(&containerd);
    let plugin_dir = localvol_dir(d.dir.path());
    let dir = plugin_dir.to_str().unwrap();
    let version = cli_version(&d);
    eprintln!("docker CLI {version} against dockplugd");
    assert!(version.starts_with("20.10"), "Debian's docker CLI is 20.10, got {version}");

    // create, and create again.
    assert_eq!(d.docker_ok(&["plugin", "create", "localvol", dir]), "localvol\n");
    let small = small_plugin_dir(d.dir.path(), &plugin_dir);
    daemon_error(
        &d.docker_err(&["plugin", "create", "localvol", small.to_str().unwrap()]),
        "plugin localvol:latest already exists",
    );

    // ls: the table, -q, --no-trunc, --format, --filter.
    let table = d.docker_ok(&["plugin", "ls"]);
    let rows = lines(&table);
    assert_eq!(rows.len(), 2, "{table}");
    for column in ["ID", "NAME", "DESCRIPTION", "ENABLED"] {
        assert!(rows[0].contains(column), "{table}");
    }
    assert!(rows[1].contains("localvol:latest") && rows[1].ends_with("false"), "{table}");
    assert!(rows[1].contains('…'), "the description is cut at 45 characters: {table}");
    let short = d.docker_ok(&["plugin", "ls", "-q"]);
    let short = short.trim();
    assert_eq!(short.len(), 12, "{short}");
    let id = d.docker_ok(&["plugin", "ls", "-q", "--no-trunc"]).trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.starts_with(short));
    let full = d.docker_ok(&["plugin", "ls", "--no-trunc"]);
    assert!(full.contains(&id) && full.contains("built on dockplug-sdk"), "{full}");
    assert_eq!(
        d.docker_ok(&["plugin", "ls", "--format", "{{.Name}} {{.Enabled}} {{.PluginReference}}"]),
        "localvol:latest false localvol:latest\n"
    );
    let q = |filter: &str| d.docker_ok(&["plugin", "ls", "-q", "--filter", filter]);
    assert_eq!(q("enabled=false").trim(), short);
    assert_eq!(q("enabled=true").trim(), "");
    assert_eq!(q("capability=volumedriver").trim(), short);
    assert_eq!(q("capability=authz").trim(), "");
    daemon_error(
        &d.docker_err(&["plugin", "ls", "--filter", "color=red"]),
        "invalid filter 'color'",
    );

    // inspect by name, name:latest, ID, a unique ID prefix; -f.
    for reference in ["localvol", "localvol:latest", id.as_str(), &id[..5]] {
        let json = d.docker_ok(&["plugin", "inspect", reference]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["Id"], id.as_str(), "inspect {reference}");
        assert_eq!(v[0]["Name"], "localvol:latest", "inspect {reference}");
        assert_eq!(v[0]["Enabled"], false);
        assert_eq!(v[0]["Config"]["Interface"]["Socket"], "localvol.sock");
    }
    assert_eq!(d.docker_ok(&["plugin", "inspect", "-f", "{{.Id}}", "localvol"]).trim(), id);
    let err = d.docker_err(&["plugin", "inspect", "nope"]);
    assert!(err.contains("Error: No such plugin: nope"), "{err}");

    // set while disabled, then read it back.
    assert_eq!(d.docker_ok(&["plugin", "set", "localvol", "LOCALVOL_LOG=debug"]), "");
    assert_eq!(
        d.docker_ok(&["plugin", "inspect", "-f", "{{.Settings.Env}}", "localvol"]).trim(),
        "[LOCALVOL_LOG=debug]"
    );

    // enable --timeout; the plugin really serves; enable again; set and rm refused.
    assert_eq!(d.docker_ok(&["plugin", "enable", "--timeout", "30", "localvol"]), "localvol\n");
    assert!(plugin_answers(&d, &id), "the enabled plugin answers on its socket");
    assert_eq!(q("enabled=true").trim(), short);
    daemon_error(
        &d.docker_err(&["plugin", "enable", "localvol"]),
        "plugin already enabled: plugin localvol:latest is enabled",
    );
    daemon_error(
        &d.docker_err(&["plugin", "set", "localvol", "LOCALVOL_LOG=info"]),
        "cannot set on an active plugin, disable plugin before setting",
    );
    daemon_error(&d.docker_err(&["plugin", "rm", "localvol"]), "plugin localvol:latest is enabled");

    // disable, disable again, disable -f of a running plugin.
    assert_eq!(d.docker_ok(&["plugin", "disable", "localvol"]), "localvol\n");
    assert!(!plugin_answers(&d, &id));
    daemon_error(
        &d.docker_err(&["plugin", "disable", "localvol"]),
        "plugin is already disabled: plugin localvol:latest found but disabled",
    );
    d.docker_ok(&["plugin", "enable", &id[..7]]);
    assert_eq!(d.docker_ok(&["plugin", "disable", "-f", "localvol:latest"]), "localvol:latest\n");

    // Not found, for each verb that takes a name (rm and inspect: the client's own text
    // for a 404).
    for args in [
        &["plugin", "enable", "nope"][..],
        &["plugin", "disable", "nope"],
        &["plugin", "set", "nope", "A=1"],
    ] {
        daemon_error(&d.docker_err(args), "plugin \"nope\" not found");
    }
    let err = d.docker_err(&["plugin", "rm", "nope"]);
    assert!(err.contains("Error: No such plugin: nope"), "{err}");

    // rm, and rm -f of an enabled plugin.
    assert_eq!(d.docker_ok(&["plugin", "rm", "localvol"]), "localvol\n");
    assert_eq!(d.docker_ok(&["plugin", "ls", "-q"]), "");
    d.docker_ok(&["plugin", "create", "localvol", dir]);
    d.docker_ok(&["plugin", "enable", "localvol"]);
    assert_eq!(d.docker_ok(&["plugin", "rm", "-f", "localvol"]), "localvol\n");
    assert_eq!(d.docker_ok(&["plugin", "ls", "-q"]), "");
    assert!(
        !d.data_root.join("plugins").join(&id).exists(),
        "the removed plugin's directory is gone"
    );
}

#[test]
fn docker_events_shows_plugin_events() {
    let containerd = Containerd::start().expect("containerd");
    let d = Dockplugd::start(&containerd);
    let plugin_dir = localvol_dir(d.dir.path());
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
    d.docker_ok(&["plugin", "create", "evplug", plugin_dir.to_str().unwrap()]);
    d.docker_ok(&["plugin", "enable", "evplug"]);
    d.docker_ok(&["plugin", "disable", "evplug:latest"]);
    d.docker_ok(&["plugin", "rm", "evplug"]);
    let until = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 1).to_string();
    let format = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
    let events = d.docker_ok(&[
        "events",
        "--filter",
        "type=plugin",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        format,
    ]);
    assert_eq!(
        lines(&events),
        [
            "plugin create evplug:latest",
            "plugin enable evplug",
            "plugin disable evplug:latest",
            "plugin remove evplug",
        ],
        "{events}"
    );
    // Another type filter sees none of them.
    let none = d.docker_ok(&[
        "events",
        "--filter",
        "type=container",
        "--since",
        &since,
        "--until",
        &until,
    ]);
    assert_eq!(none.trim(), "");
    // The event's actor is the plugin ID.
    let ids = d.docker_ok(&[
        "events",
        "--filter",
        "type=plugin",
        "--filter",
        "event=create",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{.Actor.ID}}",
    ]);
    assert_eq!(ids.trim().len(), 64, "{ids}");
}
