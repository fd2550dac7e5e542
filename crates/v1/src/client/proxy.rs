//! The HTTP proxy of a TCP plugin, chosen from the environment as Go's
//! `http.ProxyFromEnvironment` chooses it (`golang.org/x/net/http/httpproxy`), which Moby's
//! plugin transport uses for every address but a unix socket (`go-connections`
//! `sockets/sockets.go ConfigureTransport`).
//!
//! * `HTTPS_PROXY` (or `https_proxy`) for `https://` plugins, `HTTP_PROXY` (or `http_proxy`)
//!   for `tcp://` and `http://` ones; the upper-case name wins when both are set. There is no
//!   fall-back from one to the other.
//! * `NO_PROXY` (or `no_proxy`): a comma-separated list of `*` (no proxy at all), IP
//!   addresses, CIDR ranges, and domain names with an optional port; `example.com` matches it
//!   and its subdomains, `.example.com` and `*.example.com` only the subdomains.
//! * `localhost` and loopback addresses are never proxied.
//! * Under CGI (`REQUEST_METHOD` set) `HTTP_PROXY` is refused, as Go refuses it.
//! * A proxy given without a scheme is `http://`. Only `http://` proxies are supported here
//!   (Go also speaks `https://` and `socks5://` to a proxy): any other is a [`ProxyError`].
//!
//! Through the proxy, a plain plugin gets its requests in absolute form
//! (`POST http://host:port/Method`); an `https://` plugin is reached through a `CONNECT`
//! tunnel with TLS to the plugin inside it. Credentials in the proxy URL are sent as
//! `Proxy-Authorization: Basic …`.

use std::net::IpAddr;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::address::Address;

/// The longest `CONNECT` reply head read from a proxy.
const MAX_CONNECT_REPLY: usize = 16 * 1024;

/// Why the proxy configured for an address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL cannot be parsed.
    #[error("invalid proxy address {value:?}")]
    Invalid {
        /// The variable's value.
        value: String,
    },
    /// The proxy speaks a protocol this client does not (`https://`, `socks5://`).
    #[error("proxy {value:?}: scheme {scheme:?} is not supported (use an http:// proxy)")]
    UnsupportedScheme {
        /// The variable's value.
        value: String,
        /// Its scheme.
        scheme: String,
    },
    /// `HTTP_PROXY` is set in a CGI environment (`REQUEST_METHOD` is set), where a client can
    /// set it through a `Proxy:` header; Go refuses it and so do we.
    #[error("refusing to use HTTP_PROXY value in CGI environment")]
    Cgi,
}

/// Which proxies to use: the environment's by default ([`ProxyConfig::from_env`]), or given.
///
/// ```
/// use dockplug_v1::ProxyConfig;
/// let env = |k: &str| match k {
///     "HTTP_PROXY" => Some("proxy.internal:3128".to_owned()),
///     "NO_PROXY" => Some(".corp.example,10.0.0.0/8".to_owned()),
///     _ => None,
/// };
/// let config = ProxyConfig::from_lookup(env);
/// let via = |a: &str| config.proxy_for(&a.parse().unwrap()).unwrap().map(|p| p.to_string());
/// assert_eq!(via("tcp://plugins.example.org:8080").as_deref(), Some("http://proxy.internal:3128"));
/// assert_eq!(via("tcp://vol.corp.example:8080"), None);
/// assert_eq!(via("tcp://10.1.2.3:8080"), None);
/// assert_eq!(via("tcp://127.0.0.1:8080"), None); // loopback: never
/// assert_eq!(via("unix:///run/docker/plugins/x.sock"), None); // unix: never
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    http: Option<String>,
    https: Option<String>,
    no_proxy: String,
    cgi: bool,
}

