//! `/_ping`, `/version`, `/info`, version checks and the headers on every reply.

use http::Method;

use super::fake::{assert_error, body, call, engine, header};

/// The headers dockerd's version and experimental middlewares set on every reply.
fn assert_version_headers(reply: &crate::Reply) {
    assert_eq!(header(reply, "api-version"), "1.41");
    assert_eq!(header(reply, "ostype"), "linux");
    assert_eq!(header(reply, "docker-experimental"), "false");
    assert!(header(reply, "server").starts_with("Docker/"), "{:?}", header(reply, "server"));
    assert!(header(reply, "server").ends_with(" (linux)"));
}

#[tokio::test]
async fn ping_get_and_head() {
    let (engine, _) = engine();
    let r = call(&engine, Method::GET, "/_ping").await;
    assert_eq!(r.status(), 200);
    assert_version_headers(&r);
    assert_eq!(header(&r, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(header(&r, "cache-control"), "no-cache, no-store, must-revalidate");
    assert_eq!(header(&r, "pragma"), "no-cache");
    assert_eq!(body(r).await, "OK");

    let r = call(&engine, Method::HEAD, "/_ping").await;
    assert_eq!(r.status(), 200);
    assert_version_headers(&r);
    assert_eq!(header(&r, "content-length"), "0");
    assert_eq!(header(&r, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(body(r).await, "");

    let r = call(&engine, Method::GET, "/v1.41/_ping").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn version_document() {
    let (engine, _) = engine();
    let r = call(&engine, Method::GET, "/v1.41/version").await;
    assert_eq!(r.status(), 200);
    assert_version_headers(&r);
    assert_eq!(header(&r, "content-type"), "application/json");
    let v: serde_json::Value = serde_json::from_str(&body(r).await).unwrap();
    assert_eq!(v["ApiVersion"], "1.41");
    assert_eq!(v["MinAPIVersion"], "1.24");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["Components"][0]["Name"], "Engine");
    assert_eq!(v["Components"][0]["Details"]["ApiVersion"], "1.41");
    assert!(v.get("Experimental").is_none(), "omitted when false, as Go's omitempty");
}

#[tokio::test]
async fn info_lists_enabled_plugins_by_kind() {
    let (engine, _) = engine();
    let r = call(&engine, Method::GET, "/info").await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&body(r).await).unwrap();
    assert_eq!(
        v["Plugins"],
        serde_json::json!({
            "Volume": ["golden/vol:1"], "Network": [], "Authorization": null, "Log": []
        })
    );
    assert_eq!(v["OSType"], "linux");
}

#[tokio::test]
async fn unknown_paths_and_methods_are_page_not_found() {
    let (engine, _) = engine();
    for (method, uri) in [
        (Method::GET, "/nope"),
        (Method::GET, "/v1.41/nope"),
        (Method::PUT, "/plugins"),
        (Method::GET, "/plugins/x/enable"),
        (Method::GET, "/v1.41"),
        (Method::HEAD, "/version"),
    ] {
        let r = call(&engine, method.clone(), uri).await;
        assert_version_headers(&r);
        assert_error(r, 404, "page not found").await;
    }
}

#[tokio::test]
async fn versions_out_of_range_are_refused() {
    let (engine, _) = engine();
    let r = call(&engine, Method::GET, "/v1.42/plugins").await;
    assert_version_headers(&r);
    assert_error(r, 400, "client version 1.42 is too new. Maximum supported API version is 1.41")
        .await;
    let r = call(&engine, Method::GET, "/v1.12/_ping").await;
    assert_error(
        r,
        400,
        "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version",
    )
    .await;
    // 1.9 < 1.24 numerically, not as strings.
    assert_eq!(call(&engine, Method::GET, "/v1.9/_ping").await.status(), 400);
    assert_eq!(call(&engine, Method::GET, "/v1.25/_ping").await.status(), 200);
}
