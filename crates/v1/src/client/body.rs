//! What travels: request bodies (buffered JSON, or a reader streamed chunk by chunk), the
//! bounded reading of a reply, a streamed reply ([`ByteStream`]), and JSON in and out as
//! Moby's client writes and reads it.

use std::fmt;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use std::io::{Read, Write};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::header::CONTENT_ENCODING;
use http::Response;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::AsyncRead;

use super::error::CallError;
use super::Inner;
use crate::address::Address;

/// The request body type of every call.
pub(super) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub(super) fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// The request target `/<Method>`, checked and parsed once per call.
pub(super) fn target_of(method: &str) -> Result<http::Uri, CallError> {
    let invalid = || CallError::InvalidMethod { method: method.to_owned() };
    if method.trim_start_matches('/').is_empty() {
        return Err(invalid());
    }
    let mut path = String::with_capacity(method.len() + 1);
    if !method.starts_with('/') {
        path.push('/');
    }
    path.push_str(method);
    // An origin-form target parses as a path and query only; anything else is refused.
    match http::Uri::from_maybe_shared(Bytes::from(path)) {
        Ok(uri) if uri.scheme().is_none() && uri.authority().is_none() => Ok(uri),
        _ => Err(invalid()),
    }
}

pub(super) fn encode<A: Serialize + ?Sized>(method: &str, args: &A) -> Result<Bytes, CallError> {
    let mut v = Vec::with_capacity(128);
    serde_json::to_writer(&mut v, args)
        .map_err(|source| CallError::Encode { method: method.to_owned(), source })?;
    // Moby's encoder ends the body with a newline; some plugins read line by line.
    v.push(b'\n');
    Ok(v.into())
}

pub(super) fn decode<R: DeserializeOwned>(method: &str, body: &[u8]) -> Result<R, CallError> {
    let decode_err = |source| CallError::Decode { method: method.to_owned(), source };
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"null").map_err(decode_err);
    }
    // Like Go's decoder, read the first JSON value and ignore what follows.
    let mut it = serde_json::Deserializer::from_slice(body).into_iter::<R>();
    match it.next() {
        Some(r) => r.map_err(decode_err),
        None => serde_json::from_slice(b"null").map_err(decode_err),
    }
}

/// Whether a reply's body is gzip-compressed (`Content-Encoding: gzip`).
pub(super) fn is_gzip(resp: &Response<Incoming>) -> bool {
    resp.headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
}

/// Read a reply body to its end, failing once it passes `limit` bytes; when `gzip` (the
/// client asked for it) and the reply says it is compressed, decompress it, bounded by
/// `limit` too, as Go's transport does transparently.
pub(super) async fn read_limited(
    method: &str,
    addr: &Address,
    resp: Response<Incoming>,
    gzip: bool,
    limit: usize,
) -> Result<Bytes, CallError> {
    let compressed = gzip && is_gzip(&resp);
    let raw = read_body(method, addr, resp.into_body(), limit).await?;
    if !compressed {
        return Ok(raw);
    }
    gunzip(method, &raw, limit)
}

/// Decompress a whole gzip body, failing once the output passes `limit` bytes.
fn gunzip(method: &str, raw: &[u8], limit: usize) -> Result<Bytes, CallError> {
    let gzip_err = |source| CallError::Gzip { method: method.to_owned(), source };
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(gzip_err)?;
    if out.len() > limit {
        return Err(CallError::TooLarge { method: method.to_owned(), limit });
    }
    Ok(out.into())
}

async fn read_body(
    method: &str,
    addr: &Address,
    mut body: Incoming,
    limit: usize,
) -> Result<Bytes, CallError> {
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| CallError::Transport {
            method: method.to_owned(),
            addr: addr.to_string(),
            source,
        })?;
        let Ok(data) = frame.into_data() else { continue };
        let total = buf.len() + first.as_ref().map_or(0, Bytes::len) + data.len();
        if total > limit {
            return Err(CallError::TooLarge { method: method.to_owned(), limit });
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(f) => {
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// The body of a streamed reply ([`super::Client::stream`]), chunk by chunk. The connection
/// returns to the pool when the stream ends.
pub struct ByteStream {
    pub(super) method: String,
    pub(super) addr: String,
    pub(super) body: Incoming,
    /// The decompressor of a gzip reply, and the compressed bytes not fed to it yet.
    pub(super) inflate: Option<Inflate>,
    pub(super) pending: Bytes,
    pub(super) sender: Option<SendRequest<Body>>,
    pub(super) pool: Weak<Inner>,
}

/// Streamed gzip decompression. Compressed input is fed in small slices, so one chunk of a
/// hostile reply cannot expand into more than about a megabyte at a time.
pub(super) struct Inflate {
    decoder: flate2::write::MultiGzDecoder<Vec<u8>>,
    finished: bool,
}

/// The most compressed bytes fed to the decoder at once (deflate expands at most ~1032:1).
const INFLATE_STEP: usize = 1024;

impl Inflate {
    pub(super) fn new() -> Self {
        Self { decoder: flate2::write::MultiGzDecoder::new(Vec::new()), finished: false }
    }

    fn feed(&mut self, input: &[u8]) -> std::io::Result<Bytes> {
        self.decoder.write_all(input)?;
        Ok(std::mem::take(self.decoder.get_mut()).into())
    }

    fn finish(&mut self) -> std::io::Result<Bytes> {
        self.finished = true;
        self.decoder.try_finish()?;
        Ok(std::mem::take(self.decoder.get_mut()).into())
    }
}

impl fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteStream").field("method", &self.method).finish_non_exhaustive()
    }
}

