//! Crash consistency: a failpoint stops create, set or remove at a step as a crash would (no
//! cleanup runs), then a new manager loads the same directories. The store must load, every
//! acknowledged plugin must be intact, and debris must not block reuse of the name.
//!
//! This simulates the crash in-process (the step's cleanup is skipped); it does not kill a
//! real process between two system calls.

use dockplug_protocol::filters::PluginListFilter;

use super::{names, Fixture, VOLUME_CONFIG};
use crate::failpoint;
use crate::testexec::TestExecutor;

#[tokio::test]
async fn crash_during_create_loses_nothing_acknowledged() {
    for step in ["create:after_mkdir", "create:after_rename", "write_atomic:before_rename"] {
        let f = Fixture::new().await;
        f.create("good").await;
        failpoint::arm(step, &f.root());
        let err =
            f.m.create_from_context(
                std::io::Cursor::new(super::context(VOLUME_CONFIG, false)),
                "victim",
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("create") || err.to_string().contains("write"),
            "{step}: {err}"
        );
        failpoint::disarm(&f.root());
        let m = f.restart(TestExecutor::new()).await;
        assert_eq!(names(&m.list(&PluginListFilter::all())), ["good:latest"], "{step}");
        // The name is free again.
        m.create_from_context(std::io::Cursor::new(super::context(VOLUME_CONFIG, false)), "victim")
            .await
            .unwrap();
        drop(m);
        let m = f.restart(TestExecutor::new()).await;
        assert_eq!(
            names(&m.list(&PluginListFilter::all())),
            ["good:latest", "victim:latest"],
            "{step}"
        );
    }
}

#[tokio::test]
async fn crash_during_set_keeps_the_old_settings() {
    let f = Fixture::new().await;
    f.create("vol").await;
    f.m.set("vol", &["DEBUG=1".into()]).await.unwrap();
    failpoint::arm("write_atomic:before_rename", &f.root());
    assert!(f.m.set("vol", &["DEBUG=2".into()]).await.is_err());
    // Not acknowledged, so not applied in memory either.
    assert_eq!(f.m.inspect("vol").unwrap().settings.env(), ["DEBUG=1", "FIXED=1"]);
    failpoint::disarm(&f.root());
    let m = f.restart(TestExecutor::new()).await;
    assert_eq!(m.inspect("vol").unwrap().settings.env(), ["DEBUG=1", "FIXED=1"]);
}

#[tokio::test]
async fn crash_during_remove_finishes_at_next_start() {
    let f = Fixture::new().await;
    let keep = f.create("keep").await;
    let gone = f.create("gone").await;
    failpoint::arm("atomic_remove:after_rename", &f.root());
    assert!(f.m.remove("gone", false).await.is_err());
    failpoint::disarm(&f.root());
    assert!(f.root().join(format!("{}-removing", gone.id)).exists());
    let m = f.restart(TestExecutor::new()).await;
    assert_eq!(names(&m.list(&PluginListFilter::all())), ["keep:latest"]);
    assert!(!f.root().join(format!("{}-removing", gone.id)).exists());
    assert!(f.root().join(&keep.id).join("rootfs").is_dir());
}
