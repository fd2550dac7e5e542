//! Supervision: crashes, the restart backoff and the policy giving up.

use super::*;

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
