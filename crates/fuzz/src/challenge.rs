//! Registry replies the distribution client reads besides manifests: `WWW-Authenticate`
//! challenges (one value a line) and the platform choice in an index.
//!
//! The first byte picks the parser. Invariants: every Bearer challenge kept has a realm (one
//! without is skipped, never used), the plugin scope of any path is one `repository:` scope,
//! and the platform chosen from an index is one of its entries and matches the platform
//! asked for.

use dockplug_distribution::{
    parse_challenges, plugin_scope, select_platform, Challenge, TargetPlatform,
};
use dockplug_protocol::registry::ImageIndex;

use crate::select;

/// The target: see the module documentation.
pub fn registry_challenge(data: &[u8]) {
    let (i, rest) = select(data, 3);
    let text = String::from_utf8_lossy(rest);
    match i {
        0 => {
            for c in parse_challenges(text.lines()) {
                if let Challenge::Bearer { realm, .. } = c {
                    assert!(!realm.is_empty(), "a Bearer challenge without a realm was kept");
                }
            }
        }
        1 => {
            for push in [false, true] {
                let scope = plugin_scope(&text, push);
                assert!(scope.starts_with("repository"), "scope {scope:?}");
            }
        }
        _ => {
            let Ok(index) = serde_json::from_slice::<ImageIndex>(rest) else { return };
            let want = TargetPlatform::host();
            if let Ok(d) = select_platform(&index, &want) {
                assert!(index.manifests.iter().any(|m| std::ptr::eq(m, d)));
                let p = d.platform.as_ref().expect("a chosen entry has a platform");
                assert_eq!(p.os, want.os, "chose another OS");
            }
        }
    }
}
