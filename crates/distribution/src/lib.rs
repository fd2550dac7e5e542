//! The OCI registry client for v2 plugins: resolve, fetch and push, as dockerd does them.
//!
//! `dockplug-distribution` owns everything between a plugin reference and the bytes in a
//! registry: endpoints (Docker's insecure-registry rule: loopback and the configured
//! `host:port` list are tried over HTTPS without verification, then over plain HTTP), TLS
//! (rustls on ring; CAs and client certificates from a `certs.d` directory), authentication
//! (the `X-Registry-Auth` credentials; Bearer challenges answered with Moby's scope
//! `repository(plugin):<path>:pull[,push]`, identity tokens exchanged with the OAuth2
//! refresh-token POST, Basic challenges), manifests (Docker schema2, OCI manifest, Docker
//! manifest list and OCI index, narrowed to this machine's platform), blobs streamed into the
//! manager's content store with digest and size checked as they arrive, and pushes whose
//! manifest is byte for byte the one stored (dockerd's digest).
//!
//! Every request has a deadline (connect, reply headers, each read of a body); manifests,
//! configs, tokens and error bodies are read with a size bound; blobs are never held whole in
//! memory and never read past their descriptor's size; redirects are bounded and never carry
//! credentials to another host. Errors are typed ([`DistributionError`]).
//!
//! [`RegistryClient`] implements the manager's [`Distribution`] seam, so `Manager::pull`,
//! `push`, `upgrade` and `remote_privileges` drive it.
//!
//! **Architecture invariant:** depends on `dockplug-protocol` (wire types), the manager's
//! public seam (`Distribution`, `BlobStore`) and our HTTP stack (hyper 1, rustls on ring);
//! never on containerd, tonic, openssl, native-tls or aws-lc (checked by `tests/it/layering.rs`).
//!
//! ```no_run
//! use dockplug_distribution::{RegistryClient, RegistryConfig};
//! use dockplug_manager::NoProgress;
//! use dockplug_protocol::{auth::AuthConfig, reference::Reference};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = RegistryClient::new(RegistryConfig::default());
//! let reference = Reference::parse("127.0.0.1:5000/vieux/sshfs:latest")?;
//! let remote = client.resolve(&reference, &AuthConfig::default(), &NoProgress).await?;
//! println!("{} needs {} layer(s)", remote.digest, remote.parsed.layers.len());
//! # Ok(()) }
//! ```

mod auth;
mod client;
mod config;
mod error;
mod progress;
mod pull;
mod push;
mod tls;
mod transport;

#[cfg(test)]
mod tests;

pub use auth::{parse_challenges, plugin_scope, Challenge, Credentials, CLIENT_ID};
pub use client::RegistryClient;
pub use config::{RegistryConfig, TargetPlatform};
pub use error::DistributionError;
pub use pull::select_platform;

use dockplug_manager::blobs::BlobStore;
use dockplug_manager::distribution::{
    Distribution, Progress, PushRequest, RemoteError, RemoteErrorKind, Resolved, Tee,
};
use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::progress::PushResult;
use dockplug_protocol::reference::Reference;
use dockplug_protocol::registry::Descriptor;

impl DistributionError {
    /// The manager's kind of failure (for the HTTP status).
    pub fn kind(&self) -> RemoteErrorKind {
        match self {
            Self::NotFound { .. } => RemoteErrorKind::NotFound,
            Self::Unauthorized { .. } | Self::NoChallenge { .. } => RemoteErrorKind::Unauthorized,
            Self::TooLarge { .. }
            | Self::DigestMismatch { .. }
            | Self::SizeMismatch { .. }
            | Self::NotPlugin { .. }
            | Self::UnsupportedManifest { .. }
            | Self::UnsupportedLayer { .. }
            | Self::InvalidManifest { .. }
            | Self::NoMatchingPlatform { .. }
            | Self::InvalidDigest { .. }
            | Self::InvalidReference { .. } => RemoteErrorKind::InvalidContent,
            _ => RemoteErrorKind::Other,
        }
    }
}

impl From<DistributionError> for RemoteError {
    fn from(e: DistributionError) -> Self {
        RemoteError::new(e.kind(), e)
    }
}

impl Distribution for RegistryClient {
    async fn resolve(
        &self,
        reference: &Reference,
        auth: &AuthConfig,
        progress: &dyn Progress,
    ) -> Result<Resolved, RemoteError> {
        Ok(RegistryClient::resolve(self, reference, auth, progress).await?)
    }

    async fn fetch_blob(
        &self,
        reference: &Reference,
        auth: &AuthConfig,
        blob: &Descriptor,
        blobs: &BlobStore,
        progress: &dyn Progress,
    ) -> Result<(), RemoteError> {
        Ok(RegistryClient::fetch_blob(self, reference, auth, blob, blobs, progress).await?)
    }

    async fn fetch_blob_tee(
        &self,
        reference: &Reference,
        auth: &AuthConfig,
        blob: &Descriptor,
        blobs: &BlobStore,
        progress: &dyn Progress,
        tee: Tee,
    ) -> Result<(), RemoteError> {
        Ok(self.fetch_blob_into(reference, auth, blob, blobs, progress, Some(tee)).await?)
    }

    async fn push(
        &self,
        request: PushRequest<'_>,
        blobs: &BlobStore,
        progress: &dyn Progress,
    ) -> Result<PushResult, RemoteError> {
        Ok(RegistryClient::push(self, request, blobs, progress).await?)
    }
}
