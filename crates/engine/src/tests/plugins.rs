//! The `/plugins` routes over the fake backend: statuses, headers, JSON shapes (against what
//! a real dockerd answered), error texts.

use std::time::Duration;

use http::Method;
use serde_json::Value;

use super::fake::{
    assert_error, body, call, engine, header, request, Script, INSPECT, LIST, PRIVILEGES, RICH,
};

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[tokio::test]
async fn list_has_dockerds_shape() {
    let (engine, fake) = engine();
    for uri in ["/plugins", "/v1.41/plugins", "/v1.24/plugins"] {
        let r = call(&engine, Method::GET, uri).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-type"), "application/json");
        let text = body(r).await;
        assert!(text.ends_with("]\n"), "Go's encoder ends with a newline");
        assert_eq!(json(&text), json(LIST));
    }
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test]
async fn list_filters_in_both_forms() {
    let (engine, fake) = engine();
    // What the CLI sends: {"capability":{"volumedriver":true},"enabled":{"true":true}}.
    let new = "/v1.41/plugins?filters=%7B%22capability%22%3A%7B%22volumedriver%22%3Atrue%7D%2C%22enabled%22%3A%7B%22true%22%3Atrue%7D%7D";
    let r = call(&engine, Method::GET, new).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json(&body(r).await).as_array().unwrap().len(), 1);
    // The legacy form: {"enabled":["false"]}.
    let legacy = "/plugins?filters=%7B%22enabled%22%3A%5B%22false%22%5D%7D";
    let r = call(&engine, Method::GET, legacy).await;
    assert_eq!(r.status(), 200);
    assert_eq!(body(r).await, "[]\n");
    let r =
        call(&engine, Method::GET, "/plugins?filters=%7B%22capability%22%3A%5B%22authz%22%5D%7D")
            .await;
    assert_eq!(body(r).await, "[]\n");
    assert_eq!(
        fake.calls(),
        ["list enabled=Some(true)", "list enabled=Some(false)", "list enabled=None"]
    );
}

#[tokio::test]
async fn bad_list_filters_are_400() {
    let (engine, fake) = engine();
    let r =
        call(&engine, Method::GET, "/plugins?filters=%7B%22enable%22%3A%5B%22true%22%5D%7D").await;
    assert_error(r, 400, "invalid filter 'enable'").await;
    let r = call(&engine, Method::GET, "/plugins?filters=nope").await;
    assert_error(r, 400, "invalid filter").await;
    let r = call(&engine, Method::GET, "/plugins?filters=%7B%22enabled%22%3A%5B%22maybe%22%5D%7D")
        .await;
    assert_error(r, 400, "invalid filter 'enabled=[maybe]'").await;
    assert!(fake.calls().is_empty(), "the backend is not asked");
}