impl Stream for ByteStream {
    type Item = Result<Bytes, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(inflate) = this.inflate.as_mut() {
                if !this.pending.is_empty() {
                    let step = this.pending.split_to(this.pending.len().min(INFLATE_STEP));
                    match inflate.feed(&step) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(out))),
                        Err(source) => return Poll::Ready(Some(Err(this.gzip_error(source)))),
                    }
                }
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    if let Some(inflate) = this.inflate.as_mut().filter(|i| !i.finished) {
                        match inflate.finish() {
                            Ok(out) if !out.is_empty() => return Poll::Ready(Some(Ok(out))),
                            Ok(_) => {}
                            Err(source) => {
                                return Poll::Ready(Some(Err(this.gzip_error(source))));
                            }
                        }
                    }
                    if let (Some(sender), Some(pool)) = (this.sender.take(), this.pool.upgrade()) {
                        pool.checkin(sender);
                    }
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(source))) => {
                    this.sender = None;
                    return Poll::Ready(Some(Err(CallError::Transport {
                        method: this.method.clone(),
                        addr: this.addr.clone(),
                        source,
                    })));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if this.inflate.is_some() {
                            this.pending = data;
                            continue;
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}

impl ByteStream {
    fn gzip_error(&mut self, source: std::io::Error) -> CallError {
        // The connection holds the rest of a body we cannot read: it is not reused.
        self.sender = None;
        self.inflate = None;
        CallError::Gzip { method: self.method.clone(), source }
    }
}

/// A request body read from an `AsyncRead`, chunk by chunk.
pub(super) struct ReaderBody<R> {
    reader: R,
    buf: Box<[u8]>,
    done: bool,
}

impl<R> ReaderBody<R> {
    pub(super) fn new(reader: R) -> Self {
        Self { reader, buf: vec![0; 64 * 1024].into_boxed_slice(), done: false }
    }
}

impl<R: AsyncRead + Unpin> hyper::body::Body for ReaderBody<R> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let mut read = tokio::io::ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.reader).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Ok(())) => {
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(read.filled())))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_decode_like_go() {
        let v: serde_json::Value = decode("m", b"{\"a\":1}\n{\"b\":2}").unwrap();
        assert_eq!(v["a"], 1);
        let () = decode("m", b"").unwrap();
        let n: Option<u8> = decode("m", b"  \n").unwrap();
        assert_eq!(n, None);
        assert!(matches!(decode::<u8>("m", b"garbage"), Err(CallError::Decode { .. })));
        for bad in ["", "/", "//", "bad method", "a\nb"] {
            assert!(target_of(bad).is_err(), "{bad:?}");
        }
        assert_eq!(target_of("Plugin.Activate").unwrap(), "/Plugin.Activate");
        assert_eq!(target_of("/Plugin.Activate").unwrap(), "/Plugin.Activate");
        assert_eq!(target_of("A.B?x=1").unwrap().query(), Some("x=1"));
        // A method that looks like a URL is still a path on the plugin.
        let u = target_of("http://h/x").unwrap();
        assert!(u.authority().is_none());
        assert_eq!(u.path(), "/http://h/x");
    }

    #[test]
    fn gzip_replies_are_bounded_after_decompression() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'0'; 4 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 << 10, "4 MiB of zeros compress to {} bytes", bomb.len());
        let e = gunzip("m", &bomb, 1 << 20).unwrap_err();
        assert!(matches!(e, CallError::TooLarge { limit, .. } if limit == 1 << 20), "{e:?}");
        assert_eq!(gunzip("m", &bomb, 4 << 20).unwrap().len(), 4 << 20);
        assert!(matches!(gunzip("m", b"\x1f\x8bnot gzip", 100), Err(CallError::Gzip { .. })));
    }
}
