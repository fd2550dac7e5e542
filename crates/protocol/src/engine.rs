//! The small print of the Engine API `/plugins` routes, as dockerd implements it: the error
//! body, the response headers, and how query values and JSON request bodies are read.
//!
//! These are pure functions over strings and bytes, so an Engine API server (or a test
//! client) built on any HTTP stack answers exactly as dockerd does.
//!
//! ```
//! use dockplug_protocol::engine::{bool_value, parse_timeout, ErrorResponse};
//! assert!(!bool_value(" No "));
//! assert!(bool_value("1"));
//! assert_eq!(parse_timeout("30")?, 30);
//! assert_eq!(parse_timeout("").unwrap_err().to_string(), r#"strconv.Atoi: parsing "": invalid syntax"#);
//! assert_eq!(ErrorResponse::new("plugin \"x\" not found").to_json(), r#"{"message":"plugin \"x\" not found"}"#);
//! # Ok::<(), dockplug_protocol::engine::QueryError>(())
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The `Content-Type` of every JSON reply and error, exactly (a `; charset=utf-8` suffix
/// makes the docker CLI print the raw body).
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The response header naming the installed plugin on `/plugins/pull` and `/upgrade`; the
/// CLI fails without it ("invalid plugin name or ID: value is empty").
pub const PLUGIN_NAME_HEADER: &str = "Docker-Plugin-Name";

/// The request headers forwarded to the registry start with this (canonical form).
pub const META_HEADER_PREFIX: &str = "X-Meta-";

/// The body of every Engine API error: `{"message": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct ErrorResponse {
    /// `message`: the error text.
    #[serde(rename = "message")]
    pub message: String,
}

crate::gojson::go_json!(ErrorResponse);

impl ErrorResponse {
    /// An error body with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }

    /// The body as dockerd writes it (Go's escaping).
    pub fn to_json(&self) -> String {
        // A struct with one string always serializes.
        crate::gojson::to_string(self).unwrap_or_default()
    }
}

/// A boolean query value (`force`, ...), as dockerd reads it: false for `""`, `0`, `no`,
/// `false` and `none` (trimmed, any case); true for anything else.
pub fn bool_value(v: &str) -> bool {
    let v = v.trim().to_lowercase();
    !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
}

/// A query value that is not what the route needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// Not a decimal integer (Go's `strconv.Atoi` text; HTTP 400).
    #[error("strconv.Atoi: parsing {value:?}: invalid syntax")]
    InvalidSyntax {
        /// The value given.
        value: String,
    },
    /// An integer outside the 64-bit range (Go's `strconv.Atoi` text; HTTP 400).
    #[error("strconv.Atoi: parsing {value:?}: value out of range")]
    OutOfRange {
        /// The value given.
        value: String,
    },
}

/// The `timeout` of `POST /plugins/{name}/enable`, in seconds, read like Go's `strconv.Atoi`:
/// an optional sign and decimal digits, nothing else. It is required: `""` is an error.
///
/// # Errors
/// [`QueryError::InvalidSyntax`] or [`QueryError::OutOfRange`], with Go's texts.
pub fn parse_timeout(v: &str) -> Result<i64, QueryError> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryError::InvalidSyntax { value: v.to_owned() });
    }
    v.parse::<i64>().map_err(|_| QueryError::OutOfRange { value: v.to_owned() })
}

/// A JSON request body dockerd would refuse (HTTP 400 for each).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// A `Content-Type` other than `application/json`.
    #[error("unsupported Content-Type header ({content_type}): must be 'application/json'")]
    UnsupportedContentType {
        /// The header as given.
        content_type: String,
    },
    /// A `Content-Type` that is not a media type (also an absent one with a body).
    #[error("malformed Content-Type header ({content_type}): {reason}")]
    MalformedContentType {
        /// The header as given (`""` when absent).
        content_type: String,
        /// Go's `mime` text, e.g. `mime: no media type`.
        reason: &'static str,
    },
    /// Only whitespace where a JSON value was expected.
    #[error("invalid JSON: got EOF while reading request body")]
    Eof,
    /// Not valid JSON, or not the expected shape.
    #[error("invalid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// More than one JSON value.
    #[error("unexpected content after JSON")]
    TrailingContent,
}

/// Checks a request's `Content-Type` the way dockerd's JSON body reader does: the media type
/// must be `application/json` (any case, parameters allowed; their syntax is not checked).
///
/// # Errors
/// [`BodyError::UnsupportedContentType`] or [`BodyError::MalformedContentType`].
pub fn check_json_content_type(content_type: &str) -> Result<(), BodyError> {
    let malformed =
        |reason| BodyError::MalformedContentType { content_type: content_type.to_owned(), reason };
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let is_token_byte = |b: u8| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b);
    let token_len = |s: &str| s.bytes().take_while(|&b| is_token_byte(b)).count();
    let first = token_len(media_type);
    if first == 0 {
        return Err(malformed("mime: no media type"));
    }
    let Some(rest) = media_type[first..].strip_prefix('/') else {
        return Err(malformed("mime: expected slash after first token"));
    };
    let second = token_len(rest);
    if second == 0 {
        return Err(malformed("mime: expected token after slash"));
    }
    if second != rest.len() {
        return Err(malformed("mime: unexpected content after media subtype"));
    }
    if !media_type.eq_ignore_ascii_case(JSON_CONTENT_TYPE) {
        return Err(BodyError::UnsupportedContentType { content_type: content_type.to_owned() });
    }
    Ok(())
}

