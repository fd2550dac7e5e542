//! Unit tests of the manager with the test executor.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dockplug_protocol::filters::PluginListFilter;
use dockplug_protocol::PluginPrivilege;
use flate2::write::GzEncoder;

use crate::testexec::TestExecutor;
use crate::*;

pub(crate) const VOLUME_CONFIG: &str = r#"{
  "Description": "test volume plugin",
  "Entrypoint": ["/bin/plugin", "--serve"],
  "WorkDir": "/work",
  "Interface": {"Socket": "plugin.sock", "Types": ["docker.volumedriver/1.0"]},
  "Network": {"Type": "host"},
  "PidHost": true,
  "PropagatedMount": "/data",
  "Env": [{"Name": "DEBUG", "Settable": ["value"], "Value": "0"},
          {"Name": "UNSET", "Settable": ["value"], "Value": null},
          {"Name": "FIXED", "Value": "1"}],
  "Args": {"Name": "args", "Settable": ["value"], "Value": ["-a"]},
  "Mounts": [{"Name": "state", "Destination": "/state", "Source": "/var/lib/x", "Type": "bind",
              "Options": ["rbind"], "Settable": ["source"]},
             {"Name": "shm", "Destination": "/dev/shm", "Source": "/dev/shm", "Type": "bind", "Options": ["rbind"]}],
  "Linux": {"Capabilities": ["CAP_SYS_ADMIN"],
            "Devices": [{"Name": "null", "Path": "/dev/null", "Settable": ["path"]}]}
}"#;

/// A tar (optionally gzipped) build context with `config` and a few rootfs files.
pub(crate) fn context(config: &str, gzip: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, p, std::io::empty()).unwrap();
    };
    dir(&mut b, "rootfs");
    dir(&mut b, "rootfs/bin");
    let file = |b: &mut tar::Builder<Vec<u8>>, p: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, p, data).unwrap();
    };
    file(&mut b, "config.json", config.as_bytes(), 0o644);
    file(&mut b, "rootfs/bin/plugin", b"#!/bin/sh\n", 0o755);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "rootfs/bin/sh", "/bin/plugin").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "rootfs/bin/plugin2", "rootfs/bin/plugin").unwrap();
    dir(&mut b, "ignored");
    let data = b.into_inner().unwrap();
    if gzip {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        gz.finish().unwrap()
    } else {
        data
    }
}

pub(crate) struct Fixture {
    pub tmp: tempfile::TempDir,
    pub exec: TestExecutor,
    pub m: Manager<TestExecutor>,
}

impl Fixture {
    pub(crate) fn config(tmp: &Path) -> ManagerConfig {
        let mut c = ManagerConfig::new(tmp.join("root"), tmp.join("exec"));
        c.start_timeout = Duration::from_secs(5);
        c.stop_timeout = Duration::from_millis(200);
        c.share_propagated_mounts = false;
        c
    }

