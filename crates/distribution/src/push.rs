//! Push: for each blob (all at once) a HEAD, then a cross-repository mount (falling back to the upload the
//! registry opens when it answers 202) or a monolithic upload (POST, then one PUT with the
//! digest, as dockerd does), then the manifest PUT with the stored bytes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use dockplug_manager::blobs::BlobStore;
use dockplug_manager::distribution::PushRequest;
use dockplug_manager::Progress;
use dockplug_protocol::progress::{short_id, status, JsonMessage, PushResult};
use dockplug_protocol::registry::Descriptor;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use crate::auth;
use crate::client::{Repo, Target};
use crate::pull::{check_digest, sha256};
use crate::transport::{self, empty, resolve_location, ReqBody};
use crate::{DistributionError, RegistryClient};

/// How much of a blob file one read takes, and how many such reads may wait ahead of the
/// socket: a blocking thread reads the file ahead while the layer is on the wire, so the
/// registry never waits for a read (a read on demand, through tokio's blocking pool, left the
/// registry idle between chunks: the layer's PUT took twice dockerd's). At most
/// `UPLOAD_CHUNK * READ_AHEAD` bytes of a blob are in memory.
const UPLOAD_CHUNK: usize = 256 << 10;
const READ_AHEAD: usize = 8;

/// A blob file as a request body of known length, counting what was sent; its chunks come
/// from a reader thread (`read_ahead`), each read straight into the `Bytes` that is sent.
struct FileBody {
    chunks: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
    sent: Arc<AtomicU64>,
}

/// Starts the reader thread of `size` bytes of `file`; it stops early when the body is gone.
fn read_ahead(
    mut file: std::fs::File,
    size: u64,
) -> tokio::sync::mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(UPLOAD_CHUNK);
            let mut buf = vec![0; want];
            let chunk = match file.read(&mut buf) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob shorter than its descriptor",
                )),
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    Ok(Bytes::from(buf))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    rx
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        match this.chunks.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "blob shorter than its descriptor",
            )))),
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                this.remaining = this.remaining.saturating_sub(n);
                this.sent.fetch_add(n, Ordering::Relaxed);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Appends `key=value` to a URL's query.
fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", auth::urlencode(value))
}

async fn fail(reply: crate::client::Reply, method: &str) -> DistributionError {
    let status = reply.resp.status().as_u16();
    let message =
        transport::error_text(reply.resp, &reply.url, std::time::Duration::from_secs(10)).await;
    DistributionError::Status { method: method.into(), url: reply.url, status, message }
}