/// A proxy to reach one plugin through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    /// `Basic <base64(user:password)>`, from the URL's user information.
    authorization: Option<String>,
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else if self.port == 80 {
            write!(f, "http://{}", self.host)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

impl ProxyConfig {
    /// No proxy for any address.
    pub fn none() -> Self {
        Self::default()
    }

    /// The process environment's `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY` (and their
    /// lower-case forms) and `REQUEST_METHOD`, read now.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The same variables, looked up through `env`.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Self {
        let any = |names: [&str; 2]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        Self {
            http: any(["HTTP_PROXY", "http_proxy"]),
            https: any(["HTTPS_PROXY", "https_proxy"]),
            no_proxy: any(["NO_PROXY", "no_proxy"]).unwrap_or_default(),
            cgi: env("REQUEST_METHOD").is_some_and(|v| !v.is_empty()),
        }
    }

    /// Use `url` for `tcp://` and `http://` plugins.
    pub fn http_proxy(mut self, url: impl Into<String>) -> Self {
        self.http = Some(url.into());
        self
    }

    /// Use `url` for `https://` plugins.
    pub fn https_proxy(mut self, url: impl Into<String>) -> Self {
        self.https = Some(url.into());
        self
    }

    /// Never proxy what `list` names (`NO_PROXY` syntax).
    pub fn no_proxy(mut self, list: impl Into<String>) -> Self {
        self.no_proxy = list.into();
        self
    }

    /// The proxy to reach `addr` through, if any.
    pub fn proxy_for(&self, addr: &Address) -> Result<Option<Proxy>, ProxyError> {
        let Some((host, port)) = addr.tcp_host_port() else { return Ok(None) };
        let value = if addr.is_tls() {
            self.https.as_deref()
        } else {
            if self.http.is_some() && self.cgi {
                return Err(ProxyError::Cgi);
            }
            self.http.as_deref()
        };
        let Some(value) = value else { return Ok(None) };
        if !self.use_proxy(&host.to_ascii_lowercase(), port) {
            return Ok(None);
        }
        parse_proxy(value).map(Some)
    }

    /// Go's `useProxy`: false for localhost, loopback and whatever `NO_PROXY` names.
    fn use_proxy(&self, host: &str, port: u16) -> bool {
        if host == "localhost" {
            return false;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return false;
        }
        let port = port.to_string();
        for entry in self.no_proxy.split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                return false;
            }
            if let Some((net, bits)) = parse_cidr(&entry) {
                if ip.is_some_and(|ip| cidr_contains(net, bits, ip)) {
                    return false;
                }
                continue;
            }
            let (phost, pport) = match split_host_port(&entry) {
                Some((h, _)) if h.is_empty() => continue,
                Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']').to_owned(), p),
                None => (entry.clone(), String::new()),
            };
            let port_ok = pport.is_empty() || pport == port;
            if let Ok(pip) = phost.parse::<IpAddr>() {
                if ip == Some(pip) && port_ok {
                    return false;
                }
                continue;
            }
            if phost.is_empty() {
                continue;
            }
            let phost = phost.strip_prefix('*').unwrap_or(&phost);
            let (suffix, match_host) = match phost.strip_prefix('.') {
                Some(_) => (phost.to_owned(), false),
                None => (format!(".{phost}"), true),
            };
            let hit = host.ends_with(&suffix) || (match_host && host == &suffix[1..]);
            if hit && port_ok {
                return false;
            }
        }
        true
    }
}

/// `host:port` (or `[v6]:port`) split as Go's `net.SplitHostPort`; `None` without a port.
fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let p = after.strip_prefix(':')?;
        return Some((h.to_owned(), p.to_owned()));
    }
    let (h, p) = s.rsplit_once(':')?;
    if h.contains(':') {
        return None; // a bare IPv6 address
    }
    Some((h.to_owned(), p.to_owned()))
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn cidr_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    let (a, b, width) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        (IpAddr::V6(n), IpAddr::V4(i)) => (u128::from(n), u128::from(i.to_ipv6_mapped()), 128),
        (IpAddr::V4(n), IpAddr::V6(i)) => match i.to_ipv4_mapped() {
            Some(i) => (u32::from(n) as u128, u32::from(i) as u128, 32),
            None => return false,
        },
    };
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (a >> shift) == (b >> shift)
}

