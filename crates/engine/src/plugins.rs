//! The `/plugins` routes (Moby's `api/server/router/plugin/plugin.go` `initRoutes` and
//! `plugin_routes.go`): read the request, call the [`Backend`], write the reply.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dockplug_protocol::auth::{AuthConfig, REGISTRY_AUTH_HEADER};
use dockplug_protocol::engine::{parse_timeout, JSON_CONTENT_TYPE, PLUGIN_NAME_HEADER};
use dockplug_protocol::filters::PluginListFilter;
use dockplug_protocol::progress::JsonMessage;
use dockplug_protocol::{Plugin, PluginPrivilege};
use http::header::HeaderValue;
use http::{Method, StatusCode};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{
    Backend, BuildContext, PrivilegesRequest, Progress, PullRequest, PushRequest, RegistryAuth,
    UpgradeRequest,
};
use crate::body::{AbortOnDrop, ResponseBody};
use crate::error::ApiError;
use crate::remote::local_name;
use crate::reply::{self, Reply};
use crate::router::{BoxFuture, Pattern, Route, RouteRequest, RouteTable};

/// Progress lines buffered between a backend and a slow client.
const PROGRESS_BUFFER: usize = 64;

/// Build-context chunks buffered between the socket and the extracting thread.
const CONTEXT_BUFFER: usize = 8;

/// Adds the plugin routes, in Moby's order.
pub(crate) fn routes<B: Backend>(table: &mut RouteTable, backend: &Arc<B>) {
    macro_rules! route {
        ($method:expr, $pattern:expr, $min:expr, $f:ident) => {{
            let b = backend.clone();
            table.push(Route {
                method: $method,
                pattern: Pattern::parse($pattern),
                min_version: $min,
                handler: Arc::new(move |r| {
                    let b = b.clone();
                    Box::pin(async move { $f(b, r).await })
                }),
            });
        }};
    }
    let (b, cache) = (backend.clone(), Arc::new(ListCache::default()));
    table.push(Route {
        method: Method::GET,
        pattern: Pattern::parse("/plugins"),
        min_version: None,
        handler: Arc::new(move |r| {
            let (b, cache) = (b.clone(), cache.clone());
            Box::pin(async move { list(b, &cache, r).await })
        }),
    });
    route!(Method::GET, "/plugins/{name:.*}/json", None, inspect);
    route!(Method::GET, "/plugins/privileges", None, privileges);
    route!(Method::DELETE, "/plugins/{name:.*}", None, remove);
    route!(Method::POST, "/plugins/{name:.*}/enable", None, enable);
    route!(Method::POST, "/plugins/{name:.*}/disable", None, disable);
    route!(Method::POST, "/plugins/pull", None, pull);
    route!(Method::POST, "/plugins/{name:.*}/push", None, push);
    route!(Method::POST, "/plugins/{name:.*}/upgrade", Some("1.26"), upgrade);
    route!(Method::POST, "/plugins/{name:.*}/set", None, set);
    route!(Method::POST, "/plugins/create", None, create);
}

/// `X-Registry-Auth` (invalid values are no credentials) and the `X-Meta-*` headers (Moby's
/// `parseHeaders`).
fn registry_auth(r: &RouteRequest) -> RegistryAuth {
    let auth = r.header(REGISTRY_AUTH_HEADER).map(AuthConfig::decode_lenient).unwrap_or_default();
    let meta_headers = r
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-meta-"))
        .filter_map(|(k, v)| Some((canonical_header(k.as_str()), v.to_str().ok()?.to_owned())))
        .collect();
    RegistryAuth { auth, meta_headers }
}

/// Go's canonical header form: `x-meta-foo` → `X-Meta-Foo`.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

async fn list<B: Backend>(
    b: Arc<B>,
    cache: &ListCache,
    r: RouteRequest,
) -> Result<Reply, ApiError> {
    let filter = PluginListFilter::parse(r.query("filters"))?;
    let plugins = b.list(&filter).await?;
    if let Some(body) = cache.get(&plugins) {
        return Ok(reply::with_body(StatusCode::OK, JSON_CONTENT_TYPE, body));
    }
    let body = Bytes::from(
        reply::encode_json(&plugins)
            .map_err(|e| ApiError::system(format!("failed to encode the reply: {e}")))?,
    );
    cache.put(plugins, body.clone());
    Ok(reply::with_body(StatusCode::OK, JSON_CONTENT_TYPE, body))
}

/// The last `GET /plugins` reply, encoded, with the plugin records it was encoded from.
///
/// A record changes only by being replaced (the backend hands out `Arc`s of immutable
/// values), so a list of the same `Arc`s, in the same order, encodes to the same bytes:
/// concurrent lists of an unchanged set share one body instead of each encoding and holding
/// its own, and encoding runs once per change, not once per request. The `Arc`s kept here
/// cannot be freed, so an address seen again is the same record, never a new one in its
/// place.
#[derive(Default)]
struct ListCache {
    last: std::sync::Mutex<Option<(Vec<Arc<Plugin>>, Bytes)>>,
}

