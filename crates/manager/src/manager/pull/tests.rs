//! Pull, remote privileges and push against a fake [`Distribution`] (an in-memory registry).

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Mutex;

use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::progress::{JsonMessage, PushResult};
use dockplug_protocol::reference::Reference;
use dockplug_protocol::registry::{Descriptor, ImageManifest};
use dockplug_protocol::{PluginConfig, PluginPrivilege};
use sha2::Digest as _;

use super::PullOptions;
use crate::blobs::BlobStore;
use crate::distribution::{
    Distribution, Progress, PushRequest, RemoteError, RemoteErrorKind, Resolved,
};
use crate::tests::{Fixture, VOLUME_CONFIG};

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", crate::fsutil::hex(&sha2::Sha256::digest(data)))
}

#[derive(Debug, thiserror::Error)]
#[error("fake registry: {0}")]
struct FakeError(String);

/// One push: reference, manifest bytes, blob digests, mount source.
type Pushed = (String, Vec<u8>, Vec<String>, Option<String>);

/// An in-memory registry: manifests by full reference, blobs by digest.
#[derive(Default)]
struct FakeRegistry {
    manifests: Mutex<HashMap<String, Vec<u8>>>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    fetched: Mutex<Vec<String>>,
    pushed: Mutex<Vec<Pushed>>,
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(d.len() as u64);
        b.append_data(&mut h, p, *d).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

impl FakeRegistry {
    /// Publishes a plugin with `config` and `layer` at `reference`.
    fn publish(&self, reference: &str, config: &str, layer: Vec<u8>) -> String {
        let c = config.as_bytes().to_vec();
        let m = ImageManifest::plugin(
            Descriptor::plugin_config(sha(&c), c.len() as i64),
            vec![Descriptor::gzip_layer(sha(&layer), layer.len() as i64)],
        )
        .to_bytes()
        .unwrap();
        let digest = sha(&m);
        self.blobs.lock().unwrap().insert(sha(&c), c);
        self.blobs.lock().unwrap().insert(sha(&layer), layer);
        self.manifests.lock().unwrap().insert(reference.to_owned(), m);
        digest
    }
}

fn full(r: &Reference) -> String {
    super::full_string(r)
}

impl Distribution for FakeRegistry {
    async fn resolve(
        &self,
        reference: &Reference,
        _auth: &AuthConfig,
        progress: &dyn Progress,
    ) -> Result<Resolved, RemoteError> {
        progress
            .send(JsonMessage::pulling_from(&reference.familiar_name(), reference.tag_or_digest()));
        let m = self.manifests.lock().unwrap().get(&full(reference)).cloned().ok_or_else(|| {
            RemoteError::new(
                RemoteErrorKind::NotFound,
                FakeError(format!("manifest for {reference} not found")),
            )
        })?;
        let parsed: ImageManifest = serde_json::from_slice(&m).unwrap();
        let config = self.blobs.lock().unwrap()[&parsed.config.digest].clone();
        Ok(Resolved::new(sha(&m), m, parsed, config))
    }

    async fn fetch_blob(
        &self,
        _reference: &Reference,
        _auth: &AuthConfig,
        blob: &Descriptor,
        blobs: &BlobStore,
        _progress: &dyn Progress,
    ) -> Result<(), RemoteError> {
        self.fetched.lock().unwrap().push(blob.digest.clone());
        let data = self.blobs.lock().unwrap()[&blob.digest].clone();
        let mut w = blobs.writer().map_err(|e| RemoteError::new(RemoteErrorKind::Other, e))?;
        w.write_all(&data).map_err(|e| RemoteError::new(RemoteErrorKind::Other, e))?;
        w.commit_expecting(&blob.digest)
            .map_err(|e| RemoteError::new(RemoteErrorKind::InvalidContent, e))?;
        Ok(())
    }

