//! The client against registries that lie: in-process HTTP servers on loopback that answer
//! what a hostile or broken registry would (fakes at the network level, unit tests only).

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use dockplug_manager::blobs::BlobStore;
use dockplug_manager::distribution::PushRequest;
use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::progress::JsonMessage;
use dockplug_protocol::reference::Reference;
use dockplug_protocol::registry::{self, Descriptor, ImageIndex, ImageManifest};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};

use crate::pull::sha256;
use crate::{DistributionError, RegistryClient, RegistryConfig, TargetPlatform};

/// What the fake saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    authorization: String,
    content_type: String,
    body: Bytes,
}

/// What the fake answers.
enum Answer {
    Full(StatusCode, Vec<(&'static str, String)>, Bytes),
    /// 200 with a body that never ends.
    Endless,
    /// No reply at all.
    Hang,
}

fn ok(body: impl Into<Bytes>) -> Answer {
    Answer::Full(StatusCode::OK, vec![], body.into())
}

fn status(code: u16) -> Answer {
    Answer::Full(
        StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT),
        vec![],
        Bytes::new(),
    )
}

type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

struct EndlessBody;

impl Body for EndlessBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[0u8; 8192])))))
    }
}

struct Fake {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    async fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Fake {
        let handler: Handler = Arc::new(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let handler = handler.clone();
                let log = log2.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let log = log.clone();
                        async move {
                            let h = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned()
                            };
                            let (authorization, content_type) =
                                (h("authorization"), h("content-type"));
                            let method = req.method().to_string();
                            let path = req.uri().path().to_owned();
                            let query = req.uri().query().unwrap_or("").to_owned();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let seen =
                                Seen { method, path, query, authorization, content_type, body };
                            let answer = handler(&seen);
                            log.lock().unwrap().push(seen);
                            let resp: Response<BoxBody<Bytes, Infallible>> = match answer {
                                Answer::Full(code, headers, body) => {
                                    let mut r = Response::builder().status(code);
                                    for (k, v) in headers {
                                        r = r.header(k, v);
                                    }
                                    r.body(Full::new(body).boxed()).unwrap()
                                }
                                Answer::Endless => Response::new(EndlessBody.boxed()),
                                Answer::Hang => {
                                    std::future::pending::<()>().await;
                                    unreachable!()
                                }
                            };
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Fake { addr, log }
    }

