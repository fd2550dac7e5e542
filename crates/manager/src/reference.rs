//! Plugin names: Docker's reference rules, reduced to what naming a plugin needs.
//!
//! A name is normalised as Moby does: lower-case repository, default registry `docker.io`,
//! default namespace `library`, tag `latest` when there is none, printed in the "familiar"
//! form (`foo` → `foo:latest`, `docker.io/library/foo` → `foo:latest`,
//! `localhost:5000/p:v1` unchanged).

/// Why a name is not a valid plugin reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The string does not parse as a reference.
    #[error("invalid reference format: {reason}")]
    Invalid {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The reference carries a digest, which a plugin name may not.
    #[error("canonical references are not permitted")]
    Canonical,
}

const DEFAULT_DOMAIN: &str = "docker.io";

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run.
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || i == b.len() {
            return false;
        }
        if !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            return false;
        }
    }
    true
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// Normalises `name` to its familiar form with a tag (`foo` → `foo:latest`).
pub fn normalize(name: &str) -> Result<String, ReferenceError> {
    let invalid = |reason| ReferenceError::Invalid { reason };
    if name.is_empty() {
        return Err(invalid("empty name"));
    }
    if name.contains('@') {
        // Validate loosely, then refuse: plugin names never carry digests.
        return Err(ReferenceError::Canonical);
    }
    // Split the tag off the last path component.
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match name[last_slash..].find(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(t) = tag {
        if !valid_tag(t) {
            return Err(invalid("invalid tag"));
        }
    }
    let (domain, path) = match repo.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, repo),
    };
    if !valid_domain(domain) {
        return Err(invalid("invalid domain"));
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid("repository name must be lowercase"));
    }
    if path.len() > 255 || !path.split('/').all(valid_component) {
        return Err(invalid("invalid repository name"));
    }
    let domain = if domain == "index.docker.io" { DEFAULT_DOMAIN } else { domain };
    let familiar_path = if domain == DEFAULT_DOMAIN {
        match path.strip_prefix("library/") {
            Some(rest) if !rest.contains('/') => rest.to_owned(),
            _ => path.to_owned(),
        }
    } else {
        format!("{domain}/{path}")
    };
    Ok(format!("{familiar_path}:{}", tag.unwrap_or("latest")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects() {
        for bad in ["", "Foo", "foo:", "foo/", "-foo", "foo..bar", "foo:bad tag", "/foo"] {
            assert!(matches!(normalize(bad), Err(ReferenceError::Invalid { .. })), "{bad}");
        }
        assert_eq!(
            normalize(
                "foo@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            ),
            Err(ReferenceError::Canonical)
        );
    }
}