#[tokio::test]
async fn inspect_by_name_tag_and_id() {
    let (engine, fake) = engine();
    let id = json(INSPECT)["Id"].as_str().unwrap().to_owned();
    for name in ["golden/vol:1", &id, &id[..12]] {
        let r = call(&engine, Method::GET, &format!("/v1.41/plugins/{name}/json")).await;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(header(&r, "content-type"), "application/json");
        assert_eq!(json(&body(r).await), json(INSPECT));
    }
    assert_eq!(fake.calls()[0], "inspect golden/vol:1");
    let r = call(&engine, Method::GET, "/v1.41/plugins/nonexistent/json").await;
    assert_error(r, 404, "plugin \"nonexistent\" not found").await;
    // Settings with env, args, mounts and devices, as dockerd wrote them.
    let r = call(&engine, Method::GET, "/v1.41/plugins/127.0.0.1:5000/golden/rich:1/json").await;
    assert_eq!(r.status(), 200);
    assert_eq!(json(&body(r).await), json(RICH));
    // Percent-escapes in the path are decoded, as Go's URL.Path is.
    let r = call(&engine, Method::GET, "/plugins/golden%2Fvol%3A1/json").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn privileges_of_a_remote() {
    let (engine, fake) = engine();
    // {"username":"u"} in base64url.
    let mut req = request(
        Method::GET,
        "/v1.41/plugins/privileges?remote=docker.io%2Fvieux%2Fsshfs",
        None,
        b"",
    );
    req.headers_mut().insert("X-Registry-Auth", "eyJ1c2VybmFtZSI6InUifQ==".parse().unwrap());
    let r = engine.handle(req).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json(&body(r).await), json(PRIVILEGES));
    assert_eq!(fake.calls(), ["privileges docker.io/vieux/sshfs user=u"]);
    // An invalid header is no credentials (Moby's parseHeaders), not an error.
    let mut req = request(Method::GET, "/plugins/privileges?remote=vieux/sshfs", None, b"");
    req.headers_mut().insert("X-Registry-Auth", "!!".parse().unwrap());
    assert_eq!(engine.handle(req).await.status(), 200);
    let r = call(&engine, Method::GET, "/plugins/privileges?remote=").await;
    assert_eq!(r.status(), 400);
    let r = call(&engine, Method::GET, "/plugins/privileges?remote=Not%20A%20Ref").await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn remove_and_force() {
    let (engine, fake) = engine();
    let r = call(&engine, Method::DELETE, "/v1.41/plugins/golden/vol:1").await;
    assert_error(r, 409, "plugin golden/vol:1 is enabled").await;
    let r = call(&engine, Method::DELETE, "/v1.41/plugins/golden/vol:1?force=1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_full(), Some(&b""[..]));
    let r = call(&engine, Method::DELETE, "/plugins/nope?force=true").await;
    assert_error(r, 404, "plugin \"nope\" not found").await;
    assert_eq!(
        fake.calls(),
        [
            "remove golden/vol:1 force=false",
            "remove golden/vol:1 force=true",
            "remove nope force=true"
        ]
    );
}

#[tokio::test]
async fn enable_needs_an_integer_timeout_and_zero_is_the_default() {
    let (engine, fake) = engine();
    let r = call(&engine, Method::POST, "/v1.41/plugins/golden/vol:1/enable").await;
    assert_error(r, 400, "strconv.Atoi: parsing \"\": invalid syntax").await;
    let r = call(&engine, Method::POST, "/v1.41/plugins/golden/vol:1/enable?timeout=x").await;
    assert_error(r, 400, "strconv.Atoi: parsing \"x\": invalid syntax").await;
    let r = call(&engine, Method::POST, "/v1.41/plugins/golden/vol:1/enable?timeout=0").await;
    assert_error(r, 409, "plugin already enabled: plugin golden/vol:1 is enabled").await;
    call(&engine, Method::POST, "/plugins/golden/vol:1/enable?timeout=5").await;
    call(&engine, Method::POST, "/plugins/golden/vol:1/enable?timeout=-1").await;
    assert_eq!(
        fake.calls(),
        [
            "enable golden/vol:1 timeout=None",
            "enable golden/vol:1 timeout=Some(5s)",
            "enable golden/vol:1 timeout=None"
        ]
    );
}

#[tokio::test]
async fn disable_with_force() {
    let (engine, fake) = engine();
    let r = call(&engine, Method::POST, "/v1.41/plugins/golden/vol:1/disable?force=1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_full(), Some(&b""[..]));
    let r = call(&engine, Method::POST, "/plugins/golden/vol:1/disable").await;
    assert_eq!(r.status(), 200);
    let r = call(&engine, Method::POST, "/plugins/golden/nope/disable").await;
    assert_error(r, 404, "plugin \"golden/nope\" not found").await;
    assert_eq!(
        fake.calls(),
        [
            "disable golden/vol:1 force=true",
            "disable golden/vol:1 force=false",
            "disable golden/nope force=false"
        ]
    );
}

#[tokio::test]
async fn set_reads_json_like_dockerd() {
    let (engine, fake) = engine();
    let ct = Some("application/json");
    let set = |ct, body: &'static [u8]| {
        request(Method::POST, "/v1.41/plugins/golden/vol:1/set", ct, body)
    };
    let r = engine.handle(set(ct, br#"["DEBUG=1","state.source=/tmp"]"#)).await;
    assert_eq!(r.status(), 204);
    let r = engine.handle(set(None, b"")).await;
    assert_eq!(r.status(), 204, "no body, no Content-Type: nothing to set");
    let r = engine.handle(set(Some("text/plain"), br#"["DEBUG=1"]"#)).await;
    assert_error(
        r,
        400,
        "unsupported Content-Type header (text/plain): must be 'application/json'",
    )
    .await;
    let r = engine.handle(set(ct, b"[1]")).await;
    assert_eq!(r.status(), 400);
    assert!(body(r).await.contains("invalid JSON: "));
    let r = engine.handle(set(ct, br#"["NOPE=1"]"#)).await;
    assert_error(r, 400, "setting \"NOPE\" not found in the plugin configuration").await;
    let r = engine.handle(set(ct, b"[] []")).await;
    assert_error(r, 400, "unexpected content after JSON").await;
    assert_eq!(
        fake.calls(),
        [
            r#"set golden/vol:1 ["DEBUG=1", "state.source=/tmp"]"#,
            "set golden/vol:1 []",
            r#"set golden/vol:1 ["NOPE=1"]"#
        ]
    );
}

#[tokio::test]
async fn bodies_are_bounded() {
    let fake = super::fake::Fake::default();
    let config =
        crate::EngineConfig { max_json_body: 16, max_context_body: 32, ..Default::default() };
    let engine = crate::Engine::builder(fake.clone()).config(config).build();
    let big = format!("[\"{}\"]", "A".repeat(64));
    let r = engine
        .handle(request(Method::POST, "/plugins/x/set", Some("application/json"), big.as_bytes()))
        .await;
    assert_error(r, 400, "request body is larger than 16 bytes").await;
    let r = engine
        .handle(request(
            Method::POST,
            "/plugins/create?name=x",
            Some("application/x-tar"),
            &[0; 64],
        ))
        .await;
    assert_error(r, 400, "build context is larger than 32 bytes").await;
}

#[tokio::test]
async fn create_streams_the_context() {
    let (engine, fake) = engine();
    let ctx = vec![7u8; 300_000];
    let r = engine
        .handle(request(
            Method::POST,
            "/v1.41/plugins/create?name=myorg%2Fmyplug",
            Some("application/x-tar"),
            &ctx,
        ))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.body().as_full(), Some(&b""[..]));
    assert_eq!(fake.calls(), ["create myorg/myplug"]);
    assert_eq!(fake.state.lock().unwrap().context_bytes, ctx.len());
}

const PULL: &str = "/v1.41/plugins/pull?name=&remote=docker.io%2Fvieux%2Fsshfs";
const GRANT: &[u8] = br#"[{"Name":"network","Description":"","Value":["host"]}]"#;

#[tokio::test]
async fn pull_streams_progress_and_names_the_plugin() {
    let (engine, fake) = engine();
    let r = engine.handle(request(Method::POST, PULL, Some("application/json"), GRANT)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-plugin-name"), "vieux/sshfs:latest");
    assert_eq!(header(&r, "content-type"), "application/json");
    assert_eq!(body(r).await, "{\"status\":\"pull 1\"}\r\n{\"status\":\"pull 2\"}\r\n");
    assert_eq!(fake.calls(), ["pull docker.io/vieux/sshfs as vieux/sshfs:latest privileges=1"]);

    let alias = "/v1.41/plugins/pull?name=sshfs%3Alatest&remote=docker.io%2Fvieux%2Fsshfs";
    let r = engine.handle(request(Method::POST, alias, Some("application/json"), b"[]")).await;
    assert_eq!(header(&r, "docker-plugin-name"), "sshfs:latest");
    let r = engine.handle(request(Method::POST, PULL, None, b"")).await;
    assert_eq!(r.status(), 200, "no privileges at all is an empty grant");
}

#[tokio::test]
async fn pull_checks_content_type_json_and_names() {
    let (engine, fake) = engine();
    let r = engine.handle(request(Method::POST, PULL, Some("text/plain"), GRANT)).await;
    assert_error(
        r,
        400,
        "unsupported Content-Type header (text/plain): must be 'application/json'",
    )
    .await;
    let r = engine.handle(request(Method::POST, PULL, Some("application/json"), b"{")).await;
    assert_eq!(r.status(), 400);
    let digest = format!("sha256:{}", "a".repeat(64));
    let uri = format!("/plugins/pull?remote=vieux/sshfs&name=x%40{digest}");
    let r = engine.handle(request(Method::POST, &uri, Some("application/json"), b"[]")).await;
    assert_error(r, 400, "cannot use digest in plugin tag").await;
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn pull_errors_before_and_after_output() {
    let (engine, fake) = engine();
    fake.script(Script::FailEarly);
    let r = engine.handle(request(Method::POST, PULL, Some("application/json"), GRANT)).await;
    assert_eq!(
        header(&r, "docker-plugin-name"),
        "vieux/sshfs:latest",
        "set before the backend runs"
    );
    assert_error(r, 401, "no basic auth").await;

    fake.script(Script::FailLate);
    let r = engine.handle(request(Method::POST, PULL, Some("application/json"), GRANT)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        body(r).await,
        "{\"status\":\"Downloading\"}\r\n{\"errorDetail\":{\"message\":\"layer digest mismatch\"},\"error\":\"layer digest mismatch\"}\r\n"
    );
}

#[tokio::test]
async fn dropping_a_pull_reply_cancels_the_pull() {
    use http_body_util::BodyExt;
    let (engine, fake) = engine();
    fake.script(Script::Hang);
    let r = engine.handle(request(Method::POST, PULL, Some("application/json"), GRANT)).await;
    assert_eq!(r.status(), 200);
    let mut b = r.into_body();
    let first = b.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"{\"status\":\"Downloading\"}\r\n");
    tokio::time::timeout(Duration::from_secs(10), fake.started.notified()).await.unwrap();
    assert!(!fake.state.lock().unwrap().cancelled);
    let dropped = fake.dropped.notified();
    drop(b);
    tokio::time::timeout(Duration::from_secs(10), dropped).await.expect("pull cancelled");
    assert!(fake.state.lock().unwrap().cancelled);
}

#[tokio::test]
async fn push_streams_and_forwards_meta_headers() {
    let (engine, fake) = engine();
    let mut req = request(Method::POST, "/v1.41/plugins/vieux/sshfs:latest/push", None, b"");
    req.headers_mut().insert("X-Registry-Auth", "e30=".parse().unwrap());
    req.headers_mut().insert("X-Meta-Trace", "abc".parse().unwrap());
    let r = engine.handle(req).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-plugin-name"), "");
    assert_eq!(body(r).await, "{\"status\":\"push 1\"}\r\n{\"status\":\"push 2\"}\r\n");
    assert_eq!(fake.calls(), ["push vieux/sshfs:latest meta=X-Meta-Trace=abc"]);
}

#[tokio::test]
async fn upgrade_needs_api_1_26() {
    let (engine, fake) = engine();
    let uri = |v: &str| {
        format!("/v{v}/plugins/vieux/sshfs:latest/upgrade?remote=docker.io%2Fvieux%2Fsshfs%3Anext")
    };
    let r =
        engine.handle(request(Method::POST, &uri("1.25"), Some("application/json"), GRANT)).await;
    assert_error(r, 404, "page not found").await;
    let r =
        engine.handle(request(Method::POST, &uri("1.26"), Some("application/json"), GRANT)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-plugin-name"), "vieux/sshfs:latest");
    assert_eq!(body(r).await, "{\"status\":\"upgrade 1\"}\r\n{\"status\":\"upgrade 2\"}\r\n");
    let r = engine.handle(request(Method::POST, &uri("1.41"), Some("text/plain"), GRANT)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(fake.calls(), ["upgrade vieux/sshfs:latest from docker.io/vieux/sshfs:next"]);
}