    fn reference(&self, path: &str) -> Reference {
        Reference::parse(&format!("{}/{path}", self.addr)).unwrap()
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().iter().map(|s| format!("{} {}", s.method, s.path)).collect()
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

fn client() -> RegistryClient {
    RegistryClient::new(RegistryConfig {
        certs_dir: None,
        request_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        platform: TargetPlatform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: String::new(),
        },
        ..RegistryConfig::default()
    })
}

/// A plugin in the fake's storage: config, one layer, the manifest as dockerd writes it.
#[derive(Clone)]
struct Plugin {
    config: Bytes,
    layer: Bytes,
    manifest: Bytes,
}

impl Plugin {
    fn new(layer: &[u8]) -> Plugin {
        let config = Bytes::from_static(br#"{"description":"fake","interface":{"types":["docker.volumedriver/1.0"],"socket":"f.sock"}}"#);
        let manifest = ImageManifest::plugin(
            Descriptor::plugin_config(sha256(&config), config.len() as i64),
            vec![Descriptor::gzip_layer(sha256(layer), layer.len() as i64)],
        )
        .to_bytes()
        .unwrap();
        Plugin { config, layer: Bytes::copy_from_slice(layer), manifest: manifest.into() }
    }

    /// The honest registry's answer to `s` under repository `repo`.
    fn answer(&self, repo: &str, s: &Seen) -> Answer {
        let blobs = format!("/v2/{repo}/blobs/");
        let manifests = format!("/v2/{repo}/manifests/");
        if let Some(d) = s.path.strip_prefix(&blobs) {
            if d == sha256(&self.config) {
                return ok(self.config.clone());
            }
            if d == sha256(&self.layer) {
                return ok(self.layer.clone());
            }
            return status(404);
        }
        if s.path.starts_with(&manifests) {
            return Answer::Full(
                StatusCode::OK,
                vec![
                    ("content-type", registry::DOCKER_MANIFEST_V2.into()),
                    ("docker-content-digest", sha256(&self.manifest)),
                ],
                self.manifest.clone(),
            );
        }
        status(404)
    }
}

fn store() -> (tempfile::TempDir, BlobStore) {
    let tmp = tempfile::tempdir().unwrap();
    let s = BlobStore::open(tmp.path().join("storage")).unwrap();
    (tmp, s)
}

fn nothing_left(tmp: &tempfile::TempDir, s: &BlobStore) {
    assert!(s.list().unwrap().is_empty(), "a blob became visible");
    assert_eq!(
        std::fs::read_dir(tmp.path().join("storage/ingest")).unwrap().count(),
        0,
        "ingest left behind"
    );
}

fn layer_desc(p: &Plugin) -> Descriptor {
    Descriptor::gzip_layer(sha256(&p.layer), p.layer.len() as i64)
}

#[tokio::test]
async fn pulls_a_plugin_over_plain_http_after_https_fails() {
    let p = Plugin::new(b"layer bytes");
    let p2 = p.clone();
    let fake = Fake::start(move |s| p2.answer("a/b", s)).await;
    let c = client();
    let r = fake.reference("a/b:1");
    let messages = Mutex::new(Vec::<JsonMessage>::new());
    let sink = |m: JsonMessage| messages.lock().unwrap().push(m);
    let resolved = c.resolve(&r, &AuthConfig::default(), &sink).await.unwrap();
    assert_eq!(resolved.manifest, p.manifest.to_vec());
    assert_eq!(resolved.digest, sha256(&p.manifest));
    assert_eq!(resolved.config, p.config.to_vec());
    let (_tmp, s) = store();
    c.fetch_blob(&r, &AuthConfig::default(), &resolved.parsed.layers[0], &s, &sink).await.unwrap();
    assert_eq!(s.get(&sha256(&p.layer)).unwrap(), p.layer.to_vec());
    // Again: already there, no request.
    c.fetch_blob(&r, &AuthConfig::default(), &resolved.parsed.layers[0], &s, &sink).await.unwrap();
    assert_eq!(
        fake.requests(),
        vec![
            "GET /v2/a/b/manifests/1".to_owned(),
            format!("GET /v2/a/b/blobs/{}", sha256(&p.config)),
            format!("GET /v2/a/b/blobs/{}", sha256(&p.layer)),
        ]
    );
    let statuses: Vec<String> = messages.lock().unwrap().iter().map(|m| m.status.clone()).collect();
    assert_eq!(
        statuses.first().map(String::as_str),
        Some(format!("Pulling from {}/a/b", fake.addr).as_str())
    );
    for s in ["Pulling fs layer", "Downloading", "Download complete", "Already exists"] {
        assert!(statuses.iter().any(|x| x == s), "{s} in {statuses:?}");
    }
}

#[tokio::test]
async fn bearer_challenge_with_moby_plugin_scope_and_basic_credentials() {
    let p = Plugin::new(b"layer");
    let fake = Fake::start(|s| {
        let want = "service=fake&scope=repository%28plugin%29%3Aa%2Fb%3Apull&account=me";
        // me:secret
        if s.path == "/token" && s.query == want && s.authorization == "Basic bWU6c2VjcmV0" {
            return ok(r#"{"token":"T0K","expires_in":300}"#);
        }
        status(401)
    })
    .await;
    let port = fake.addr.port();
    let fake2 = {
        let p3 = p.clone();
        Fake::start(move |s| {
            if s.authorization != "Bearer T0K" {
                return Answer::Full(
                    StatusCode::UNAUTHORIZED,
                    vec![(
                        "www-authenticate",
                        format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\""),
                    )],
                    Bytes::new(),
                );
            }
            p3.answer("a/b", s)
        })
        .await
    };
    let auth =
        AuthConfig { username: "me".into(), password: "secret".into(), ..AuthConfig::default() };
    let c = client();
    let resolved =
        c.resolve(&fake2.reference("a/b:1"), &auth, &dockplug_manager::NoProgress).await.unwrap();
    assert_eq!(resolved.config, p.config.to_vec());
    // One 401, one token, then the manifest and config with the token (cached).
    assert_eq!(fake.requests(), vec!["GET /token".to_owned()]);
    assert_eq!(fake2.requests().len(), 3, "{:?}", fake2.requests());
    // Wrong password: the token server refuses, a typed error.
    let bad =
        AuthConfig { username: "me".into(), password: "nope".into(), ..AuthConfig::default() };
    let err = client()
        .resolve(&fake2.reference("a/b:1"), &bad, &dockplug_manager::NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DistributionError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn identity_token_is_exchanged_with_the_oauth_post() {
    let p = Plugin::new(b"layer");
    let token_server = Fake::start(|s| {
        let form = String::from_utf8_lossy(&s.body).into_owned();
        if s.method == "POST"
            && s.content_type == "application/x-www-form-urlencoded"
            && form == "grant_type=refresh_token&refresh_token=REFRESH&client_id=docker&service=reg&scope=repository%28plugin%29%3Aa%2Fb%3Apull"
        {
            return ok(r#"{"access_token":"ACCESS","expires_in":300}"#);
        }
        status(400)
    })
    .await;
    let realm = format!("http://{}/oauth", token_server.addr);
    let p2 = p.clone();
    let fake = Fake::start(move |s| {
        if s.authorization != "Bearer ACCESS" {
            return Answer::Full(
                StatusCode::UNAUTHORIZED,
                vec![("www-authenticate", format!("Bearer realm=\"{realm}\",service=\"reg\""))],
                Bytes::new(),
            );
        }
        p2.answer("a/b", s)
    })
    .await;
    let auth = AuthConfig { identitytoken: "REFRESH".into(), ..AuthConfig::default() };
    let resolved = client()
        .resolve(&fake.reference("a/b:1"), &auth, &dockplug_manager::NoProgress)
        .await
        .unwrap();
    assert_eq!(resolved.digest, sha256(&p.manifest));
    assert_eq!(token_server.requests(), vec!["POST /oauth".to_owned()]);
}

#[tokio::test]
async fn registry_token_is_sent_as_is_and_basic_challenges_get_basic() {
    let p = Plugin::new(b"layer");
    let p2 = p.clone();
    let bearer = Fake::start(move |s| {
        if s.authorization != "Bearer REGTOKEN" {
            return Answer::Full(
                StatusCode::UNAUTHORIZED,
                vec![("www-authenticate", "Bearer realm=\"http://127.0.0.1:1/never\"".into())],
                Bytes::new(),
            );
        }
        p2.answer("a/b", s)
    })
    .await;
    let auth = AuthConfig { registrytoken: "REGTOKEN".into(), ..AuthConfig::default() };
    client()
        .resolve(&bearer.reference("a/b:1"), &auth, &dockplug_manager::NoProgress)
        .await
        .unwrap();
    let p3 = p.clone();
    let basic = Fake::start(move |s| {
        if s.authorization != "Basic dTpw" {
            return Answer::Full(
                StatusCode::UNAUTHORIZED,
                vec![("www-authenticate", "Basic realm=\"Registry Realm\"".into())],
                Bytes::new(),
            );
        }
        p3.answer("a/b", s)
    })
    .await;
    let auth = AuthConfig { username: "u".into(), password: "p".into(), ..AuthConfig::default() };
    client()
        .resolve(&basic.reference("a/b:1"), &auth, &dockplug_manager::NoProgress)
        .await
        .unwrap();
    // The first request learns the challenge; the config request sends Basic at once.
    assert_eq!(basic.requests().len(), 3);
    // Without credentials a Basic challenge is a clear refusal.
    let err = client()
        .resolve(&basic.reference("a/b:1"), &AuthConfig::default(), &dockplug_manager::NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DistributionError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn unauthorized_without_challenge_and_failing_or_hanging_token_servers() {
    let none = Fake::start(|_| status(401)).await;
    let err = client()
        .resolve(&none.reference("a/b:1"), &AuthConfig::default(), &dockplug_manager::NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DistributionError::NoChallenge { .. }), "{err:?}");

    for (answer, check) in [
        (0u8, "token server"), // 500
        (1, "no reply"),       // hangs
        (2, "not a token"),    // garbage
    ] {
        let token = Fake::start(move |_| match answer {
            0 => status(500),
            1 => Answer::Hang,
            _ => ok("<html>"),
        })
        .await;
        let realm = format!("http://{}/token", token.addr);
        let reg = Fake::start(move |_| {
            Answer::Full(
                StatusCode::UNAUTHORIZED,
                vec![("www-authenticate", format!("Bearer realm=\"{realm}\""))],
                Bytes::new(),
            )
        })
        .await;
        let started = std::time::Instant::now();
        let err = client()
            .resolve(&reg.reference("a/b:1"), &AuthConfig::default(), &dockplug_manager::NoProgress)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(check), "{answer}: {err}");
        assert!(started.elapsed() < Duration::from_secs(5), "deadline not applied");
    }
}

#[tokio::test]
async fn blob_with_wrong_digest_short_long_or_endless_never_becomes_visible() {
    let p = Plugin::new(b"the real layer");
    let desc = layer_desc(&p);
    for (name, answer) in [
        ("wrong digest", 0u8),
        ("short", 1),
        ("long", 2),
        ("endless", 3),
        ("content-length lies", 4),
    ] {
        let fake = Fake::start(move |_| match answer {
            0 => ok("the fake layer"), // same length, other bytes
            1 => ok("the real"),
            2 => ok("the real layer and more"),
            3 => Answer::Endless,
            _ => Answer::Full(
                StatusCode::OK,
                vec![("content-length", "99999999".into())],
                Bytes::new(),
            ),
        })
        .await;
        let (tmp, s) = store();
        let err = client()
            .fetch_blob(
                &fake.reference("a/b:1"),
                &AuthConfig::default(),
                &desc,
                &s,
                &dockplug_manager::NoProgress,
            )
            .await;
        let err = err.expect_err(name);
        match answer {
            0 => {
                assert!(matches!(err, DistributionError::DigestMismatch { .. }), "{name}: {err:?}")
            }
            _ => assert!(
                matches!(err, DistributionError::SizeMismatch { .. }) || err.is_transport(),
                "{name}: {err:?}"
            ),
        }
        nothing_left(&tmp, &s);
    }
}

#[tokio::test]
async fn huge_manifest_redirect_loop_and_bad_digests() {
    let huge = Fake::start(|_| ok(vec![b' '; 5 << 20])).await;
    let err = client()
        .resolve(&huge.reference("a/b:1"), &AuthConfig::default(), &dockplug_manager::NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DistributionError::TooLarge { limit, .. } if limit == 4 << 20),
        "{err:?}"
    );

    let looping = Fake::start(|s| {
        Answer::Full(StatusCode::FOUND, vec![("location", format!("{}x", s.path))], Bytes::new())
    })
    .await;
    let err = client()
        .resolve(&looping.reference("a/b:1"), &AuthConfig::default(), &dockplug_manager::NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DistributionError::TooManyRedirects { limit: 10, .. }), "{err:?}");
    assert_eq!(looping.requests().len(), 11);

    // A manifest whose bytes do not hash to the Docker-Content-Digest it claims.
    let p = Plugin::new(b"l");
    let lying = Fake::start(move |_| {
        Answer::Full(
            StatusCode::OK,
            vec![("docker-content-digest", sha256(b"other"))],
            p.manifest.clone(),
        )
    })
    .await;
    let err = client()
        .resolve(&lying.reference("a/b:1"), &AuthConfig::default(), &dockplug_manager::NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DistributionError::DigestMismatch { .. }), "{err:?}");

    // A manifest naming a config by a path-like "digest".
    let evil =
        ImageManifest::plugin(Descriptor::plugin_config("sha256:../../../etc/passwd", 3), vec![]);
    let evil = Bytes::from(evil.to_bytes().unwrap());
    let fake = Fake::start(move |_| ok(evil.clone())).await;
    let err = client()
        .resolve(&fake.reference("a/b:1"), &AuthConfig::default(), &dockplug_manager::NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DistributionError::InvalidDigest { .. }), "{err:?}");
}

#[tokio::test]
async fn index_platforms_and_image_configs() {
    let amd = Plugin::new(b"amd64 layer");
    let arm = Plugin::new(b"arm64 layer");
    let entry = |p: &Plugin, arch: &str| Descriptor {
        platform: Some(registry::Platform {
            os: "linux".into(),
            architecture: arch.into(),
            ..Default::default()
        }),
        ..Descriptor::new(
            registry::DOCKER_MANIFEST_V2,
            sha256(&p.manifest),
            p.manifest.len() as i64,
        )
    };
    let index = ImageIndex {
        schema_version: 2,
        media_type: registry::OCI_INDEX.into(),
        manifests: vec![entry(&arm, "arm64"), entry(&amd, "amd64")],
    };
    let index = Bytes::from(serde_json::to_vec(&index).unwrap());
    let (amd2, arm2, index2) = (amd.clone(), arm.clone(), index.clone());
    let fake = Fake::start(move |s| {
        if s.path.ends_with("/manifests/multi") {
            return Answer::Full(
                StatusCode::OK,
                vec![("content-type", registry::OCI_INDEX.into())],
                index2.clone(),
            );
        }
        if s.path.ends_with(&format!("/manifests/{}", sha256(&arm2.manifest))) {
            return ok(arm2.manifest.clone());
        }
        amd2.answer("a/b", s)
    })
    .await;
    let r = client()
        .resolve(
            &fake.reference("a/b:multi"),
            &AuthConfig::default(),
            &dockplug_manager::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(r.digest, sha256(&amd.manifest));
    let arm_cfg = RegistryConfig {
        certs_dir: None,
        platform: TargetPlatform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: "v8".into(),
        },
        ..RegistryConfig::default()
    };
    let r = RegistryClient::new(arm_cfg)
        .resolve(
            &fake.reference("a/b:multi"),
            &AuthConfig::default(),
            &dockplug_manager::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(r.digest, sha256(&arm.manifest));
    let s390 = RegistryConfig {
        certs_dir: None,
        platform: TargetPlatform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: String::new(),
        },
        ..RegistryConfig::default()
    };
    let err = RegistryClient::new(s390)
        .resolve(
            &fake.reference("a/b:multi"),
            &AuthConfig::default(),
            &dockplug_manager::NoProgress,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DistributionError::NoMatchingPlatform { .. }), "{err:?}");