    pub(crate) async fn new() -> Self {
        let tmp = tempfile::Builder::new().prefix("dpm").tempdir_in("/tmp").unwrap();
        let exec = TestExecutor::new();
        let m = Manager::new(Self::config(tmp.path()), exec.clone()).await.unwrap();
        Self { tmp, exec, m }
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    /// A new manager over the same directories (a restart), with a fresh executor.
    pub(crate) async fn restart(&self, exec: TestExecutor) -> Manager<TestExecutor> {
        Manager::new(Self::config(self.tmp.path()), exec).await.unwrap()
    }

    pub(crate) async fn create(&self, name: &str) -> dockplug_protocol::Plugin {
        self.m
            .create_from_context(std::io::Cursor::new(context(VOLUME_CONFIG, false)), name)
            .await
            .unwrap()
    }
}

fn names(list: &[std::sync::Arc<dockplug_protocol::Plugin>]) -> Vec<&str> {
    list.iter().map(|p| p.name.as_str()).collect()
}

#[tokio::test]
async fn create_lays_out_the_plugin_as_moby_does() {
    let f = Fixture::new().await;
    let p =
        f.m.create_from_context(std::io::Cursor::new(context(VOLUME_CONFIG, true)), "golden/vol:1")
            .await
            .unwrap();
    assert_eq!(p.name, "golden/vol:1");
    assert_eq!(p.id.len(), 64);
    assert!(!p.enabled);
    assert_eq!(p.plugin_reference, "golden/vol:1");
    assert_eq!(p.settings.env(), ["DEBUG=0", "FIXED=1"]);
    assert_eq!(p.settings.args(), ["-a"]);
    let dir = f.root().join(&p.id);
    let rootfs = dir.join("rootfs");
    assert_eq!(fs::read(rootfs.join("bin/plugin")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(fs::read_link(rootfs.join("bin/sh")).unwrap(), Path::new("/bin/plugin"));
    assert_eq!(fs::read(rootfs.join("bin/plugin2")).unwrap(), b"#!/bin/sh\n");
    assert!(!rootfs.join("ignored").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(dir.join("config.json")).unwrap().permissions().mode() & 0o777, 0o600);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    let keys: Vec<&str> = record.as_object().unwrap().keys().map(String::as_str).collect();
    for k in ["plugin", "Rootfs", "Config", "Blobsums", "Manifest", "SwarmServiceID"] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
    // The config blob, the layer (diff_ids holds the compressed digest, as Moby) and the
    // manifest are in the blob store.
    let layer = record["Blobsums"][0].as_str().unwrap();
    assert_eq!(p.config.rootfs.as_ref().unwrap().diff_ids.as_ref().unwrap()[0], layer);
    for d in [layer, record["Config"].as_str().unwrap(), record["Manifest"].as_str().unwrap()] {
        assert!(f.m.blobs().contains(d), "{d}");
    }
    // Nothing left in tmp.
    assert_eq!(fs::read_dir(f.root().join("tmp")).unwrap().count(), 0);
    // Same name again: conflict.
    let err = f
        .m
        .create_from_context(std::io::Cursor::new(context(VOLUME_CONFIG, false)), "golden/vol:1")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "plugin golden/vol:1 already exists");
    assert_eq!(err.http_status(), 409);
    let err =
        f.m.create_from_context(std::io::Cursor::new(context(VOLUME_CONFIG, false)), "Bad")
            .await
            .unwrap_err();
    assert!(matches!(err, ManagerError::InvalidName { .. }));
}

#[tokio::test]
async fn lookups_by_id_prefix_and_name() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    assert_eq!(f.m.inspect("vol").unwrap().id, p.id);
    assert_eq!(f.m.inspect("vol:latest").unwrap().id, p.id);
    assert_eq!(f.m.inspect("docker.io/library/vol:latest").unwrap().id, p.id);
    assert_eq!(f.m.inspect(&p.id).unwrap().id, p.id);
    assert_eq!(f.m.inspect(&p.id[..5]).unwrap().id, p.id);
    let err = f.m.inspect("nonexistent").unwrap_err();
    assert_eq!(err.to_string(), "plugin \"nonexistent\" not found");
    assert_eq!(err.http_status(), 404);
    let missing_id = "f".repeat(64);
    assert!(matches!(f.m.inspect(&missing_id), Err(ManagerError::NotFound { .. })));
    assert!(matches!(
        f.m.inspect("vol@sha256:0000000000000000000000000000000000000000000000000000000000000000"),
        Err(ManagerError::NotFound { .. })
    ));
}

#[tokio::test]
async fn ambiguous_prefix_is_its_own_error() {
    let f = Fixture::new().await;
    let a = f.create("a").await;
    let b = f.create("b").await;
    // Re-home both under IDs sharing a prefix, then reload.
    for (p, id) in [(&a, format!("abc{}", "0".repeat(61))), (&b, format!("abc{}", "1".repeat(61)))]
    {
        let from = f.tmp.path().join("root").join(&p.id);
        let to = f.tmp.path().join("root").join(&id);
        fs::rename(&from, &to).unwrap();
        let path = to.join("config.json");
        let text = fs::read_to_string(&path).unwrap().replace(&p.id, &id);
        fs::write(&path, text).unwrap();
    }
    let m = f.restart(TestExecutor::new()).await;
    let err = m.inspect("abc").unwrap_err();
    assert_eq!(err.to_string(), "multiple plugins found for \"abc\"");
    assert_eq!(err.http_status(), 400);
    assert_eq!(m.inspect("abc0").unwrap().name, "a:latest");
}

#[tokio::test]
async fn enable_disable_remove_with_moby_errors() {
    let f = Fixture::new().await;
    let p = f.create("golden/vol:1").await;
    let (mut events, _cancel) = f.m.subscribe(16, None);
    let enabled = f.m.enable("golden/vol:1", None).await.unwrap();
    assert!(enabled.enabled);
    assert!(f.exec.running(&p.id));
    assert_eq!(f.m.state(&p.id).unwrap(), RunState::Running);
    let err = f.m.enable("golden/vol:1", None).await.unwrap_err();
    assert_eq!(err.to_string(), "plugin already enabled: plugin golden/vol:1 is enabled");
    let err = f.m.remove("golden/vol:1", false).await.unwrap_err();
    assert_eq!(err.to_string(), "plugin golden/vol:1 is enabled");
    let err = f.m.set("golden/vol:1", &["DEBUG=1".into()]).await.unwrap_err();
    assert_eq!(err.to_string(), "cannot set on an active plugin, disable plugin before setting");
    // Persisted enabled.
    let rec: serde_json::Value =
        serde_json::from_slice(&fs::read(f.root().join(&p.id).join("config.json")).unwrap())
            .unwrap();
    assert_eq!(rec["plugin"]["Enabled"], true);
    assert!(rec["Rootfs"].as_str().unwrap().ends_with("/rootfs"));
    // The init layer.
    let rootfs = f.root().join(&p.id).join("rootfs");
    for x in [".dockerenv", "etc/resolv.conf", "etc/hosts", "dev/console", "proc", "dev/shm"] {
        assert!(rootfs.join(x).exists(), "{x}");
    }
    f.m.disable("golden/vol:1", false).await.unwrap();
    assert!(!f.exec.running(&p.id));
    assert_eq!(f.exec.state().signals, vec![(p.id.clone(), Signal::Term)]);
    let err = f.m.disable("golden/vol:1", false).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin is already disabled: plugin golden/vol:1 found but disabled"
    );
    f.m.remove("golden/vol:1", false).await.unwrap();
    assert!(!f.root().join(&p.id).exists());
    assert!(matches!(f.m.inspect("golden/vol:1"), Err(ManagerError::NotFound { .. })));
    let mut seen = Vec::new();
    while let Some(Delivery::Event(e)) = events.try_recv() {
        seen.push(match e {
            Event::Create(_) => "create",
            Event::Enable(_) => "enable",
            Event::Disable(_) => "disable",
            Event::Remove(_) => "remove",
            Event::Crash { .. } => "crash",
            Event::Restart(_) => "restart",
        });
    }
    assert_eq!(seen, ["enable", "disable", "remove"]);
}

