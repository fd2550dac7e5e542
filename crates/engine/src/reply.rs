//! Building replies the way dockerd writes them (Moby's `api/server/httputils`
//! `WriteJSON`): `Content-Type: application/json` exactly, Go's encoder without HTML
//! escaping, a trailing newline; errors as `{"message": ...}` through the same writer.

use std::io;

use bytes::Bytes;
use dockplug_protocol::engine::JSON_CONTENT_TYPE;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::body::ResponseBody;
use crate::error::ApiError;

/// A response of the API.
pub type Reply = Response<ResponseBody>;

/// Encodes `value` as Go's `json.NewEncoder` with `SetEscapeHTML(false)` does: compact, no
/// escaping of `<`, `>` and `&` (U+2028 and U+2029 still escaped), a trailing newline.
///
/// # Errors
/// Whatever the value's `Serialize` reports.
pub fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoEncoder);
    value.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(out)
}

/// serde_json's compact output with the two escapes Go's encoder always makes.
struct GoEncoder;

impl serde_json::ser::Formatter for GoEncoder {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(i) = rest.find(['\u{2028}', '\u{2029}']) {
            writer.write_all(&rest.as_bytes()[..i])?;
            let escaped: &[u8] =
                if rest[i..].starts_with('\u{2028}') { b"\\u2028" } else { b"\\u2029" };
            writer.write_all(escaped)?;
            rest = &rest[i + '\u{2028}'.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

/// `status` with `value` as JSON.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
    match encode_json(value) {
        Ok(body) => with_body(status, JSON_CONTENT_TYPE, body.into()),
        Err(e) => error(&ApiError::system(format!("failed to encode the reply: {e}"))),
    }
}

/// `status` with no body (`Content-Length: 0`).
pub fn empty(status: StatusCode) -> Reply {
    let mut r = Response::new(ResponseBody::empty());
    *r.status_mut() = status;
    r
}

/// `status` with `body` of `content_type`.
pub fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut r = Response::new(ResponseBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The reply of an error: its status and `{"message": ...}`.
pub fn error(e: &ApiError) -> Reply {
    #[derive(Serialize)]
    struct Body<'a> {
        message: &'a str,
    }
    if e.status().is_server_error() {
        tracing::error!(error = %e, "request failed");
    }
    let body = encode_json(&Body { message: e.message() }).unwrap_or_default();
    with_body(e.status(), JSON_CONTENT_TYPE, body.into())
}

/// A `200 OK` JSON stream fed by `body`.
pub fn json_stream(body: ResponseBody) -> Reply {
    let mut r = Response::new(body);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    r
}
