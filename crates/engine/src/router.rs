//! The route table: method + path pattern → handler, each route answering at the bare path
//! and under `/v{version}` (Moby's `api/server/server.go` `createMux` registers every route
//! twice), in table order (the first match wins, as with gorilla/mux).
//!
//! A pattern is a literal path with at most one parameter, `{name:.*}` (greedy, may hold
//! `/` and `:`, as plugin names do) or `{name}` (one path segment). A path that no route
//! matches, or matches with another method, is Moby's 404 `page not found`.

use std::cmp::Ordering;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use crate::body::RequestBody;
use crate::error::ApiError;
use crate::reply::Reply;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A route handler.
pub(crate) type Handler =
    Arc<dyn Fn(RouteRequest) -> BoxFuture<Result<Reply, ApiError>> + Send + Sync>;

/// Bounds on what a request may send, from [`EngineConfig`](crate::EngineConfig).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub json_body: usize,
    pub context_body: u64,
    pub body_idle: Duration,
}

/// What a route handler gets: the request head, its parameter, query and body.
#[derive(Debug)]
pub struct RouteRequest {
    parts: Parts,
    body: RequestBody,
    param: String,
    version: String,
    query: Vec<(String, String)>,
    limits: Limits,
}

impl RouteRequest {
    pub(crate) fn new(
        parts: Parts,
        body: RequestBody,
        param: String,
        version: String,
        limits: Limits,
    ) -> Self {
        let query = parts.uri.query().map(parse_query).unwrap_or_default();
        Self { parts, body, param, version, query, limits }
    }

    /// The value of the path parameter (`{name:.*}`), percent-decoded; empty when the route
    /// has none.
    pub fn param(&self) -> &str {
        &self.param
    }

    /// The API version of the request: the `/v{version}` of the path, or the server's when
    /// the path has none.
    pub fn api_version(&self) -> &str {
        &self.version
    }

    /// The first value of query parameter `key`, `""` when absent (Go's `Form.Get`).
    pub fn query(&self, key: &str) -> &str {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_default()
    }

    /// A boolean query value as dockerd reads one (`httputils.BoolValue`).
    pub fn query_bool(&self, key: &str) -> bool {
        dockplug_protocol::engine::bool_value(self.query(key))
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// A header as a string, `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The request head (method, URI, headers, extensions).
    pub fn parts(&self) -> &Parts {
        &self.parts
    }

    /// Reads a JSON body as dockerd does (`Content-Type` checked; `None` for no value), at
    /// most the configured JSON body limit.
    ///
    /// # Errors
    /// 400 for a body that is too large, not JSON, or not a `T`.
    pub async fn json<T: DeserializeOwned>(self) -> Result<Option<T>, ApiError> {
        let limits = self.limits;
        let content_type = self.header(http::header::CONTENT_TYPE.as_str()).map(str::to_owned);
        let bytes = self.body.collect(limits.json_body, limits.body_idle).await?;
        Ok(dockplug_protocol::engine::read_json_body(content_type.as_deref(), &bytes)?)
    }

    /// The whole body, at most the configured JSON body limit.
    ///
    /// # Errors
    /// 400 for a body that is too large or arrives too slowly.
    pub async fn bytes(self) -> Result<Bytes, ApiError> {
        let limits = self.limits;
        self.body.collect(limits.json_body, limits.body_idle).await
    }

    /// The largest build context accepted.
    pub(crate) fn context_limit(&self) -> u64 {
        self.limits.context_body
    }

    /// The body, to stream, and the idle limit between chunks.
    pub fn into_body(self) -> (RequestBody, Duration) {
        (self.body, self.limits.body_idle)
    }
}

/// A parsed route pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    prefix: String,
    /// `None`: the pattern is literal. `Some(greedy)`: one parameter, then `suffix`.
    param: Option<bool>,
    suffix: String,
}

impl Pattern {
    /// Parses `"/plugins/{name:.*}/json"`.
    ///
    /// # Panics
    /// On a pattern with more than one parameter or an unclosed brace: patterns are
    /// program text, not input.
    pub(crate) fn parse(pattern: &str) -> Self {
        let Some(open) = pattern.find('{') else {
            return Self { prefix: pattern.to_owned(), param: None, suffix: String::new() };
        };
        let close = pattern[open..].find('}').map(|i| open + i);
        let Some(close) = close else { panic!("unclosed parameter in route pattern {pattern:?}") };
        let suffix = &pattern[close + 1..];
        assert!(!suffix.contains('{'), "route pattern {pattern:?} has two parameters");
        let greedy = pattern[open + 1..close].ends_with(":.*");
        Self { prefix: pattern[..open].to_owned(), param: Some(greedy), suffix: suffix.to_owned() }
    }

    /// The parameter when `path` matches (`""` for a literal pattern).
    pub(crate) fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        match self.param {
            None => (path == self.prefix).then_some(""),
            Some(greedy) => {
                let rest = path.strip_prefix(self.prefix.as_str())?;
                let value = rest.strip_suffix(self.suffix.as_str())?;
                (greedy || !value.contains('/')).then_some(value)
            }
        }
    }
}

/// One route.
#[derive(Clone)]
pub(crate) struct Route {
    pub method: Method,
    pub pattern: Pattern,
    /// The route answers from this API version on (older: 404, as a daemon without it).
    pub min_version: Option<&'static str>,
    pub handler: Handler,
}

/// The table, in match order.
#[derive(Clone, Default)]
pub(crate) struct RouteTable {
    routes: Vec<Route>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|r| (r.method.as_str(), r.pattern.prefix.as_str())))
            .finish()
    }
}

impl RouteTable {
    pub(crate) fn push(&mut self, route: Route) {
        self.routes.push(route);
    }

    pub(crate) fn into_routes(self) -> Vec<Route> {
        self.routes
    }

    /// The first route for `method` and `path`, and its parameter.
    pub(crate) fn find<'p>(&self, method: &Method, path: &'p str) -> Option<(&Route, &'p str)> {
        self.routes
            .iter()
            .filter(|r| r.method == *method)
            .find_map(|r| r.pattern.matches(path).map(|p| (r, p)))
    }
}

/// Splits `/v1.41/plugins` into `(Some("1.41"), "/plugins")` (Moby's
/// `/v{version:[0-9.]+}` prefix); other paths are returned whole.
pub(crate) fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        if end > 0 && rest[end..].starts_with('/') {
            return (Some(&rest[..end]), &rest[end..]);
        }
    }
    (None, path)
}

/// Compares API versions as Moby's `api/types/versions` does: dot-separated integers,
/// missing or unparsable parts count as 0.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
        let y = pb.get(i).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

/// Percent-decodes `s` (and `+` as a space when `plus` is set, as in a query). Invalid
/// escapes are kept as they are; bytes that are not UTF-8 become U+FFFD.
pub(crate) fn percent_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string into decoded `(key, value)` pairs, in order.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}