#[tokio::test]
async fn create_failed_then_force_remove() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.exec.state().fail_all_creates = true;
    let err = f.m.enable("vol", None).await.unwrap_err();
    assert!(matches!(err, ManagerError::Executor(ExecutorError::Backend { .. })), "{err}");
    assert!(!f.m.inspect("vol").unwrap().enabled);
    f.m.remove("vol", true).await.unwrap();
    assert!(!f.root().join(&p.id).exists());
}

#[tokio::test]
async fn socket_deadline_disables_the_plugin() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.exec.state().no_socket.insert(p.id.clone());
    let err = f.m.enable("vol", Some(Duration::from_millis(100))).await.unwrap_err();
    assert!(matches!(err, ManagerError::SocketTimeout { .. }), "{err}");
    assert!(!f.exec.running(&p.id));
    assert!(!f.m.inspect("vol").unwrap().enabled);
    assert_eq!(f.m.state("vol").unwrap(), RunState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_plugin_that_dies_while_starting_fails_fast_and_is_not_restarted() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.exec.state().exit_on_start.insert(p.id.clone());
    f.exec.state().stderr_on_start.insert(
        p.id.clone(),
        b"starting\nflag provided but not defined: -x\nusage: plugin [flags]".to_vec(),
    );
    let t = tokio::time::Instant::now();
    let err = f.m.enable("vol", Some(Duration::from_secs(60))).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin \"vol:latest\" exited while starting: starting\n\
         flag provided but not defined: -x\nusage: plugin [flags]"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "did not wait for the deadline");
    // The same lines stay readable as the plugin's log.
    let logs = f.m.logs(&p.id).unwrap();
    assert_eq!(logs.len(), 3);
    assert!(logs.iter().all(|l| l.stream == crate::OutputStream::Stderr));
    assert_eq!(logs[2].text, "usage: plugin [flags]");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(f.exec.state().specs.len(), 1, "no restart of a plugin that never started");
    assert_eq!(f.m.state("vol").unwrap(), RunState::Stopped);
    assert!(!f.m.inspect("vol").unwrap().enabled);
}

#[tokio::test(start_paused = true)]
async fn exit_while_starting_waits_a_bounded_time_for_the_output() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.exec.state().exit_on_start.insert(p.id.clone());
    f.exec.state().stderr_on_start.insert(p.id.clone(), b"late words\n".to_vec());
    // Output closed after the exit is reported: the error still has it.
    f.exec.state().close_late = Some(Duration::from_millis(300));
    match f.m.enable("vol", None).await.unwrap_err() {
        ManagerError::ExitedWhileStarting { stderr, .. } => assert_eq!(stderr, "late words"),
        e => panic!("{e}"),
    }
    // Output never closed in time: the error comes after the bound, without it.
    f.exec.state().close_late = Some(Duration::from_secs(30));
    let t = tokio::time::Instant::now();
    let err = f.m.enable("vol", None).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "bounded wait: {:?}", t.elapsed());
    assert_eq!(err.to_string(), "plugin \"vol:latest\" exited while starting");
}

#[tokio::test(start_paused = true)]
async fn crash_and_restart_are_published_to_those_who_ask() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.m.enable("vol", None).await.unwrap();
    let id = p.id.clone();
    let (mut all, _c1) = f.m.subscribe(16, None);
    let moby = vec![
        EventFilter::Create { interfaces: vec![] },
        EventFilter::Enable { id: id.clone() },
        EventFilter::Disable { id: id.clone() },
        EventFilter::Remove { id: id.clone() },
    ];
    let (mut moby, _c2) = f.m.subscribe(16, Some(moby));
    let (mut crashes, _c3) = f.m.subscribe(
        16,
        Some(vec![EventFilter::Crash { id: id.clone() }, EventFilter::Restart { id: id.clone() }]),
    );
    for attempt in 0..2u32 {
        f.exec.crash(&id);
        let delay = RestartPolicy::default().delay(attempt);
        for sub in [&mut all, &mut crashes] {
            match sub.recv().await {
                Some(Delivery::Event(Event::Crash { plugin, exit_code, restart_in })) => {
                    assert_eq!(plugin.id, id);
                    assert_eq!(exit_code, Some(139));
                    assert_eq!(restart_in, Some(delay));
                }
                other => panic!("expected a crash, got {other:?}"),
            }
        }
        let before = tokio::time::Instant::now();
        for sub in [&mut all, &mut crashes] {
            match sub.recv().await {
                Some(Delivery::Event(Event::Restart(plugin))) => {
                    assert_eq!(plugin.id, id);
                    assert!(plugin.enabled);
                }
                other => panic!("expected a restart, got {other:?}"),
            }
        }
        assert!(before.elapsed() >= delay);
        assert_eq!(f.m.state("vol").unwrap(), RunState::Running);
    }
    // Moby's filters see none of it.
    assert_eq!(moby.try_recv(), None);
    // A restart that fails is a crash too, with the next delay of the backoff.
    f.exec.state().fail_all_creates = true;
    f.exec.crash(&id);
    let crash = |sub: Option<Delivery>| match sub {
        Some(Delivery::Event(Event::Crash { exit_code, restart_in, .. })) => {
            (exit_code, restart_in)
        }
        other => panic!("expected a crash, got {other:?}"),
    };
    let policy = RestartPolicy::default();
    assert_eq!(crash(crashes.recv().await), (Some(139), Some(policy.delay(2))));
    assert_eq!(crash(crashes.recv().await), (None, Some(policy.delay(3))));
    assert_eq!(moby.try_recv(), None);
    f.m.disable("vol", true).await.unwrap();
}

