//! The extension points: extra routes and middlewares.

use std::sync::{Arc, Mutex};

use http::{Method, Request, StatusCode};

use super::fake::{assert_error, body, call, header, Fake};
use crate::{reply, ApiError, BoxFuture, Engine, Middleware, Next, Reply, RequestBody};

/// Records the paths it sees; `b` denies `/plugins/denied/json` with a 403.
struct Recorder {
    tag: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Middleware for Recorder {
    fn handle(&self, request: Request<RequestBody>, next: Next) -> BoxFuture<Reply> {
        self.seen.lock().unwrap().push(format!("{} {}", self.tag, request.uri().path()));
        if self.tag == "b" && request.uri().path().ends_with("/denied/json") {
            let e =
                ApiError::new(crate::ErrorKind::Forbidden, "authorization denied by plugin x: no");
            return Box::pin(async move { reply::error(&e) });
        }
        Box::pin(next.run(request))
    }
}

#[tokio::test]
async fn routes_and_middlewares_extend_the_engine() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake::default();
    let engine = Engine::builder(fake.clone())
        .route(Method::GET, "/volumes/{name:.*}", |r| async move {
            Ok(reply::json(StatusCode::OK, &serde_json::json!({ "Name": r.param() })))
        })
        .route(Method::GET, "/one/{seg}", |r| async move {
            Ok(reply::json(StatusCode::OK, &r.param().to_owned()))
        })
        .middleware(Recorder { tag: "a", seen: seen.clone() })
        .middleware(Recorder { tag: "b", seen: seen.clone() })
        .build();

    let r = call(&engine, Method::GET, "/v1.41/volumes/my/vol").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "api-version"), "1.41");
    assert_eq!(body(r).await, "{\"Name\":\"my/vol\"}\n");
    assert_eq!(body(call(&engine, Method::GET, "/one/x").await).await, "\"x\"\n");
    assert_eq!(call(&engine, Method::GET, "/one/x/y").await.status(), 404, "one segment only");
    assert_eq!(call(&engine, Method::GET, "/v1.99/volumes/x").await.status(), 400);

    // A middleware's own reply carries the version headers; the route never runs.
    seen.lock().unwrap().clear();
    let r = call(&engine, Method::GET, "/plugins/denied/json").await;
    assert_eq!(header(&r, "ostype"), "linux");
    assert_error(r, 403, "authorization denied by plugin x: no").await;
    assert_eq!(*seen.lock().unwrap(), ["a /plugins/denied/json", "b /plugins/denied/json"]);
    assert!(fake.calls().is_empty(), "the route never ran");
    seen.lock().unwrap().clear();
    assert_eq!(call(&engine, Method::GET, "/plugins").await.status(), 200);
    assert_eq!(*seen.lock().unwrap(), ["a /plugins", "b /plugins"], "in the order added");
}
