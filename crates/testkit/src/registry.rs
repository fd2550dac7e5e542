//! A private OCI registry: Debian's `docker-registry` (distribution 2.8) on an ephemeral
//! loopback port, with its own config and storage in a temp dir, stopped by PID on drop.
//!
//! Variants, chosen on the [`RegistryBuilder`]: no auth; htpasswd basic auth (the bcrypt line
//! is generated here); token auth whose realm is a token server the test runs, signing with
//! the [`TokenSigner`] the registry trusts; and any of these over TLS with a CA of its own.
//!
//! ```no_run
//! use dockplug_testkit::{Access, Registry};
//! use std::time::Duration;
//!
//! // The test's token server listens first, so its URL can go in the registry's config.
//! let token_server = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let realm = format!("http://{}/token", token_server.local_addr()?);
//! let registry = Registry::builder().token(&realm).start()?;
//! let signer = registry.token_signer().expect("a token registry has a signer").clone();
//! // ... the server answers `GET /token?service=..&scope=..` with `{"token": jwt}`:
//! let jwt = signer.sign("alice", &[Access::repository("plugins/p", &["pull"])], Duration::from_secs(300))?;
//! # let _ = jwt;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::http::{self, Request, Response};
use crate::{program, Daemon, Error, TokenSigner};

/// How long the registry may take to answer `GET /v2/`.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// How often a start is retried when another process took the chosen port first.
const PORT_ATTEMPTS: usize = 5;

/// The realm of the htpasswd variant's `Basic` challenge.
pub const BASIC_REALM: &str = "dockplug-testkit";

/// The token variant's `service` (the audience its tokens must name).
pub const TOKEN_SERVICE: &str = "dockplug-testkit-registry";

/// The token variant's trusted `issuer`.
pub const TOKEN_ISSUER: &str = "dockplug-testkit-token-issuer";

/// How a registry authenticates its clients.
#[derive(Debug, Clone, Default)]
enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    Token {
        realm: String,
    },
}

/// What registry to start: [`Registry::builder`], then [`start`](Self::start).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RegistryBuilder {
    auth: Auth,
    tls: bool,
}

impl RegistryBuilder {
    /// htpasswd basic auth with one user (realm [`BASIC_REALM`]).
    pub fn basic(mut self, user: &str, password: &str) -> Self {
        self.auth = Auth::Basic { user: user.to_owned(), password: password.to_owned() };
        self
    }

    /// Token auth: clients are sent to `realm` (the caller's token server) for a JWT signed
    /// by [`Registry::token_signer`], for service [`TOKEN_SERVICE`] from issuer
    /// [`TOKEN_ISSUER`].
    pub fn token(mut self, realm: &str) -> Self {
        self.auth = Auth::Token { realm: realm.to_owned() };
        self
    }

    /// Serve HTTPS with a certificate for `127.0.0.1` and `localhost` signed by a CA of the
    /// registry's own ([`Registry::ca_pem`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Starts the registry and waits until `GET /v2/` answers.
    pub fn start(self) -> Result<Registry, Error> {
        Registry::start(self)
    }
}

/// The TLS files of a registry started with [`RegistryBuilder::tls`].
#[derive(Debug, Clone)]
struct Tls {
    ca_pem: PathBuf,
    cert_pem: PathBuf,
    key_pem: PathBuf,
}

/// A running private registry.
#[derive(Debug)]
pub struct Registry {
    daemon: Daemon,
    addr: SocketAddr,
    config: PathBuf,
    storage: PathBuf,
    tls: Option<Tls>,
    signer: Option<TokenSigner>,
    credentials: Option<(String, String)>,
    // Dropped last: the daemon stops before its files go.
    dir: tempfile::TempDir,
}

impl Registry {
    /// What to start: no auth and plain HTTP unless told otherwise.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// A registry without auth, on plain HTTP.
    pub fn plain() -> Result<Registry, Error> {
        Registry::builder().start()
    }

    fn start(spec: RegistryBuilder) -> Result<Registry, Error> {
        let binary = program("docker-registry")?;
        let dir = crate::temp_dir("reg")?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)
            .map_err(|e| Error::io(format!("create {}", storage.display()), e))?;
        let tls = if spec.tls { Some(tls_files(dir.path())?) } else { None };
        let (signer, credentials) = match &spec.auth {
            Auth::None => (None, None),
            Auth::Basic { user, password } => {
                write_htpasswd(&dir.path().join("htpasswd"), user, password)?;
                (None, Some((user.clone(), password.clone())))
            }
            Auth::Token { .. } => {
                (Some(TokenSigner::generate(dir.path(), TOKEN_ISSUER, TOKEN_SERVICE)?), None)
            }
        };
        let config = dir.path().join("config.yml");
        let mut last = None;
        for attempt in 1..=PORT_ATTEMPTS {
            let addr = free_port()?;
            let yaml =
                config_yaml(dir.path(), &storage, addr, &spec.auth, tls.as_ref(), signer.as_ref());
            std::fs::write(&config, yaml)
                .map_err(|e| Error::io(format!("write {}", config.display()), e))?;
            let mut cmd = Command::new(&binary);
            // Only our config counts: no REGISTRY_* overrides from the environment.
            cmd.env_clear().env("PATH", crate::DAEMON_PATH).arg("serve").arg(&config);
            let log = dir.path().join(format!("registry-{attempt}.log"));
            let mut daemon = Daemon::spawn("docker-registry", cmd, &log)?;
            match daemon.wait_ready("GET /v2/", START_DEADLINE, || probe(addr).is_ok()) {
                Ok(()) => {
                    return Ok(Registry {
                        daemon,
                        addr,
                        config,
                        storage,
                        tls,
                        signer,
                        credentials,
                        dir,
                    })
                }
                Err(e @ Error::Exited { .. })
                    if daemon.log_tail().contains("address already in use") =>
                {
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::protocol("start docker-registry", "no free port")))
    }

