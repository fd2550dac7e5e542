//! Resolve and fetch: the manifest by tag or digest (Docker schema2, OCI manifest, Docker
//! manifest list, OCI index narrowed to this platform), the config, then blobs streamed into
//! the manager's [`BlobStore`] with digest and size checked as they arrive.

use std::io::Write as _;

use dockplug_manager::blobs::BlobStore;
use dockplug_manager::distribution::{Resolved, Tee};
use dockplug_manager::Progress;
use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::progress::{short_id, status, JsonMessage};
use dockplug_protocol::reference::Reference;
use dockplug_protocol::registry::{
    self, Descriptor, ImageIndex, ImageManifest, ACCEPTED_MANIFESTS, DOCKER_LAYER_FOREIGN_GZIP,
    EXTRACTED_LAYERS, PLUGIN_CONFIG,
};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::client::{Reply, Repo, Target};
use crate::progress::Meter;
use crate::transport::{self, empty};
use crate::{DistributionError, RegistryClient, TargetPlatform};

pub(crate) fn sha256(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Refuses anything but `sha256:<64 lower-case hex>` (digests become file names and URLs).
pub(crate) fn check_digest(d: &str) -> Result<(), DistributionError> {
    match d.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(DistributionError::InvalidDigest { digest: d.to_owned() }),
    }
}

fn accept(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut v = values.join(", ");
    v.push_str(", */*");
    if let Ok(v) = HeaderValue::from_str(&v) {
        h.insert(header::ACCEPT, v);
    }
    h
}

/// Fails unless the reply is 200; a 404 is [`DistributionError::NotFound`] about `what`.
async fn expect_ok(
    reply: Reply,
    method: &str,
    what: impl FnOnce() -> String,
) -> Result<Reply, DistributionError> {
    let status = reply.resp.status();
    if status == StatusCode::OK {
        return Ok(reply);
    }
    let timeout = std::time::Duration::from_secs(10);
    let message = transport::error_text(reply.resp, &reply.url, timeout).await;
    if status == StatusCode::NOT_FOUND {
        return Err(DistributionError::NotFound { what: what(), message });
    }
    Err(DistributionError::Status {
        method: method.into(),
        url: reply.url,
        status: status.as_u16(),
        message,
    })
}

/// Whether an index entry is for `want` (os and architecture equal; the variant equal once
/// the defaults are filled in: arm64 is v8, arm is v7).
fn platform_matches(entry: &registry::Platform, want: &TargetPlatform) -> bool {
    let norm = |arch: &str, variant: &str| -> String {
        match (arch, variant) {
            ("arm64" | "aarch64", "") => "v8".into(),
            ("arm", "") => "v7".into(),
            (_, v) => v.to_owned(),
        }
    };
    let arch = if entry.architecture == "aarch64" { "arm64" } else { entry.architecture.as_str() };
    entry.os == want.os
        && arch == want.architecture
        && norm(arch, &entry.variant) == norm(&want.architecture, &want.variant)
}