impl ListCache {
    fn get(&self, plugins: &[Arc<Plugin>]) -> Option<Bytes> {
        let last = self.last.lock().ok()?;
        let (seen, body) = last.as_ref()?;
        let same =
            seen.len() == plugins.len() && seen.iter().zip(plugins).all(|(a, b)| Arc::ptr_eq(a, b));
        same.then(|| body.clone())
    }

    fn put(&self, plugins: Vec<Arc<Plugin>>, body: Bytes) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((plugins, body));
        }
    }
}

async fn inspect<B: Backend>(b: Arc<B>, r: RouteRequest) -> Result<Reply, ApiError> {
    let plugin = b.inspect(r.param()).await?;
    Ok(reply::json(StatusCode::OK, &plugin))
}

async fn privileges<B: Backend>(b: Arc<B>, r: RouteRequest) -> Result<Reply, ApiError> {
    let remote = r.query("remote").to_owned();
    // The remote must name something; the backend resolves it.
    local_name(&remote, "")?;
    let registry = registry_auth(&r);
    let privileges = b.privileges(PrivilegesRequest { remote, registry }).await?;
    Ok(reply::json(StatusCode::OK, &privileges))
}

async fn remove<B: Backend>(b: Arc<B>, r: RouteRequest) -> Result<Reply, ApiError> {
    b.remove(r.param(), r.query_bool("force")).await?;
    Ok(reply::empty(StatusCode::OK))
}

async fn enable<B: Backend>(b: Arc<B>, r: RouteRequest) -> Result<Reply, ApiError> {
    let seconds = parse_timeout(r.query("timeout"))?;
    // Zero (what `docker plugin install` sends) or less: the backend's default deadline.
    let timeout = u64::try_from(seconds).ok().filter(|s| *s > 0).map(Duration::from_secs);
    b.enable(r.param(), timeout).await?;
    Ok(reply::empty(StatusCode::OK))
}

async fn disable<B: Backend>(b: Arc<B>, r: RouteRequest) -> Result<Reply, ApiError> {
    b.disable(r.param(), r.query_bool("force")).await?;
    Ok(reply::empty(StatusCode::OK))
}