    /// The loopback address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:<port>`, the host part of a reference to it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port>` (or `https://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The temp dir holding its config, storage, keys and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its `config.yml`.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Its storage root (`storage.filesystem.rootdirectory`).
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// The PID of the registry process.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The registry's log so far (its access log included).
    pub fn log_tail(&self) -> String {
        self.daemon.log_tail()
    }

    /// The user and password of the htpasswd variant.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The signer the token variant trusts.
    pub fn token_signer(&self) -> Option<&TokenSigner> {
        self.signer.as_ref()
    }

    /// The CA certificate (PEM) of the TLS variant.
    pub fn ca_pem(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_pem.as_path())
    }

    /// Writes the TLS variant's CA as `<dir>/<host:port>/ca.crt`, the `certs.d` layout
    /// dockerd reads (`/etc/docker/certs.d`); returns that host directory.
    pub fn certs_d(&self, dir: &Path) -> Result<PathBuf, Error> {
        let tls = self
            .tls
            .as_ref()
            .ok_or_else(|| Error::protocol("certs.d", "this registry serves plain HTTP"))?;
        let host_dir = dir.join(self.host());
        std::fs::create_dir_all(&host_dir)
            .map_err(|e| Error::io(format!("create {}", host_dir.display()), e))?;
        std::fs::copy(&tls.ca_pem, host_dir.join("ca.crt"))
            .map_err(|e| Error::io(format!("copy the CA into {}", host_dir.display()), e))?;
        Ok(host_dir)
    }

    /// One plain-HTTP request to the registry (not for the TLS variant).
    pub fn request(&self, req: &Request<'_>) -> Result<Response, Error> {
        http::tcp(self.addr, req, Duration::from_secs(10))
    }
}

/// One `GET /v2/`: any HTTP reply means the registry answers (a TLS one answers plain
/// HTTP with 400).
fn probe(addr: SocketAddr) -> Result<Response, Error> {
    http::tcp(addr, &Request::get("/v2/"), Duration::from_secs(2))
}

/// A loopback port nobody listens on right now (the kernel's pick for port 0).
fn free_port() -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("bind 127.0.0.1:0", e))?;
    listener.local_addr().map_err(|e| Error::io("read the bound address", e))
}

fn write_htpasswd(path: &Path, user: &str, password: &str) -> Result<(), Error> {
    // The cheapest cost bcrypt allows: the file guards nothing but a test.
    let hash = bcrypt::hash_with_result(password, 4)
        .map_err(|e| Error::crypto("an htpasswd hash", e))?
        .format_for_version(bcrypt::Version::TwoY);
    std::fs::write(path, format!("{user}:{hash}\n"))
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

fn tls_files(dir: &Path) -> Result<Tls, Error> {
    let crypto = |what: &str| {
        let what = what.to_owned();
        move |e: rcgen::Error| Error::crypto(what.clone(), e)
    };
    let ca_key = rcgen::KeyPair::generate().map_err(crypto("a CA key"))?;
    let mut ca =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(crypto("CA parameters"))?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "dockplug-testkit registry CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(crypto("a CA certificate"))?;
    let key = rcgen::KeyPair::generate().map_err(crypto("a server key"))?;
    let mut leaf =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(crypto("server certificate parameters"))?;
    leaf.distinguished_name.push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(crypto("a server certificate"))?;
    let tls = Tls {
        ca_pem: dir.join("ca.crt"),
        cert_pem: dir.join("server.crt"),
        key_pem: dir.join("server.key"),
    };
    for (path, text) in [
        (&tls.ca_pem, ca_cert.pem()),
        (&tls.cert_pem, cert.pem()),
        (&tls.key_pem, key.serialize_pem()),
    ] {
        std::fs::write(path, text)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    }
    Ok(tls)
}

fn config_yaml(
    dir: &Path,
    storage: &Path,
    addr: SocketAddr,
    auth: &Auth,
    tls: Option<&Tls>,
    signer: Option<&TokenSigner>,
) -> String {
    let mut yaml = format!(
        "version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
health:
  storagedriver:
    enabled: false
http:
  addr: {addr}
  secret: dockplug-testkit-{pid}
",
        storage = storage.display(),
        pid = std::process::id(),
    );
    if let Some(tls) = tls {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            tls.cert_pem.display(),
            tls.key_pem.display()
        ));
    }
    match (auth, signer) {
        (Auth::Basic { .. }, _) => yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: {BASIC_REALM}\n    path: {}\n",
            dir.join("htpasswd").display()
        )),
        (Auth::Token { realm }, Some(signer)) => yaml.push_str(&format!(
            "auth:\n  token:\n    realm: \"{realm}\"\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            signer.service,
            signer.issuer,
            signer.cert_pem.display()
        )),
        _ => {}
    }
    yaml
}
