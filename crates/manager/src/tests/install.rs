//! Install: create from a build context, the install step pull shares, and blob GC.

use super::*;

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
