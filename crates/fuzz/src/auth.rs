//! The `X-Registry-Auth` header (base64url of a JSON object, read leniently as Moby does).
//!
//! Invariants: credentials we decode encode and decode to themselves, the lenient reader
//! agrees with the strict one where that one succeeds, and `Debug` never prints a secret.

use dockplug_protocol::auth::AuthConfig;

/// The target: see the module documentation.
pub fn registry_auth(data: &[u8]) {
    let header = String::from_utf8_lossy(data);
    let lenient = AuthConfig::decode_lenient(&header);
    let Ok(auth) = AuthConfig::decode(&header) else {
        assert!(lenient.is_empty(), "the lenient reader invented credentials");
        return;
    };
    assert_eq!(lenient, auth, "lenient and strict readers disagree");
    let encoded = auth.encode();
    let back = AuthConfig::decode(&encoded).expect("our own header decodes");
    assert_eq!(back, auth, "X-Registry-Auth does not round-trip");
    let shown = format!("{auth:?}");
    let public = [&auth.username, &auth.email, &auth.serveraddress];
    for secret in [&auth.password, &auth.auth, &auth.identitytoken, &auth.registrytoken] {
        // Short secrets may occur in the field names themselves, and a secret equal to a
        // public field shows there; other long ones must not show.
        if secret.len() >= 12 && !public.iter().any(|p| p.contains(secret.as_str())) {
            assert!(!shown.contains(secret.as_str()), "Debug shows a secret: {shown}");
        }
    }
}
