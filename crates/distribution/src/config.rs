//! How the client talks to registries: insecure registries, the certs.d directory, deadlines,
//! limits and the platform an index is resolved for.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The platform a manifest list or OCI index is resolved for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPlatform {
    /// `os`: always `linux` for plugins.
    pub os: String,
    /// `architecture` in Go's names (`amd64`, `arm64`, `arm`, `386`, ...).
    pub architecture: String,
    /// `variant` (`v8` for arm64, `v7` for arm); empty when none.
    pub variant: String,
}

impl TargetPlatform {
    /// This machine's platform, in Go's names (as `platforms.DefaultSpec()` gives it).
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "aarch64" => ("arm64", "v8"),
            "arm" => ("arm", "v7"),
            "x86" => ("386", ""),
            "powerpc64" => ("ppc64le", ""),
            "s390x" => ("s390x", ""),
            "riscv64" => ("riscv64", ""),
            other => (other, ""),
        };
        Self { os: "linux".into(), architecture: architecture.into(), variant: variant.into() }
    }
}

impl std::fmt::Display for TargetPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// The client's configuration. [`RegistryConfig::default`] has Docker's defaults: only
/// loopback registries are insecure, certificates in `/etc/docker/certs.d`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RegistryConfig {
    /// `host[:port]` of registries reached without TLS verification and, if HTTPS fails,
    /// over plain HTTP (dockerd's `--insecure-registry`). Loopback hosts are always insecure.
    pub insecure_registries: Vec<String>,
    /// Whether loopback hosts count as insecure (Docker: always; `false` makes a loopback
    /// registry verified like any other, which tests of `certs.d` need).
    pub loopback_insecure: bool,
    /// `<dir>/<host[:port]>/` holds `*.crt` CAs and `*.cert`/`*.key` client pairs (dockerd:
    /// `/etc/docker/certs.d`). `None`: system roots only.
    pub certs_dir: Option<PathBuf>,
    /// Deadline for a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Deadline for the reply headers of each request, and for each read of a body.
    pub request_timeout: Duration,
    /// Largest manifest or index accepted (containerd's limit: 4 MiB).
    pub max_manifest: u64,
    /// Largest config blob accepted.
    pub max_config: u64,
    /// Redirects followed per request.
    pub max_redirects: usize,
    /// The platform indexes are resolved for.
    pub platform: TargetPlatform,
    /// Least time between two byte-count progress messages of one layer.
    pub progress_interval: Duration,
    /// `User-Agent`.
    pub user_agent: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            loopback_insecure: true,
            certs_dir: Some(PathBuf::from("/etc/docker/certs.d")),
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_manifest: 4 << 20,
            max_config: 4 << 20,
            max_redirects: 10,
            platform: TargetPlatform::host(),
            progress_interval: Duration::from_millis(100),
            user_agent: concat!("dockplug/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The host part of `host[:port]` (brackets of an IPv6 address removed).
pub(crate) fn host_of(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)
}

impl RegistryConfig {
    /// Docker's insecure-registry rule: loopback hosts (`localhost`, `127.0.0.0/8`, `::1`)
    /// and the configured `host[:port]` list (a bare host in the list matches every port).
    pub fn is_insecure(&self, hostport: &str) -> bool {
        let host = host_of(hostport);
        let loopback = host == "localhost"
            || host.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false);
        (loopback && self.loopback_insecure)
            || self.insecure_registries.iter().any(|r| r == hostport || r == host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_rule() {
        let mut c = RegistryConfig::default();
        for h in ["localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000", "localhost"] {
            assert!(c.is_insecure(h), "{h}");
        }
        for h in ["registry.example:5000", "10.0.0.1:5000", "[fe80::1]:5000", "docker.io"] {
            assert!(!c.is_insecure(h), "{h}");
        }
        c.insecure_registries = vec!["registry.example:5000".into(), "10.0.0.1".into()];
        assert!(c.is_insecure("registry.example:5000"));
        assert!(!c.is_insecure("registry.example:5001"));
        assert!(c.is_insecure("10.0.0.1:443"));
        assert_eq!(host_of("[::1]:5000"), "::1");
        assert_eq!(TargetPlatform::host().os, "linux");
    }
}