#[tokio::test]
async fn unusable_socket_names_fail_at_once() {
    let f = Fixture::new().await;
    for (name, socket) in [("up", "../../x.sock"), ("long", &"s".repeat(100)[..])] {
        let config = VOLUME_CONFIG.replace("plugin.sock", socket);
        f.m.create_from_context(std::io::Cursor::new(context(&config, false)), name).await.unwrap();
        let err = f.m.enable(name, None).await.unwrap_err();
        assert!(matches!(err, ManagerError::InvalidSocket { .. }), "{err}");
        assert!(!f.m.inspect(name).unwrap().enabled);
    }
    assert!(f.exec.state().specs.is_empty(), "nothing was started");
}

#[tokio::test]
async fn force_remove_of_an_enabled_plugin_stops_it() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.m.enable("vol", None).await.unwrap();
    f.m.remove("vol", true).await.unwrap();
    assert!(!f.exec.running(&p.id));
    assert!(!f.root().join(&p.id).exists());
    assert!(!f.tmp.path().join("exec").join(&p.id).exists());
}

#[tokio::test]
async fn set_is_atomic_validated_and_persisted() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.m.set(
        "vol",
        &[
            "DEBUG=1".into(),
            "state.source=/srv".into(),
            "args=-x -y".into(),
            "null.path=/dev/zero".into(),
        ],
    )
    .await
    .unwrap();
    let check = |p: &dockplug_protocol::Plugin| {
        assert_eq!(p.settings.env(), ["DEBUG=1", "FIXED=1"]);
        assert_eq!(p.settings.args(), ["-x", "-y"]);
        assert_eq!(p.config.mounts()[0].source.as_deref(), Some("/srv"));
        assert_eq!(p.settings.mounts()[0].source.as_deref(), Some("/srv"));
        assert_eq!(p.config.devices()[0].path.as_deref(), Some("/dev/zero"));
        assert_eq!(p.settings.devices()[0].path.as_deref(), Some("/dev/zero"));
    };
    check(&f.m.inspect("vol").unwrap());
    // All or nothing: a bad second argument leaves the first unapplied.
    let err = f.m.set("vol", &["DEBUG=2".into(), "NOPE=1".into()]).await.unwrap_err();
    assert_eq!(err.to_string(), "setting \"NOPE\" not found in the plugin configuration");
    let err = f.m.set("vol", &["FIXED=2".into()]).await.unwrap_err();
    assert_eq!(err.to_string(), "\"FIXED\" is not settable");
    let err = f.m.set("vol", &["state.destination=/x".into()]).await.unwrap_err();
    assert_eq!(err.to_string(), "\"state.destination\" is not settable");
    let err = f.m.set("vol", &["=x".into()]).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid format, must be <name>[.<field>][=<value>]");
    check(&f.m.inspect("vol").unwrap());
    // Survives a restart (devices too, unlike Moby).
    let m = f.restart(TestExecutor::new()).await;
    check(&m.inspect(&p.id).unwrap());
}

