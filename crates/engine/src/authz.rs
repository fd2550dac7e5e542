//! The authorization middleware (Moby's `pkg/authorization/middleware.go`): every request
//! and its reply through the getter's [`AuthzChain`].
//!
//! What the plugins get: the method, the request URI as sent (API version and query
//! included), the headers flattened without credentials, the body (base64) when it is JSON,
//! not for `/auth`, and its `Content-Length` is between 1 byte and 1 MiB exclusive (Moby
//! 20.10's limits: a larger or chunked body is not sent, and the route still gets it whole),
//! and the user from the socket's peer credentials (the user name of its UID, or the UID;
//! Moby fills `User` from a TLS client certificate, which a unix socket never has). The reply
//! goes to `AuthZRes` with its status and headers, and its body when it is a JSON document
//! of at most 64 KiB (what Moby still holds in its buffer); a streamed reply (events,
//! progress) goes with status and headers only, before the stream starts, so a denial is a
//! clean 403 rather than a broken stream.

use dockplug_getter::authz::{flatten_headers, send_body, AuthzChain, AuthzError, MAX_BODY_SIZE};
use dockplug_protocol::authz::Request as AuthzRequest;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Request};

use crate::body::{RequestBody, ResponseBody};
use crate::error::{ApiError, ErrorKind};
use crate::middleware::{Middleware, Next, PeerCredentials};
use crate::reply::{self, Reply};
use crate::router::BoxFuture;

/// The largest reply body sent to `AuthZRes` (Moby's 64 KiB response buffer).
pub const MAX_RESPONSE_BODY: usize = 64 << 10;

/// The middleware of an authorization chain.
#[derive(Debug, Clone)]
pub struct AuthzMiddleware {
    chain: AuthzChain,
}

impl AuthzMiddleware {
    /// The middleware of `chain`.
    pub fn new(chain: AuthzChain) -> Self {
        Self { chain }
    }
}

fn headers(map: &HeaderMap) -> std::collections::BTreeMap<String, String> {
    flatten_headers(map.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))))
}

fn deny(e: &AuthzError) -> Reply {
    reply::error(&ApiError::new(ErrorKind::from_status(e.http_status()), e.to_string()))
}

/// The user name of `uid`, or the UID as a number.
fn user_of(peer: Option<&PeerCredentials>) -> String {
    let Some(p) = peer else { return String::new() };
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(p.uid)) {
        Ok(Some(u)) => u.name,
        _ => p.uid.to_string(),
    }
}

impl Middleware for AuthzMiddleware {
    fn handle(&self, request: Request<RequestBody>, next: Next) -> BoxFuture<Reply> {
        let chain = self.chain.clone();
        Box::pin(async move {
            if chain.is_empty() {
                return next.run(request).await;
            }
            let (parts, body) = request.into_parts();
            let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let length = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            let mut authz = AuthzRequest {
                user: user_of(parts.extensions.get::<PeerCredentials>()),
                request_method: parts.method.as_str().to_owned(),
                request_uri: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| parts.uri.to_string(), ToString::to_string),
                request_headers: headers(&parts.headers),
                ..AuthzRequest::default()
            };
            let path = parts.uri.path().to_owned();
            let body = if send_body(&path, content_type) && length > 0 && length < MAX_BODY_SIZE {
                let idle = std::time::Duration::from_secs(60);
                match body.collect(MAX_BODY_SIZE as usize, idle).await {
                    Ok(bytes) => {
                        authz.request_body = bytes.to_vec();
                        RequestBody::from_bytes(bytes)
                    }
                    Err(e) => return reply::error(&e),
                }
            } else {
                body
            };
            if let Err(e) = chain.authorize_request(&authz).await {
                tracing::error!(method = %parts.method, uri = %parts.uri, error = %e, "AuthZRequest returned error");
                return deny(&e);
            }
            let mut reply = next.run(Request::from_parts(parts, body)).await;
            // The chain may have changed while the handler ran (a plugin disabled).
            if chain.is_empty() {
                return reply;
            }
            authz.response_status_code = i32::from(reply.status().as_u16());
            authz.response_headers = headers(reply.headers());
            let json_reply = reply
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| send_body("", Some(ct)));
            if json_reply && !path.ends_with("/auth") {
                if let Some(full) = reply.body().as_full() {
                    if full.len() <= MAX_RESPONSE_BODY {
                        authz.response_body = full.to_vec();
                    }
                }
            }
            let failed = reply.status().is_client_error() || reply.status().is_server_error();
            match chain.authorize_response(&authz).await {
                // Moby ignores the reply's authorization when the handler already failed.
                Err(e) if !failed => {
                    tracing::error!(uri = %authz.request_uri, error = %e, "AuthZResponse returned error");
                    *reply.body_mut() = ResponseBody::empty();
                    deny(&e)
                }
                _ => reply,
            }
        })
    }
}
