//! Where a plugin listens: a unix socket (mode and group settable, a stale file replaced, a
//! live one refused) or TCP with optional TLS; and the discovery file (`.spec`/`.json`) that
//! tells a daemon where to find it.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dockplug_protocol::common::DEFAULT_SPEC_DIRS;

use crate::error::ServeError;

/// The group that will own a unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Group {
    Id(u32),
    Name(String),
}

/// A discovery file to write once the server listens, and remove when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFile {
    dir: PathBuf,
    name: String,
}

impl SpecFile {
    /// A discovery file for plugin `name` in `dir` (`<dir>/<name>.spec`, or `<name>.json` for
    /// TLS). The plugin's name, as the daemon knows it, is the file name.
    pub fn new(dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        Self { dir: dir.into(), name: name.into() }
    }

    /// A discovery file for plugin `name` in Moby's first spec directory, `/etc/docker/plugins`.
    pub fn in_default_dir(name: impl Into<String>) -> Self {
        Self::new(DEFAULT_SPEC_DIRS[0], name)
    }

    fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.name))
    }
}

/// Options for serving on a unix socket.
///
/// ```
/// use dockplug_sdk::UnixListen;
/// let listen = UnixListen::new("/run/docker/plugins/myvol.sock").mode(0o600).group_id(999);
/// # let _ = listen;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListen {
    path: PathBuf,
    mode: u32,
    group: Option<Group>,
    spec: Option<SpecFile>,
}

impl UnixListen {
    /// Listen at the absolute `path`. The defaults match go-plugins-helpers: mode `0660`,
    /// the group unchanged, the parent directory created (`0755`) when missing.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), mode: 0o660, group: None, spec: None }
    }

    /// The socket's permission bits (default `0660`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Give the socket to this group id.
    pub fn group_id(mut self, gid: u32) -> Self {
        self.group = Some(Group::Id(gid));
        self
    }

    /// Give the socket to the group of this name (looked up when binding).
    pub fn group_name(mut self, name: impl Into<String>) -> Self {
        self.group = Some(Group::Name(name.into()));
        self
    }

    /// Also write a `.spec` file pointing at the socket (`unix:///path`), for a socket that
    /// lives outside `/run/docker/plugins`.
    pub fn spec_file(mut self, spec: SpecFile) -> Self {
        self.spec = Some(spec);
        self
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bind: create the parent directory, replace a stale socket file, refuse a live one, then
    /// set the mode and group.
    pub(crate) fn bind(&self) -> Result<(tokio::net::UnixListener, Vec<PathBuf>), ServeError> {
        let path = &self.path;
        if !path.is_absolute() {
            return Err(ServeError::RelativePath { path: path.clone() });
        }
        if let Some(parent) = path.parent() {
            if !parent.exists() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| ServeError::io("create directory", parent.display(), e))?;
                let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755));
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(ServeError::SocketInUse { path: path.clone() });
                }
                tracing::info!(path = %path.display(), "replacing a stale socket file");
                std::fs::remove_file(path)
                    .map_err(|e| ServeError::io("remove stale socket", path.display(), e))?;
            }
            Ok(_) => return Err(ServeError::NotASocket { path: path.clone() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ServeError::io("inspect", path.display(), e)),
        }
        let listener = tokio::net::UnixListener::bind(path)
            .map_err(|e| ServeError::io("bind", path.display(), e))?;
        let mut cleanup = vec![path.clone()];
        let mut guard = Cleanup(cleanup.clone());
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(self.mode))
            .map_err(|e| ServeError::io("chmod", path.display(), e))?;
        if let Some(group) = &self.group {
            let gid = match group {
                Group::Id(id) => *id,
                Group::Name(name) => nix::unistd::Group::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| ServeError::UnknownGroup { name: name.clone() })?
                    .gid
                    .as_raw(),
            };
            nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| ServeError::io("chown", path.display(), e.into()))?;
        }
        if let Some(spec) = &self.spec {
            let file = spec.path("spec");
            write_atomic(&file, format!("unix://{}\n", path.display()).as_bytes())?;
            cleanup.push(file);
        }
        // Bound and configured: the server owns the files from here on.
        guard.0.clear();
        Ok((listener, cleanup))
    }
}

/// Options for serving on TCP, with optional TLS.
#[derive(Debug, Clone)]
pub struct TcpListen {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    ca_file: Option<PathBuf>,
    spec: Option<SpecFile>,
}

impl TcpListen {
    /// Listen on `addr` (port 0 picks a free port).
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, tls: None, ca_file: None, spec: None }
    }

    /// Serve TLS with this configuration (rustls with the `ring` provider). The server speaks
    /// HTTP/1.1 only, as dockerd does to plugins: offer no `h2` in the ALPN protocols.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Write a discovery file once listening. Plain TCP gets `<name>.spec` holding
    /// `tcp://host:port`. TLS gets `<name>.json` with an `https://` address, so that the daemon
    /// really speaks TLS (go-plugins-helpers writes `tcp://` there, and the daemon then speaks
    /// plain HTTP to a TLS server); see [`TcpListen::ca_file`].
    pub fn spec_file(mut self, spec: SpecFile) -> Self {
        self.spec = Some(spec);
        self
    }

    /// The CA file the daemon should verify this server's certificate with, written into the
    /// `.json` discovery file. Without it the daemon does not verify the certificate.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    pub(crate) async fn bind(
        &self,
    ) -> Result<
        (tokio::net::TcpListener, SocketAddr, Option<tokio_rustls::TlsAcceptor>, Vec<PathBuf>),
        ServeError,
    > {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|e| ServeError::io("bind", self.addr, e))?;
        let local =
            listener.local_addr().map_err(|e| ServeError::io("local address of", self.addr, e))?;
        // An unspecified address is not one a client can dial: advertise loopback instead.
        let advertised = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), local.port())
            }
            _ => local,
        };
        let mut cleanup = Vec::new();
        if let Some(spec) = &self.spec {
            if self.tls.is_some() {
                let file = spec.path("json");
                let tls = match &self.ca_file {
                    Some(ca) => serde_json::json!({ "CAFile": ca.display().to_string() }),
                    None => serde_json::json!({ "InsecureSkipVerify": true }),
                };
                let doc = serde_json::json!({ "Addr": format!("https://{advertised}"), "TLSConfig": tls });
                write_atomic(&file, format!("{doc}\n").as_bytes())?;
                cleanup.push(file);
            } else {
                let file = spec.path("spec");
                write_atomic(&file, format!("tcp://{advertised}\n").as_bytes())?;
                cleanup.push(file);
            }
        }
        let acceptor = self.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        Ok((listener, local, acceptor, cleanup))
    }
}

/// Removes files when dropped: the socket and discovery files of a server that stopped.
#[derive(Debug, Default)]
pub(crate) struct Cleanup(pub(crate) Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            match std::fs::remove_file(path) {
                Ok(()) => tracing::debug!(path = %path.display(), "removed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not remove"),
            }
        }
    }
}

/// Write `data` to `path` through a temporary file, fsync and rename, mode `0644`.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ServeError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| ServeError::io("create directory", dir.display(), e))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ServeError::io("write", path.display(), e)
    })
}