#[tokio::test]
async fn list_filters() {
    let f = Fixture::new().await;
    f.create("vol").await;
    let net = VOLUME_CONFIG.replace("docker.volumedriver/1.0", "docker.networkdriver/1.0");
    f.m.create_from_context(std::io::Cursor::new(context(&net, false)), "net").await.unwrap();
    let both = VOLUME_CONFIG.replace(
        "\"docker.volumedriver/1.0\"",
        "\"docker.volumedriver/1.0\", \"docker.networkdriver/1.0\"",
    );
    f.m.create_from_context(std::io::Cursor::new(context(&both, false)), "both").await.unwrap();
    f.m.enable("vol", None).await.unwrap();
    assert_eq!(
        names(&f.m.list(&PluginListFilter::all())),
        ["both:latest", "net:latest", "vol:latest"]
    );
    let en = PluginListFilter::parse(r#"{"enabled":{"true":true}}"#).unwrap();
    assert_eq!(names(&f.m.list(&en)), ["vol:latest"]);
    let dis = PluginListFilter::parse(r#"{"enabled":{"0":true}}"#).unwrap();
    assert_eq!(names(&f.m.list(&dis)), ["both:latest", "net:latest"]);
    // Every type must match (golden README): networkdriver does not list "both".
    let cap = PluginListFilter::parse(r#"{"capability":{"networkdriver":true}}"#).unwrap();
    assert_eq!(names(&f.m.list(&cap)), ["net:latest"]);
    let re = PluginListFilter::parse(r#"{"capability":{"volume":true}}"#).unwrap();
    assert_eq!(names(&f.m.list(&re)), ["vol:latest"]);
}

fn privilege(name: &str, values: &[&str]) -> PluginPrivilege {
    PluginPrivilege {
        name: name.into(),
        description: "ignored".into(),
        value: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[tokio::test]
async fn privileges_computed_and_validated() {
    let f = Fixture::new().await;
    f.create("vol").await;
    let got = f.m.privileges("vol").unwrap();
    let names: Vec<_> = got.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["network", "host pid namespace", "mount", "mount", "device", "capabilities"]
    );
    let config = f.m.inspect("vol").unwrap().config;
    Manager::<TestExecutor>::validate_privileges(&config, &got).unwrap();
    assert!(Manager::<TestExecutor>::validate_privileges(&config, &got[1..]).is_err());
}

#[test]
#[allow(clippy::cloned_ref_to_slice_refs)]
fn validate_privileges_cases() {
    use dockplug_protocol::privileges::validate_privileges as v;
    let a = privilege("a", &["x", "y"]);
    let b = privilege("b", &["z"]);
    // Different lengths.
    assert!(v(&[a.clone(), b.clone()], &[a.clone()]).is_err());
    // Different value.
    assert!(v(&[a.clone()], &[privilege("a", &["x", "q"])]).is_err());
    // Same set, different order of names and values.
    assert!(v(&[a.clone(), b.clone()], &[b.clone(), privilege("a", &["y", "x"])]).is_ok());
    // Single equal / different.
    assert!(v(&[b.clone()], &[b.clone()]).is_ok());
    assert!(v(&[b.clone()], &[privilege("c", &["z"])]).is_err());
    // The first sorted element differs (Moby's off-by-one missed this).
    assert!(v(&[privilege("a", &["1"]), b.clone()], &[privilege("a", &["2"]), b.clone()]).is_err());
    // Empty vs empty.
    assert!(v(&[], &[]).is_ok());
    // Duplicate names (several mounts) compare by value too.
    let m1 = privilege("mount", &["/a"]);
    let m2 = privilege("mount", &["/b"]);
    assert!(v(&[m1.clone(), m2.clone()], &[m2.clone(), m1.clone()]).is_ok());
}

#[tokio::test]
async fn capability_lookup_and_refcounts_survive_restart() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    // Disabled: error, count untouched.
    let err = f.m.get("vol", "VolumeDriver", LookupMode::Acquire).unwrap_err();
    assert_eq!(err.to_string(), "plugin vol:latest found but disabled");
    f.m.enable("vol", None).await.unwrap();
    // Wrong capability (FilterByCap negative): error, count untouched.
    let err = f.m.get("vol", "foobar", LookupMode::Acquire).unwrap_err();
    assert_eq!(err.to_string(), "plugin does not provide \"foobar\" capability");
    let refs = || f.m.store().resolve("vol").unwrap().refcount();
    assert_eq!(refs(), 0, "failed lookups leave the count alone");
    let r = f.m.get("vol", "VolumeDriver", LookupMode::Acquire).unwrap();
    assert_eq!(r.socket, f.tmp.path().join("exec").join(&p.id).join("plugin.sock"));
    assert_eq!(r.scoped_path("/data/v1"), f.root().join(&p.id).join("propagated-mount/v1"));
    assert_eq!(r.scoped_path("/other"), f.root().join(&p.id).join("rootfs/other"));
    f.m.get("vol", "volumedriver", LookupMode::Acquire).unwrap();
    assert_eq!(f.m.get_all_by_capability("volumedriver").len(), 1);
    let err = f.m.disable("vol", false).await.unwrap_err();
    assert_eq!(err.to_string(), "plugin vol:latest is in use");
    let err = f.m.remove("vol", false).await.unwrap_err();
    assert_eq!(err.to_string(), "plugin vol:latest is in use");
    // The count survives a restart.
    let exec = TestExecutor::new();
    let m = f.restart(exec.clone()).await;
    assert!(matches!(m.disable("vol", false).await, Err(ManagerError::InUse { .. })));
    m.get("vol", "volumedriver", LookupMode::Release).unwrap();
    m.get("vol", "volumedriver", LookupMode::Release).unwrap();
    m.disable("vol", false).await.unwrap();
}

#[tokio::test]
async fn handlers_and_spec_opts_apply_to_existing_plugins() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.m.enable("vol", None).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    f.m.handle("VolumeDriver", move |r| s2.lock().unwrap().push(r.name.clone()));
    assert_eq!(*seen.lock().unwrap(), ["vol:latest"]);
    f.m.handle("networkdriver", |_| panic!("not a network plugin"));
    f.m.register_runtime_opt("volumedriver", |spec| {
        let mut env = spec.process().as_ref().unwrap().env().clone().unwrap_or_default();
        env.push("FROM_OPT=1".into());
        spec.process_mut().as_mut().unwrap().set_env(Some(env));
    });
    f.m.disable("vol", false).await.unwrap();
    f.m.enable("vol", None).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), ["vol:latest", "vol:latest"]);
    let st = f.exec.state();
    let (id, spec) = st.specs.last().unwrap();
    assert_eq!(id, &p.id);
    assert!(spec
        .process()
        .as_ref()
        .unwrap()
        .env()
        .as_ref()
        .unwrap()
        .contains(&"FROM_OPT=1".to_owned()));
}

#[tokio::test]
async fn runtime_spec_follows_init_spec() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.m.set("vol", &["DEBUG=1".into()]).await.unwrap();
    f.m.enable("vol", None).await.unwrap();
    let spec = f.exec.state().specs.last().unwrap().1.clone();
    let json = serde_json::to_value(&spec).unwrap();
    let dir = f.root().join(&p.id);
    assert_eq!(json["root"]["path"], dir.join("rootfs").to_str().unwrap());
    let process = &json["process"];
    assert_eq!(process["args"], serde_json::json!(["/bin/plugin", "--serve", "-a"]));
    assert_eq!(process["cwd"], "/work");
    assert_eq!(
        process["env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "DEBUG=1",
            "FIXED=1"
        ])
    );
    assert!(process["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .contains(&"CAP_SYS_ADMIN".into()));
    assert_eq!(process["capabilities"]["inheritable"], serde_json::json!(["CAP_SYS_ADMIN"]));
    let dests: Vec<&str> = json["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    // Default mounts (the plugin's /dev/shm replaces the default one), the propagated mount,
    // the config mounts, the socket dir, then the host files for a host network.
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/mqueue",
            "/data",
            "/state",
            "/dev/shm",
            "/run/docker/plugins",
            "/etc/hosts",
            "/etc/resolv.conf"
        ]
    );
    let socket_mount = &json["mounts"][9];
    assert_eq!(socket_mount["source"], f.tmp.path().join("exec").join(&p.id).to_str().unwrap());
    assert_eq!(socket_mount["options"], serde_json::json!(["rbind", "rshared"]));
    assert_eq!(json["mounts"][6]["source"], dir.join("propagated-mount").to_str().unwrap());
    assert_eq!(json["linux"]["rootfsPropagation"], "rshared");
    let ns: Vec<&str> = json["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["mount", "uts", "ipc"]);
    let devices = json["linux"]["devices"].as_array().unwrap();
    assert_eq!(devices[0]["path"], "/dev/null");
    assert_eq!((devices[0]["major"].as_i64(), devices[0]["minor"].as_i64()), (Some(1), Some(3)));
}

#[tokio::test(start_paused = true)]
async fn crashed_plugin_restarts_with_backoff_and_shows_its_state() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.m.enable("vol", None).await.unwrap();
    assert_eq!(RestartPolicy::default().delay(0), Duration::from_millis(100));
    assert_eq!(RestartPolicy::default().delay(3), Duration::from_millis(800));
    assert_eq!(RestartPolicy::default().delay(40), Duration::from_secs(60));
    for attempt in 1..=3u32 {
        let creates = f.exec.state().specs.len();
        f.exec.crash(&p.id);
        wait_until(|| f.m.state("vol").unwrap() == RunState::Restarting { attempt }).await;
        // Dead is shown as dead.
        assert!(!f.m.inspect("vol").unwrap().enabled);
        let before = tokio::time::Instant::now();
        wait_until(|| f.m.state("vol").unwrap() == RunState::Running).await;
        assert!(before.elapsed() >= RestartPolicy::default().delay(attempt - 1));
        assert_eq!(f.exec.state().specs.len(), creates + 1);
        assert!(f.m.inspect("vol").unwrap().enabled);
    }
    // A disable during the backoff cancels the restart.
    f.exec.crash(&p.id);
    wait_until(|| matches!(f.m.state("vol").unwrap(), RunState::Restarting { .. })).await;
    f.m.disable("vol", false).await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(!f.exec.running(&p.id));
    assert_eq!(f.m.state("vol").unwrap(), RunState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn failed_restarts_keep_backing_off_until_the_policy_gives_up() {
    let tmp = tempfile::Builder::new().prefix("dpm").tempdir_in("/tmp").unwrap();
    let mut config = Fixture::config(tmp.path());
    config.restart.max_attempts = Some(3);
    let exec = TestExecutor::new();
    let m = Manager::new(config, exec.clone()).await.unwrap();
    let p = m
        .create_from_context(std::io::Cursor::new(context(VOLUME_CONFIG, false)), "vol")
        .await
        .unwrap();
    m.enable("vol", None).await.unwrap();
    exec.state().fail_all_creates = true;
    exec.crash(&p.id);
    wait_until(|| exec.state().specs.len() == 4 && m.state("vol").unwrap() == RunState::Stopped)
        .await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(exec.state().specs.len(), 4, "three restarts, then it gave up");
    // Dead is shown as dead, but it is still meant to run: it comes back at the next start
    // or on an explicit enable.
    assert!(!m.inspect("vol").unwrap().enabled);
    let on_disk: serde_json::Value = serde_json::from_slice(
        &fs::read(tmp.path().join("root").join(&p.id).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk["plugin"]["Enabled"], true);
    exec.state().fail_all_creates = false;
    m.enable("vol", None).await.unwrap();
    assert_eq!(m.state("vol").unwrap(), RunState::Running);
}

/// Waits (in tokio time) for `cond`, at most 10 minutes of it.
async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..60_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(start_paused = true)]
async fn shutdown_terms_then_kills() {
    let f = Fixture::new().await;
    let a = f.create("a").await;
    let b = f.create("b").await;
    f.m.enable("a", None).await.unwrap();
    f.m.enable("b", None).await.unwrap();
    f.exec.state().ignore_term.insert(b.id.clone());
    f.m.shutdown().await;
    assert!(!f.exec.running(&a.id) && !f.exec.running(&b.id));
    let signals = f.exec.state().signals.clone();
    assert!(signals.contains(&(a.id.clone(), Signal::Term)));
    assert!(!signals.contains(&(a.id.clone(), Signal::Kill)));
    assert!(signals.contains(&(b.id.clone(), Signal::Kill)));
    // Still enabled on disk: they come back at the next start.
    let exec = TestExecutor::new();
    let m = f.restart(exec.clone()).await;
    assert!(exec.running(&a.id) && exec.running(&b.id));
    assert!(m.inspect("a").unwrap().enabled);
    assert!(matches!(
        m.enable("a", None).await,
        Err(ManagerError::ShuttingDown) | Err(ManagerError::AlreadyEnabled { .. })
    ));
}

#[tokio::test]
async fn plugin_already_running_on_startup() {
    for live_restore in [false, true] {
        let f = Fixture::new().await;
        let p = f.create("vol").await;
        f.m.enable("vol", None).await.unwrap();
        let exec = TestExecutor::new();
        exec.state().alive_on_restore.insert(p.id.clone());
        // The old process still serves the socket (the first executor's task).
        let mut config = Fixture::config(f.tmp.path());
        config.live_restore = live_restore;
        if !live_restore {
            exec.pretend_running(&p.id);
        }
        let m = Manager::new(config, exec.clone()).await.unwrap();
        assert_eq!(exec.state().restores, vec![p.id.clone()]);
        assert_eq!(m.state("vol").unwrap(), RunState::Running, "live_restore={live_restore}");
        assert!(m.get("vol", "volumedriver", LookupMode::Lookup).is_ok());
        let creates = exec.state().specs.len();
        if live_restore {
            assert_eq!(creates, 0, "re-attached, not restarted");
        } else {
            assert_eq!(creates, 1, "stopped and started again");
            assert!(exec.state().signals.contains(&(p.id.clone(), Signal::Term)));
        }
    }
}

#[tokio::test]
async fn broken_entries_are_set_aside_and_never_stop_the_others() {
    let f = Fixture::new().await;
    let good = f.create("good").await;
    let root = f.root();
    let garbage = "a".repeat(64);
    fs::create_dir_all(root.join(&garbage).join("rootfs")).unwrap();
    fs::write(root.join(&garbage).join("config.json"), b"{not json").unwrap();
    let empty = "b".repeat(64);
    fs::create_dir_all(root.join(&empty)).unwrap();
    let mismatch = "c".repeat(64);
    fs::create_dir_all(root.join(&mismatch).join("rootfs")).unwrap();
    fs::copy(root.join(&good.id).join("config.json"), root.join(&mismatch).join("config.json"))
        .unwrap();
    let removing = format!("{}-removing", "d".repeat(64));
    fs::create_dir_all(root.join(&removing).join("x")).unwrap();
    fs::write(root.join(&good.id).join(".tmp-config.json123"), b"half").unwrap();
    fs::create_dir_all(root.join("tmp/.rootfs123/x")).unwrap();
    let m = f.restart(TestExecutor::new()).await;
    assert_eq!(names(&m.list(&PluginListFilter::all())), ["good:latest"]);
    assert!(!root.join(&removing).exists());
    assert!(!root.join("tmp/.rootfs123").exists());
    let mut set_aside: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-broken-"))
        .map(|n| n[..1].to_owned())
        .collect();
    set_aside.sort();
    assert_eq!(set_aside, ["a", "b", "c"]);
    // A second start loads the same.
    drop(m);
    let m = f.restart(TestExecutor::new()).await;
    assert_eq!(names(&m.list(&PluginListFilter::all())), ["good:latest"]);
}

#[tokio::test]
async fn gc_deletes_only_unreferenced_blobs() {
    let f = Fixture::new().await;
    f.create("a").await;
    let other = VOLUME_CONFIG.replace("test volume plugin", "another");
    f.m.create_from_context(std::io::Cursor::new(context(&other, false)), "b").await.unwrap();
    let before = f.m.blobs().list().unwrap().len();
    let stray = f.m.blobs().put(b"unreferenced").unwrap();
    let deleted = f.m.gc().await.unwrap();
    assert_eq!(deleted, vec![stray]);
    f.m.remove("b", false).await.unwrap();
    f.m.gc().await.unwrap();
    let after = f.m.blobs().list().unwrap().len();
    // The layer is shared (same rootfs); b's config and manifest are gone.
    assert_eq!(after, before - 2);
    for d in f.m.blobs().list().unwrap() {
        assert!(!f.m.blobs().get(&d).unwrap().is_empty());
    }
}

#[tokio::test]
async fn events_filters_through_the_manager() {
    let f = Fixture::new().await;
    let (mut creates, _c) = f
        .m
        .subscribe(4, Some(vec![EventFilter::Create { interfaces: vec!["volumedriver".into()] }]));
    let (mut nets, _c2) = f
        .m
        .subscribe(4, Some(vec![EventFilter::Create { interfaces: vec!["networkdriver".into()] }]));
    let p = f.create("vol").await;
    let (mut removal, cancel) =
        f.m.subscribe(1, Some(vec![EventFilter::Remove { id: p.id.clone() }]));
    assert!(
        matches!(creates.recv().await, Some(Delivery::Event(Event::Create(c))) if c.id == p.id)
    );
    assert_eq!(nets.try_recv(), None);
    f.m.enable("vol", None).await.unwrap();
    f.m.remove("vol", true).await.unwrap();
    assert!(
        matches!(removal.recv().await, Some(Delivery::Event(Event::Remove(c))) if c.id == p.id)
    );
    cancel.cancel();
    assert_eq!(removal.recv().await, None);
}

#[tokio::test]
async fn restore_migrates_propagated_mount_data_out_of_the_rootfs() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    let dir = f.root().join(&p.id);
    // A fresh plugin has its propagated-mount dir, and restore leaves its rootfs alone.
    assert!(dir.join("propagated-mount").is_dir());
    fs::create_dir_all(dir.join("rootfs/data")).unwrap();
    let _m = f.restart(TestExecutor::new()).await;
    assert!(dir.join("rootfs/data").is_dir());
    // An old layout: the data is in the rootfs, there is no propagated-mount dir.
    fs::remove_dir(dir.join("propagated-mount")).unwrap();
    fs::create_dir_all(dir.join("rootfs/data/volumes")).unwrap();
    fs::write(dir.join("rootfs/data/volumes/v1"), b"kept").unwrap();
    let _m = f.restart(TestExecutor::new()).await;
    assert_eq!(fs::read(dir.join("propagated-mount/volumes/v1")).unwrap(), b"kept");
    assert!(!dir.join("rootfs/data").exists());
}

#[tokio::test]
async fn install_checks_granted_privileges_for_pull() {
    let f = Fixture::new().await;
    let staging = f.root().join("tmp/.rootfs-test");
    let extracted = crate::context::extract(
        std::io::Cursor::new(context(VOLUME_CONFIG, false)),
        &staging,
        f.m.blobs(),
    )
    .unwrap();
    let config = dockplug_protocol::PluginConfig::from_slice(&extracted.config).unwrap();
    let required = config.privileges();
    let request = |granted| crate::manager::Install {
        name: "pulled:latest",
        rootfs: &staging,
        config: config.clone(),
        config_digest: String::new(),
        blobsums: vec![extracted.layer_digest.clone()],
        manifest_digest: String::new(),
        plugin_reference: "docker.io/library/pulled:latest".into(),
        granted,
        env: Vec::new(),
        swarm_service_id: String::new(),
    };
    let err = f.m.install(request(Some(&required[1..]))).unwrap_err();
    assert_eq!(err.to_string(), "incorrect privileges");
    assert!(staging.is_dir(), "a refused install leaves the caller's staging alone");
    let p = f.m.install(request(Some(&required))).unwrap();
    assert_eq!(p.plugin_reference, "docker.io/library/pulled:latest");
    assert!(f.root().join(&p.id).join("rootfs/bin/plugin").is_file());
}

#[tokio::test]
async fn daemon_events_carry_the_name_as_given() {
    let f = Fixture::new().await;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l2 = log.clone();
    f.m.on_daemon_event(move |e| {
        l2.lock().unwrap().push(format!("{} {} {}", e.action, &e.id[..4], e.name))
    });
    let p = f.create("vol").await;
    let short = &p.id[..4];
    f.m.set("vol", &["DEBUG=1".into()]).await.unwrap();
    f.m.enable(short, None).await.unwrap();
    f.m.disable("vol:latest", false).await.unwrap();
    f.m.remove("docker.io/library/vol", false).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            format!("create {short} vol:latest"),
            format!("enable {short} {short}"),
            format!("disable {short} vol:latest"),
            format!("remove {short} docker.io/library/vol"),
        ]
    );
}