impl RegistryClient {
    /// Pushes `request`'s blobs and manifest; returns Moby's aux `{Tag, Digest, Size}`.
    pub async fn push(
        &self,
        request: PushRequest<'_>,
        blobs: &BlobStore,
        progress: &dyn Progress,
    ) -> Result<PushResult, DistributionError> {
        let reference = request.reference;
        let tag = reference.tag().ok_or_else(|| DistributionError::InvalidReference {
            reference: reference.to_string(),
            reason: "a push needs a tag",
        })?;
        let mut repo = self.repo(reference, request.auth, true);
        let mount_from = request
            .mount_from
            .filter(|m| m.domain() == reference.domain() && m.path() != reference.path());
        if let Some(m) = mount_from {
            repo.add_scope(auth::plugin_scope(m.path(), false));
        }
        progress.send(JsonMessage::push_refers_to(&reference.familiar_name()));
        for d in request.blobs {
            check_digest(&d.digest)?;
            progress.send(JsonMessage::item(short_id(&d.digest), status::PREPARING));
        }
        // All blobs at once, as dockerd does: a registry takes tens of milliseconds to
        // commit even a tiny blob, so the config's upload hides behind the layer's.
        let from = mount_from.map(|m| m.path());
        futures_util::future::try_join_all(
            request.blobs.iter().map(|d| self.push_blob(&repo, d, blobs, from, progress)),
        )
        .await?;
        let digest = sha256(request.manifest);
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(request.media_type) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(request.manifest.len()));
        let manifest = Bytes::copy_from_slice(request.manifest);
        let rest = format!("manifests/{tag}");
        let reply = repo
            .send(Method::PUT, Target::Repo(&rest), &headers, &|| {
                Ok(transport::full(manifest.clone()))
            })
            .await?;
        if !reply.resp.status().is_success() {
            return Err(fail(reply, "PUT").await);
        }
        if let Some(claimed) =
            reply.resp.headers().get("Docker-Content-Digest").and_then(|v| v.to_str().ok())
        {
            if claimed != digest {
                return Err(DistributionError::DigestMismatch {
                    expected: digest,
                    actual: claimed.to_owned(),
                });
            }
        }
        for d in request.blobs {
            progress.send(JsonMessage::item(short_id(&d.digest), status::UPLOAD_COMPLETE));
        }
        progress.send(JsonMessage::status(format!(
            "{tag}: digest: {digest} size: {}",
            request.manifest.len()
        )));
        Ok(PushResult { tag: tag.to_owned(), digest, size: request.manifest.len() as i64 })
    }

    async fn push_blob(
        &self,
        repo: &Repo,
        d: &Descriptor,
        blobs: &BlobStore,
        mount_from: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<(), DistributionError> {
        let id = short_id(&d.digest).to_owned();
        let rest = format!("blobs/{}", d.digest);
        let reply = repo
            .send(Method::HEAD, Target::Repo(&rest), &HeaderMap::new(), &|| Ok(empty()))
            .await?;
        match reply.resp.status() {
            StatusCode::OK => {
                progress.send(JsonMessage::item(id, "Layer already exists"));
                return Ok(());
            }
            StatusCode::NOT_FOUND => {}
            _ => return Err(fail(reply, "HEAD").await),
        }
        let uploads = match mount_from {
            Some(from) => format!(
                "blobs/uploads/?mount={}&from={}",
                auth::urlencode(&d.digest),
                auth::urlencode(from)
            ),
            None => "blobs/uploads/".to_owned(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        let reply =
            repo.send(Method::POST, Target::Repo(&uploads), &headers, &|| Ok(empty())).await?;
        match reply.resp.status() {
            StatusCode::CREATED if mount_from.is_some() => {
                progress.send(JsonMessage::item(
                    id,
                    format!("Mounted from {}", mount_from.unwrap_or_default()),
                ));
                return Ok(());
            }
            // 202: an upload session (also the registry's answer to a mount it cannot do).
            StatusCode::ACCEPTED => {}
            _ => return Err(fail(reply, "POST").await),
        }
        let location = reply
            .resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| DistributionError::BadRedirect { url: reply.url.clone() })?;
        let base = resolve_location(repo.scheme(), &repo.host, location);
        let put_url = with_query(&base, "digest", &d.digest);
        let size = u64::try_from(d.size).map_err(|_| DistributionError::SizeMismatch {
            digest: d.digest.clone(),
            expected: 0,
            actual: 0,
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        let sent = Arc::new(AtomicU64::new(0));
        let digest = d.digest.clone();
        let store = blobs.clone();
        let sent2 = sent.clone();
        let make_body = move || -> Result<ReqBody, DistributionError> {
            let file = store.open_blob(&digest)?;
            let len = file
                .metadata()
                .map_err(|source| DistributionError::Io { path: digest.clone().into(), source })?
                .len();
            if len != size {
                return Err(DistributionError::SizeMismatch {
                    digest: digest.clone(),
                    expected: size,
                    actual: len,
                });
            }
            sent2.store(0, Ordering::Relaxed);
            Ok(FileBody { chunks: read_ahead(file, size), remaining: size, sent: sent2.clone() }
                .boxed())
        };
        let mut meter = crate::progress::Meter::new(
            progress,
            &d.digest,
            status::UPLOADING,
            size,
            self.config().progress_interval,
        );
        let put = repo.send(Method::PUT, Target::Absolute(&put_url), &headers, &make_body);
        tokio::pin!(put);
        let mut tick = tokio::time::interval(self.config().progress_interval);
        let mut reported = 0;
        let reply = loop {
            tokio::select! {
                r = &mut put => break r?,
                _ = tick.tick() => {
                    let now = sent.load(Ordering::Relaxed);
                    meter.add(now.saturating_sub(reported));
                    reported = now;
                }
            }
        };
        meter.add(sent.load(Ordering::Relaxed).saturating_sub(reported));
        meter.finish();
        if !reply.resp.status().is_success() {
            return Err(fail(reply, "PUT").await);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_urls() {
        assert_eq!(
            with_query("http://h/v2/r/blobs/uploads/u?_state=x", "digest", "sha256:ab"),
            "http://h/v2/r/blobs/uploads/u?_state=x&digest=sha256%3Aab"
        );
        assert_eq!(
            with_query("http://h/u", "digest", "sha256:ab"),
            "http://h/u?digest=sha256%3Aab"
        );
    }
}
