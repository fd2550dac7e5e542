//! `GraphDriver`: graph driver plugins (Moby `daemon/graphdriver/proxy.go`). Removed from Moby
//! in v28; 20.10 uses them with `--experimental`. Kept for interop with that peer.
//!
//! Most calls share [`Request`] and [`Response`], whose keys are all left out when empty.
//! `Diff` replies with a raw tar stream and `ApplyDiff` sends one, with the layer ids in the
//! query string ([`apply_diff_path`], [`ApplyDiffQuery`]).
//!
//! ```
//! use dockplug_protocol::graph::{apply_diff_path, ApplyDiffQuery, GraphMethod};
//! let path = apply_diff_path("abc", "def");
//! assert_eq!(path, "/GraphDriver.ApplyDiff?id=abc&parent=def");
//! assert_eq!(GraphMethod::from_path(&path)?, GraphMethod::ApplyDiff);
//! let q = ApplyDiffQuery::parse(path.split_once('?').map_or("", |(_, q)| q))?;
//! assert_eq!((q.id.as_str(), q.parent.as_str()), ("abc", "def"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gojson::go_json;

/// The `Implements` entry of a graph driver plugin.
pub const IMPLEMENTS: &str = "GraphDriver";

crate::subsystem::methods! {
    /// The `GraphDriver` endpoints.
    GraphMethod, "GraphDriver", {
        /// `GraphDriver.Init`.
        Init => "Init",
        /// `GraphDriver.Capabilities` (a 404 means defaults).
        Capabilities => "Capabilities",
        /// `GraphDriver.Create`.
        Create => "Create",
        /// `GraphDriver.CreateReadWrite`.
        CreateReadWrite => "CreateReadWrite",
        /// `GraphDriver.Remove`.
        Remove => "Remove",
        /// `GraphDriver.Get`.
        Get => "Get",
        /// `GraphDriver.Put`.
        Put => "Put",
        /// `GraphDriver.Exists` (errors mean false).
        Exists => "Exists",
        /// `GraphDriver.Status`.
        Status => "Status",
        /// `GraphDriver.GetMetadata`.
        GetMetadata => "GetMetadata",
        /// `GraphDriver.Cleanup`.
        Cleanup => "Cleanup",
        /// `GraphDriver.Diff` (the reply is a raw tar stream).
        Diff => "Diff",
        /// `GraphDriver.Changes`.
        Changes => "Changes",
        /// `GraphDriver.ApplyDiff?id=..&parent=..` (the request is a raw tar stream).
        ApplyDiff => "ApplyDiff",
        /// `GraphDriver.DiffSize`.
        DiffSize => "DiffSize",
    }
}

/// `Change.Kind`: modified.
pub const CHANGE_MODIFY: i32 = 0;
/// `Change.Kind`: added.
pub const CHANGE_ADD: i32 = 1;
/// `Change.Kind`: deleted.
pub const CHANGE_DELETE: i32 = 2;

/// One uid or gid range of a user namespace mapping (snake-case keys on the wire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct IdMap {
    /// First id inside the container.
    #[serde(rename = "container_id")]
    pub container_id: i64,
    /// First id on the host.
    #[serde(rename = "host_id")]
    pub host_id: i64,
    /// Length of the range.
    #[serde(rename = "size")]
    pub size: i64,
}

/// `GraphDriver.Init` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct InitRequest {
    /// `<root>/<driver name>`.
    #[serde(rename = "Home")]
    pub home: String,
    /// The `--storage-opt` values.
    #[serde(rename = "Opts")]
    pub opts: Option<Vec<String>>,
    /// User namespace uid maps.
    #[serde(rename = "UIDMaps")]
    pub uid_maps: Option<Vec<IdMap>>,
    /// User namespace gid maps.
    #[serde(rename = "GIDMaps")]
    pub gid_maps: Option<Vec<IdMap>>,
}

