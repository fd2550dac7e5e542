//! The authorization chain: every API request and its reply through the configured
//! authorization plugins, in order (Moby's `pkg/authorization`: `authz.go` `AuthZRequest` and
//! `AuthZResponse`, `plugin.go`, `middleware.go`).
//!
//! * Each plugin is looked up through the [`Getter`] at each use (v2 first, then v1), so a
//!   plugin that restarts or reappears is found again.
//! * `AuthZPlugin.AuthZReq` goes to each plugin in order; the first `Allow: false` stops the
//!   chain with `authorization denied by plugin NAME: MSG` (403). After the handler,
//!   `AuthZPlugin.AuthZRes` goes to each in order with the reply, the same way.
//! * The chain fails closed: a plugin that cannot be found, errors, answers something that
//!   is not a reply, or does not answer within [`AuthzConfig::timeout`] fails the request
//!   with `plugin NAME failed with error: ...` (500). (Moby waits for a hung plugin forever.)
//! * A v2 plugin that is disabled or removed leaves the chain, as Moby's manager makes it
//!   ([`AuthzChain::watch_plugins`]); it does not come back when enabled again.
//!
//! What goes in the request is built by the HTTP side (`dockplug-engine`'s middleware) with
//! the helpers here: [`flatten_headers`] (credentials removed, last value wins),
//! [`send_body`] and [`MAX_BODY_SIZE`] (Moby 20.10's 1 MiB: larger or chunked bodies are not
//! sent).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dockplug_manager::LookupMode;
use dockplug_protocol::authz::{AuthzMethod, Request, Response};
use dockplug_v1::CallOptions;

use crate::error::chain;
use crate::getter::Getter;

/// The `Implements` name (and v2 capability) of authorization plugins.
pub const CAPABILITY: &str = dockplug_protocol::authz::IMPLEMENTS;

/// The largest request body sent to the plugins, exclusive (Moby 20.10's `maxBodySize`).
pub const MAX_BODY_SIZE: u64 = 1 << 20;

/// The request headers never sent to a plugin: the credentials (Moby 20.10 `authz.go`).
pub const REMOVED_HEADERS: &[&str] = &["authorization", "x-registry-auth", "x-registry-config"];

/// Settings of an [`AuthzChain`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AuthzConfig {
    /// Bound on each plugin call (default 30 s).
    pub timeout: Duration,
}

impl Default for AuthzConfig {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30) }
    }
}

impl AuthzConfig {
    /// Sets the bound on each plugin call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Why the chain refused a request or reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthzError {
    /// A plugin answered `Allow: false` (403).
    #[error("authorization denied by plugin {plugin}: {msg}")]
    Denied {
        /// The plugin, as configured.
        plugin: String,
        /// Its `Msg`.
        msg: String,
    },
    /// A plugin could not be asked or did not answer in time (500: the chain fails closed).
    #[error("plugin {plugin} failed with error: {message}")]
    Failed {
        /// The plugin, as configured.
        plugin: String,
        /// Why, as one line.
        message: String,
    },
}

impl AuthzError {
    /// The HTTP status: 403 for a denial, 500 for a failure.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthzError::Denied { .. } => 403,
            AuthzError::Failed { .. } => 500,
        }
    }
}

/// The chain of authorization plugins. Cheap to clone; clones share the chain.
#[derive(Debug, Clone)]
pub struct AuthzChain {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    getter: Getter,
    config: AuthzConfig,
    plugins: RwLock<Vec<String>>,
}

impl AuthzChain {
    /// A chain of `names` in order (`--authorization-plugin`, repeatable; duplicates dropped,
    /// as Moby does).
    pub fn new(
        getter: Getter,
        names: impl IntoIterator<Item = String>,
        config: AuthzConfig,
    ) -> Self {
        let mut plugins: Vec<String> = Vec::new();
        for n in names {
            if !n.is_empty() && !plugins.contains(&n) {
                plugins.push(n);
            }
        }
        Self { inner: Arc::new(Inner { getter, config, plugins: RwLock::new(plugins) }) }
    }

    /// Checks every plugin of the chain can be found and implements `authz` (Moby's
    /// `validateAuthzPlugins`: dockerd does not start otherwise).
    ///
    /// # Errors
    /// [`AuthzError::Failed`] for the first plugin not found (or not answering its
    /// activation within the deadline).
    pub async fn validate(&self) -> Result<(), AuthzError> {
        let timeout = self.inner.config.timeout;
        for name in self.names() {
            let failed = |message: String| AuthzError::Failed { plugin: name.clone(), message };
            tokio::time::timeout(
                timeout,
                self.inner.getter.get(&name, CAPABILITY, LookupMode::Lookup),
            )
            .await
            .map_err(|_| failed(format!("lookup timed out after {timeout:?}")))?
            .map_err(|e| failed(chain(&e)))?;
        }
        Ok(())
    }