/// Go's `parseProxy`: a URL, or `host:port` taken as `http://host:port`.
fn parse_proxy(value: &str) -> Result<Proxy, ProxyError> {
    let invalid = || ProxyError::Invalid { value: value.to_owned() };
    let (scheme, rest) = match value.split_once("://") {
        Some((s, r)) if !s.is_empty() && !r.is_empty() => (s.to_ascii_lowercase(), r),
        _ => ("http".to_owned(), value),
    };
    if scheme != "http" {
        return Err(ProxyError::UnsupportedScheme { value: value.to_owned(), scheme });
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = match split_host_port(hostport) {
        Some((h, p)) if p.is_empty() => (h, 80),
        Some((h, p)) => (h, p.parse().map_err(|_| invalid())?),
        None => (hostport.trim_start_matches('[').trim_end_matches(']').to_owned(), 80),
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(invalid());
    }
    let authorization = match userinfo {
        None => None,
        Some(u) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let creds = format!("{}:{}", percent_decode(user), percent_decode(pass));
            Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds)))
        }
    };
    Ok(Proxy { host, port, authorization })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Proxy {
    /// The proxy's host and port.
    pub fn host_port(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The `Proxy-Authorization` value, when the proxy URL carries credentials.
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// Open a TCP connection to the proxy.
    pub(super) async fn connect(&self) -> std::io::Result<TcpStream> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// Open a `CONNECT` tunnel through the proxy to `authority` (`host:port`).
    pub(super) async fn tunnel(
        &self,
        authority: &str,
        user_agent: &str,
    ) -> std::io::Result<TcpStream> {
        let mut tcp = self.connect().await?;
        let mut head = format!(
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\n"
        );
        if let Some(auth) = &self.authorization {
            head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes()).await?;
        // Read the reply head byte by byte, so nothing of the tunnel is consumed.
        let mut reply = Vec::with_capacity(128);
        while !reply.ends_with(b"\r\n\r\n") {
            if reply.len() >= MAX_CONNECT_REPLY {
                return Err(std::io::Error::other("proxy CONNECT reply head too large"));
            }
            let byte = tcp.read_u8().await?;
            reply.push(byte);
        }
        let status_line = reply.split(|b| *b == b'\n').next().unwrap_or_default();
        let status_line = String::from_utf8_lossy(status_line).trim().to_owned();
        let code = status_line.split_whitespace().nth(1);
        if code != Some("200") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("proxy refused CONNECT to {authority}: {status_line}"),
            ));
        }
        Ok(tcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> ProxyConfig {
        let vars: Vec<(String, String)> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ProxyConfig::from_lookup(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    fn via(c: &ProxyConfig, addr: &str) -> Option<String> {
        c.proxy_for(&addr.parse().unwrap()).unwrap().map(|p| p.to_string())
    }

    #[test]
    fn variables_are_read_as_go_reads_them() {
        let c = config(&[("HTTP_PROXY", "http://up:1"), ("http_proxy", "http://low:2")]);
        assert_eq!(via(&c, "tcp://h.example:1").as_deref(), Some("http://up:1"));
        assert_eq!(via(&c, "http://h.example").as_deref(), Some("http://up:1"));
        assert_eq!(via(&c, "https://h.example"), None, "no fall-back to HTTP_PROXY");
        let c = config(&[("http_proxy", "low:2"), ("https_proxy", "sec:3")]);
        assert_eq!(via(&c, "tcp://h.example:1").as_deref(), Some("http://low:2"));
        assert_eq!(via(&c, "https://h.example").as_deref(), Some("http://sec:3"));
        assert_eq!(via(&c, "unix:///x.sock"), None);
        let c = config(&[("HTTP_PROXY", "http://p"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(c.proxy_for(&"tcp://h.example:1".parse().unwrap()), Err(ProxyError::Cgi));
        let c = config(&[("HTTP_PROXY", "socks5://p:1080")]);
        assert!(matches!(
            c.proxy_for(&"tcp://h.example:1".parse().unwrap()),
            Err(ProxyError::UnsupportedScheme { .. })
        ));
        let c = config(&[("HTTP_PROXY", "http://u%40x:p%3Aw@p:8")]);
        let p = c.proxy_for(&"tcp://h.example:1".parse().unwrap()).unwrap().unwrap();
        assert_eq!(p.host_port(), ("p", 8));
        // base64("u@x:p:w")
        assert_eq!(p.authorization(), Some("Basic dUB4OnA6dw=="));
    }

    #[test]
    fn no_proxy_matches_as_go_matches() {
        let c = config(&[
            ("HTTP_PROXY", "p:1"),
            ("NO_PROXY", " Example.com, .sub.org,*.star.net, 10.0.0.0/8, 192.168.1.1, [::2]:99, only.port:81 , "),
        ]);
        let proxied = |a: &str| via(&c, a).is_some();
        assert!(!proxied("tcp://example.com:1"));
        assert!(!proxied("tcp://a.example.com:1"));
        assert!(proxied("tcp://notexample.com:1"));
        assert!(proxied("tcp://sub.org:1"), ".sub.org matches subdomains only");
        assert!(!proxied("tcp://x.sub.org:1"));
        assert!(!proxied("tcp://x.star.net:1"));
        assert!(proxied("tcp://star.net:1"));
        assert!(!proxied("tcp://10.9.8.7:1"));
        assert!(proxied("tcp://11.0.0.1:1"));
        assert!(!proxied("tcp://192.168.1.1:5"));
        assert!(!proxied("tcp://[::2]:99"));
        assert!(proxied("tcp://[::2]:98"));
        assert!(!proxied("tcp://only.port:81"));
        assert!(proxied("tcp://only.port:82"));
        assert!(!proxied("tcp://localhost:1"));
        assert!(!proxied("tcp://127.0.0.5:1"));
        assert!(!proxied("tcp://[::1]:1"));
        let all = config(&[("HTTP_PROXY", "p:1"), ("no_proxy", "*")]);
        assert_eq!(via(&all, "tcp://anything.example:1"), None);
    }
}