#[tokio::test]
async fn concurrent_operations_on_one_plugin_stay_consistent() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    let m = &f.m;
    for round in 0..5 {
        let args = [format!("DEBUG={round}")];
        let (a, b, c, d) = tokio::join!(
            m.enable("vol", None),
            m.disable("vol", false),
            m.set("vol", &args),
            m.enable(&p.id, None),
        );
        // Each either succeeded or failed with a state error; never anything else.
        for r in [a.map(|_| ()), b.map(|_| ()), c, d.map(|_| ())] {
            if let Err(e) = r {
                assert!(
                    matches!(
                        e,
                        ManagerError::AlreadyEnabled { .. }
                            | ManagerError::AlreadyDisabled { .. }
                            | ManagerError::Set(SetError::Active)
                    ),
                    "{e}"
                );
            }
        }
        let enabled = m.inspect("vol").unwrap().enabled;
        assert_eq!(enabled, f.exec.running(&p.id));
    }
    let args = ["DEBUG=x".to_owned()];
    let (r1, r2, e, s, d) = tokio::join!(
        m.remove("vol", true),
        m.remove("vol", true),
        m.enable("vol", None),
        m.set("vol", &args),
        m.disable("vol", true),
    );
    assert!(r1.is_ok() != r2.is_ok(), "exactly one remove wins");
    for r in [r1, r2, e.map(|_| ()), s, d.map(|_| ())] {
        if let Err(e) = r {
            assert!(
                matches!(
                    e,
                    ManagerError::NotFound { .. }
                        | ManagerError::AlreadyEnabled { .. }
                        | ManagerError::AlreadyDisabled { .. }
                        | ManagerError::Set(SetError::Active)
                ),
                "{e}"
            );
        }
    }
    assert!(!f.exec.running(&p.id));
    assert!(!f.root().join(&p.id).exists());
    let m = f.restart(TestExecutor::new()).await;
    assert!(m.list(&PluginListFilter::all()).is_empty());
}

use crate::executor::{ExecutorError, Signal};
use crate::settable::SetError;

mod crash;
mod enable;
mod golden;
mod malicious;
mod mounts;
mod restore;
mod state;
