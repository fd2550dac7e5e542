//! Docker reference names (`[domain/]path[:tag][@digest]`): the one parser of the workspace.
//!
//! [`Reference::parse`] follows `distribution/reference` `ParseNormalizedNamed` as Moby uses it
//! for plugin names and remotes: the first path component is the registry domain when it
//! holds a `.` or a `:`, is `localhost`, or has an upper-case letter; otherwise the domain is
//! `docker.io` and a single-component path gets the `library/` namespace. Domains may be
//! host names, IPv4 addresses or bracketed IPv6 addresses (`[::1]:5000`), each with an
//! optional port. Repository paths are lower-case components joined by `.`, `_`, `__` or runs
//! of `-`, at most 255 characters with the domain. A bare 64-hex-digit name is refused, as
//! Moby refuses it (it would read as an image or plugin ID).
//!
//! [`normalize`] is what naming a plugin needs: the familiar form with a tag and no digest
//! (`foo` → `foo:latest`, `docker.io/library/foo` → `foo:latest`, `localhost:5000/p:v1`
//! unchanged).
//!
//! ```
//! use dockplug_protocol::reference::{normalize, Reference};
//! let r = Reference::parse("127.0.0.1:5000/vieux/sshfs:1")?;
//! assert_eq!((r.domain(), r.path(), r.tag()), ("127.0.0.1:5000", "vieux/sshfs", Some("1")));
//! let r = Reference::parse("sshfs")?.with_default_tag();
//! assert_eq!(r.name(), "docker.io/library/sshfs");
//! assert_eq!(r.to_string(), "sshfs:latest");
//! assert_eq!(normalize("docker.io/user/p")?, "user/p:latest");
//! # Ok::<(), dockplug_protocol::reference::ReferenceError>(())
//! ```

use std::fmt;

/// Why a name is not a valid reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The string does not parse as a reference.
    #[error("invalid reference format: {reason}")]
    Invalid {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The reference carries a digest where a plugin name may not.
    #[error("canonical references are not permitted")]
    Canonical,
    /// The name is a bare 64-digit hexadecimal string (Moby's text).
    #[error("invalid repository name ({name}), cannot specify 64-byte hexadecimal strings")]
    HexName {
        /// The name given.
        name: String,
    },
}

/// The default registry domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy name of the default domain, folded into [`DEFAULT_DOMAIN`].
const LEGACY_DOMAIN: &str = "index.docker.io";
/// The namespace of single-component names on the default domain.
const OFFICIAL_PREFIX: &str = "library/";
/// The tag of a reference that has neither tag nor digest (`TagNameOnly`).
pub const DEFAULT_TAG: &str = "latest";
/// Longest name (domain and path) Moby accepts.
const NAME_TOTAL_MAX: usize = 255;

/// A parsed, normalised reference: domain, repository path, optional tag and digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn invalid(reason: &'static str) -> ReferenceError {
    ReferenceError::Invalid { reason }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || i == b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
}

/// `host[:port]` where host is a domain name, an IPv4 address or `[IPv6]`.
fn valid_domain(d: &str) -> bool {
    if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else { return false };
        let v6_ok = !v6.is_empty()
            && v6.contains(':')
            && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        return v6_ok
            && match after.strip_prefix(':') {
                Some(port) => valid_port(port),
                None => after.is_empty(),
            };
    }
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if port.is_some_and(|p| !valid_port(p)) {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// `algorithm:hex`; a `sha256` digest must be 64 lower-case hex digits (as go-digest checks).
fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else { return false };
    let alg_ok = alg.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let known_ok = match alg {
        "sha256" => hex.len() == 64 && hex.bytes().all(|b| !b.is_ascii_uppercase()),
        "sha512" => hex.len() == 128 && hex.bytes().all(|b| !b.is_ascii_uppercase()),
        _ => true,
    };
    alg_ok && hex_ok && known_ok
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Reference {
    /// Parses and normalises a reference as Moby's `ParseNormalizedNamed` does.
    ///
    /// # Errors
    /// [`ReferenceError::Invalid`] with the reason, or [`ReferenceError::HexName`].
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if is_hex64(s) {
            return Err(ReferenceError::HexName { name: s.to_owned() });
        }
        if s.is_empty() {
            return Err(invalid("repository name must have at least one component"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(invalid("invalid digest"));
                }
                (r, Some(d.to_owned()))
            }
            None => (s, None),
        };
        // The tag is after the last ':' of the last path component (a ':' in the domain,
        // before the first '/', is a port).
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(invalid("invalid tag"));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first.starts_with('[')
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first, rest.to_owned())
            }
            _ => (DEFAULT_DOMAIN, name.to_owned()),
        };
        if !valid_domain(domain) {
            return Err(invalid("invalid domain"));
        }
        let domain = if domain == LEGACY_DOMAIN { DEFAULT_DOMAIN } else { domain };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        if !path.split('/').all(valid_component) {
            return Err(invalid("invalid repository name"));
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_MAX {
            return Err(invalid("repository name must not be more than 255 characters"));
        }
        Ok(Self { domain: domain.to_owned(), path, tag: tag.map(str::to_owned), digest })
    }

    /// Adds the `latest` tag when there is neither tag nor digest (Moby's `TagNameOnly`).
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// The same repository with another tag and no digest.
    ///
    /// # Errors
    /// [`ReferenceError::Invalid`] when `tag` is not a valid tag.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(invalid("invalid tag"));
        }
        Ok(Self { tag: Some(tag.to_owned()), digest: None, ..self.clone() })
    }

    /// The registry domain (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path in the registry (`library/foo`, `vieux/sshfs`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What a manifest URL names: the digest when there is one, else the tag (`latest` when
    /// there is neither).
    pub fn tag_or_digest(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or(DEFAULT_TAG)
    }

    /// The full name without tag or digest (`docker.io/library/foo`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The name as users write it (`foo`, `user/p`, `localhost:5000/p`): Moby's
    /// `FamiliarName`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }
}