    async fn push(
        &self,
        request: PushRequest<'_>,
        blobs: &BlobStore,
        _progress: &dyn Progress,
    ) -> Result<PushResult, RemoteError> {
        for d in request.blobs {
            let data =
                blobs.get(&d.digest).map_err(|e| RemoteError::new(RemoteErrorKind::Other, e))?;
            self.blobs.lock().unwrap().insert(d.digest.clone(), data);
        }
        self.manifests.lock().unwrap().insert(full(request.reference), request.manifest.to_vec());
        self.pushed.lock().unwrap().push((
            full(request.reference),
            request.manifest.to_vec(),
            request.blobs.iter().map(|d| d.digest.clone()).collect(),
            request.mount_from.map(|r| r.to_string()),
        ));
        Ok(PushResult {
            tag: request.reference.tag().unwrap_or_default().to_owned(),
            digest: sha(request.manifest),
            size: request.manifest.len() as i64,
        })
    }
}

fn all_privileges() -> Vec<PluginPrivilege> {
    PluginConfig::from_slice(VOLUME_CONFIG.as_bytes()).unwrap().privileges()
}

#[tokio::test]
async fn pull_installs_enables_and_shares_blobs() {
    let f = Fixture::new().await;
    let reg = FakeRegistry::default();
    let layer = layer_tar(&[("bin/plugin", b"#!/bin/sh\n"), ("etc/conf", b"c")]);
    let digest = reg.publish("localhost:5000/vieux/vol:1", VOLUME_CONFIG, layer.clone());
    let messages = Mutex::new(Vec::new());
    let sink = |m: JsonMessage| messages.lock().unwrap().push(m.status);
    let opts = PullOptions::default()
        .with_env(vec!["DEBUG=1".into(), "EXTRA=x".into(), "junk".into()])
        .with_swarm_service("svc1");
    let p =
        f.m.pull(
            &reg,
            "localhost:5000/vieux/vol:1",
            None,
            &AuthConfig::default(),
            &all_privileges(),
            &sink,
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(p.name, "localhost:5000/vieux/vol:1");
    assert_eq!(p.plugin_reference, "localhost:5000/vieux/vol:1");
    assert!(p.enabled, "enabled after install");
    assert_eq!(p.settings.env(), ["DEBUG=1", "FIXED=1", "EXTRA=x"]);
    assert_eq!(f.root().join(&p.id).join("rootfs/etc/conf").metadata().unwrap().len(), 1);
    let record = f.m.inner.store.resolve(&p.id).unwrap().record();
    assert_eq!(record.manifest, digest);
    assert_eq!(record.blobsums, Some(vec![sha(&layer)]));
    assert_eq!(record.swarm_service_id, "svc1");
    assert!(messages.lock().unwrap().contains(&format!("Digest: {digest}")));
    // A second pull under another name fetches nothing new: the layer is shared by digest.
    reg.fetched.lock().unwrap().clear();
    let opts = PullOptions::default().disabled();
    let q =
        f.m.pull(
            &reg,
            "localhost:5000/vieux/vol:1",
            Some("other"),
            &AuthConfig::default(),
            &all_privileges(),
            &crate::NoProgress,
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(q.name, "other:latest");
    assert!(!q.enabled);
    assert_ne!(q.id, p.id);
    // The same name again is refused before anything is fetched.
    let err =
        f.m.pull(
            &reg,
            "localhost:5000/vieux/vol:1",
            None,
            &AuthConfig::default(),
            &all_privileges(),
            &crate::NoProgress,
            &opts,
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "plugin localhost:5000/vieux/vol:1 already exists");
}

#[tokio::test]
async fn privileges_are_checked_before_any_layer_and_a_failed_pull_leaves_nothing() {
    let f = Fixture::new().await;
    let reg = FakeRegistry::default();
    reg.publish("docker.io/vieux/vol:latest", VOLUME_CONFIG, layer_tar(&[("bin/plugin", b"x")]));
    // Remote privileges: the config's, computed.
    let privs = f.m.remote_privileges(&reg, "vieux/vol", &AuthConfig::default()).await.unwrap();
    assert_eq!(privs, all_privileges());
    assert!(privs.iter().any(|p| p.name == "network" && p.value == ["host"]));
    // Without the network grant: refused, no layer fetched, no plugin.
    let granted: Vec<_> = all_privileges().into_iter().filter(|p| p.name != "network").collect();
    let err =
        f.m.pull(
            &reg,
            "vieux/vol",
            None,
            &AuthConfig::default(),
            &granted,
            &crate::NoProgress,
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "incorrect privileges");
    assert!(reg.fetched.lock().unwrap().is_empty());
    assert!(f.m.list(&Default::default()).is_empty());
    // Errors of the registry are returned, never an empty list, with their status.
    let err =
        f.m.remote_privileges(&reg, "vieux/missing", &AuthConfig::default()).await.unwrap_err();
    assert_eq!(err.http_status(), 404);
    assert!(err.to_string().contains("not found"), "{err}");
    // A layer that escapes its root: refused, nothing installed, nothing staged, and GC
    // removes what was fetched.
    reg.publish("docker.io/evil/vol:latest", VOLUME_CONFIG, {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        let mut t = h.as_bytes().to_vec();
        t.push(b'x');
        t.resize(2048 + 512, 0);
        t
    });
    let err =
        f.m.pull(
            &reg,
            "evil/vol",
            None,
            &AuthConfig::default(),
            &all_privileges(),
            &crate::NoProgress,
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains(".."), "{err}");
    assert!(f.m.list(&Default::default()).is_empty());
    assert_eq!(std::fs::read_dir(f.root().join("tmp")).unwrap().count(), 0);
    assert!(!f.tmp.path().join("root/escape").exists());
    f.m.gc().await.unwrap();
    assert!(f.m.blobs().list().unwrap().is_empty());
    // Names and references are checked as Moby does.
    let hex = "a".repeat(64);
    let err =
        f.m.pull(
            &reg,
            &hex,
            None,
            &AuthConfig::default(),
            &[],
            &crate::NoProgress,
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
}

#[tokio::test]
async fn push_sends_the_stored_manifest_and_a_pull_gets_it_back() {
    let f = Fixture::new().await;
    let reg = FakeRegistry::default();
    let p = f.create("localhost:5000/me/vol:2").await;
    let record = f.m.inner.store.resolve(&p.id).unwrap().record();
    let stored = f.m.blobs().get(&record.manifest).unwrap();
    let messages = Mutex::new(Vec::new());
    let sink = |m: JsonMessage| messages.lock().unwrap().push(m);
    let result =
        f.m.push(&reg, "localhost:5000/me/vol:2", &AuthConfig::default(), &sink).await.unwrap();
    assert_eq!(result.digest, record.manifest);
    assert_eq!(result.tag, "2");
    assert_eq!(result.size, stored.len() as i64);
    let pushed = reg.pushed.lock().unwrap().clone();
    assert_eq!(pushed[0].0, "localhost:5000/me/vol:2");
    assert_eq!(pushed[0].1, stored, "byte for byte");
    assert_eq!(pushed[0].2[0], record.config);
    let last = messages.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.aux.unwrap().parse::<PushResult>().unwrap(), result);
    // What was pushed installs elsewhere with the same manifest digest.
    let g = Fixture::new().await;
    let q =
        g.m.pull(
            &reg,
            "localhost:5000/me/vol:2",
            None,
            &AuthConfig::default(),
            &all_privileges(),
            &crate::NoProgress,
            &PullOptions::default().disabled(),
        )
        .await
        .unwrap();
    assert_eq!(g.m.inner.store.resolve(&q.id).unwrap().record().manifest, record.manifest);
    assert!(f.m.push(&reg, "nothere", &AuthConfig::default(), &crate::NoProgress).await.is_err());
}

#[tokio::test]
async fn upgrade_keeps_id_settings_and_data_and_is_refused_while_enabled() {
    let f = Fixture::new().await;
    let reg = FakeRegistry::default();
    reg.publish(
        "docker.io/vieux/vol:1",
        VOLUME_CONFIG,
        layer_tar(&[("bin/plugin", b"v1"), ("old", b"o")]),
    );
    let v2 = VOLUME_CONFIG.replace("test volume plugin", "version two");
    let d2 = reg.publish("docker.io/vieux/vol:2", &v2, layer_tar(&[("bin/plugin", b"v2")]));
    let p =
        f.m.pull(
            &reg,
            "vieux/vol:1",
            Some("vol"),
            &AuthConfig::default(),
            &all_privileges(),
            &crate::NoProgress,
            &PullOptions::default(),
        )
        .await
        .unwrap();
    let err =
        f.m.upgrade(
            &reg,
            "vol",
            "vieux/vol:2",
            &AuthConfig::default(),
            &all_privileges(),
            &crate::NoProgress,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin must be disabled before upgrading: plugin vol:latest is enabled"
    );
    assert_eq!(err.http_status(), 409);
    f.m.disable("vol", false).await.unwrap();
    f.m.set("vol", &["DEBUG=1".into()]).await.unwrap();
    let data = f.root().join(&p.id).join("propagated-mount/keep");
    std::fs::write(&data, b"data").unwrap();
    // Privileges are checked against the new config.
    let err =
        f.m.upgrade(&reg, "vol", "vieux/vol:2", &AuthConfig::default(), &[], &crate::NoProgress)
            .await
            .unwrap_err();
    assert_eq!(err.to_string(), "incorrect privileges");
    assert_eq!(std::fs::read(f.root().join(&p.id).join("rootfs/bin/plugin")).unwrap(), b"v1");
    let u =
        f.m.upgrade(
            &reg,
            "vol",
            "vieux/vol:2",
            &AuthConfig::default(),
            &all_privileges(),
            &crate::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(u.id, p.id);
    assert_eq!(u.name, "vol:latest");
    assert!(!u.enabled);
    assert_eq!(u.config.description, "version two");
    assert_eq!(u.plugin_reference, "docker.io/vieux/vol:2");
    assert!(
        u.settings.env().contains(&"DEBUG=1".to_owned()),
        "settings kept: {:?}",
        u.settings.env()
    );
    let dir = f.root().join(&p.id);
    assert_eq!(std::fs::read(dir.join("rootfs/bin/plugin")).unwrap(), b"v2");
    assert!(!dir.join("rootfs/old").exists());
    assert!(!dir.join("rootfs-old").exists());
    assert_eq!(std::fs::read(&data).unwrap(), b"data");
    let record = f.m.inner.store.resolve("vol").unwrap().record();
    assert_eq!(record.manifest, d2);
    // The upgrade survives a restart (persisted, unlike Moby's in-memory reference).
    let m2 = f.restart(crate::testexec::TestExecutor::new()).await;
    assert_eq!(m2.inspect("vol").unwrap().plugin_reference, "docker.io/vieux/vol:2");
    f.m.enable("vol", None).await.unwrap();
}