    /// The plugins, in order (`/info`'s `Plugins.Authorization`).
    pub fn names(&self) -> Vec<String> {
        self.inner.plugins.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the chain has no plugin (requests then go through untouched).
    pub fn is_empty(&self) -> bool {
        self.inner.plugins.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Drops the plugin named `name` from the chain (`name` as configured, or its
    /// normalised `name:latest`).
    pub fn remove_plugin(&self, name: &str) {
        let mut plugins = self.inner.plugins.write().unwrap_or_else(|e| e.into_inner());
        let before = plugins.len();
        plugins.retain(|p| p != name && format!("{p}:latest") != name);
        if plugins.len() != before {
            tracing::info!(plugin = name, "authorization plugin disabled; removed from the chain");
        }
    }

    /// Removes each v2 plugin of the chain when it is disabled or removed (Moby's manager
    /// calls `AuthzMiddleware.RemovePlugin` at disable). Needs a tokio runtime.
    pub fn watch_plugins(&self) {
        let weak = Arc::downgrade(&self.inner);
        self.inner.getter.on_gone(move |name| {
            if let Some(inner) = weak.upgrade() {
                AuthzChain { inner }.remove_plugin(name);
            }
        });
    }

    /// `AuthZPlugin.AuthZReq` through each plugin in order.
    ///
    /// # Errors
    /// The first denial or failure.
    pub async fn authorize_request(&self, request: &Request) -> Result<(), AuthzError> {
        self.run(AuthzMethod::AuthZReq, request).await
    }

    /// `AuthZPlugin.AuthZRes` through each plugin in order (`request` with the response
    /// fields set).
    ///
    /// # Errors
    /// The first denial or failure.
    pub async fn authorize_response(&self, request: &Request) -> Result<(), AuthzError> {
        self.run(AuthzMethod::AuthZRes, request).await
    }

    async fn run(&self, method: AuthzMethod, request: &Request) -> Result<(), AuthzError> {
        let timeout = self.inner.config.timeout;
        for name in self.names() {
            let failed = |message: String| AuthzError::Failed { plugin: name.clone(), message };
            // The deadline covers the lookup too: a v1 plugin that hangs in its activation
            // must not hold the request longer than one that hangs in the call.
            let reply = tokio::time::timeout(timeout, self.ask(&name, method, request))
                .await
                .map_err(|_| failed(format!("{}: timed out after {timeout:?}", method.as_str())))?
                .map_err(failed)?;
            match reply {
                Some(r) if !r.allow => {
                    return Err(AuthzError::Denied { plugin: name, msg: r.msg });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// One plugin's answer; `None` when it is a v2 plugin found disabled: it has left the
    /// chain (the disable event may not have reached [`AuthzChain::watch_plugins`] yet, as
    /// when the request that disabled it comes back for `AuthZRes`).
    async fn ask(
        &self,
        name: &str,
        method: AuthzMethod,
        request: &Request,
    ) -> Result<Option<Response>, String> {
        let plugin = match self.inner.getter.get(name, CAPABILITY, LookupMode::Lookup).await {
            Ok(p) => p,
            Err(crate::GetError::Managed(dockplug_manager::ManagerError::Disabled { .. })) => {
                self.remove_plugin(name);
                return Ok(None);
            }
            Err(e) => return Err(chain(&e)),
        };
        let opts = CallOptions::new().timeout(self.inner.config.timeout);
        plugin
            .client()
            .call_with_options(method.as_str(), request, opts)
            .await
            .map(Some)
            .map_err(|e| chain(&e))
    }
}

/// Headers as the plugins get them: one value per name (the last wins), in the canonical
/// casing Go gives header names, credentials ([`REMOVED_HEADERS`]) removed.
pub fn flatten_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in headers {
        if REMOVED_HEADERS.iter().any(|r| k.eq_ignore_ascii_case(r)) {
            continue;
        }
        out.insert(canonical_header(k), v.to_owned());
    }
    out
}

/// Go's `CanonicalMIMEHeaderKey`: `content-type` → `Content-Type`.
pub fn canonical_header(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

/// Whether a body goes to the plugins (Moby's `sendBody`): JSON (`application/json`,
/// parameters allowed) and not for a path ending in `/auth` (credentials).
pub fn send_body(path: &str, content_type: Option<&str>) -> bool {
    if path.ends_with("/auth") {
        return false;
    }
    content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_flattened_without_credentials() {
        let h = flatten_headers([
            ("content-type", "application/json"),
            ("X-Registry-Auth", "secret"),
            ("authorization", "Basic x"),
            ("x-meta-a", "1"),
            ("X-Meta-A", "2"),
        ]);
        assert_eq!(
            h,
            BTreeMap::from([
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("X-Meta-A".to_owned(), "2".to_owned()),
            ])
        );
    }

    #[test]
    fn bodies_only_for_json_and_never_for_auth() {
        assert!(send_body("/v1.41/volumes/create", Some("application/json")));
        assert!(send_body("/volumes/create", Some("application/json; charset=utf-8")));
        assert!(!send_body("/v1.41/auth", Some("application/json")));
        assert!(!send_body("/plugins/create", Some("application/x-tar")));
        assert!(!send_body("/plugins/create", None));
    }

    #[test]
    fn duplicates_are_dropped_and_removal_matches_the_normalised_name() {
        let getter = Getter::legacy_only(Arc::new(dockplug_v1::Registry::new(
            dockplug_v1::LocalRegistry::with_dirs(["/nonexistent"], ["/nonexistent"]),
            dockplug_v1::RegistryConfig::default(),
        )));
        let chain = AuthzChain::new(
            getter,
            ["a".to_owned(), "b".to_owned(), "a".to_owned()],
            AuthzConfig::default(),
        );
        assert_eq!(chain.names(), ["a", "b"]);
        chain.remove_plugin("a:latest");
        assert_eq!(chain.names(), ["b"]);
        assert_eq!(
            AuthzError::Denied { plugin: "b".into(), msg: "no".into() }.to_string(),
            "authorization denied by plugin b: no"
        );
    }
}