    // An image, not a plugin: Moby's text.
    let image = ImageManifest {
        config: Descriptor::new("application/vnd.docker.container.image.v1+json", sha256(b"{}"), 2),
        ..ImageManifest::plugin(Descriptor::default(), vec![])
    };
    let image = Bytes::from(image.to_bytes().unwrap());
    let fake = Fake::start(move |_| ok(image.clone())).await;
    let err = client()
        .resolve(&fake.reference("a/b:1"), &AuthConfig::default(), &dockplug_manager::NoProgress)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Encountered remote \"application/vnd.docker.container.image.v1+json\"(image) when fetching");
}

#[tokio::test]
async fn push_sends_the_stored_manifest_and_falls_back_when_a_mount_gets_202() {
    let (_tmp, s) = store();
    let p = Plugin::new(b"push me");
    let config_digest = s.put(&p.config).unwrap();
    let mut w = s.writer().unwrap();
    w.write_all(&p.layer).unwrap();
    let layer_digest = w.commit().unwrap();
    let fake = Fake::start(move |s| match (s.method.as_str(), s.path.as_str()) {
        ("HEAD", _) => status(404),
        ("POST", _) => Answer::Full(
            StatusCode::ACCEPTED,
            vec![("location", "/v2/a/b/blobs/uploads/u1?_state=st".into())],
            Bytes::new(),
        ),
        ("PUT", p) if p.starts_with("/v2/a/b/blobs/uploads/u1") => {
            Answer::Full(StatusCode::CREATED, vec![], Bytes::new())
        }
        ("PUT", "/v2/a/b/manifests/1") => Answer::Full(
            StatusCode::CREATED,
            vec![("docker-content-digest", sha256(&s.body))],
            Bytes::new(),
        ),
        _ => status(400),
    })
    .await;
    let r = fake.reference("a/b:1");
    let from = fake.reference("src/x:1");
    let blobs = [
        Descriptor::plugin_config(config_digest.clone(), p.config.len() as i64),
        Descriptor::gzip_layer(layer_digest.clone(), p.layer.len() as i64),
    ];
    let auth = AuthConfig::default();
    let req = PushRequest::new(&r, &auth, &p.manifest, registry::DOCKER_MANIFEST_V2, &blobs)
        .mount_from(Some(&from));
    let result = client().push(req, &s, &dockplug_manager::NoProgress).await.unwrap();
    assert_eq!(
        (result.tag.as_str(), result.digest.clone(), result.size),
        ("1", sha256(&p.manifest), p.manifest.len() as i64)
    );
    let seen = fake.seen();
    let lines: Vec<String> = seen
        .iter()
        .map(|s| {
            format!(
                "{} {}{}",
                s.method,
                s.path,
                if s.query.is_empty() { String::new() } else { format!("?{}", s.query) }
            )
        })
        .collect();
    // Blobs go up at once; each one's requests are in order, and the manifest is last.
    assert_eq!(lines.len(), 7, "{lines:?}");
    for (digest, body) in [(&config_digest, &p.config), (&layer_digest, &p.layer)] {
        let enc = digest.replace(':', "%3A");
        let mine: Vec<&String> =
            lines.iter().filter(|l| l.contains(digest.as_str()) || l.contains(&enc)).collect();
        assert_eq!(
            mine,
            vec![
                &format!("HEAD /v2/a/b/blobs/{digest}"),
                &format!("POST /v2/a/b/blobs/uploads/?mount={enc}&from=src%2Fx"),
                &format!("PUT /v2/a/b/blobs/uploads/u1?_state=st&digest={enc}"),
            ]
        );
        let put = seen.iter().find(|s| s.method == "PUT" && s.query.contains(&enc)).unwrap();
        assert_eq!(&put.body, body);
    }
    assert_eq!(lines[6], "PUT /v2/a/b/manifests/1");
    assert_eq!(seen[6].body, p.manifest, "the manifest is pushed byte for byte");
    assert_eq!(seen[6].content_type, registry::DOCKER_MANIFEST_V2);
}

