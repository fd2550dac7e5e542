//! The [`Distribution`] trait: how the manager reaches an OCI registry, without any HTTP in
//! the manager itself.
//!
//! # Why it has this shape
//!
//! Pull, privileges, push and upgrade are the manager's decisions (names, privileges, staging,
//! the record, events); the registry side only moves verified bytes. So the trait is the
//! three verbs Moby's manager needs from its registry client:
//!
//! * [`Distribution::resolve`]: the manifest (a list or index already narrowed to this
//!   platform) and the plugin config, digests checked. Privileges are judged on this config
//!   before any layer is fetched.
//! * [`Distribution::fetch_blob`]: one blob into the manager's [`BlobStore`], its digest and
//!   size checked as it arrives; a blob that fails never becomes visible.
//! * [`Distribution::push`]: blobs from the [`BlobStore`] and the manifest bytes as stored
//!   (so the pushed digest is the one the record holds).
//!
//! Progress goes to a [`Progress`] sink the caller gives, as the JSON messages the docker CLI
//! renders. Errors are a [`RemoteError`]: a kind the manager maps to an HTTP status, and the
//! implementation's own error as the source. The methods return `Send` futures, as the
//! [`Executor`](crate::Executor)'s do.

use std::fmt;
use std::future::Future;

use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::progress::{JsonMessage, PushResult};
use dockplug_protocol::reference::Reference;
use dockplug_protocol::registry::{Descriptor, ImageManifest};

use crate::blobs::BlobStore;
use crate::executor::BoxError;

/// Where progress messages go (the body of `POST /plugins/pull`, `/upgrade`, `/push`).
pub trait Progress: Send + Sync {
    /// One message.
    fn send(&self, message: JsonMessage);
}

impl<F: Fn(JsonMessage) + Send + Sync> Progress for F {
    fn send(&self, message: JsonMessage) {
        self(message)
    }
}

/// Where a blob's bytes go as they arrive, besides the blob store (bounded: a slow
/// consumer slows the download, it never grows memory).
pub type Tee = tokio::sync::mpsc::Sender<Vec<u8>>;

/// Sends stored blob `digest` to `tee` in 1 MiB pieces (a closed `tee` ends it quietly: the
/// consumer has what it needs or failed on its own).
pub async fn send_stored(blobs: &BlobStore, digest: &str, tee: Tee) -> Result<(), RemoteError> {
    let file = blobs.open_blob(digest).map_err(|e| RemoteError::new(RemoteErrorKind::Other, e))?;
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut file = file;
        loop {
            let mut buf = vec![0; 1 << 20];
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            if tee.blocking_send(buf).is_err() {
                return Ok(());
            }
        }
    })
    .await
    .map_err(|e| RemoteError::new(RemoteErrorKind::Other, e))?
    .map_err(|e: std::io::Error| RemoteError::new(RemoteErrorKind::Other, e))
}

/// A progress sink that drops everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn send(&self, _message: JsonMessage) {}
}

/// A resolved remote plugin: its manifest and its config, both verified.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resolved {
    /// The manifest digest (of [`Resolved::manifest`]).
    pub digest: String,
    /// The manifest bytes exactly as the registry sent them.
    pub manifest: Vec<u8>,
    /// The manifest, parsed; its config is a plugin config.
    pub parsed: ImageManifest,
    /// The config blob exactly as the registry sent it.
    pub config: Vec<u8>,
}

impl Resolved {
    /// Bundles what a registry returned.
    pub fn new(digest: String, manifest: Vec<u8>, parsed: ImageManifest, config: Vec<u8>) -> Self {
        Self { digest, manifest, parsed, config }
    }
}

/// What to push.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PushRequest<'a> {
    /// Where to (with the tag to push).
    pub reference: &'a Reference,
    /// Credentials.
    pub auth: &'a AuthConfig,
    /// The manifest bytes, as stored.
    pub manifest: &'a [u8],
    /// The manifest's media type.
    pub media_type: &'a str,
    /// The blobs the manifest names (config first), all in the [`BlobStore`].
    pub blobs: &'a [Descriptor],
    /// A repository of the same registry the blobs may be mounted from.
    pub mount_from: Option<&'a Reference>,
}

impl<'a> PushRequest<'a> {
    /// A push of `manifest` and `blobs` to `reference`.
    pub fn new(
        reference: &'a Reference,
        auth: &'a AuthConfig,
        manifest: &'a [u8],
        media_type: &'a str,
        blobs: &'a [Descriptor],
    ) -> Self {
        Self { reference, auth, manifest, media_type, blobs, mount_from: None }
    }

    /// Sets the repository to mount blobs from.
    pub fn mount_from(mut self, from: Option<&'a Reference>) -> Self {
        self.mount_from = from;
        self
    }
}

/// What kind of failure a registry operation had (for the HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// The manifest or blob does not exist (404).
    NotFound,
    /// Credentials were refused (401).
    Unauthorized,
    /// The remote content is not usable (400): not a plugin, no matching platform, a bad
    /// digest or size, a manifest too large.
    InvalidContent,
    /// Anything else (500).
    Other,
}

/// A registry operation failed. Displays as its source.
#[derive(Debug)]
pub struct RemoteError {
    /// What kind of failure.
    pub kind: RemoteErrorKind,
    /// The implementation's error.
    pub source: BoxError,
}

impl RemoteError {
    /// Wraps an implementation's error.
    pub fn new(kind: RemoteErrorKind, source: impl Into<BoxError>) -> Self {
        Self { kind, source: source.into() }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// A registry client for plugins (implemented by `dockplug-distribution`).
pub trait Distribution: Send + Sync {
    /// Resolves `reference` (tag or digest) to a plugin manifest for this platform and
    /// fetches its config.
    fn resolve(
        &self,
        reference: &Reference,
        auth: &AuthConfig,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<Resolved, RemoteError>> + Send;

    /// Fetches blob `blob` of `reference`'s repository into `blobs`, verified.
    fn fetch_blob(
        &self,
        reference: &Reference,
        auth: &AuthConfig,
        blob: &Descriptor,
        blobs: &BlobStore,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<(), RemoteError>> + Send;

    /// [`fetch_blob`](Self::fetch_blob), also sending every byte of the blob, in order, to
    /// `tee` as it arrives (the manager applies a layer while it downloads; a blob already
    /// in the store is sent from there). What `tee` receives is unverified until this
    /// returns `Ok`. A closed `tee` means its consumer failed and says why: the fetch stops
    /// and returns `Ok` without storing the blob. The default fetches first, then sends the
    /// stored blob.
    fn fetch_blob_tee(
        &self,
        reference: &Reference,
        auth: &AuthConfig,
        blob: &Descriptor,
        blobs: &BlobStore,
        progress: &dyn Progress,
        tee: Tee,
    ) -> impl Future<Output = Result<(), RemoteError>> + Send {
        async move {
            self.fetch_blob(reference, auth, blob, blobs, progress).await?;
            send_stored(blobs, &blob.digest, tee).await
        }
    }

    /// Pushes the blobs and the manifest; returns Moby's aux `{Tag, Digest, Size}`.
    fn push(
        &self,
        request: PushRequest<'_>,
        blobs: &BlobStore,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<PushResult, RemoteError>> + Send;
}
