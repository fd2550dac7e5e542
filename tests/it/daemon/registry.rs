//! The docker CLI pushes to and installs from a private registry (Debian's docker-registry,
//! distribution 2.8, on loopback) through dockplugd: push, install (with
//! `--grant-all-permissions`, `--disable`, `--alias`, KEY=VALUE arguments), the failures
//! with Moby's texts, and the same through bollard.

use bollard::models::PluginPrivilege;
use bollard::query_parameters::{GetPluginPrivilegesOptionsBuilder, InstallPluginOptionsBuilder};
use dockplug_testkit::{Containerd, Registry};
use futures_util::StreamExt as _;

use super::bollard_client::{client, server_error};
use super::dockplugd::Dockplugd;
use super::localvol_dir;

fn start() -> (Containerd, Registry, Dockplugd) {
    let containerd = Containerd::start().expect("containerd");
    let registry = Registry::plain().expect("registry");
    let d = Dockplugd::start_with(&[
        "--containerd".into(),
        containerd.socket.clone().into(),
        "--containerd-plugins-namespace".into(),
        containerd.namespace.clone().into(),
        "--insecure-registry".into(),
        registry.host().into(),
    ]);
    (containerd, registry, d)
}

#[test]
fn push_then_install_back_with_every_install_flag() {
    let (_containerd, registry, d) = start();
    let plugin_dir = localvol_dir(d.dir.path());
    let remote = format!("{}/dockplug/localvol", registry.host());
    let tagged = format!("{remote}:latest");

    d.docker_ok(&["plugin", "create", &remote, plugin_dir.to_str().unwrap()]);
    let pushed = d.docker_ok(&["plugin", "push", &remote]);
    assert!(pushed.contains(&format!("The push refers to repository [{remote}]")), "{pushed}");
    assert!(pushed.contains("latest: digest: sha256:"), "{pushed}");
    assert_eq!(d.docker_ok(&["plugin", "rm", &remote]), format!("{remote}\n"));

    // install: privileges granted, pulled, enabled.
    let installed = d.docker_ok(&["plugin", "install", "--grant-all-permissions", &remote]);
    assert!(installed.contains(&format!("Installed plugin {remote}")), "{installed}");
    let state = d.docker_ok(&[
        "plugin",
        "inspect",
        "-f",
        "{{.Name}} {{.Enabled}} {{.PluginReference}}",
        &remote,
    ]);
    assert_eq!(state.trim(), format!("{tagged} true {tagged}"));
    daemon_error_contains(
        &d.docker_err(&["plugin", "install", "--grant-all-permissions", &remote]),
        &format!("plugin {tagged} already exists"),
    );
    // upgrade: refused by the CLI while enabled; then to a second version, same ID.
    let err = d.docker_err(&["plugin", "upgrade", "--grant-all-permissions", &remote]);
    assert!(err.contains("disabled before upgrading"), "{err}");
    let next = format!("{remote}:v2");
    let v2 = second_version(&plugin_dir, &d.dir.path().join("v2"));
    d.docker_ok(&["plugin", "create", &next, v2.to_str().unwrap()]);
    d.docker_ok(&["plugin", "push", &next]);
    d.docker_ok(&["plugin", "rm", &next]);
    let id = d.docker_ok(&["plugin", "inspect", "-f", "{{.Id}}", &remote]);
    d.docker_ok(&["plugin", "disable", &remote]);
    let out = d.docker_ok(&[
        "plugin",
        "upgrade",
        "--grant-all-permissions",
        "--skip-remote-check",
        &remote,
        &next,
    ]);
    assert!(out.contains("Upgraded plugin"), "{out}");
    let after = d.docker_ok(&[
        "plugin",
        "inspect",
        "-f",
        "{{.Id}} {{.PluginReference}} {{.Config.Description}}",
        &remote,
    ]);
    assert_eq!(after.trim(), format!("{} {next} localvol, second version", id.trim()));
    d.docker_ok(&["plugin", "enable", &remote]);

    // install --disable --alias with a setting.
    let out = d.docker_ok(&[
        "plugin",
        "install",
        "--grant-all-permissions",
        "--disable",
        "--alias",
        "lv2",
        &remote,
        "LOCALVOL_LOG=debug",
    ]);
    assert!(out.contains("Installed plugin"), "{out}");
    let state = d.docker_ok(&[
        "plugin",
        "inspect",
        "-f",
        "{{.Enabled}} {{.Settings.Env}} {{.PluginReference}}",
        "lv2",
    ]);
    assert_eq!(state.trim(), format!("false [LOCALVOL_LOG=debug] {tagged}"));
    d.docker_ok(&["plugin", "enable", "lv2"]);
    d.docker_ok(&["plugin", "rm", "-f", "lv2"]);
    d.docker_ok(&["plugin", "rm", "-f", &remote]);

    // A tag the registry does not have: nothing is left behind.
    let missing = format!("{remote}:nope");
    let err = d.docker_err(&["plugin", "install", "--grant-all-permissions", &missing]);
    assert!(err.contains("Error response from daemon"), "{err}");
    assert_eq!(d.docker_ok(&["plugin", "ls", "-q"]), "");
}

