//! Docker reference names (`vieux/sshfs`, `localhost:5000/p:v1`, `[::1]:5000/p@sha256:…`).
//!
//! Invariants: a parsed reference in its full form (`domain/path[:tag][@digest]`) parses to
//! the same reference; its familiar form does too, except where Moby's own familiar form is
//! ambiguous (`docker.io/library.io/x` prints as `library.io/x`, whose first component then
//! reads as a domain, and `library/<64 hex>` as a bare hexadecimal name that is refused:
//! `distribution/reference` `FamiliarString` does the same); normalisation
//! (what naming a plugin needs) always carries a tag, and is idempotent but for that same
//! ambiguity.

use dockplug_protocol::reference::{self, Reference};

/// Whether the familiar form `shown` of a `docker.io` reference is Moby's ambiguity, so it
/// parses back as another reference or is refused: its first component reads as a domain
/// (`docker.io/a.b_c/x` prints as `a.b_c/x`, and `docker.io/docker.io/x/f` as
/// `docker.io/x/f`), or it is a bare 64-digit hexadecimal string (`library/<64 hex>` prints
/// as `<64 hex>`, which `ParseNormalizedNamed` refuses).
fn ambiguous(r: &Reference, shown: &str) -> bool {
    let first = shown.split('/').next().unwrap_or_default();
    let reads_as_domain = shown.contains('/')
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase()));
    let hex64 = shown.len() == 64 && shown.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    r.domain() == "docker.io" && (reads_as_domain || hex64)
}

/// The target: see the module documentation.
pub fn reference_name(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(r) = Reference::parse(text) {
        let shown = r.to_string();
        // Anything but Moby's ambiguity must read back as itself.
        if !ambiguous(&r, &shown) {
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
    let r = Reference::parse(text).expect("a name that normalises parses");
    // The same ambiguity, in the familiar name a plugin is stored under: normalising it
    // again may name another plugin, or be refused (Moby's plugin names do the same).
    if ambiguous(&r, &normal) {
        return;
    }
    match reference::normalize(&normal) {
        Ok(again) => assert_eq!(again, normal, "normalisation of {text:?} is not idempotent"),
        Err(e) => panic!("normalised {text:?} to {normal:?}, which is refused: {e}"),
    }
}
