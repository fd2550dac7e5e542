//! bollard (unix socket transport only, no TLS stack) calls every plugin method it has
//! against dockplugd on a private containerd.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    CreatePluginOptionsBuilder, DisablePluginOptionsBuilder, EnablePluginOptionsBuilder,
    ListPluginsOptionsBuilder, RemovePluginOptionsBuilder,
};
use bollard::Docker;
use dockplug_testkit::Containerd;

use super::dockplugd::Dockplugd;
use super::localvol_dir;

/// A client on `d`'s socket, at the API version dockplugd advertises.
pub async fn client(d: &Dockplugd) -> Docker {
    let docker = Docker::connect_with_unix(d.host.as_str(), 60, bollard::API_DEFAULT_VERSION)
        .expect("bollard client");
    docker.negotiate_version().await.expect("negotiate the API version")
}

/// The plugin directory as a build context: a tar (gzip-compressed if `gzip`).
pub fn context(dir: &Path, gzip: bool) -> Vec<u8> {
    let flags = if gzip { "-czf" } else { "-cf" };
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args([flags, "-", "config.json", "rootfs"])
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The status and message of a daemon error.
pub fn server_error<T: std::fmt::Debug>(result: Result<T, BollardError>) -> (u16, String) {
    match result {
        Err(BollardError::DockerResponseServerError { status_code, message }) => {
            (status_code, message)
        }
        other => panic!("expected an error from the daemon, got {other:?}"),
    }
}

fn filters(key: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(key.to_owned(), vec![value.to_owned()])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bollard_drives_every_local_plugin_method() {
    let containerd = Containerd::start().expect("containerd");
    let d = Dockplugd::start(&containerd);
    let plugin_dir = localvol_dir(d.dir.path());
    let docker = client(&d).await;
    let version = docker.version().await.expect("version");
    assert!(version.api_version.is_some(), "{version:?}");

    // create (a plain tar, then a gzip-compressed one under another name).
    let create = |name: &str| CreatePluginOptionsBuilder::new().name(name).build();
    docker
        .create_plugin(create("bl"), bollard::body_full(context(&plugin_dir, false).into()))
        .await
        .expect("create from a tar");
    docker
        .create_plugin(create("blz:v1"), bollard::body_full(context(&plugin_dir, true).into()))
        .await
        .expect("create from a tar.gz");
    let (status, message) = server_error(
        docker
            .create_plugin(create("bl"), bollard::body_full(context(&plugin_dir, false).into()))
            .await,
    );
    assert_eq!((status, message.as_str()), (409, "plugin bl:latest already exists"));

    // list, with filters in the legacy list form bollard sends.
    let all = docker.list_plugins(None).await.expect("list");
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["bl:latest", "blz:v1"]);
    let list = |k: &str, v: &str| {
        let options = ListPluginsOptionsBuilder::new().filters(&filters(k, v)).build();
        docker.list_plugins(Some(options))
    };
    assert_eq!(list("capability", "volumedriver").await.expect("list").len(), 2);
    assert!(list("capability", "authz").await.expect("list").is_empty());
    assert!(list("enabled", "true").await.expect("list").is_empty());
    let (status, message) = server_error(list("color", "red").await);
    assert_eq!((status, message.as_str()), (400, "invalid filter 'color'"));

    // inspect.
    let bl = docker.inspect_plugin("bl").await.expect("inspect");
    let id = bl.id.clone().expect("an ID");
    assert_eq!(bl.name, "bl:latest");
    assert!(!bl.enabled);
    assert_eq!(bl.config.interface.socket, "localvol.sock");
    assert_eq!(bl.config.description, "localvol: local-directory volumes, built on dockplug-sdk");
    assert_eq!(docker.inspect_plugin(&id[..6]).await.expect("by prefix").name, "bl:latest");
    let (status, message) = server_error(docker.inspect_plugin("nope").await);
    assert_eq!((status, message.as_str()), (404, "plugin \"nope\" not found"));

    // set.
    docker.set_plugin_config("bl", vec!["LOCALVOL_LOG=debug".into()]).await.expect("set");
    let env = docker.inspect_plugin("bl").await.expect("inspect").settings.env;
    assert_eq!(env, ["LOCALVOL_LOG=debug"]);
    let (status, message) =
        server_error(docker.set_plugin_config("bl", vec!["NOPE=1".into()]).await);
    assert_eq!(
        (status, message.as_str()),
        (500, "setting \"NOPE\" not found in the plugin configuration")
    );

    // enable with timeout 0 (the default start deadline), enable again, set refused.
    let enable = |t: i32| EnablePluginOptionsBuilder::new().timeout(t).build();
    docker.enable_plugin("bl", Some(enable(0))).await.expect("enable with timeout 0");
    assert!(docker.inspect_plugin("bl").await.expect("inspect").enabled);
    assert_eq!(list("enabled", "true").await.expect("list").len(), 1);
    let (status, message) = server_error(docker.enable_plugin("bl", Some(enable(10))).await);
    assert_eq!(
        (status, message.as_str()),
        (409, "plugin already enabled: plugin bl:latest is enabled")
    );
    let (status, message) =
        server_error(docker.set_plugin_config("bl", vec!["LOCALVOL_LOG=info".into()]).await);
    assert_eq!(
        (status, message.as_str()),
        (500, "cannot set on an active plugin, disable plugin before setting")
    );

    // remove refused while enabled; disable (force), disable again.
    let remove = |force: bool| RemovePluginOptionsBuilder::new().force(force).build();
    let (status, message) = server_error(docker.remove_plugin("bl", Some(remove(false))).await);
    assert_eq!((status, message.as_str()), (409, "plugin bl:latest is enabled"));
    let disable = |force: bool| DisablePluginOptionsBuilder::new().force(force).build();
    docker.disable_plugin("bl", Some(disable(true))).await.expect("disable -f");
    let (status, message) = server_error(docker.disable_plugin("bl", Some(disable(false))).await);
    assert_eq!(
        (status, message.as_str()),
        (409, "plugin is already disabled: plugin bl:latest found but disabled")
    );

    // remove: Moby replies 200 with an empty body, which bollard (it expects a Plugin object)
    // reports as a decoding error at the end of input; the plugin is gone either way.
    for name in ["bl", "blz:v1"] {
        docker.enable_plugin(name, Some(enable(30))).await.expect("enable");
        match docker.remove_plugin(name, Some(remove(true))).await {
            Ok(_) => {}
            Err(BollardError::JsonSerdeError { err }) if err.is_eof() => {}
            Err(e) => panic!("remove {name}: {e}"),
        }
    }
    assert!(docker.list_plugins(None).await.expect("list").is_empty());
    let (status, _) = server_error(docker.remove_plugin("bl", Some(remove(true))).await);
    assert_eq!(status, 404);
    assert!(
        dockplug_testkit::wait_until(Duration::from_secs(10), || {
            std::fs::read_dir(d.data_root.join("plugins"))
                .map(|it| {
                    it.flatten().all(|e| !e.file_name().to_string_lossy().starts_with(&id[..12]))
                })
                .unwrap_or(true)
        }),
        "the removed plugin's directory is gone"
    );
}
