//! Why a client cannot be built and why a call failed, and how a non-200 reply becomes an
//! error (Moby's `pkg/plugins/client.go callWithRetry`: the `Err` of the body, else the raw
//! body).

use std::time::Duration;

use bytes::Bytes;
use dockplug_protocol::ErrorBody;
use http::StatusCode;

use crate::address::AddressError;
use crate::client::proxy::ProxyError;
use crate::tls::TlsError;

/// Why a client cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address cannot be used.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The TLS options cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The proxy the environment names for this address cannot be used.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The `User-Agent` given is not a valid header value.
    #[error("invalid User-Agent {value:?}")]
    UserAgent {
        /// The value given.
        value: String,
    },
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The call did not finish within its timeout; it was not retried.
    #[error("{method}: timed out after {after:?}")]
    Timeout {
        /// The method called.
        method: String,
        /// The timeout.
        after: Duration,
    },
    /// No connection to the plugin could be made (after the retries of the policy).
    #[error("{method}: cannot connect to plugin at {addr}")]
    Connect {
        /// The method called.
        method: String,
        /// The plugin's address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed while the call was in flight (closed mid-reply, reset, bad
    /// HTTP).
    #[error("{method}: connection to plugin at {addr} failed")]
    Transport {
        /// The method called.
        method: String,
        /// The plugin's address.
        addr: String,
        /// The HTTP error.
        #[source]
        source: hyper::Error,
    },
    /// The plugin answered with a status other than 200: `<Method>: <Err>`, or the raw body
    /// when it has no `Err`.
    #[error("{method}: {message}")]
    Plugin {
        /// The method called.
        method: String,
        /// The HTTP status.
        status: u16,
        /// The plugin's message.
        message: String,
    },
    /// The reply is not the JSON expected.
    #[error("{method}: cannot decode the plugin's reply")]
    Decode {
        /// The method called.
        method: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The reply says it is gzip-compressed but cannot be decompressed.
    #[error("{method}: cannot decompress the plugin's gzip reply")]
    Gzip {
        /// The method called.
        method: String,
        /// The decompression error.
        #[source]
        source: std::io::Error,
    },
    /// The request cannot be encoded as JSON.
    #[error("{method}: cannot encode the request")]
    Encode {
        /// The method called.
        method: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The reply is larger than the client accepts.
    #[error("{method}: reply larger than {limit} bytes")]
    TooLarge {
        /// The method called.
        method: String,
        /// The limit.
        limit: usize,
    },
    /// The method name cannot be a URL path.
    #[error("invalid method name {method:?}")]
    InvalidMethod {
        /// The method name.
        method: String,
    },
}

impl CallError {
    /// Whether the plugin answered 404 (Moby's `IsNotFound`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CallError::Plugin { status: 404, .. })
    }

    /// Whether the call timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, CallError::Timeout { .. })
    }

    /// Whether nothing listens at the address: the connection was refused or the socket file
    /// is gone (a stale or dead plugin).
    pub fn is_refused(&self) -> bool {
        match self {
            CallError::Connect { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ),
            _ => false,
        }
    }

    /// The method called.
    pub fn method(&self) -> &str {
        match self {
            CallError::Timeout { method, .. }
            | CallError::Connect { method, .. }
            | CallError::Transport { method, .. }
            | CallError::Plugin { method, .. }
            | CallError::Decode { method, .. }
            | CallError::Gzip { method, .. }
            | CallError::Encode { method, .. }
            | CallError::TooLarge { method, .. }
            | CallError::InvalidMethod { method } => method,
        }
    }
}

/// The body of a 200, or the plugin's error for any other status.
pub(super) fn check_status(
    method: &str,
    status: StatusCode,
    body: Bytes,
) -> Result<Bytes, CallError> {
    if status == StatusCode::OK {
        Ok(body)
    } else {
        Err(plugin_error(method, status, &body))
    }
}

/// A non-200 reply as an error: its `Err` when the body is JSON with a non-empty one, else
/// the raw body.
pub(super) fn plugin_error(method: &str, status: StatusCode, body: &[u8]) -> CallError {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.err.is_empty() => e.err,
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    CallError::Plugin { method: method.to_owned(), status: status.as_u16(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_method() {
        let e = plugin_error(
            "VolumeDriver.Mount",
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"Err":"boom"}"#,
        );
        assert_eq!(e.to_string(), "VolumeDriver.Mount: boom");
        let e = plugin_error("X.Y", StatusCode::NOT_FOUND, b"404 page not found\n");
        assert_eq!(e.to_string(), "X.Y: 404 page not found\n");
        assert!(e.is_not_found());
        let e = plugin_error("X.Y", StatusCode::BAD_REQUEST, br#"{"Err":""}"#);
        assert_eq!(e.to_string(), r#"X.Y: {"Err":""}"#);
    }
}
