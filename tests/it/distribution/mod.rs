//! dockplug-distribution against real registries (Debian's docker-registry, distribution
//! 2.8, private per test): push then resolve and fetch back, over plain HTTP after HTTPS
//! fails on loopback, with htpasswd basic auth and with token auth (Moby's plugin scope).

use std::io::Write as _;

use dockplug_distribution::{DistributionError, RegistryClient, RegistryConfig};
use dockplug_manager::blobs::BlobStore;
use dockplug_manager::distribution::PushRequest;
use dockplug_manager::NoProgress;
use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::reference::Reference;
use dockplug_protocol::registry::{Descriptor, ImageManifest, DOCKER_MANIFEST_V2};
use dockplug_testkit::http::Request;
use dockplug_testkit::TokenPolicy;

use crate::support::registry;

mod dockerd;

struct Pushed {
    _tmp: tempfile::TempDir,
    store: BlobStore,
    manifest: Vec<u8>,
    blobs: Vec<Descriptor>,
}

/// A config and a 2 MB layer in a fresh blob store, with the manifest dockerd would write.
fn plugin() -> Pushed {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("storage")).unwrap();
    let config = br#"{"description":"it","interface":{"types":["docker.volumedriver/1.0"],"socket":"p.sock"},"entrypoint":["/p"]}"#;
    let config_digest = store.put(config).unwrap();
    let layer: Vec<u8> =
        (0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut w = store.writer().unwrap();
    w.write_all(&layer).unwrap();
    let layer_digest = w.commit().unwrap();
    let blobs = vec![
        Descriptor::plugin_config(config_digest, config.len() as i64),
        Descriptor::gzip_layer(layer_digest, layer.len() as i64),
    ];
    let manifest =
        ImageManifest::plugin(blobs[0].clone(), vec![blobs[1].clone()]).to_bytes().unwrap();
    Pushed { _tmp: tmp, store, manifest, blobs }
}

fn client() -> RegistryClient {
    let mut c = RegistryConfig::default();
    c.certs_dir = None;
    RegistryClient::new(c)
}

async fn push_and_pull_back(host: &str, auth: &AuthConfig) -> Result<(), DistributionError> {
    let p = plugin();
    let r = Reference::parse(&format!("{host}/plugins/vol:1")).unwrap();
    let c = client();
    let req = PushRequest::new(&r, auth, &p.manifest, DOCKER_MANIFEST_V2, &p.blobs);
    let result = c.push(req, &p.store, &NoProgress).await?;
    assert_eq!(result.size, p.manifest.len() as i64);
    let resolved = c.resolve(&r, auth, &NoProgress).await?;
    assert_eq!(resolved.manifest, p.manifest, "the registry holds our manifest byte for byte");
    assert_eq!(resolved.digest, result.digest);
    let tmp = tempfile::tempdir().unwrap();
    let other = BlobStore::open(tmp.path()).unwrap();
    c.fetch_blob(&r, auth, &resolved.parsed.layers[0], &other, &NoProgress).await?;
    assert_eq!(other.get(&p.blobs[1].digest).unwrap(), p.store.get(&p.blobs[1].digest).unwrap());
    // A second push finds every blob there (HEAD 200) and still answers the same digest.
    let req = PushRequest::new(&r, auth, &p.manifest, DOCKER_MANIFEST_V2, &p.blobs);
    assert_eq!(c.push(req, &p.store, &NoProgress).await?.digest, result.digest);
    Ok(())
}

