//! Request and response bodies: what a route or a [`Middleware`](crate::Middleware) reads
//! and writes.
//!
//! A [`RequestBody`] is read whole and bounded ([`RequestBody::collect`]) or streamed
//! ([`RequestBody::frame`]); a middleware that needs the bytes (an authorization plugin)
//! collects them and hands the route [`RequestBody::from_bytes`]. A [`ResponseBody`] is a
//! whole document or a stream of chunks from a channel; a stream may own the task producing
//! it, which is aborted when the client goes away (the body is dropped).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::error::ApiError;

/// The body of a request.
#[derive(Debug, Default)]
pub struct RequestBody {
    inner: RequestInner,
}

#[derive(Debug, Default)]
enum RequestInner {
    #[default]
    Empty,
    Full(Bytes),
    Incoming(Incoming),
}

impl RequestBody {
    /// No body.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A body of `bytes` (already read, e.g. by a middleware).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Self { inner: RequestInner::Full(bytes.into()) }
    }

    pub(crate) fn incoming(body: Incoming) -> Self {
        Self { inner: RequestInner::Incoming(body) }
    }

    /// The next chunk of data; `None` at the end. A chunk never waits longer than `idle`.
    ///
    /// # Errors
    /// A 400 when the client sends nothing for `idle` or the connection fails.
    pub async fn frame(&mut self, idle: Duration) -> Option<Result<Bytes, ApiError>> {
        match &mut self.inner {
            RequestInner::Empty => None,
            RequestInner::Full(b) => {
                let b = std::mem::take(b);
                self.inner = RequestInner::Empty;
                if b.is_empty() {
                    None
                } else {
                    Some(Ok(b))
                }
            }
            RequestInner::Incoming(body) => loop {
                let frame = match tokio::time::timeout(idle, body.frame()).await {
                    Err(_) => {
                        return Some(Err(ApiError::invalid_parameter(format!(
                            "timed out reading the request body (nothing for {}s)",
                            idle.as_secs()
                        ))))
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => {
                        return Some(Err(ApiError::invalid_parameter(format!(
                            "failed to read the request body: {e}"
                        ))))
                    }
                    Ok(Some(Ok(frame))) => frame,
                };
                // Trailers carry no data.
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() {
                        return Some(Ok(data));
                    }
                }
            },
        }
    }

    /// Reads the whole body, at most `limit` bytes, never waiting longer than `idle` for a
    /// chunk.
    ///
    /// # Errors
    /// A 400 when the body is longer than `limit` (without reading the rest), or as
    /// [`RequestBody::frame`].
    pub async fn collect(mut self, limit: usize, idle: Duration) -> Result<Bytes, ApiError> {
        if let RequestInner::Full(b) = &self.inner {
            if b.len() > limit {
                return Err(too_large(limit));
            }
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.frame(idle).await {
            let chunk = chunk?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::invalid_parameter(format!("request body is larger than {limit} bytes"))
}

/// The body of a response.
#[derive(Debug)]
pub struct ResponseBody {
    inner: ResponseInner,
}

#[derive(Debug)]
enum ResponseInner {
    Full(Option<Bytes>),
    Stream { rx: mpsc::Receiver<Bytes>, _task: Option<AbortOnDrop> },
}

/// Aborts a task when dropped: the task that produces a stream ends with its client.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(Option<AbortHandle>);

impl AbortOnDrop {
    pub(crate) fn new(handle: AbortHandle) -> Self {
        Self(Some(handle))
    }

    /// The handle, no longer aborted on drop.
    pub(crate) fn disarm(mut self) -> Option<AbortHandle> {
        self.0.take()
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

impl ResponseBody {
    /// No body.
    pub fn empty() -> Self {
        Self { inner: ResponseInner::Full(None) }
    }

    /// A whole body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self { inner: ResponseInner::Full((!bytes.is_empty()).then_some(bytes)) }
    }

    /// A body streamed from `rx`, ending when every sender is gone.
    pub fn stream(rx: mpsc::Receiver<Bytes>) -> Self {
        Self { inner: ResponseInner::Stream { rx, _task: None } }
    }

    /// A streamed body whose producer `task` is aborted when the body is dropped (the client
    /// disconnected or the response was discarded).
    pub fn stream_owning(rx: mpsc::Receiver<Bytes>, task: AbortHandle) -> Self {
        Self { inner: ResponseInner::Stream { rx, _task: Some(AbortOnDrop::new(task)) } }
    }

    /// The bytes of a whole body (`Some(empty)` for no body); `None` for a stream.
    pub fn as_full(&self) -> Option<&[u8]> {
        match &self.inner {
            ResponseInner::Full(b) => Some(b.as_deref().unwrap_or_default()),
            ResponseInner::Stream { .. } => None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.inner {
            ResponseInner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseInner::Stream { rx, .. } => {
                rx.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.inner, ResponseInner::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            ResponseInner::Full(b) => {
                SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseInner::Stream { .. } => SizeHint::default(),
        }
    }
}
