//! Queries and registrations: lookups, list filters, privileges, capability lookups,
//! handlers and spec options, events.

use super::*;

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