/// The index entry for `want`, if any.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    want: &TargetPlatform,
) -> Result<&'a Descriptor, DistributionError> {
    index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| platform_matches(p, want)))
        .ok_or_else(|| DistributionError::NoMatchingPlatform {
            platform: want.to_string(),
            available: index
                .manifests
                .iter()
                .map(|d| match &d.platform {
                    Some(p) if p.variant.is_empty() => format!("{}/{}", p.os, p.architecture),
                    Some(p) => format!("{}/{}/{}", p.os, p.architecture, p.variant),
                    None => "unknown".into(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl RegistryClient {
    /// Fetches a manifest by tag or digest: bounded, its digest checked against the digest
    /// asked for and against `Docker-Content-Digest`. Returns the media type, bytes, digest.
    async fn manifest(
        &self,
        repo: &Repo,
        reference: &Reference,
        tag_or_digest: &str,
    ) -> Result<(String, Vec<u8>, String), DistributionError> {
        let rest = format!("manifests/{tag_or_digest}");
        let headers = accept(&ACCEPTED_MANIFESTS);
        let reply = repo.send(Method::GET, Target::Repo(&rest), &headers, &|| Ok(empty())).await?;
        let reply = expect_ok(reply, "GET", || format!("manifest for {reference}")).await?;
        let content_type = reply
            .resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        let claimed = reply
            .resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = transport::read_bounded(
            reply.resp,
            self.config().max_manifest,
            &reply.url,
            self.config().request_timeout,
        )
        .await?;
        let digest = sha256(&body);
        for expected in
            [tag_or_digest.starts_with("sha256:").then_some(tag_or_digest), claimed.as_deref()]
                .into_iter()
                .flatten()
        {
            if expected.starts_with("sha256:") && expected != digest {
                return Err(DistributionError::DigestMismatch {
                    expected: expected.to_owned(),
                    actual: digest,
                });
            }
        }
        // The body's own mediaType wins over a generic Content-Type.
        #[derive(serde::Deserialize)]
        struct Versioned {
            #[serde(default, rename = "mediaType")]
            media_type: String,
        }
        let declared = serde_json::from_slice::<Versioned>(&body)
            .map_err(|source| DistributionError::InvalidManifest {
                reference: reference.to_string(),
                source,
            })?
            .media_type;
        let media_type = if !declared.is_empty() { declared } else { content_type };
        Ok((media_type, body.to_vec(), digest))
    }

    /// Resolves `reference` to a plugin manifest for this platform and fetches its config.
    pub async fn resolve(
        &self,
        reference: &Reference,
        auth: &AuthConfig,
        progress: &dyn Progress,
    ) -> Result<Resolved, DistributionError> {
        let repo = self.repo(reference, auth, false);
        let tag = reference.tag().unwrap_or(reference.tag_or_digest());
        progress.send(JsonMessage::pulling_from(&reference.familiar_name(), tag));
        let (mut media_type, mut body, mut digest) =
            self.manifest(&repo, reference, reference.tag_or_digest()).await?;
        if registry::is_index(&media_type) {
            let index: ImageIndex = serde_json::from_slice(&body).map_err(|source| {
                DistributionError::InvalidManifest { reference: reference.to_string(), source }
            })?;
            let child = select_platform(&index, &self.config().platform)?;
            check_digest(&child.digest)?;
            let child_digest = child.digest.clone();
            (media_type, body, digest) = self.manifest(&repo, reference, &child_digest).await?;
            if registry::is_index(&media_type) {
                return Err(DistributionError::UnsupportedManifest { media_type });
            }
        }
        if !ACCEPTED_MANIFESTS.contains(&media_type.as_str()) {
            return Err(DistributionError::UnsupportedManifest { media_type });
        }
        let parsed: ImageManifest = serde_json::from_slice(&body).map_err(|source| {
            DistributionError::InvalidManifest { reference: reference.to_string(), source }
        })?;
        if parsed.config.media_type != PLUGIN_CONFIG {
            return Err(DistributionError::NotPlugin { media_type: parsed.config.media_type });
        }
        check_digest(&parsed.config.digest)?;
        for layer in &parsed.layers {
            check_digest(&layer.digest)?;
            if !EXTRACTED_LAYERS.contains(&layer.media_type.as_str())
                && layer.media_type != DOCKER_LAYER_FOREIGN_GZIP
            {
                return Err(DistributionError::UnsupportedLayer {
                    media_type: layer.media_type.clone(),
                });
            }
        }
        let config = self.small_blob(&repo, &parsed.config, self.config().max_config).await?;
        Ok(Resolved::new(digest, body, parsed, config))
    }

    /// A small blob (the config) read whole, at most `limit` bytes and exactly the
    /// descriptor's size, digest checked.
    async fn small_blob(
        &self,
        repo: &Repo,
        desc: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>, DistributionError> {
        let size = u64::try_from(desc.size).unwrap_or(u64::MAX);
        let url_hint = format!("blobs/{}", desc.digest);
        if size > limit {
            return Err(DistributionError::TooLarge { url: url_hint, limit });
        }
        let headers = accept(&[desc.media_type.as_str()]);
        let reply =
            repo.send(Method::GET, Target::Repo(&url_hint), &headers, &|| Ok(empty())).await?;
        let reply = expect_ok(reply, "GET", || format!("blob {}", desc.digest)).await?;
        let body =
            transport::read_bounded(reply.resp, size, &reply.url, self.config().request_timeout)
                .await
                .map_err(|e| match e {
                    DistributionError::TooLarge { .. } => DistributionError::SizeMismatch {
                        digest: desc.digest.clone(),
                        expected: size,
                        actual: size + 1,
                    },
                    e => e,
                })?;
        if body.len() as u64 != size {
            return Err(DistributionError::SizeMismatch {
                digest: desc.digest.clone(),
                expected: size,
                actual: body.len() as u64,
            });
        }
        let actual = sha256(&body);
        if actual != desc.digest {
            return Err(DistributionError::DigestMismatch {
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(body.to_vec())
    }

    /// Streams blob `desc` into `blobs`: never more than its size in flight or on disk, the
    /// digest checked before it becomes visible. A blob already present is skipped.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        auth: &AuthConfig,
        desc: &Descriptor,
        blobs: &BlobStore,
        progress: &dyn Progress,
    ) -> Result<(), DistributionError> {
        self.fetch_blob_into(reference, auth, desc, blobs, progress, None).await
    }

    /// [`fetch_blob`](Self::fetch_blob), also sending each chunk to `tee` as it arrives (a
    /// blob already stored is sent from the store). A closed `tee` means its consumer
    /// failed and reports why: the download stops, nothing is stored, and this returns
    /// `Ok`.
    pub async fn fetch_blob_into(
        &self,
        reference: &Reference,
        auth: &AuthConfig,
        desc: &Descriptor,
        blobs: &BlobStore,
        progress: &dyn Progress,
        tee: Option<Tee>,
    ) -> Result<(), DistributionError> {
        check_digest(&desc.digest)?;
        let id = short_id(&desc.digest).to_owned();
        if blobs.contains(&desc.digest) {
            progress.send(JsonMessage::item(id, status::ALREADY_EXISTS));
            if let Some(tee) = tee {
                dockplug_manager::distribution::send_stored(blobs, &desc.digest, tee)
                    .await
                    .map_err(|e| DistributionError::Io {
                        path: desc.digest.clone().into(),
                        source: std::io::Error::other(e),
                    })?;
            }
            return Ok(());
        }
        progress.send(JsonMessage::item(id.clone(), status::PULLING_FS_LAYER));
        let size = u64::try_from(desc.size).map_err(|_| DistributionError::SizeMismatch {
            digest: desc.digest.clone(),
            expected: 0,
            actual: 0,
        })?;
        let repo = self.repo(reference, auth, false);
        let rest = format!("blobs/{}", desc.digest);
        let headers = accept(&[desc.media_type.as_str()]);
        let reply = repo.send(Method::GET, Target::Repo(&rest), &headers, &|| Ok(empty())).await?;
        let reply = expect_ok(reply, "GET", || format!("blob {}", desc.digest)).await?;
        let mismatch = |actual| DistributionError::SizeMismatch {
            digest: desc.digest.clone(),
            expected: size,
            actual,
        };
        if let Some(n) = reply
            .resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if n != size {
                return Err(mismatch(n));
            }
        }
        let url = reply.url;
        let mut body = reply.resp.into_body();
        // The file is written by a blocking task fed through a small channel: bounded memory,
        // no blocking write on the runtime.
        let writer = blobs.writer()?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
        let write_task = tokio::task::spawn_blocking(
            move || -> std::io::Result<dockplug_manager::blobs::BlobWriter> {
                let mut writer = writer;
                while let Some(chunk) = rx.blocking_recv() {
                    writer.write_all(&chunk)?;
                }
                Ok(writer)
            },
        );
        let mut meter = Meter::new(
            progress,
            &desc.digest,
            status::DOWNLOADING,
            size,
            self.config().progress_interval,
        );
        let mut received: u64 = 0;
        let timeout = self.config().request_timeout;
        let mut consumer_gone = false;
        let streamed: Result<(), DistributionError> = async {
            while let Some(chunk) = transport::next_frame(&mut body, &url, timeout).await? {
                received += chunk.len() as u64;
                if received > size {
                    return Err(mismatch(received));
                }
                meter.add(chunk.len() as u64);
                if let Some(tee) = &tee {
                    if tee.send(chunk.to_vec()).await.is_err() {
                        consumer_gone = true;
                        return Ok(());
                    }
                }
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(())
        }
        .await;
        drop(tx);
        let written = write_task.await.map_err(|e| DistributionError::Io {
            path: "ingest".into(),
            source: std::io::Error::other(e),
        })?;
        // On any error the writer is dropped here, which deletes the partial file.
        streamed?;
        if consumer_gone {
            // The consumer refused the content and says why; nothing is stored.
            return Ok(());
        }
        let writer =
            written.map_err(|source| DistributionError::Io { path: "ingest".into(), source })?;
        if received != size {
            return Err(mismatch(received));
        }
        meter.finish();
        let expected = desc.digest.clone();
        tokio::task::spawn_blocking(move || writer.commit_expecting(&expected))
            .await
            .map_err(|e| DistributionError::Io {
                path: "ingest".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(|e| match e {
                dockplug_manager::blobs::BlobError::DigestMismatch { expected, actual } => {
                    DistributionError::DigestMismatch { expected, actual }
                }
                e => DistributionError::Blob(e),
            })?;
        progress.send(JsonMessage::item(id, status::DOWNLOAD_COMPLETE));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: &str, digest: &str) -> Descriptor {
        Descriptor {
            platform: Some(registry::Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.into(),
                ..Default::default()
            }),
            ..Descriptor::new(registry::DOCKER_MANIFEST_V2, digest, 1)
        }
    }

    #[test]
    fn platform_selection() {
        let index = ImageIndex {
            schema_version: 2,
            media_type: registry::OCI_INDEX.into(),
            manifests: vec![
                entry("windows", "amd64", "", "w"),
                entry("linux", "arm", "v6", "arm6"),
                entry("linux", "arm64", "", "arm64"),
                entry("linux", "amd64", "", "amd64"),
                entry("linux", "arm", "v7", "arm7"),
            ],
        };
        let p = |arch: &str, variant: &str| TargetPlatform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.into(),
        };
        assert_eq!(select_platform(&index, &p("amd64", "")).unwrap().digest, "amd64");
        assert_eq!(select_platform(&index, &p("arm64", "v8")).unwrap().digest, "arm64");
        assert_eq!(select_platform(&index, &p("arm", "v7")).unwrap().digest, "arm7");
        assert_eq!(select_platform(&index, &p("arm", "")).unwrap().digest, "arm7");
        let err = select_platform(&index, &p("s390x", "")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries (available: windows/amd64, linux/arm/v6, linux/arm64, linux/amd64, linux/arm/v7)"
        );
    }

    #[test]
    fn digests() {
        assert!(check_digest(&sha256(b"")).is_ok());
        for bad in ["sha256:../../etc", "sha512:ab", "", &format!("sha256:{}", "A".repeat(64))] {
            assert!(check_digest(bad).is_err(), "{bad}");
        }
    }
}