#[tokio::test]
async fn push_and_pull_through_a_plain_registry() {
    let reg = registry::plain();
    push_and_pull_back(&reg.host(), &AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", reg.log_tail()));
    // The registry serves the manifest we pushed under its media type.
    let headers = [("Accept", DOCKER_MANIFEST_V2)];
    let req = Request { headers: &headers, ..Request::get("/v2/plugins/vol/manifests/1") };
    let reply = reg.request(&req).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Type"), Some(DOCKER_MANIFEST_V2));
}

#[tokio::test]
async fn push_and_pull_with_basic_auth() {
    let reg = registry::basic("alice", "s3cret");
    let auth =
        AuthConfig { username: "alice".into(), password: "s3cret".into(), ..AuthConfig::default() };
    push_and_pull_back(&reg.host(), &auth)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", reg.log_tail()));
    let wrong =
        AuthConfig { username: "alice".into(), password: "nope".into(), ..AuthConfig::default() };
    let err = push_and_pull_back(&reg.host(), &wrong).await.unwrap_err();
    assert!(matches!(err, DistributionError::Unauthorized { .. }), "{err:?}");
    let err = push_and_pull_back(&reg.host(), &AuthConfig::default()).await.unwrap_err();
    assert!(matches!(err, DistributionError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn push_and_pull_with_token_auth_and_moby_plugin_scope() {
    let (reg, tokens) = registry::token(TokenPolicy::basic("bob", "pw"));
    let auth =
        AuthConfig { username: "bob".into(), password: "pw".into(), ..AuthConfig::default() };
    push_and_pull_back(&reg.host(), &auth)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", reg.log_tail()));
    let targets: Vec<String> = tokens.requests().iter().map(|r| r.target.clone()).collect();
    let push_scope = "scope=repository%28plugin%29%3Aplugins%2Fvol%3Apull%2Cpush";
    let pull_scope = "scope=repository%28plugin%29%3Aplugins%2Fvol%3Apull&";
    assert!(targets.iter().any(|t| t.contains(push_scope)), "{targets:?}");
    assert!(targets.iter().any(|t| t.contains(pull_scope)), "{targets:?}");
    let wrong =
        AuthConfig { username: "bob".into(), password: "x".into(), ..AuthConfig::default() };
    let err = push_and_pull_back(&reg.host(), &wrong).await.unwrap_err();
    assert!(matches!(err, DistributionError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn push_and_pull_with_an_identity_token() {
    let (reg, tokens) =
        registry::token(TokenPolicy::basic("bob", "pw").with_refresh_token("REFRESH-1"));
    let auth = AuthConfig { identitytoken: "REFRESH-1".into(), ..AuthConfig::default() };
    push_and_pull_back(&reg.host(), &auth)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", reg.log_tail()));
    let requests = tokens.requests();
    assert!(requests.iter().all(|r| r.method == "POST"), "{requests:?}");
    assert!(
        requests.iter().any(|r| r.form.contains("grant_type=refresh_token")
            && r.form.contains("refresh_token=REFRESH-1")
            && r.form.contains("client_id=docker")),
        "{requests:?}"
    );
    let wrong = AuthConfig { identitytoken: "stale".into(), ..AuthConfig::default() };
    let err = push_and_pull_back(&reg.host(), &wrong).await.unwrap_err();
    assert!(
        matches!(err, DistributionError::Token { .. } | DistributionError::Unauthorized { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_tls_registry_is_verified_with_the_certs_d_ca_unless_insecure() {
    let reg = registry::tls();
    let host = reg.host();
    // Loopback is insecure as in Docker: HTTPS without verification.
    push_and_pull_back(&host, &AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", reg.log_tail()));
    // Verified like any other host: refused without the CA...
    let certs = tempfile::tempdir().unwrap();
    let mut config = RegistryConfig::default();
    config.loopback_insecure = false;
    config.certs_dir = Some(certs.path().to_owned());
    let r = Reference::parse(&format!("{host}/plugins/vol:1")).unwrap();
    let err = RegistryClient::new(config.clone())
        .resolve(&r, &AuthConfig::default(), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DistributionError::Connect { .. }), "{err:?}");
    // ...and accepted with `<certs.d>/<host:port>/ca.crt`.
    reg.certs_d(certs.path()).unwrap();
    let resolved = RegistryClient::new(config)
        .resolve(&r, &AuthConfig::default(), &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolved.parsed.layers.len(), 1);
}

/// The registry client's tree holds one TLS stack (rustls on ring) and one HTTP client
/// (ours on hyper 1): no openssl, native-tls, aws-lc, reqwest, containerd or tonic. (HTTP/2
/// is checked with `cargo tree -p dockplug-distribution`: `cargo metadata` unifies features
/// over the workspace, where tonic turns on hyper's `http2`.)
#[test]
fn the_registry_client_has_one_tls_and_one_http_stack() {
    let reached = crate::layering::reachable("dockplug-distribution");
    for banned in [
        "openssl",
        "openssl-sys",
        "native-tls",
        "aws-lc-rs",
        "aws-lc-sys",
        "reqwest",
        "containerd-client",
        "tonic",
        "dockplug-containerd",
    ] {
        assert!(!reached.contains(banned), "dockplug-distribution reaches {banned}");
    }
    for needed in ["rustls", "ring", "hyper", "dockplug-protocol", "dockplug-manager"] {
        assert!(reached.contains(needed), "dockplug-distribution should reach {needed}");
    }
}
