//! The lifecycle of one plugin: enable, disable, remove, set, the runtime spec, and the
//! deadlines of start and stop.

use super::*;

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

/// `docker plugin install` enables with `timeout=0` (Moby's `client/plugin_install.go
/// PluginInstall` sends `PluginEnableOptions{Timeout: 0}`, and the `enablePlugin` route of
/// `api/server/router/plugin/plugin_routes.go` passes it on). Moby's socket wait in
/// `plugin/manager_linux.go pluginPostStart` does not depend on it, so zero must mean the
/// default start deadline, never "give up at once".
#[tokio::test(start_paused = true)]
async fn enable_with_a_zero_timeout_waits_the_default_deadline() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    // The plugin listens a little after it starts, as a real one does.
    f.exec.state().socket_after = Some(Duration::from_millis(300));
    let t = tokio::time::Instant::now();
    let enabled = f.m.enable("vol", Some(Duration::ZERO)).await.unwrap();
    assert!(enabled.enabled);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(f.m.state(&p.id).unwrap(), RunState::Running);
    // Zero is "no timeout given": the plugin's client timeout is the default one.
    let plugin = f.m.get("vol", "volumedriver", LookupMode::Lookup).unwrap();
    assert_eq!(plugin.timeout, None);
}