/// The request of most calls; every key is left out when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Request {
    /// The layer id.
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The parent layer id.
    #[serde(rename = "Parent", skip_serializing_if = "String::is_empty")]
    pub parent: String,
    /// The SELinux mount label.
    #[serde(rename = "MountLabel", skip_serializing_if = "String::is_empty")]
    pub mount_label: String,
    /// Per-layer storage options.
    #[serde(rename = "StorageOpt", skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
}

/// A file system change between two layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Change {
    /// The path.
    #[serde(rename = "Path")]
    pub path: String,
    /// [`CHANGE_MODIFY`], [`CHANGE_ADD`] or [`CHANGE_DELETE`].
    #[serde(rename = "Kind")]
    pub kind: i32,
}

/// What a graph driver can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Capabilities {
    /// Diffs of the same content are byte-identical.
    #[serde(rename = "ReproducesExactDiffs")]
    pub reproduces_exact_diffs: bool,
}

/// The reply of every JSON call; every key is left out when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Response {
    /// Error message; empty means success.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
    /// `Get`: the mounted directory.
    #[serde(rename = "Dir", skip_serializing_if = "String::is_empty")]
    pub dir: String,
    /// `Exists`.
    #[serde(rename = "Exists", skip_serializing_if = "is_false")]
    pub exists: bool,
    /// `Status`: key/value pairs.
    #[serde(rename = "Status", skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<[String; 2]>,
    /// `Changes`.
    #[serde(rename = "Changes", skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// `ApplyDiff` and `DiffSize`: bytes.
    #[serde(rename = "Size", skip_serializing_if = "is_zero")]
    pub size: i64,
    /// `GetMetadata`.
    #[serde(rename = "Metadata", skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// `Capabilities` (wrapped, not flat as the docs show).
    #[serde(rename = "Capabilities", skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

/// The path of an `ApplyDiff` call. Like the daemon, the ids are not URL-escaped (layer ids
/// are hex).
pub fn apply_diff_path(id: &str, parent: &str) -> String {
    format!("/GraphDriver.ApplyDiff?id={id}&parent={parent}")
}

/// An `ApplyDiff` query string that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyDiffQueryError {
    /// No `id` parameter, or an empty one.
    #[error("apply diff query {query:?} has no id")]
    MissingId {
        /// The query string.
        query: String,
    },
}

/// The ids in an `ApplyDiff` query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyDiffQuery {
    /// The layer to apply the diff to.
    pub id: String,
    /// Its parent (may be empty).
    pub parent: String,
}

impl ApplyDiffQuery {
    /// Read `id=<ID>&parent=<Parent>` (any order, unknown parameters ignored, the first of
    /// repeated ones wins, values taken verbatim).
    pub fn parse(query: &str) -> Result<Self, ApplyDiffQueryError> {
        let mut id = None;
        let mut parent = None;
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "id" => id = id.or(Some(v)),
                "parent" => parent = parent.or(Some(v)),
                _ => {}
            }
        }
        match id {
            Some(id) if !id.is_empty() => {
                Ok(Self { id: id.to_owned(), parent: parent.unwrap_or("").to_owned() })
            }
            _ => Err(ApplyDiffQueryError::MissingId { query: query.to_owned() }),
        }
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &i64) -> bool {
    *n == 0
}

go_json!(IdMap, InitRequest, Request, Change, Capabilities, Response);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_query() {
        assert_eq!(GraphMethod::ALL.len(), 15);
        assert_eq!(crate::subsystem::Subsystem::Graph.implements(), IMPLEMENTS);
        assert_eq!(crate::subsystem::Subsystem::Graph.endpoint_prefix(), GraphMethod::PREFIX);
        let q = ApplyDiffQuery::parse("parent=p&x=1&id=i").unwrap();
        assert_eq!(q, ApplyDiffQuery { id: "i".into(), parent: "p".into() });
        assert_eq!(ApplyDiffQuery::parse("id=i").unwrap().parent, "");
        assert!(ApplyDiffQuery::parse("parent=p").is_err());
        assert!(ApplyDiffQuery::parse("id=").is_err());
        assert!(ApplyDiffQuery::parse("").is_err());
    }
}
