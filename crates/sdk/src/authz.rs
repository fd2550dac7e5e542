//! `authz`: serve an authorization plugin (Moby `pkg/authorization/plugin.go`).

use std::future::Future;
use std::sync::Arc;

use dockplug_protocol::authz::{AuthzMethod, Request, Response, IMPLEMENTS};

use crate::error::PluginResult;
use crate::router::ErrorKey;
use crate::server::PluginBuilder;

/// An authorization plugin. Only `Allow` decides; `Msg` is shown to the denied client. An
/// `Err` from a handler is a 500, which the daemon treats as a denial with an error.
/// The response check has a default that allows.
pub trait Authz: Send + Sync + 'static {
    /// `AuthZPlugin.AuthZReq`: decide before the daemon handles the request.
    fn authz_request(&self, req: Request) -> impl Future<Output = PluginResult<Response>> + Send;

    /// `AuthZPlugin.AuthZRes`: decide once the response is known. Default: allow.
    fn authz_response(&self, req: Request) -> impl Future<Output = PluginResult<Response>> + Send {
        let _ = req;
        async { Ok(Response::allow()) }
    }
}

impl PluginBuilder {
    /// Serve `plugin` as `authz`.
    pub fn authz<D: Authz>(mut self, plugin: D) -> Self {
        let d = Arc::new(plugin);
        let r = &mut self.router;
        r.implement(IMPLEMENTS);
        let dd = d.clone();
        r.json(AuthzMethod::AuthZReq.as_str(), ErrorKey::Err, move |req: Request| {
            let d = dd.clone();
            async move { d.authz_request(req).await }
        });
        r.json(AuthzMethod::AuthZRes.as_str(), ErrorKey::Err, move |req: Request| {
            let d = d.clone();
            async move { d.authz_response(req).await }
        });
        self
    }
}