/// The familiar string (Moby's `FamiliarString`): familiar name, `:tag`, `@digest`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar_name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Normalises a plugin name to its familiar form with a tag (`foo` → `foo:latest`).
///
/// # Errors
/// [`ReferenceError::Canonical`] when the name carries a digest; otherwise as
/// [`Reference::parse`].
pub fn normalize(name: &str) -> Result<String, ReferenceError> {
    let r = Reference::parse(name)?;
    if r.digest.is_some() {
        return Err(ReferenceError::Canonical);
    }
    Ok(r.with_default_tag().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn familiar_forms() {
        for (input, want) in [
            ("foo", "foo:latest"),
            ("docker.io/library/foo", "foo:latest"),
            ("index.docker.io/library/foo:1", "foo:1"),
            ("user/p", "user/p:latest"),
            ("docker.io/user/p:v2", "user/p:v2"),
            ("localhost:5000/p:v1", "localhost:5000/p:v1"),
            ("localhost/p", "localhost/p:latest"),
            ("golden/vol:1", "golden/vol:1"),
            ("u/ab-c__d.x", "u/ab-c__d.x:latest"),
            ("[::1]:5000/p", "[::1]:5000/p:latest"),
            ("[fe80::1]/a/b:t", "[fe80::1]/a/b:t"),
            ("Registry.Example/p", "Registry.Example/p:latest"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "Foo",
            "foo:",
            "foo/",
            "-foo",
            "foo..bar",
            "foo:bad tag",
            "/foo",
            "[::1/p",
            "[]:5000/p",
            "[::1]x/p",
            "[g::1]/p",
            "host:port/p",
            "a/b@sha256:short",
        ] {
            assert!(matches!(normalize(bad), Err(ReferenceError::Invalid { .. })), "{bad}");
        }
        let long = format!("a/{}", "b".repeat(260));
        assert!(matches!(Reference::parse(&long), Err(ReferenceError::Invalid { .. })));
        assert_eq!(normalize(&format!("foo@sha256:{HEX}")), Err(ReferenceError::Canonical));
    }

    #[test]
    fn refuses_bare_hex_names_as_moby() {
        let err = Reference::parse(HEX).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings")
        );
        // With a namespace or tag it is an ordinary name.
        assert!(Reference::parse(&format!("u/{HEX}")).is_ok());
        assert!(Reference::parse(&format!("{HEX}:1")).is_ok());
    }

    #[test]
    fn parts_and_digests() {
        let r = Reference::parse(&format!("[::1]:5000/a/b:t@sha256:{HEX}")).unwrap();
        assert_eq!(r.domain(), "[::1]:5000");
        assert_eq!(r.path(), "a/b");
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(r.digest(), Some(format!("sha256:{HEX}").as_str()));
        assert_eq!(r.tag_or_digest(), format!("sha256:{HEX}"));
        assert_eq!(r.to_string(), format!("[::1]:5000/a/b:t@sha256:{HEX}"));
        let r = Reference::parse("foo").unwrap();
        assert_eq!((r.domain(), r.path(), r.tag()), ("docker.io", "library/foo", None));
        assert_eq!(r.tag_or_digest(), "latest");
        assert_eq!(r.with_tag("2").unwrap().to_string(), "foo:2");
        assert!(r.with_tag("-x").is_err());
        // An upper-case sha256 hex is refused, as go-digest does.
        assert!(Reference::parse(&format!("a@sha256:{}", HEX.to_uppercase())).is_err());
        assert_eq!("a/b:c".parse::<Reference>().unwrap().familiar_name(), "a/b");
    }
}