/// Reads a JSON request body (pull and upgrade privileges, set arguments) as dockerd does.
/// `content_type` is the header (`None` when absent) and `body` the whole body.
///
/// * no `Content-Type` and an empty body: no value (`None`);
/// * otherwise the `Content-Type` must be JSON, even for an empty body;
/// * an empty body is then no value, and so is the JSON literal `null`;
/// * the body must be one JSON value of type `T`, followed by nothing but whitespace.
///
/// # Errors
/// See [`BodyError`].
pub fn read_json_body<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Option<T>, BodyError> {
    let content_type = content_type.unwrap_or_default();
    if content_type.is_empty() && body.is_empty() {
        return Ok(None);
    }
    check_json_content_type(content_type)?;
    if body.is_empty() {
        return Ok(None);
    }
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Option<T>>();
    let value = match stream.next() {
        Some(v) => v.map_err(BodyError::InvalidJson)?,
        None => return Err(BodyError::Eof),
    };
    if body[stream.byte_offset()..].iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(BodyError::TrailingContent);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PluginPrivilege;

    #[test]
    fn bool_values() {
        for f in ["", " ", "0", "no", "NO", "false", "False", "none", " none "] {
            assert!(!bool_value(f), "{f:?}");
        }
        for t in ["1", "true", "yes", "y", "2", "on"] {
            assert!(bool_value(t), "{t:?}");
        }
    }

    #[test]
    fn timeouts_like_atoi() {
        assert_eq!(parse_timeout("0").unwrap(), 0);
        assert_eq!(parse_timeout("+5").unwrap(), 5);
        assert_eq!(parse_timeout("-1").unwrap(), -1);
        for bad in ["", " 5", "5 ", "1e3", "0x10", "1_000", "+", "-", "５"] {
            assert!(matches!(parse_timeout(bad), Err(QueryError::InvalidSyntax { .. })), "{bad:?}");
        }
        assert_eq!(
            parse_timeout("99999999999999999999").unwrap_err().to_string(),
            r#"strconv.Atoi: parsing "99999999999999999999": value out of range"#
        );
    }

    #[test]
    fn content_types() {
        assert!(check_json_content_type("application/json").is_ok());
        assert!(check_json_content_type("Application/JSON; charset=utf-8").is_ok());
        assert_eq!(
            check_json_content_type("text/plain").unwrap_err().to_string(),
            "unsupported Content-Type header (text/plain): must be 'application/json'"
        );
        for (ct, reason) in [
            ("", "mime: no media type"),
            ("json", "mime: expected slash after first token"),
            ("application/", "mime: expected token after slash"),
            ("application/json x", "mime: unexpected content after media subtype"),
        ] {
            assert_eq!(
                check_json_content_type(ct).unwrap_err().to_string(),
                format!("malformed Content-Type header ({ct}): {reason}")
            );
        }
    }

    #[test]
    fn bodies() {
        type Privs = Vec<PluginPrivilege>;
        let ct = Some("application/json");
        assert_eq!(read_json_body::<Privs>(None, b"").unwrap(), None);
        assert_eq!(read_json_body::<Privs>(ct, b"").unwrap(), None);
        assert!(matches!(
            read_json_body::<Privs>(Some("text/plain"), b""),
            Err(BodyError::UnsupportedContentType { .. })
        ));
        assert_eq!(read_json_body::<Privs>(ct, b"null").unwrap(), None);
        let p = read_json_body::<Privs>(
            ct,
            br#"[{"Name":"network","Description":"","Value":["host"]}]"#,
        )
        .unwrap();
        assert_eq!(p.unwrap()[0].value, ["host"]);
        assert_eq!(
            read_json_body::<Vec<String>>(ct, b" [\"DEBUG=1\"]\r\n").unwrap().unwrap(),
            ["DEBUG=1"]
        );
        assert_eq!(
            read_json_body::<Privs>(None, b"[]").unwrap_err().to_string(),
            "malformed Content-Type header (): mime: no media type"
        );
        assert!(matches!(read_json_body::<Privs>(ct, b"[1]"), Err(BodyError::InvalidJson(_))));
        assert!(matches!(read_json_body::<Privs>(ct, b"[{}"), Err(BodyError::InvalidJson(_))));
        assert_eq!(
            read_json_body::<Privs>(ct, b"  ").unwrap_err().to_string(),
            "invalid JSON: got EOF while reading request body"
        );
        let e = read_json_body::<Privs>(ct, b"[] []").unwrap_err();
        assert_eq!(e.to_string(), "unexpected content after JSON");
        assert!(read_json_body::<Privs>(ct, b"[1]")
            .unwrap_err()
            .to_string()
            .starts_with("invalid JSON: "));
    }

    #[test]
    fn error_body() {
        let e = ErrorResponse::new("a <b>");
        assert_eq!(e.to_json(), r#"{"message":"a \u003cb\u003e"}"#);
        let back: ErrorResponse = serde_json::from_str(r#"{"Message":"x"}"#).unwrap();
        assert_eq!(back.message, "x");
    }
}
