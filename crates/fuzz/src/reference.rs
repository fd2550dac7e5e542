//! Docker reference names (`vieux/sshfs`, `localhost:5000/p:v1`, `[::1]:5000/p@sha256:…`).
//!
//! Invariants: a parsed reference in its full form (`domain/path[:tag][@digest]`) parses to
//! the same reference; its familiar form does too, except where Moby's own familiar form is
//! ambiguous (`docker.io/library.io/x` prints as `library.io/x`, whose first component then
//! reads as a domain: `distribution/reference` `FamiliarString` does the same); normalisation
//! (what naming a plugin needs) is idempotent and always carries a tag.

use dockplug_protocol::reference::{self, Reference};

/// The target: see the module documentation.
pub fn reference_name(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(r) = Reference::parse(text) {
        let shown = r.to_string();
        let first = shown.split('/').next().unwrap_or_default();
        let looks_like_domain = shown.contains('/')
            && (first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()));
        // Moby's ambiguity: the familiar form of `docker.io/a.b_c/x` reads `a.b_c` as a
        // domain (another one, or an invalid one). Anything else must read back as itself.
        if !(r.domain() == "docker.io" && looks_like_domain) {
            let again = Reference::parse(&shown).expect("a printed reference parses");
            assert_eq!(again, r, "{text:?} printed as {shown:?} does not parse back");
        }
        let mut full = r.name();
        if let Some(tag) = r.tag() {
            full = format!("{full}:{tag}");
        }
        if let Some(digest) = r.digest() {
            full = format!("{full}@{digest}");
        }
        let again = Reference::parse(&full).expect("a full reference parses");
        assert_eq!(again, r, "{text:?} in full form {full:?} does not parse back");
        let _ = (r.domain(), r.path(), r.tag_or_digest(), r.familiar_name());
        let _ = r.clone().with_default_tag();
    }
    let Ok(normal) = reference::normalize(text) else { return };
    let last = normal.rsplit('/').next().unwrap_or_default();
    assert!(last.contains(':'), "normalised name {normal:?} has no tag");
    let first = normal.split('/').next().unwrap_or_default();
    let ambiguous = normal.contains('/') && first.contains(['.', ':']);
    match reference::normalize(&normal) {
        Ok(again) => assert_eq!(again, normal, "normalisation of {text:?} is not idempotent"),
        // The same ambiguity, in the familiar name a plugin is stored under.
        Err(e) => assert!(ambiguous, "normalised {text:?} to {normal:?}, which is refused: {e}"),
    }
}
