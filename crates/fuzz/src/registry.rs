//! Registry replies: image manifests (schema2, OCI), indexes and their descriptors.
//!
//! The first byte picks the document. Invariant: a document we accept writes to bytes that
//! read back as the same document, and writing is a fixed point (dockerd's digests depend on
//! those bytes).

use dockplug_protocol::registry::{self, Descriptor, ImageIndex, ImageManifest};

use crate::select;

fn stable<T>(data: &[u8], write: impl Fn(&T) -> Vec<u8>)
where
    T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(doc) = serde_json::from_slice::<T>(data) else { return };
    let once = write(&doc);
    let back: T = serde_json::from_slice(&once).expect("our own document parses");
    assert_eq!(back, doc, "document does not round-trip");
    assert_eq!(write(&back), once, "writing is not a fixed point");
}

/// The target: see the module documentation.
pub fn registry_manifest(data: &[u8]) {
    let (i, rest) = select(data, 3);
    match i {
        0 => stable::<ImageManifest>(rest, |m| {
            let _ = m.is_plugin();
            m.to_bytes().expect("a manifest writes")
        }),
        1 => stable::<ImageIndex>(rest, |x| {
            for d in &x.manifests {
                let _ = (registry::is_index(&d.media_type), registry::is_gzip_layer(&d.media_type));
            }
            dockplug_protocol::gojson::to_vec(x).expect("an index writes")
        }),
        _ => stable::<Descriptor>(rest, |d| {
            dockplug_protocol::gojson::to_vec(d).expect("a descriptor writes")
        }),
    }
}
