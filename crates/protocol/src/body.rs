//! Reading and writing JSON bodies the way the daemon does.
//!
//! * The daemon decodes a reply with Go's `json.Decoder`: only the first JSON value counts,
//!   trailing bytes are ignored, `null` leaves every field at its zero value, and an empty
//!   body is an error (`EOF`): [`decode_reply`].
//! * Several requests have an empty body (Activate, the `GetCapabilities` calls,
//!   `GetDefaultAddressSpaces`, `LogDriver.Capabilities`, metrics): [`decode_request`] reads
//!   an empty body as the default value.
//! * The daemon's `json.Encoder` escapes `<`, `>`, `&`, U+2028 and U+2029 and ends the body
//!   with one `\n`: [`encode`].
//!
//! ```
//! use dockplug_protocol::{body, volume::GetRequest};
//! let req: GetRequest = body::decode_request(b"{\"Name\":\"a<b\"} trailing")?;
//! assert_eq!(body::encode(&req)?, b"{\"Name\":\"a\\u003cb\"}\n");
//! assert!(body::decode_reply::<GetRequest>(b"").is_err());
//! # Ok::<(), dockplug_protocol::body::BodyError>(())
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A body that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// An empty (or all-whitespace) body where a JSON value is required.
    #[error("empty body where a json value is required")]
    Empty,
    /// The first JSON value is malformed or has the wrong types.
    #[error("invalid json body")]
    Decode {
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
    /// The value cannot be written as JSON (e.g. a map with non-string keys).
    #[error("cannot encode json body")]
    Encode {
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn first_value<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, BodyError> {
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Option<T>>();
    match stream.next() {
        None => Err(BodyError::Empty),
        Some(Ok(v)) => Ok(v.unwrap_or_default()),
        Some(Err(source)) => Err(BodyError::Decode { source }),
    }
}

/// Decode a request body: empty means the default value, `null` too; only the first JSON
/// value is read.
pub fn decode_request<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, BodyError> {
    if is_blank(body) {
        return Ok(T::default());
    }
    first_value(body)
}

/// Decode a 200 reply as the daemon does: an empty body is [`BodyError::Empty`], `null` is
/// the default value, and bytes after the first JSON value are ignored.
pub fn decode_reply<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, BodyError> {
    first_value(body)
}

/// Encode `value` as Go's `json.Encoder` does: HTML-safe escapes and a trailing newline
/// (see [`crate::gojson::to_vec_line`]).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, BodyError> {
    crate::gojson::to_vec_line(value).map_err(|source| BodyError::Encode { source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{CreateRequest, ListResponse};

    #[test]
    fn request_bodies() {
        let r: CreateRequest = decode_request(b"").unwrap();
        assert_eq!(r, CreateRequest::default());
        let r: CreateRequest = decode_request(b" null ").unwrap();
        assert_eq!(r, CreateRequest::default());
        assert!(matches!(
            decode_request::<CreateRequest>(b"{\"Name\":1}"),
            Err(BodyError::Decode { .. })
        ));
        assert!(matches!(decode_request::<CreateRequest>(b"{"), Err(BodyError::Decode { .. })));
    }

    #[test]
    fn reply_bodies() {
        assert!(matches!(decode_reply::<ListResponse>(b""), Err(BodyError::Empty)));
        assert!(matches!(decode_reply::<ListResponse>(b"\n"), Err(BodyError::Empty)));
        let r: ListResponse = decode_reply(b"null").unwrap();
        assert_eq!(r, ListResponse::default());
        let r: ListResponse = decode_reply(b"{\"Err\":\"x\"}\n{garbage").unwrap();
        assert_eq!(r.err, "x");
    }

    #[test]
    fn go_escapes() {
        let s = "<a&b>\u{2028}\u{2029}é\"\n";
        let out = encode(s).unwrap();
        assert_eq!(out, b"\"\\u003ca\\u0026b\\u003e\\u2028\\u2029\xc3\xa9\\\"\\n\"\n");
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
    }
}
