//! What a registry holds for a v2 plugin: the media types, the schema2 manifest dockerd
//! pushes ([`ImageManifest`]), the descriptors in it, and the index (manifest list) a pull may
//! meet.
//!
//! A plugin in a registry is a manifest whose `config` is the plugin's `config.json`
//! ([`crate::PluginConfig`], media type [`PLUGIN_CONFIG`]) and whose layers are the gzipped
//! rootfs. [`ImageManifest::plugin`] builds the manifest exactly as dockerd writes it (same
//! keys, same order, no trailing newline), so the manifest digest is dockerd's too.
//!
//! ```
//! use dockplug_protocol::registry::{Descriptor, ImageManifest};
//! let m = ImageManifest::plugin(
//!     Descriptor::plugin_config("sha256:d1d0", 727),
//!     vec![Descriptor::gzip_layer("sha256:58db", 2069919)],
//! );
//! assert_eq!(String::from_utf8(m.to_bytes()?).unwrap(), concat!(
//!     r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.plugin.v1+json","digest":"sha256:d1d0","size":727},"#,
//!     r#""layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:58db","size":2069919}],"#,
//!     r#""mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gojson::go_json;

/// The plugin config blob.
pub const PLUGIN_CONFIG: &str = "application/vnd.docker.plugin.v1+json";
/// The Docker schema2 manifest (what dockerd writes and pushes).
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The Docker manifest list.
pub const DOCKER_MANIFEST_LIST_V2: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// A gzipped Docker layer (what dockerd writes and pushes).
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// An uncompressed Docker layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// A foreign (non-distributable) gzipped Docker layer.
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// An uncompressed OCI layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// A gzipped OCI layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The manifest types dockerd accepts when it fetches a plugin (indexes are followed to their
/// children, with no platform filtering).
pub const ACCEPTED_MANIFESTS: [&str; 4] =
    [DOCKER_MANIFEST_V2, OCI_MANIFEST, DOCKER_MANIFEST_LIST_V2, OCI_INDEX];

/// The layer types dockerd extracts when it fetches a plugin.
pub const EXTRACTED_LAYERS: [&str; 4] =
    [OCI_LAYER, DOCKER_LAYER, OCI_LAYER_GZIP, DOCKER_LAYER_GZIP];

/// Whether a layer of this media type is gzip-compressed.
pub fn is_gzip_layer(media_type: &str) -> bool {
    matches!(media_type, DOCKER_LAYER_GZIP | OCI_LAYER_GZIP | DOCKER_LAYER_FOREIGN_GZIP)
}

/// Whether a manifest of this media type is an index (a list of manifests).
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, DOCKER_MANIFEST_LIST_V2 | OCI_INDEX)
}

/// A content descriptor (OCI's `Descriptor`): media type, digest, size, and the optional
/// members, each left out when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Descriptor {
    /// `mediaType`.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// `digest`: `sha256:<64 hex>`.
    #[serde(rename = "digest")]
    pub digest: String,
    /// `size` in bytes.
    #[serde(rename = "size")]
    pub size: i64,
    /// `urls`: where a foreign layer may be fetched.
    #[serde(rename = "urls", skip_serializing_if = "Vec::is_empty", deserialize_with = "list")]
    pub urls: Vec<String>,
    /// `annotations`.
    #[serde(
        rename = "annotations",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "map"
    )]
    pub annotations: BTreeMap<String, String>,
    /// `platform`: in an index, the platform of the manifest.
    #[serde(rename = "platform", skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of a manifest in an index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Platform {
    /// `architecture`, e.g. `amd64`.
    #[serde(rename = "architecture")]
    pub architecture: String,
    /// `os`, e.g. `linux`.
    #[serde(rename = "os")]
    pub os: String,
    /// `os.version`.
    #[serde(rename = "os.version", skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    /// `os.features`.
    #[serde(
        rename = "os.features",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "list"
    )]
    pub os_features: Vec<String>,
    /// `variant`, e.g. `v8`.
    #[serde(rename = "variant", skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// An image manifest (Docker schema2 or OCI): a config and layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ImageManifest {
    /// `schemaVersion`: 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    /// `config`: the plugin config blob.
    #[serde(rename = "config")]
    pub config: Descriptor,
    /// `layers`, in order.
    #[serde(rename = "layers", deserialize_with = "list")]
    pub layers: Vec<Descriptor>,
    /// `mediaType` (last, as dockerd writes it; optional in OCI manifests).
    #[serde(rename = "mediaType", skip_serializing_if = "String::is_empty")]
    pub media_type: String,
}

/// An index (Docker manifest list or OCI index).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ImageIndex {
    /// `schemaVersion`: 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    /// `mediaType`.
    #[serde(rename = "mediaType", skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// `manifests`: the children.
    #[serde(rename = "manifests", deserialize_with = "list")]
    pub manifests: Vec<Descriptor>,
}

go_json!(Descriptor, Platform, ImageManifest, ImageIndex);

fn list<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

impl Descriptor {
    /// A descriptor with media type, digest and size.
    pub fn new(media_type: impl Into<String>, digest: impl Into<String>, size: i64) -> Self {
        Self { media_type: media_type.into(), digest: digest.into(), size, ..Self::default() }
    }

    /// The descriptor of a plugin config blob.
    pub fn plugin_config(digest: impl Into<String>, size: i64) -> Self {
        Self::new(PLUGIN_CONFIG, digest, size)
    }

    /// The descriptor of a gzipped rootfs layer, as dockerd pushes it.
    pub fn gzip_layer(digest: impl Into<String>, size: i64) -> Self {
        Self::new(DOCKER_LAYER_GZIP, digest, size)
    }
}

impl ImageManifest {
    /// The schema2 manifest of a plugin, as dockerd writes it.
    pub fn plugin(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        Self { schema_version: 2, config, layers, media_type: DOCKER_MANIFEST_V2.to_owned() }
    }

    /// The exact bytes to store and push (Go's encoding, no trailing newline); the manifest
    /// digest is the sha256 of these bytes.
    ///
    /// # Errors
    /// None in practice: the manifest holds strings and numbers only.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        crate::gojson::to_vec(self)
    }

    /// Whether the config is a plugin config.
    pub fn is_plugin(&self) -> bool {
        self.config.media_type == PLUGIN_CONFIG
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oci_and_index() {
        let m: ImageManifest = serde_json::from_str(
            r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.plugin.v1+json","digest":"sha256:a","size":1},
                "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:b","size":2,"annotations":{"k":"v"}}]}"#,
        )
        .unwrap();
        assert!(m.is_plugin());
        assert!(m.media_type.is_empty());
        assert!(is_gzip_layer(&m.layers[0].media_type));
        assert_eq!(m.layers[0].annotations["k"], "v");
        let i: ImageIndex = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c","size":3,
                 "platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#,
        )
        .unwrap();
        assert!(is_index(&i.media_type));
        assert_eq!(i.manifests[0].platform.as_ref().unwrap().variant, "v8");
        let back: ImageIndex = serde_json::from_slice(&crate::gojson::to_vec(&i).unwrap()).unwrap();
        assert_eq!(back, i);
    }

    #[test]
    fn null_lists_and_wrong_types() {
        let m: ImageManifest = serde_json::from_str(r#"{"layers":null,"config":null}"#).unwrap();
        assert!(m.layers.is_empty());
        assert!(serde_json::from_str::<ImageManifest>(r#"{"schemaVersion":"2"}"#).is_err());
        assert!(serde_json::from_str::<ImageManifest>(r#"{"layers":{}}"#).is_err());
    }
}
