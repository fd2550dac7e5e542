//! Private OCI registries for a test (`dockplug_testkit::Registry`: Debian's
//! `docker-registry`, distribution 2.8, on an ephemeral loopback port with its own config
//! and storage, stopped by PID), in the panicking shape a test wants.

use std::sync::Arc;
use std::time::Duration;

use dockplug_testkit::http::{self, Request, Response};
use dockplug_testkit::{Registry, RunningTokenServer, TokenPolicy, TokenServer};

/// A registry without auth, on plain HTTP.
pub fn plain() -> Registry {
    Registry::plain().expect("start a plain registry")
}

/// A registry with htpasswd basic auth for `user`/`password`.
pub fn basic(user: &str, password: &str) -> Registry {
    Registry::builder().basic(user, password).start().expect("start a basic-auth registry")
}

/// A registry with token auth, and its token server granting tokens under `policy`.
pub fn token(policy: TokenPolicy) -> (Registry, RunningTokenServer) {
    let server = TokenServer::bind().expect("bind a token server");
    let registry =
        Registry::builder().token(&server.realm()).start().expect("start a token-auth registry");
    let signer = registry.token_signer().expect("a token registry has a signer").clone();
    let tokens = server.serve(signer, policy).expect("serve tokens");
    (registry, tokens)
}

/// A registry without auth on HTTPS, its certificate signed by its own CA.
pub fn tls() -> Registry {
    Registry::builder().tls().start().expect("start a TLS registry")
}

/// One HTTPS request to a TLS registry, trusting only its CA.
pub fn https(registry: &Registry, req: &Request<'_>) -> Response {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let ca = registry.ca_pem().expect("a TLS registry has a CA");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).expect("read the CA")).expect("add the CA");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("a server name").to_owned();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("a TLS client");
    let tcp = std::net::TcpStream::connect(registry.addr()).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let stream = rustls::StreamOwned::new(conn, tcp);
    http::exchange(stream, &registry.host(), req).expect("an HTTPS exchange")
}

/// `GET path` with `Authorization: <authorization>`, over plain HTTP.
pub fn get_with(registry: &Registry, path: &str, authorization: &str) -> Response {
    let headers = [("Authorization", authorization)];
    registry
        .request(&Request { method: "GET", path, headers: &headers, body: b"" })
        .expect("a registry request")
}
