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
    for step in [
        "create:after_mkdir",
        "create:after_rename",
        "write_atomic:before_rename",
        "create:after_commit",
    ] {
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
        // After the final rename the plugin is whole: it may appear, unacknowledged.
        let committed = step == "create:after_commit";
        let want: &[&str] =
            if committed { &["good:latest", "victim:latest"] } else { &["good:latest"] };
        assert_eq!(names(&m.list(&PluginListFilter::all())), want, "{step}");
        assert_no_debris(&f.root(), step);
        if !committed {
            // The name is free again.
            m.create_from_context(
                std::io::Cursor::new(super::context(VOLUME_CONFIG, false)),
                "victim",
            )
            .await
            .unwrap();
        }
        let m = f.restart(TestExecutor::new()).await;
        assert_eq!(
            names(&m.list(&PluginListFilter::all())),
            ["good:latest", "victim:latest"],
            "{step}"
        );
    }
}

/// Nothing half-made is left: no staging dir, no partial blob, no half-removed or set-aside
/// plugin directory.
fn assert_no_debris(root: &std::path::Path, step: &str) {
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0, "{step}: tmp");
    assert_eq!(
        std::fs::read_dir(root.join("storage/ingest")).unwrap().count(),
        0,
        "{step}: ingest"
    );
    let on_disk: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        on_disk.iter().all(|n| !n.ends_with("-removing") && !n.contains("-broken-")),
        "{step}: {on_disk:?}"
    );
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

/// The test runs itself again as a child process that aborts (SIGABRT: no cleanup, no
/// destructors) at one step of create, set or remove; the parent then loads the store.
/// One function plays both roles, so no helper test passes vacuously.
#[tokio::test]
async fn process_killed_at_each_step_leaves_a_loadable_store() {
    const ROLE: &str = "DOCKPLUG_MANAGER_CRASH_CHILD";
    if let Ok(spec) = std::env::var(ROLE) {
        // Child: "<op> <root dir>".
        let (op, dir) = spec.split_once(' ').unwrap();
        let m =
            crate::Manager::new(Fixture::config(std::path::Path::new(dir)), TestExecutor::new())
                .await
                .unwrap();
        match op {
            "create" => {
                let _ = m
                    .create_from_context(
                        std::io::Cursor::new(super::context(VOLUME_CONFIG, true)),
                        "victim",
                    )
                    .await;
            }
            "set" => {
                let _ = m.set("vol", &["DEBUG=2".into()]).await;
            }
            "remove" => {
                let _ = m.remove("gone", false).await;
            }
            _ => unreachable!(),
        }
        // Reaching here means the step never ran: the parent fails on the clean exit.
        return;
    }
    let steps = [
        ("create", "extract:file"),
        ("create", "blob:before_commit"),
        ("create", "create:after_mkdir"),
        ("create", "create:after_rename"),
        ("create", "write_atomic:before_rename"),
        ("create", "create:after_commit"),
        ("set", "write_atomic:before_rename"),
        ("remove", "atomic_remove:after_rename"),
    ];
    let exe = std::env::current_exe().unwrap();
    for (op, step) in steps {
        let f = Fixture::new().await;
        f.create("good").await;
        f.create("vol").await;
        f.create("gone").await;
        f.m.set("vol", &["DEBUG=1".into()]).await.unwrap();
        let status = std::process::Command::new(&exe)
            .args([
                "--exact",
                "tests::crash::process_killed_at_each_step_leaves_a_loadable_store",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, format!("{op} {}", f.tmp.path().display()))
            .env(failpoint::ABORT_AT, step)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(6),
            "{op} at {step}: the child did not die at the step ({status})"
        );
        let m = f.restart(TestExecutor::new()).await;
        let listed = m.list(&PluginListFilter::all());
        let committed = step == "create:after_commit";
        let mut expect = vec!["good:latest", "vol:latest"];
        if op != "remove" {
            expect.push("gone:latest");
        }
        if committed {
            expect.push("victim:latest");
        }
        expect.sort();
        assert_eq!(names(&listed), expect, "{op} at {step}");
        assert_eq!(
            m.inspect("vol").unwrap().settings.env(),
            ["DEBUG=1", "FIXED=1"],
            "{op} at {step}"
        );
        assert_no_debris(&f.root(), step);
        // The interrupted operation can be done again.
        match op {
            "create" if !committed => {
                m.create_from_context(
                    std::io::Cursor::new(super::context(VOLUME_CONFIG, false)),
                    "victim",
                )
                .await
                .unwrap();
            }
            "create" => {}
            "set" => m.set("vol", &["DEBUG=2".into()]).await.unwrap(),
            _ => assert!(m.inspect("gone").is_err()),
        }
    }
}

/// `upgrade` swaps the rootfs with two renames (`rootfs` to `rootfs-old`, the staged tree to
/// `rootfs`); a crash between them leaves only `rootfs-old`. The plugin was acknowledged
/// before the upgrade began, so it must load with its old tree, not be set aside as broken.
#[tokio::test]
async fn crash_between_the_upgrade_renames_keeps_the_plugin() {
    let f = Fixture::new().await;
    let up = f.create("up").await;
    let dir = f.root().join(&up.id);
    let marker = std::fs::read_dir(dir.join("rootfs")).unwrap().count();
    std::fs::rename(dir.join("rootfs"), dir.join("rootfs-old")).unwrap();
    let m = f.restart(TestExecutor::new()).await;
    assert_eq!(names(&m.list(&PluginListFilter::all())), ["up:latest"]);
    assert_eq!(std::fs::read_dir(dir.join("rootfs")).unwrap().count(), marker);
    assert!(!dir.join("rootfs-old").exists());
    assert_no_debris(&f.root(), "upgrade:between_renames");
}