/// The plugin directory with another description: a second version to upgrade to.
fn second_version(plugin_dir: &std::path::Path, out: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(out).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(plugin_dir.join("rootfs"))
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plugin_dir.join("config.json")).unwrap()).unwrap();
    config["Description"] = "localvol, second version".into();
    std::fs::write(out.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    out.to_owned()
}

fn daemon_error_contains(stderr: &str, text: &str) {
    assert!(stderr.contains(&format!("Error response from daemon: {text}")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bollard_push_privileges_and_install() {
    let (_containerd, registry, d) = start();
    let plugin_dir = localvol_dir(d.dir.path());
    let remote = format!("{}/dockplug/bl", registry.host());
    let docker = client(&d).await;

    docker
        .create_plugin(
            bollard::query_parameters::CreatePluginOptionsBuilder::new().name(&remote).build(),
            bollard::body_full(super::bollard_client::context(&plugin_dir, false).into()),
        )
        .await
        .expect("create");
    // bollard's push_plugin returns at the reply headers and drops the progress stream;
    // closing the connection cancels the push (dockerd's request context ends the same
    // way). The accepted request is all it shows; the docker CLI then pushes for real.
    docker.push_plugin(&format!("{remote}:latest"), None).await.expect("push accepted");
    let pushed = d.docker_ok(&["plugin", "push", &remote]);
    assert!(pushed.contains("latest: digest: sha256:"), "{pushed}");

    let privileges = docker
        .get_plugin_privileges(GetPluginPrivilegesOptionsBuilder::new().remote(&remote).build())
        .await
        .expect("privileges");
    // localvol asks for nothing beyond a propagated mount, as `docker plugin install` shows.
    let asked: Vec<&str> = privileges.iter().filter_map(|p| p.name.as_deref()).collect();
    assert!(!asked.contains(&"network"), "{privileges:?}");

    let options = InstallPluginOptionsBuilder::new().remote(&remote).name("blinst:latest").build();
    let granted: Vec<PluginPrivilege> = privileges.clone();
    let mut stream = docker.install_plugin(options, granted, None);
    let mut messages = 0;
    while let Some(item) = stream.next().await {
        item.expect("install progress");
        messages += 1;
    }
    assert!(messages > 0, "a progress stream");
    let installed = docker.inspect_plugin("blinst").await.expect("inspect");
    assert!(!installed.enabled, "pull installs disabled; the client enables");
    assert_eq!(installed.plugin_reference.as_deref(), Some(format!("{remote}:latest").as_str()));

    // upgrade_plugin, like push_plugin, returns at the reply headers and drops the stream:
    // the request is accepted, and whether or not the upgrade got to finish the plugin keeps
    // its ID and stays disabled.
    let id = installed.id.clone().expect("an ID");
    let upgrade =
        bollard::query_parameters::UpgradePluginOptionsBuilder::new().remote(&remote).build();
    docker
        .upgrade_plugin("blinst:latest", upgrade, privileges.clone(), None)
        .await
        .expect("upgrade accepted");
    let after = docker.inspect_plugin("blinst").await.expect("inspect");
    assert_eq!((after.id.as_deref(), after.enabled), (Some(id.as_str()), false));

    let options = InstallPluginOptionsBuilder::new().remote(&remote).name("blinst:latest").build();
    let mut stream = docker.install_plugin(options, privileges, None);
    let mut failed = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            failed = Some(e);
            break;
        }
    }
    let (status, message) = server_error::<()>(Err(failed.expect("a second install fails")));
    assert_eq!((status, message.as_str()), (409, "plugin blinst:latest already exists"));
}
