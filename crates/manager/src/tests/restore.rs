//! Restore: what a daemon registers before the manager opens reaches the plugins it restores.

use std::sync::{Arc, Mutex};

use super::Fixture;
use crate::testexec::TestExecutor;
use crate::{Manager, RunState};

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
