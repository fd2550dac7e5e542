//! The method table: one handler per `<Subsystem>.<Method>`, and the one place where a
//! handler's outcome becomes an HTTP reply the way dockerd expects it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use dockplug_protocol::common::VERSION_MIMETYPE;
use dockplug_protocol::Manifest;
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::PluginError;

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A method handler: the request body in, a reply out.
pub(crate) type Handler = Arc<dyn Fn(Bytes) -> BoxFuture<Reply> + Send + Sync>;

/// The largest request body read (authz forwards request bodies of up to 4 MiB, base64-coded).
pub(crate) const MAX_BODY: usize = 16 << 20;

/// How a failure is written for a subsystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKey {
    /// `{"Err": ...}`: every subsystem but IPAM.
    Err,
    /// `{"Err": ..., "Error": ...}`: IPAM reads `Error` in 200 replies and `Err` otherwise, so
    /// both keys are sent.
    ErrAndError,
}

/// A reply body: a whole JSON document, or a stream of chunks (LogDriver.ReadLogs).
pub(crate) enum ReplyBody {
    Full(Bytes),
    Stream(mpsc::Receiver<Bytes>),
}

/// A handler's reply, before it becomes an HTTP response.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: ReplyBody,
}

impl Reply {
    /// A 200 reply holding `value` as JSON, plus the newline Go's encoder writes. A value that
    /// serialises to `null` becomes `{}`: dockerd rejects an empty body, and `{}` is the
    /// conventional empty reply.
    pub(crate) fn ok<T: Serialize>(value: &T) -> Reply {
        // Room for a typical reply and its newline, so that neither grows the buffer.
        let mut body = Vec::with_capacity(256);
        match serde_json::to_writer(&mut body, value) {
            Ok(()) => {
                if body == b"null" {
                    body = b"{}".to_vec();
                }
                body.push(b'\n');
                Reply { status: StatusCode::OK, body: ReplyBody::Full(body.into()) }
            }
            Err(e) => Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKey::Err,
                &format!("encode reply: {e}"),
            ),
        }
    }

    /// A failure: `status` with `{"Err": message}` (and `Error` for IPAM).
    pub(crate) fn error(status: StatusCode, key: ErrorKey, message: &str) -> Reply {
        let value = match key {
            ErrorKey::Err => serde_json::json!({ "Err": message }),
            ErrorKey::ErrAndError => serde_json::json!({ "Err": message, "Error": message }),
        };
        let mut body = value.to_string().into_bytes();
        body.push(b'\n');
        Reply { status, body: ReplyBody::Full(body.into()) }
    }

    /// A 200 reply whose body is streamed from `rx`.
    pub(crate) fn stream(rx: mpsc::Receiver<Bytes>) -> Reply {
        Reply { status: StatusCode::OK, body: ReplyBody::Stream(rx) }
    }

    pub(crate) fn into_response(self) -> Response<ReplyStream> {
        let body = match self.body {
            ReplyBody::Full(b) => ReplyStream::Full(Some(b)),
            ReplyBody::Stream(rx) => ReplyStream::Channel(rx),
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(VERSION_MIMETYPE),
        );
        resp
    }
}

/// The HTTP body of a [`Reply`].
pub(crate) enum ReplyStream {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Bytes>),
}

impl Body for ReplyStream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ReplyStream::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReplyStream::Channel(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ReplyStream::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplyStream::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ReplyStream::Full(None) => SizeHint::with_exact(0),
            ReplyStream::Channel(_) => SizeHint::default(),
        }
    }
}

/// Decode a request body. dockerd always sends a JSON body to methods that take one; an
/// empty or malformed body is the caller's mistake and gets a 400 naming the method.
pub(crate) fn decode<T: DeserializeOwned>(method: &str, body: &[u8]) -> Result<T, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            ErrorKey::Err,
            &format!("{method}: empty request body, expected a JSON object"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            ErrorKey::Err,
            &format!("{method}: malformed request body: {e}"),
        )
    })
}

/// The table of methods a plugin serves, and the manifest that follows from it.
#[derive(Default, Clone)]
pub(crate) struct Router {
    routes: BTreeMap<&'static str, Handler>,
    implements: Vec<&'static str>,
}

impl Router {
    /// Record that `subsystem` (its v1 `Implements` name) is served.
    pub(crate) fn implement(&mut self, subsystem: &'static str) {
        if !self.implements.contains(&subsystem) {
            self.implements.push(subsystem);
        }
    }

