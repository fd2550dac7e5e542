//! Plugin addresses: `unix://`, `tcp://`, `http://` and `https://` URLs, parsed once.

use std::fmt;
use std::path::PathBuf;

use dockplug_protocol::common::UNIX_SOCKET_HOST;

/// The longest unix socket path the kernel accepts (`sun_path` holds 108 bytes with its NUL).
const MAX_UNIX_PATH: usize = 107;

/// Why an address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The address has no `scheme://` prefix.
    #[error("address {addr:?} has no scheme (want unix://, tcp://, http:// or https://)")]
    NoScheme {
        /// The address as given.
        addr: String,
    },
    /// The scheme is not one a v1 plugin can be reached by.
    #[error("address {addr:?} has unsupported scheme {scheme:?} (want unix, tcp, http or https)")]
    UnsupportedScheme {
        /// The address as given.
        addr: String,
        /// Its scheme.
        scheme: String,
    },
    /// A `unix://` address whose path is empty or relative (Moby would dial the URL host).
    #[error("unix socket address {addr:?} must hold an absolute path (unix:///path/to.sock)")]
    RelativeSocket {
        /// The address as given.
        addr: String,
    },
    /// The socket path does not fit in `sockaddr_un`.
    #[error("unix socket path {path:?} is too long")]
    SocketPathTooLong {
        /// The socket path.
        path: PathBuf,
    },
    /// A TCP address without a host, or with a port that is not a number.
    #[error("address {addr:?} has no valid host:port")]
    BadHost {
        /// The address as given.
        addr: String,
    },
}

/// Where a plugin listens, parsed from its URL.
///
/// ```
/// use dockplug_v1::Address;
/// let a: Address = "tcp://127.0.0.1:8080".parse()?;
/// assert_eq!(a.host_header(), "127.0.0.1:8080");
/// assert!(!a.is_tls());
/// let u: Address = "unix:///run/docker/plugins/x.sock".parse()?;
/// assert_eq!(u.host_header(), "plugin.moby.localhost");
/// # Ok::<(), dockplug_v1::AddressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    Unix(PathBuf),
    Tcp { host: String, port: u16, authority: String, tls: bool },
}

impl Address {
    /// The address exactly as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The socket path of a `unix://` address.
    pub fn unix_path(&self) -> Option<&std::path::Path> {
        match &self.kind {
            Kind::Unix(p) => Some(p),
            Kind::Tcp { .. } => None,
        }
    }

    /// The host and port of a TCP address (`tcp`, `http`, `https`).
    pub fn tcp_host_port(&self) -> Option<(&str, u16)> {
        match &self.kind {
            Kind::Unix(_) => None,
            Kind::Tcp { host, port, .. } => Some((host, *port)),
        }
    }

    /// Whether calls use TLS: only for the `https` scheme, as in Moby.
    pub fn is_tls(&self) -> bool {
        matches!(self.kind, Kind::Tcp { tls: true, .. })
    }

    /// The `Host` header sent with each call: `plugin.moby.localhost` on unix sockets, the
    /// URL's `host[:port]` otherwise.
    pub fn host_header(&self) -> &str {
        match &self.kind {
            Kind::Unix(_) => UNIX_SOCKET_HOST,
            Kind::Tcp { authority, .. } => authority,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, AddressError> {
        let addr = || text.to_owned();
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(AddressError::NoScheme { addr: addr() });
        };
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "unix" => {
                // Moby parses `unix://a/b` with host `a` and dials the relative path `a`
                // (difference 3); we only accept absolute paths.
                if !rest.starts_with('/') {
                    return Err(AddressError::RelativeSocket { addr: addr() });
                }
                if rest.len() > MAX_UNIX_PATH {
                    return Err(AddressError::SocketPathTooLong { path: rest.into() });
                }
                Kind::Unix(PathBuf::from(rest))
            }
            s @ ("tcp" | "http" | "https") => {
                let tls = s == "https";
                // The URL path is dropped: calls go to `/<Method>` at the host root, as in Moby.
                let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
                let authority = authority.rsplit('@').next().unwrap_or_default();
                let (host, port) = split_host_port(authority, s)
                    .ok_or_else(|| AddressError::BadHost { addr: addr() })?;
                Kind::Tcp { host, port, authority: authority.to_owned(), tls }
            }
            _ => {
                return Err(AddressError::UnsupportedScheme {
                    addr: addr(),
                    scheme: scheme.to_owned(),
                })
            }
        };
        Ok(Address { text: text.to_owned(), kind })
    }
}

/// Split `host:port`, `[v6]:port` or a bare host (default port for http/https; `tcp` needs
/// a port, as Go's dialer does).
fn split_host_port(authority: &str, scheme: &str) -> Option<(String, u16)> {
    let default = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default?,
    };
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_select_transport() {
        let cases = [
            ("tcp://127.0.0.1:1", false, "127.0.0.1:1"),
            ("http://example.com", false, "example.com"),
            ("https://example.com/docker/plugin", true, "example.com"),
            ("unix:///tmp/x.sock", false, "plugin.moby.localhost"),
            ("http://[::1]:99/x", false, "[::1]:99"),
        ];
        for (text, tls, host) in cases {
            let a: Address = text.parse().unwrap();
            assert_eq!(a.is_tls(), tls, "{text}");
            assert_eq!(a.host_header(), host, "{text}");
            assert_eq!(a.as_str(), text);
        }
        let a: Address = "https://example.com/docker/plugin".parse().unwrap();
        assert_eq!(a.tcp_host_port(), Some(("example.com", 443)));
        let a: Address = "http://[::1]:99".parse().unwrap();
        assert_eq!(a.tcp_host_port(), Some(("::1", 99)));
    }

    #[test]
    fn bad_addresses_are_typed() {
        assert!(matches!("localhost:8080".parse::<Address>(), Err(AddressError::NoScheme { .. })));
        assert!(matches!(
            "ftp://x:1".parse::<Address>(),
            Err(AddressError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            "unix://var/run/x.sock".parse::<Address>(),
            Err(AddressError::RelativeSocket { .. })
        ));
        assert!(matches!("tcp://host".parse::<Address>(), Err(AddressError::BadHost { .. })));
        assert!(matches!("tcp://:80".parse::<Address>(), Err(AddressError::BadHost { .. })));
        assert!(matches!("tcp://h:port".parse::<Address>(), Err(AddressError::BadHost { .. })));
        let long = format!("unix:///{}", "a".repeat(120));
        assert!(matches!(long.parse::<Address>(), Err(AddressError::SocketPathTooLong { .. })));
    }
}
