//! An authorization plugin built on the SDK, for the getter's integration tests: it runs as
//! a v2 plugin under dockplugd. It denies `POST /volumes/create` of one volume name and
//! allows everything else.
//!
//! ```text
//! authz_plugin --socket /run/docker/plugins/authz.sock --deny-volume forbidden
//! ```
#![allow(clippy::unwrap_used)]

use dockplug_protocol::authz::{Request, Response};
use dockplug_sdk::{Authz, Plugin, PluginResult, UnixListen};

struct DenyVolume {
    name: String,
}

impl Authz for DenyVolume {
    async fn authz_request(&self, req: Request) -> PluginResult<Response> {
        let body: serde_json::Value = serde_json::from_slice(&req.request_body).unwrap_or_default();
        if req.request_uri.contains("/volumes/create") && body["Name"] == self.name.as_str() {
            return Ok(Response::deny(format!("volume name {} is not allowed", self.name)));
        }
        Ok(Response::allow())
    }
}

fn arg(args: &[String], flag: &str) -> String {
    let at = args.iter().position(|a| a == flag);
    match at.and_then(|i| args.get(i + 1)) {
        Some(v) => v.clone(),
        None => {
            eprintln!("usage: authz_plugin --socket PATH --deny-volume NAME");
            std::process::exit(2);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let socket = arg(&args, "--socket");
    let name = arg(&args, "--deny-volume");
    let plugin = Plugin::builder().authz(DenyVolume { name }).build();
    let server = plugin.bind_unix(UnixListen::new(socket)).await.unwrap();
    server.run().await.unwrap();
}