    /// The activation manifest: the subsystems in the order they were added.
    pub(crate) fn manifest(&self) -> Manifest {
        Manifest::new(self.implements.iter().copied())
    }

    /// The methods served, sorted.
    pub(crate) fn methods(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().copied()
    }

    /// Add a raw handler for `method`.
    pub(crate) fn raw(&mut self, method: &'static str, handler: Handler) {
        self.routes.insert(method, handler);
    }

    /// Add a method that takes a JSON request `Req` and replies with `Resp`.
    pub(crate) fn json<Req, Resp, F, Fut>(&mut self, method: &'static str, key: ErrorKey, f: F)
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, PluginError>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.raw(
            method,
            Arc::new(move |body: Bytes| {
                let f = f.clone();
                Box::pin(async move {
                    match decode::<Req>(method, &body) {
                        Ok(req) => finish(key, f(req).await),
                        Err(reply) => reply,
                    }
                })
            }),
        );
    }

    /// Add a method whose request body is ignored (dockerd sends none, or `{}`).
    pub(crate) fn unit<Resp, F, Fut>(&mut self, method: &'static str, key: ErrorKey, f: F)
    where
        Resp: Serialize + Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, PluginError>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.raw(
            method,
            Arc::new(move |_body: Bytes| {
                let f = f.clone();
                Box::pin(async move { finish(key, f().await) })
            }),
        );
    }

    /// Find the handler of a request path (`/VolumeDriver.Create`).
    pub(crate) fn handler(&self, path: &str) -> Option<(&'static str, &Handler)> {
        let method = dockplug_protocol::subsystem::method_name_of_path(path);
        self.routes.get_key_value(method).map(|(m, h)| (*m, h))
    }
}

/// Turn a handler's outcome into a reply: 200 with the JSON, or 500 with the error body.
pub(crate) fn finish<Resp: Serialize>(key: ErrorKey, r: Result<Resp, PluginError>) -> Reply {
    match r {
        Ok(resp) => Reply::ok(&resp),
        Err(e) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, key, e.message()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn body(r: &Reply) -> &[u8] {
        match &r.body {
            ReplyBody::Full(b) => b,
            ReplyBody::Stream(_) => panic!("streamed"),
        }
    }

    #[test]
    fn success_is_200_json_with_a_newline_and_never_empty() {
        let r = Reply::ok(&serde_json::json!({"Mountpoint": "/a<b"}));
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(body(&r), b"{\"Mountpoint\":\"/a<b\"}\n");
        // Nothing to say is `{}`, never an empty body or `null`.
        assert_eq!(body(&Reply::ok(&())), b"{}\n");
        assert_eq!(body(&Reply::ok(&Option::<u8>::None)), b"{}\n");
    }

    #[test]
    fn failures_carry_err_and_ipam_also_error() {
        let r = Reply::error(StatusCode::INTERNAL_SERVER_ERROR, ErrorKey::Err, "boom \"x\"");
        assert_eq!(body(&r), b"{\"Err\":\"boom \\\"x\\\"\"}\n");
        let r = Reply::error(StatusCode::INTERNAL_SERVER_ERROR, ErrorKey::ErrAndError, "full");
        let v: serde_json::Value = serde_json::from_slice(body(&r)).unwrap();
        assert_eq!(v, serde_json::json!({"Err": "full", "Error": "full"}));
    }

    #[test]
    fn bodies_that_do_not_parse_are_400_naming_the_method() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Req {
            #[serde(rename = "Name")]
            name: String,
        }
        for bad in [&b""[..], b"  \n", b"{", b"{\"Name\":1}", b"null x"] {
            let r = decode::<Req>("VolumeDriver.Get", bad).err().unwrap();
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
            let v: serde_json::Value = serde_json::from_slice(body(&r)).unwrap();
            assert!(v["Err"].as_str().unwrap().starts_with("VolumeDriver.Get: "), "{v}");
        }
        assert!(decode::<Req>("VolumeDriver.Get", b"{\"Name\":\"v\"}\n").is_ok());
    }

    #[test]
    fn plugin_error_keeps_the_chain_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("open state")]
        struct Outer(#[source] std::io::Error);
        let e: PluginError = Outer(std::io::Error::other("disk full")).into();
        assert_eq!(e.message(), "open state: disk full");
    }
}