async fn set<B: Backend>(b: Arc<B>, r: RouteRequest) -> Result<Reply, ApiError> {
    let name = r.param().to_owned();
    let args: Vec<String> = r.json().await?.unwrap_or_default();
    b.set(&name, args).await?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

async fn pull<B: Backend>(b: Arc<B>, r: RouteRequest) -> Result<Reply, ApiError> {
    let remote = r.query("remote").to_owned();
    let name = r.query("name").to_owned();
    let registry = registry_auth(&r);
    let privileges: Vec<PluginPrivilege> = r.json().await?.unwrap_or_default();
    let name = local_name(&remote, &name)?;
    let request = PullRequest { remote, name: name.clone(), privileges, registry };
    streamed(Some(&name), move |progress| async move { b.pull(request, progress).await }).await
}

async fn push<B: Backend>(b: Arc<B>, r: RouteRequest) -> Result<Reply, ApiError> {
    let request = PushRequest { name: r.param().to_owned(), registry: registry_auth(&r) };
    streamed(None, move |progress| async move { b.push(request, progress).await }).await
}

async fn upgrade<B: Backend>(b: Arc<B>, r: RouteRequest) -> Result<Reply, ApiError> {
    let remote = r.query("remote").to_owned();
    let param = r.param().to_owned();
    let registry = registry_auth(&r);
    let privileges: Vec<PluginPrivilege> = r.json().await?.unwrap_or_default();
    // The header names the installed plugin (Moby: `getName(ref, tag, vars["name"])`).
    local_name(&remote, "")?;
    let header = local_name(&remote, &param)?;
    let request = UpgradeRequest { name: param, remote, privileges, registry };
    streamed(Some(&header), move |progress| async move { b.upgrade(request, progress).await }).await
}

async fn create<B: Backend>(b: Arc<B>, r: RouteRequest) -> Result<Reply, ApiError> {
    let name = r.query("name").to_owned();
    let limit = r.context_limit();
    let (mut body, idle) = r.into_body();
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(CONTEXT_BUFFER);
    // Feeds the backend; once it stops reading (it answered early, e.g. the name exists),
    // reads the rest of the body and drops it, so that the client, still writing, gets to
    // read the answer (within the same size and idle limits).
    let pump = async move {
        let mut total = 0u64;
        let mut tx = Some(tx);
        while let Some(chunk) = body.frame(idle).await {
            let item = chunk.map_err(io::Error::other).and_then(|c| {
                total += c.len() as u64;
                if total > limit {
                    Err(io::Error::other(format!("build context is larger than {limit} bytes")))
                } else {
                    Ok(c)
                }
            });
            let failed = item.is_err();
            if let Some(sender) = &tx {
                if sender.send(item).await.is_err() {
                    tx = None;
                }
            }
            if failed {
                return;
            }
        }
    };
    let create = b.create(&name, BuildContext::new(rx));
    tokio::pin!(create, pump);
    let mut pumping = true;
    let result = loop {
        tokio::select! {
            result = &mut create => break result,
            () = &mut pump, if pumping => pumping = false,
        }
    };
    if pumping {
        pump.await;
    }
    result?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

/// Runs a streamed operation the way Moby's pull, push and upgrade handlers write it: an
/// error before any output is an ordinary error reply; once progress was sent, the reply is
/// `200` with one JSON message per line, and a later error is the last line
/// (`{"errorDetail":...,"error":...}`). `header` becomes `Docker-Plugin-Name` (on errors
/// too, as Moby sets it first). The operation is cancelled (its future dropped) when the
/// client goes away.
async fn streamed<F, Fut>(header: Option<&str>, op: F) -> Result<Reply, ApiError>
where
    F: FnOnce(Progress) -> Fut,
    Fut: std::future::Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let name = header.map(|h| {
        HeaderValue::from_str(h)
            .map_err(|_| ApiError::invalid_parameter(format!("invalid plugin name {h:?}")))
    });
    let name = name.transpose()?;
    let with_name = |mut reply: Reply| {
        if let Some(n) = &name {
            reply.headers_mut().insert(PLUGIN_NAME_HEADER, n.clone());
        }
        reply
    };
    let (progress, mut prx) = Progress::new();
    let (otx, orx) = mpsc::channel::<Bytes>(PROGRESS_BUFFER);
    let (start_tx, start_rx) = oneshot::channel::<Result<(), ApiError>>();
    let fut: BoxFuture<Result<(), ApiError>> = Box::pin(op(progress));
    let task = tokio::spawn(async move {
        let mut fut = fut;
        let mut start = Some(start_tx);
        let result = loop {
            tokio::select! {
                biased;
                msg = prx.recv() => match msg {
                    Some(m) => {
                        if let Some(s) = start.take() {
                            let _ = s.send(Ok(()));
                        }
                        if otx.send(m).await.is_err() {
                            return;
                        }
                    }
                    None => break (&mut fut).await,
                },
                result = &mut fut => break result,
            }
        };
        while let Some(m) = prx.try_recv() {
            if let Some(s) = start.take() {
                let _ = s.send(Ok(()));
            }
            if otx.send(m).await.is_err() {
                return;
            }
        }
        match (result, start.take()) {
            (Ok(()), Some(s)) => {
                let _ = s.send(Ok(()));
            }
            (Ok(()), None) => {}
            (Err(e), Some(s)) => {
                let _ = s.send(Err(e));
            }
            (Err(e), None) => {
                if let Ok(line) = JsonMessage::error(e.message()).to_line() {
                    let _ = otx.send(Bytes::from(line)).await;
                }
            }
        }
    });
    let guard = AbortOnDrop::new(task.abort_handle());
    match start_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Ok(with_name(reply::error(&e))),
        Err(_) => return Err(ApiError::system("the operation ended without a result")),
    }
    let body = match guard.disarm() {
        Some(abort) => ResponseBody::stream_owning(orx, abort),
        None => ResponseBody::stream(orx),
    };
    Ok(with_name(reply::json_stream(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugins() -> Vec<Arc<Plugin>> {
        let list: Vec<Plugin> =
            serde_json::from_str(include_str!("tests/golden/engine-plugins-list.json"))
                .expect("the golden list parses");
        let mut other = list[0].clone();
        other.name = "other:latest".to_owned();
        list.into_iter().chain([other]).map(Arc::new).collect()
    }

    #[test]
    fn the_list_cache_answers_only_for_the_same_records_in_the_same_order() {
        let cache = ListCache::default();
        let records = plugins();
        assert!(cache.get(&records).is_none(), "empty at first");
        let body = Bytes::from(reply::encode_json(&records).expect("encodes"));
        cache.put(records.clone(), body.clone());

        let hit = cache.get(&records.clone()).expect("the same records");
        assert_eq!(hit, body);
        assert_eq!(hit.as_ptr(), body.as_ptr(), "one body, shared");

        // An equal record that is a new value (a state change replaces the Arc).
        let mut replaced = records.clone();
        replaced[0] = Arc::new((*records[0]).clone());
        assert!(cache.get(&replaced).is_none());
        // A filtered list, a longer one, another order.
        assert!(cache.get(&records[..1]).is_none());
        let mut longer = records.clone();
        longer.push(records[0].clone());
        assert!(cache.get(&longer).is_none());
        let mut reversed = records.clone();
        reversed.reverse();
        assert!(cache.get(&reversed).is_none());
        assert!(cache.get(&[]).is_none());
    }
}
