//! What every v1 subsystem shares: the handshake manifest, the error body and the transport
//! constants.

use serde::{Deserialize, Deserializer, Serialize};

/// The `Accept` header the daemon sends on every plugin call (since Docker 1.10; the docs'
/// `v1+json` is out of date).
pub const VERSION_MIMETYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// The only protocol scheme a v2 plugin may declare in `Interface.ProtocolScheme`
/// (an empty scheme means the same).
pub const PROTOCOL_SCHEME_HTTP_V1: &str = "moby.plugins.http/v1";

/// The handshake method of v1 plugins, sent as `POST /Plugin.Activate` with an empty body.
pub const ACTIVATE_METHOD: &str = "Plugin.Activate";

/// Moby's v1 socket directory on Linux (not tied to the daemon's `--exec-root`).
pub const DEFAULT_SOCKET_DIR: &str = "/run/docker/plugins";

/// Moby's v1 spec directories on Linux, in lookup order.
pub const DEFAULT_SPEC_DIRS: [&str; 2] = ["/etc/docker/plugins", "/usr/lib/docker/plugins"];

/// The `Host` header the current daemon sends over unix sockets.
pub const UNIX_SOCKET_HOST: &str = "plugin.moby.localhost";

/// The reply to `Plugin.Activate`: the subsystems a v1 plugin implements.
///
/// Entries are matched case-sensitively (`VolumeDriver`, `NetworkDriver`, `IpamDriver`,
/// `authz`, `LogDriver`, `MetricsCollector`, `secretprovider`, `GraphDriver`).
///
/// ```
/// let m: dockplug_protocol::Manifest = serde_json::from_str(r#"{"Implements":["VolumeDriver"]}"#)?;
/// assert!(m.implements("VolumeDriver"));
/// assert_eq!(serde_json::to_string(&m)?, r#"{"Implements":["VolumeDriver"]}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// Keys are matched as Go's decoder matches them (`implements`, `IMPLEMENTS`, ...), unknown
/// keys are ignored and `null` reads as an empty list:
///
/// ```
/// let m: dockplug_protocol::Manifest = serde_json::from_str(r#"{"iMPLEMENTS":["LogDriver"],"x":1}"#)?;
/// assert!(m.implements("LogDriver"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Manifest {
    /// The subsystems this plugin serves.
    #[serde(rename = "Implements", default, deserialize_with = "null_default")]
    pub implements: Vec<String>,
}

crate::gojson::go_json!(Manifest);

impl Manifest {
    /// A manifest for the given subsystems.
    pub fn new<I, S>(implements: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { implements: implements.into_iter().map(Into::into).collect() }
    }

    /// Whether the manifest lists `subsystem`, with exactly that case, as Moby matches it.
    pub fn implements(&self, subsystem: &str) -> bool {
        self.implements.iter().any(|s| s == subsystem)
    }
}

/// The error body of a failed plugin call: `{"Err": "..."}`.
///
/// The key is `Err` for every subsystem in a non-200 reply, IPAM included; the daemon reads
/// it case-insensitively, so `err` and `ERR` are accepted when parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The message; empty means no error.
    #[serde(
        rename = "Err",
        alias = "err",
        alias = "ERR",
        default,
        deserialize_with = "null_default"
    )]
    pub err: String,
}

impl ErrorBody {
    /// An error body carrying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { err: message.into() }
    }
}

/// Deserialize `null` as the type's default, as Go's decoder leaves a zero value.
pub fn null_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}
