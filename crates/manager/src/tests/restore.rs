//! Restore: plugins that were enabled come back (re-attached or started again), broken entries
//! never stop the others, and what a daemon registers on the builder reaches them.

use std::sync::{Arc, Mutex};

use super::*;

/// Whether `spec` carries `FROM_OPT=1` in its process environment.
fn has_opt(spec: &oci_spec::runtime::Spec) -> bool {
    let env = spec.process().as_ref().and_then(|p| p.env().clone()).unwrap_or_default();
    env.iter().any(|e| e == "FROM_OPT=1")
}

/// Before, runtime options and handlers could only be registered on an open manager, and
/// `Manager::new` had already started the restored plugins without them.
#[tokio::test]
async fn handlers_and_runtime_opts_on_the_builder_reach_restored_plugins() {
    for live_restore in [false, true] {
        let f = Fixture::new().await;
        let p = f.create("vol").await;
        f.m.enable("vol", None).await.unwrap();
        let exec = TestExecutor::new();
        if live_restore {
            // Still running from before; the first executor's task serves its socket.
            exec.state().alive_on_restore.insert(p.id.clone());
        }
        let mut config = Fixture::config(f.tmp.path());
        config.live_restore = live_restore;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let m = Manager::builder(config, exec.clone())
            .register_runtime_opt("volumedriver", |spec| {
                let process = spec.process_mut().as_mut().unwrap();
                let mut env = process.env().clone().unwrap_or_default();
                env.push("FROM_OPT=1".into());
                process.set_env(Some(env));
            })
            .handle("VolumeDriver", move |r| s2.lock().unwrap().push(r.name.clone()))
            .handle("NetworkDriver", |_| panic!("not a network plugin"))
            .build()
            .await
            .unwrap();
        assert_eq!(m.state("vol").unwrap(), RunState::Running, "live_restore={live_restore}");
        assert_eq!(*seen.lock().unwrap(), ["vol:latest"], "live_restore={live_restore}");
        let specs = exec.state().specs.clone();
        if live_restore {
            assert!(specs.is_empty(), "re-attached, not started again");
        } else {
            assert_eq!(specs.len(), 1);
            assert_eq!(specs[0].0, p.id);
            assert!(has_opt(&specs[0].1), "the restored plugin's spec lacks the option");
        }
        // Later starts get them too.
        m.disable("vol", false).await.unwrap();
        m.enable("vol", None).await.unwrap();
        assert!(has_opt(&exec.state().specs.last().unwrap().1));
        assert_eq!(seen.lock().unwrap().len(), 2);
        m.shutdown().await;
    }
}

/// The daemon-event sink given to the builder sees the first operation.
#[tokio::test]
async fn the_builder_sets_the_daemon_event_sink() {
    let tmp = tempfile::Builder::new().prefix("dpm").tempdir_in("/tmp").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let m = Manager::builder(Fixture::config(tmp.path()), TestExecutor::new())
        .on_daemon_event(move |e| s2.lock().unwrap().push((e.action, e.name.to_owned())))
        .build()
        .await
        .unwrap();
    m.create_from_context(std::io::Cursor::new(super::context(super::VOLUME_CONFIG, false)), "vol")
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [("create", "vol:latest".to_owned())]);
}

/// A start that fails at restore (a task the killed daemon left half torn down) is tried
/// again; before, the plugin stayed shown enabled and never ran.
#[tokio::test]
async fn a_start_that_fails_at_restore_is_tried_again() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    f.m.enable("vol", None).await.unwrap();
    let exec = TestExecutor::new();
    exec.state().fail_next_creates = 2;
    let m = Manager::new(Fixture::config(f.tmp.path()), exec.clone()).await.unwrap();
    assert_eq!(m.state("vol").unwrap(), RunState::Running);
    let specs = exec.state().specs.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    assert_eq!(specs, vec![p.id.clone(); 3], "two failed starts, then one that ran");
    m.shutdown().await;
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
