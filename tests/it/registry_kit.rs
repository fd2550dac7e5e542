//! The testkit's private registries start and answer as distribution 2.8 does: plain,
//! htpasswd basic auth (401 with a Basic challenge), token auth (401 with a Bearer challenge
//! naming our token server, whose signed tokens the registry accepts scope by scope) and
//! TLS with a CA of its own; each stops by PID when dropped.

use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use dockplug_testkit::http::{self, Request};
use dockplug_testkit::registry::{BASIC_REALM, TOKEN_SERVICE};
use dockplug_testkit::TokenPolicy;

use crate::support::registry;

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

#[test]
fn a_plain_registry_answers_v2_and_stops_by_pid() {
    let reg = registry::plain();
    let reply = reg.request(&Request::get("/v2/")).unwrap();
    assert_eq!(reply.status, 200, "{}", reg.log_tail());
    assert_eq!(reply.header("Docker-Distribution-Api-Version"), Some("registry/2.0"));
    assert_eq!(reply.text(), "{}");
    assert!(reg.addr().ip().is_loopback());
    assert!(reg.storage().starts_with(reg.dir()));
    let (pid, dir) = (reg.pid(), reg.dir().to_owned());
    drop(reg);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "registry {pid} outlived its guard");
    assert!(!dir.exists(), "{} outlived the registry", dir.display());
}

#[test]
fn a_basic_auth_registry_challenges_and_accepts_its_user() {
    let reg = registry::basic("alice", "s3cret");
    let reply = reg.request(&Request::get("/v2/")).unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("WWW-Authenticate"),
        Some(format!("Basic realm=\"{BASIC_REALM}\"").as_str())
    );
    assert_eq!(registry::get_with(&reg, "/v2/", &basic("alice", "s3cret")).status, 200);
    assert_eq!(registry::get_with(&reg, "/v2/", &basic("alice", "wrong")).status, 401);
    assert_eq!(reg.credentials(), Some(("alice", "s3cret")));
}

#[test]
fn a_token_auth_registry_sends_clients_to_our_token_server_and_honours_its_scopes() {
    let (reg, tokens) = registry::token(TokenPolicy::basic("bob", "pw"));
    let reply = reg.request(&Request::get("/v2/")).unwrap();
    assert_eq!(reply.status, 401);
    let challenge = reply.header("WWW-Authenticate").unwrap().to_owned();
    assert_eq!(
        challenge,
        format!("Bearer realm=\"{}\",service=\"{TOKEN_SERVICE}\"", tokens.realm())
    );

    // Follow the challenge as a client does: the realm, with the service and a scope.
    let realm = tokens.realm();
    let token_addr =
        realm.trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();
    let ask = |auth: &str| {
        let target =
            format!("/token?service={TOKEN_SERVICE}&scope=repository%28plugin%29%3Akit%2Fp%3Apull");
        let headers = [("Authorization", auth)];
        http::tcp(
            token_addr,
            &Request { method: "GET", path: &target, headers: &headers, body: b"" },
            Duration::from_secs(10),
        )
        .unwrap()
    };
    assert_eq!(ask(&basic("bob", "nope")).status, 401);
    let granted = ask(&basic("bob", "pw"));
    assert_eq!(granted.status, 200, "{}", granted.text());
    let body: serde_json::Value = serde_json::from_slice(&granted.body).unwrap();
    let bearer = format!("Bearer {}", body["token"].as_str().unwrap());

    // Authorized for kit/p (which does not exist yet), not for anything else.
    let ours = registry::get_with(&reg, "/v2/kit/p/tags/list", &bearer);
    assert_eq!(ours.status, 404, "{}\n{}", ours.text(), reg.log_tail());
    assert!(ours.text().contains("NAME_UNKNOWN"), "{}", ours.text());
    let other = registry::get_with(&reg, "/v2/kit/other/tags/list", &bearer);
    assert_eq!(other.status, 401);
    assert!(
        other.header("WWW-Authenticate").unwrap().contains("error=\"insufficient_scope\""),
        "{:?}",
        other.header("WWW-Authenticate")
    );
    let forged = format!("{}x", bearer.trim_end_matches(|c: char| c != '.'));
    assert_eq!(registry::get_with(&reg, "/v2/kit/p/tags/list", &forged).status, 401);

    let seen: Vec<u16> = tokens.requests().iter().map(|r| r.status).collect();
    assert_eq!(seen, [401, 200], "{:?}", tokens.requests());
}

#[test]
fn a_tls_registry_serves_https_with_its_own_ca() {
    let reg = registry::tls();
    assert!(reg.url().starts_with("https://127.0.0.1:"));
    let reply = registry::https(&reg, &Request::get("/v2/"));
    assert_eq!(reply.status, 200, "{}", reg.log_tail());
    // Plain HTTP on the TLS port gets Go's "client sent an HTTP request to an HTTPS server".
    assert_eq!(reg.request(&Request::get("/v2/")).unwrap().status, 400);
    let certs = tempfile::tempdir().unwrap();
    let host_dir = reg.certs_d(certs.path()).unwrap();
    assert_eq!(host_dir, certs.path().join(reg.host()));
    assert!(host_dir.join("ca.crt").is_file());
}