#[tokio::test]
async fn a_tee_gets_every_byte_and_a_closed_tee_stores_nothing() {
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let p = Plugin::new(&layer);
    let p2 = p.clone();
    let fake = Fake::start(move |s| p2.answer("a/b", s)).await;
    let r = fake.reference("a/b:1");
    let desc = layer_desc(&p);
    // A consumer that reads everything sees the blob, and the blob is stored.
    let (tmp, s) = store();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(c) = rx.recv().await {
            all.extend_from_slice(&c);
        }
        all
    });
    client()
        .fetch_blob_into(
            &r,
            &AuthConfig::default(),
            &desc,
            &s,
            &dockplug_manager::NoProgress,
            Some(tx),
        )
        .await
        .unwrap();
    assert_eq!(reader.await.unwrap(), layer);
    assert!(s.contains(&desc.digest));
    // Already stored: sent from the store.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some(c) = rx.recv().await {
            n += c.len();
        }
        n
    });
    client()
        .fetch_blob_into(
            &r,
            &AuthConfig::default(),
            &desc,
            &s,
            &dockplug_manager::NoProgress,
            Some(tx),
        )
        .await
        .unwrap();
    assert_eq!(reader.await.unwrap(), layer.len());
    drop((tmp, s));
    // A consumer that gives up: the fetch ends, nothing stored, nothing left in ingest.
    let (tmp, s) = store();
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    drop(rx);
    client()
        .fetch_blob_into(
            &r,
            &AuthConfig::default(),
            &desc,
            &s,
            &dockplug_manager::NoProgress,
            Some(tx),
        )
        .await
        .unwrap();
    nothing_left(&tmp, &s);
}
