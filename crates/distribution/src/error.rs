//! The registry client's error type: one enum, context (URL, digest, host) in fields.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use dockplug_manager::blobs::BlobError;

/// Everything a registry operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistributionError {
    /// The host could not be reached (DNS, TCP, TLS).
    #[error("cannot connect to registry {host}")]
    Connect {
        /// `host[:port]`.
        host: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The HTTP exchange failed below the status code (a broken connection, a bad reply).
    #[error("{method} {url}: the registry connection failed")]
    Http {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
    /// A deadline passed.
    #[error("{method} {url}: no reply within {after:?}")]
    Timeout {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// More redirects than allowed (a loop, most likely).
    #[error("{url}: stopped after {limit} redirects")]
    TooManyRedirects {
        /// The first URL.
        url: String,
        /// How many were followed.
        limit: usize,
    },
    /// A redirect without a usable `Location`.
    #[error("{url}: redirect without a valid Location")]
    BadRedirect {
        /// The URL that answered.
        url: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error text (`code: message`), bounded.
        message: String,
    },
    /// The object does not exist (a 404 for a manifest or blob).
    #[error("{what} not found: {message}")]
    NotFound {
        /// What was asked for (`manifest for …`, `blob …`).
        what: String,
        /// The registry's text.
        message: String,
    },
    /// Authentication was refused or the registry kept answering 401.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The URL.
        url: String,
        /// The registry's or token server's text.
        message: String,
    },
    /// A 401 without any `WWW-Authenticate` challenge we could answer.
    #[error("{url}: 401 Unauthorized without an authentication challenge")]
    NoChallenge {
        /// The URL.
        url: String,
    },
    /// The token server's reply was not a token.
    #[error("token server {realm}: {reason}")]
    Token {
        /// The realm URL.
        realm: String,
        /// What was wrong.
        reason: String,
    },
    /// A body longer than allowed.
    #[error("{url}: reply larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Content whose digest is not the one asked for.
    #[error("digest mismatch for {expected}: got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// A blob longer or shorter than its descriptor says.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        digest: String,
        /// The descriptor's size.
        expected: u64,
        /// What arrived (at least).
        actual: u64,
    },
    /// The manifest's config is not a plugin config (Moby's text).
    #[error("Encountered remote {media_type:?}(image) when fetching")]
    NotPlugin {
        /// The config's media type.
        media_type: String,
    },
    /// A manifest type we do not read.
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedManifest {
        /// What the registry sent.
        media_type: String,
    },
    /// A layer type we do not extract.
    #[error("unsupported layer media type {media_type:?}")]
    UnsupportedLayer {
        /// The layer's media type.
        media_type: String,
    },
    /// The manifest (or index) does not parse.
    #[error("invalid manifest {reference}")]
    InvalidManifest {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An index with no manifest for this platform.
    #[error(
        "no matching manifest for {platform} in the manifest list entries (available: {available})"
    )]
    NoMatchingPlatform {
        /// The platform looked for (`linux/amd64`).
        platform: String,
        /// What the index offers.
        available: String,
    },
    /// A digest string we refuse (not `sha256:<64 hex>`).
    #[error("invalid digest {digest:?}")]
    InvalidDigest {
        /// The string.
        digest: String,
    },
    /// The certs.d directory holds something unusable.
    #[error("certificates in {path}: {reason}")]
    Certs {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong (Moby's text where it has one).
        reason: String,
    },
    /// Building the TLS configuration failed.
    #[error("TLS configuration for {host}")]
    Tls {
        /// The registry.
        host: String,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// The content store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Reading a local blob for a push failed.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The reference cannot be used with a registry.
    #[error("invalid reference {reference}: {reason}")]
    InvalidReference {
        /// The reference.
        reference: String,
        /// Why.
        reason: &'static str,
    },
}

impl DistributionError {
    /// Whether this failure happened before any HTTP reply (so another endpoint, e.g. plain
    /// HTTP for an insecure registry, may be tried).
    pub fn is_transport(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Http { .. })
    }
}
