//! The request/response hook: a chain of [`Middleware`]s around the routes, as Moby's
//! `api/server/middleware` wraps every handler (an authorization plugin chain is one).
//!
//! Each middleware gets the request and a [`Next`] that runs the rest of the chain and the
//! route; it may answer by itself (a denial), change the request, or look at the reply. The
//! engine adds its version headers (`Api-Version`, `Server`, ...) to every reply afterwards,
//! so a reply a middleware makes carries them too.

use std::sync::Arc;

use http::Request;

use crate::body::RequestBody;
use crate::reply::Reply;
use crate::router::BoxFuture;
use crate::server::Shared;

/// A request/response hook.
pub trait Middleware: Send + Sync + 'static {
    /// Handles `request`; call `next.run(request)` to pass it on.
    fn handle(&self, request: Request<RequestBody>, next: Next) -> BoxFuture<Reply>;
}

/// The rest of the chain after a middleware.
pub struct Next {
    shared: Arc<Shared>,
    index: usize,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next").field("index", &self.index).finish_non_exhaustive()
    }
}

impl Next {
    pub(crate) fn new(shared: Arc<Shared>, index: usize) -> Self {
        Self { shared, index }
    }

    /// Runs the remaining middlewares, then the route.
    pub fn run(self, request: Request<RequestBody>) -> BoxFuture<Reply> {
        match self.shared.middlewares.get(self.index).cloned() {
            Some(m) => {
                let next = Next { shared: self.shared, index: self.index + 1 };
                m.handle(request, next)
            }
            None => Box::pin(async move { self.shared.dispatch(request).await }),
        }
    }
}

/// The peer of a unix-socket connection, as the kernel reports it (`SO_PEERCRED`); in the
/// request extensions of every request that came over a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerCredentials {
    /// User ID.
    pub uid: u32,
    /// Group ID.
    pub gid: u32,
    /// Process ID, when known.
    pub pid: Option<i32>,
}
