//! Pull, push and remote privileges through [`ManagerBackend`]: the real manager, an
//! in-memory registry behind the manager's `Distribution` seam.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dockplug_manager::blobs::BlobStore;
use dockplug_manager::distribution::{PushRequest, Resolved};
use dockplug_manager::{
    Distribution, Manager, ManagerConfig, Progress, RemoteError, RemoteErrorKind,
};
use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::progress::{JsonMessage, PushResult};
use dockplug_protocol::reference::Reference;
use dockplug_protocol::registry::{Descriptor, ImageManifest};
use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;
use sha2::Digest as _;
use tokio::sync::Notify;

use super::fake::{assert_error, body, call, header, request};
use super::real::{SocketExecutor, CONFIG};
use crate::{Engine, ManagerBackend};

fn sha(data: &[u8]) -> String {
    let hex: String = sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[derive(Debug, thiserror::Error)]
#[error("fake registry: {0}")]
struct FakeError(String);

/// Manifests by `domain/path:tag`, blobs by digest; `hang` makes layer fetches wait forever.
#[derive(Default)]
struct FakeRegistry {
    manifests: Mutex<HashMap<String, Vec<u8>>>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    hang: std::sync::atomic::AtomicBool,
    fetching: Notify,
    pushed: Mutex<Vec<String>>,
}

fn key(r: &Reference) -> String {
    format!("{}:{}", r.name(), r.tag().unwrap_or("latest"))
}

fn layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(10);
    b.append_data(&mut h, "plugin", &b"#!/bin/sh\n"[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

impl FakeRegistry {
    fn publish(&self, reference: &str) {
        let (c, l) = (CONFIG.as_bytes().to_vec(), layer());
        let m = ImageManifest::plugin(
            Descriptor::plugin_config(sha(&c), c.len() as i64),
            vec![Descriptor::gzip_layer(sha(&l), l.len() as i64)],
        )
        .to_bytes()
        .unwrap();
        self.blobs.lock().unwrap().insert(sha(&c), c);
        self.blobs.lock().unwrap().insert(sha(&l), l);
        let r = Reference::parse(reference).unwrap().with_default_tag();
        self.manifests.lock().unwrap().insert(key(&r), m);
    }
}

fn other(e: impl Into<dockplug_manager::BoxError>) -> RemoteError {
    RemoteError::new(RemoteErrorKind::Other, e)
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
        let m = self.manifests.lock().unwrap().get(&key(reference)).cloned().ok_or_else(|| {
            RemoteError::new(RemoteErrorKind::NotFound, FakeError(format!("{reference} not found")))
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
        progress: &dyn Progress,
    ) -> Result<(), RemoteError> {
        progress.send(JsonMessage::item(&blob.digest[7..19], "Downloading"));
        if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            self.fetching.notify_one();
            std::future::pending::<()>().await;
        }
        let data = self.blobs.lock().unwrap()[&blob.digest].clone();
        let mut w = blobs.writer().map_err(other)?;
        w.write_all(&data).map_err(other)?;
        w.commit_expecting(&blob.digest).map_err(other)?;
        Ok(())
    }

    async fn push(
        &self,
        request: PushRequest<'_>,
        _blobs: &BlobStore,
        progress: &dyn Progress,
    ) -> Result<PushResult, RemoteError> {
        progress.send(JsonMessage::push_refers_to(&request.reference.name()));
        self.pushed.lock().unwrap().push(key(request.reference));
        Ok(PushResult {
            tag: request.reference.tag().unwrap_or_default().to_owned(),
            digest: sha(request.manifest),
            size: request.manifest.len() as i64,
        })
    }
}

/// A shared registry handle, so the test keeps one after giving one to the backend.
#[derive(Clone, Default)]
struct Shared(Arc<FakeRegistry>);

impl Distribution for Shared {
    async fn resolve(
        &self,
        r: &Reference,
        a: &AuthConfig,
        p: &dyn Progress,
    ) -> Result<Resolved, RemoteError> {
        self.0.resolve(r, a, p).await
    }
    async fn fetch_blob(
        &self,
        r: &Reference,
        a: &AuthConfig,
        b: &Descriptor,
        s: &BlobStore,
        p: &dyn Progress,
    ) -> Result<(), RemoteError> {
        self.0.fetch_blob(r, a, b, s, p).await
    }
    async fn push(
        &self,
        q: PushRequest<'_>,
        s: &BlobStore,
        p: &dyn Progress,
    ) -> Result<PushResult, RemoteError> {
        self.0.push(q, s, p).await
    }
}

async fn setup() -> (Engine, Shared, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ManagerConfig::new(dir.path().join("plugins"), dir.path().join("run"));
    config.share_propagated_mounts = false;
    let manager = Manager::new(config, SocketExecutor::new()).await.unwrap();
    let registry = Shared::default();
    registry.0.publish("localhost:5000/vieux/vol:1");
    (Engine::new(ManagerBackend::new(manager, registry.clone())), registry, dir)
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[tokio::test]
async fn install_as_the_cli_does_it() {
    let (engine, registry, _dir) = setup().await;
    let r = call(
        &engine,
        Method::GET,
        "/v1.41/plugins/privileges?remote=localhost%3A5000%2Fvieux%2Fvol%3A1",
    )
    .await;
    assert_eq!(r.status(), 200);
    let grant = body(r).await;
    let privileges = json(&grant);
    assert_eq!(privileges[0]["Name"], "network");
    assert_eq!(privileges[0]["Value"], serde_json::json!(["host"]));
    let grant = grant.into_bytes();
    let r = call(&engine, Method::GET, "/v1.41/plugins/privileges?remote=localhost%3A5000%2Fnope")
        .await;
    assert_eq!(r.status(), 404);

    let pull = "/v1.41/plugins/pull?name=&remote=localhost%3A5000%2Fvieux%2Fvol%3A1";
    let r = engine.handle(request(Method::POST, pull, Some("application/json"), b"[]")).await;
    assert_eq!(r.status(), 200, "privileges are checked once the config is fetched");
    assert_eq!(header(&r, "docker-plugin-name"), "localhost:5000/vieux/vol:1");
    let text = body(r).await;
    let last = json(text.lines().last().unwrap());
    assert!(last["error"].as_str().unwrap().contains("privileges"), "{text}");
    let r = call(&engine, Method::GET, "/plugins").await;
    assert_eq!(body(r).await, "[]\n", "a refused pull leaves no plugin");

    let r = engine.handle(request(Method::POST, pull, Some("application/json"), &grant)).await;
    assert_eq!(r.status(), 200);
    let text = body(r).await;
    assert!(text.contains("\"status\":\"Downloading\""), "{text}");
    assert!(text.lines().last().unwrap().contains("Digest: sha256:"), "{text}");
    let r = call(&engine, Method::GET, "/v1.41/plugins/localhost:5000/vieux/vol:1/json").await;
    let p = json(&body(r).await);
    assert_eq!(p["Enabled"], false, "the CLI enables after the pull");
    assert_eq!(p["PluginReference"], "localhost:5000/vieux/vol:1");
    let r =
        call(&engine, Method::POST, "/v1.41/plugins/localhost:5000/vieux/vol:1/enable?timeout=0")
            .await;
    assert_eq!(r.status(), 200, "{}", body(r).await);
    let r = engine.handle(request(Method::POST, pull, Some("application/json"), &grant)).await;
    assert_error(r, 409, "plugin localhost:5000/vieux/vol:1 already exists").await;

    let r = call(&engine, Method::POST, "/v1.41/plugins/localhost:5000/vieux/vol:1/push").await;
    assert_eq!(r.status(), 200);
    let text = body(r).await;
    let last = json(text.lines().last().unwrap());
    assert_eq!(last["aux"]["Tag"], "1", "{text}");
    assert_eq!(registry.0.pushed.lock().unwrap().as_slice(), ["localhost:5000/vieux/vol:1"]);
}

#[tokio::test]
async fn a_client_leaving_mid_pull_leaves_no_plugin() {
    let (engine, registry, _dir) = setup().await;
    let uri = "/plugins/privileges?remote=localhost%3A5000%2Fvieux%2Fvol%3A1";
    let grant = body(call(&engine, Method::GET, uri).await).await.into_bytes();
    registry.0.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let pull = "/v1.41/plugins/pull?remote=localhost%3A5000%2Fvieux%2Fvol%3A1";
    let r = engine.handle(request(Method::POST, pull, Some("application/json"), &grant)).await;
    assert_eq!(r.status(), 200);
    let mut b = r.into_body();
    let first = b.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(std::str::from_utf8(&first).unwrap().contains("Pulling from"));
    tokio::time::timeout(Duration::from_secs(10), registry.0.fetching.notified()).await.unwrap();
    drop(b);
    // Nothing was installed, and a new pull of the same name goes through.
    registry.0.hang.store(false, std::sync::atomic::Ordering::SeqCst);
    let r = call(&engine, Method::GET, "/plugins").await;
    assert_eq!(body(r).await, "[]\n");
    let r = engine.handle(request(Method::POST, pull, Some("application/json"), &grant)).await;
    let text = tokio::time::timeout(Duration::from_secs(10), body(r)).await.unwrap();
    assert!(!text.contains("errorDetail"), "{text}");
    let r = call(&engine, Method::GET, "/plugins").await;
    assert_eq!(json(&body(r).await).as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn upgrade_keeps_the_id_and_needs_a_disabled_plugin() {
    let (engine, registry, _dir) = setup().await;
    registry.0.publish("localhost:5000/vieux/vol:2");
    let uri = "/plugins/privileges?remote=localhost%3A5000%2Fvieux%2Fvol%3A2";
    let grant = body(call(&engine, Method::GET, uri).await).await.into_bytes();
    let pull = "/v1.41/plugins/pull?remote=localhost%3A5000%2Fvieux%2Fvol%3A1";
    let r = engine.handle(request(Method::POST, pull, Some("application/json"), &grant)).await;
    assert!(!body(r).await.contains("errorDetail"));
    let inspect = "/v1.41/plugins/localhost:5000/vieux/vol:1/json";
    let id = json(&body(call(&engine, Method::GET, inspect).await).await)["Id"].clone();
    let r =
        call(&engine, Method::POST, "/v1.41/plugins/localhost:5000/vieux/vol:1/enable?timeout=0")
            .await;
    assert_eq!(r.status(), 200);

    let upgrade = "/v1.41/plugins/localhost:5000/vieux/vol:1/upgrade?remote=localhost%3A5000%2Fvieux%2Fvol%3A2";
    let r = engine.handle(request(Method::POST, upgrade, Some("application/json"), &grant)).await;
    assert_eq!(header(&r, "docker-plugin-name"), "localhost:5000/vieux/vol:1");
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(
        json(&body(r).await)["message"],
        "plugin must be disabled before upgrading: plugin localhost:5000/vieux/vol:1 is enabled"
    );

    let r = call(&engine, Method::POST, "/v1.41/plugins/localhost:5000/vieux/vol:1/disable").await;
    assert_eq!(r.status(), 200);
    let r = engine.handle(request(Method::POST, upgrade, Some("application/json"), &grant)).await;
    assert_eq!(r.status(), 200);
    let text = body(r).await;
    assert!(!text.contains("errorDetail"), "{text}");
    let p = json(&body(call(&engine, Method::GET, inspect).await).await);
    assert_eq!(p["Id"], id, "same plugin");
    assert_eq!(p["PluginReference"], "localhost:5000/vieux/vol:2");

    // Moby logs a `pull` for the pull and for the upgrade (actor: the familiar remote).
    let until = crate::events::now_nanos() / 1_000_000_000 + 1;
    let uri = format!("/events?since=0&until={until}&filters=%7B%22event%22%3A%5B%22pull%22%5D%7D");
    let r = call(&engine, Method::GET, &uri).await;
    let text = tokio::time::timeout(Duration::from_secs(10), body(r)).await.unwrap();
    let pulls: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let v = json(l);
            let s = |v: &Value| v.as_str().unwrap().to_owned();
            (s(&v["Actor"]["ID"]), s(&v["Actor"]["Attributes"]["name"]))
        })
        .collect();
    let name = "localhost:5000/vieux/vol:1".to_owned();
    assert_eq!(
        pulls,
        [
            ("localhost:5000/vieux/vol:1".to_owned(), name.clone()),
            ("localhost:5000/vieux/vol:2".to_owned(), name)
        ]
    );
}
