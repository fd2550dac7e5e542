//! `authz`: authorization plugins (Moby `pkg/authorization/api.go`).
//!
//! The same [`Request`] goes to `AuthZPlugin.AuthZReq` (before the daemon handles an API
//! request) and `AuthZPlugin.AuthZRes` (after, with the response). Every key is left out
//! when empty, as the daemon's `omitempty` does. Bodies and peer certificates are Go
//! `[]byte`: base64 on the wire, plain bytes here.
//!
//! ```
//! use dockplug_protocol::authz::{Request, Response};
//! let req: Request = serde_json::from_str(
//!     r#"{"RequestMethod":"POST","RequestURI":"/v1.41/containers/create","RequestBody":"e30="}"#,
//! )?;
//! assert_eq!(req.request_uri, "/v1.41/containers/create"); // the docs' spelling folds too
//! assert_eq!(req.request_body, b"{}");
//! assert_eq!(serde_json::to_string(&Response::deny("no"))?, r#"{"Allow":false,"Msg":"no"}"#);
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gojson::go_json;

/// The `Implements` entry of an authorization plugin.
pub const IMPLEMENTS: &str = "authz";

crate::subsystem::methods! {
    /// The `AuthZPlugin` endpoints.
    AuthzMethod, "AuthZPlugin", {
        /// `AuthZPlugin.AuthZReq`: before the daemon handles a request.
        AuthZReq => "AuthZReq",
        /// `AuthZPlugin.AuthZRes`: after, with the response.
        AuthZRes => "AuthZRes",
    }
}

/// The request of both `AuthZReq` and `AuthZRes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Request {
    /// The TLS client certificate's subject CN; empty without client TLS.
    #[serde(rename = "User", skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `TLS` when a client certificate was presented.
    #[serde(rename = "UserAuthNMethod", skip_serializing_if = "String::is_empty")]
    pub user_authn_method: String,
    /// The HTTP method.
    #[serde(rename = "RequestMethod", skip_serializing_if = "String::is_empty")]
    pub request_method: String,
    /// The raw request URI with API version and query, e.g. `/v1.41/containers/json?all=1`.
    /// The key is `RequestUri` (the docs' `RequestURI` is read too).
    #[serde(rename = "RequestUri", skip_serializing_if = "String::is_empty")]
    pub request_uri: String,
    /// The request body (JSON bodies only, size-limited by the daemon).
    #[serde(rename = "RequestBody", with = "crate::b64", skip_serializing_if = "Vec::is_empty")]
    pub request_body: Vec<u8>,
    /// Request headers, flattened (last value wins), credentials removed.
    #[serde(rename = "RequestHeaders", skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, String>,
    /// The client's certificates, each a PEM block (base64 on the wire).
    #[serde(
        rename = "RequestPeerCertificates",
        with = "crate::b64::list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub request_peer_certificates: Vec<Vec<u8>>,
    /// The handler's status (`AuthZRes` only); 0 when the handler set none.
    #[serde(rename = "ResponseStatusCode", skip_serializing_if = "is_zero")]
    pub response_status_code: i32,
    /// The buffered response body (`AuthZRes` only, JSON only).
    #[serde(rename = "ResponseBody", with = "crate::b64", skip_serializing_if = "Vec::is_empty")]
    pub response_body: Vec<u8>,
    /// Response headers, flattened.
    #[serde(rename = "ResponseHeaders", skip_serializing_if = "BTreeMap::is_empty")]
    pub response_headers: BTreeMap<String, String>,
}

/// The reply of both calls. Only `Allow` decides: a missing `Allow` denies, and `Err` is
/// ignored in a 200 reply (it counts only with a non-200 status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct Response {
    /// Whether the request (or response) may go through.
    #[serde(rename = "Allow")]
    pub allow: bool,
    /// The deny reason shown to the client.
    #[serde(rename = "Msg", skip_serializing_if = "String::is_empty")]
    pub msg: String,
    /// An error, for non-200 replies.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
}

impl Response {
    /// `{"Allow": true}`.
    pub fn allow() -> Self {
        Self { allow: true, ..Self::default() }
    }

    /// `{"Allow": false, "Msg": msg}`.
    pub fn deny(msg: impl Into<String>) -> Self {
        Self { allow: false, msg: msg.into(), ..Self::default() }
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &i32) -> bool {
    *n == 0
}

go_json!(Request, Response);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_and_allow_strictness() {
        assert_eq!(AuthzMethod::AuthZReq.path(), "/AuthZPlugin.AuthZReq");
        assert_eq!(crate::subsystem::Subsystem::Authz.implements(), IMPLEMENTS);
        assert_eq!(crate::subsystem::Subsystem::Authz.endpoint_prefix(), AuthzMethod::PREFIX);
        assert!(serde_json::from_str::<Response>(r#"{"Allow":"true"}"#).is_err());
        let r: Response = serde_json::from_str(r#"{"Allow":true,"Err":"x"}"#).unwrap();
        assert!(r.allow);
        assert!(serde_json::from_str::<Request>(r#"{"RequestBody":"not base64!"}"#).is_err());
    }
}
