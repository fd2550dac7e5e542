//! Authorization plugins in dockplugd: an SDK-built v1 plugin denies one request (by its
//! JSON body) and allows the rest, through the docker CLI; a hand-written v1 plugin that
//! answers its activation and then hangs fails requests closed within the deadline; a v1
//! network driver registered through the getter shows in `/info`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dockplug_protocol::authz::{Request, Response};
use dockplug_sdk::{Authz, Plugin, PluginResult};
use dockplug_testkit::http::{self, Request as HttpRequest};
use dockplug_testkit::{Containerd, Daemon};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{daemon_error, V1Plugins};
use crate::daemon::dockplugd::{self, Dockplugd};

/// Denies creating a volume named `forbidden`; records what it was asked.
#[derive(Default, Clone)]
struct NoForbidden {
    requests: Arc<Mutex<Vec<Request>>>,
    responses: Arc<Mutex<Vec<Request>>>,
}

impl Authz for NoForbidden {
    async fn authz_request(&self, req: Request) -> PluginResult<Response> {
        self.requests.lock().unwrap().push(req.clone());
        let body: serde_json::Value = serde_json::from_slice(&req.request_body).unwrap_or_default();
        if req.request_uri.contains("/volumes/create") && body["Name"] == "forbidden" {
            return Ok(Response::deny("volume name forbidden"));
        }
        Ok(Response::allow())
    }
    async fn authz_response(&self, req: Request) -> PluginResult<Response> {
        self.responses.lock().unwrap().push(req);
        Ok(Response::allow())
    }
}

/// A v1 plugin written by hand: answers `Plugin.Activate` with `implements`; every other
/// call is read and never answered when `hang`, or answered `{}` otherwise.
fn raw_plugin(v1: &V1Plugins, name: &str, implements: &str, hang: bool) {
    let socket = v1.socket_dir().join(format!("{name}.sock"));
    let listener = v1.rt.block_on(async { tokio::net::UnixListener::bind(&socket).unwrap() });
    let manifest = format!("{{\"Implements\":[\"{implements}\"]}}");
    v1.rt.spawn(async move {
        let held = Arc::new(Mutex::new(Vec::new()));
        while let Ok((mut s, _)) = listener.accept().await {
            let (manifest, held) = (manifest.clone(), held.clone());
            tokio::spawn(async move {
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                        if s.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).to_lowercase();
                    let len = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; len.min(1 << 20)];
                    if s.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let reply = if text.starts_with("post /plugin.activate") {
                        manifest.clone()
                    } else if hang {
                        held.lock().unwrap().push(s);
                        return;
                    } else {
                        "{}".to_owned()
                    };
                    let out = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\nContent-Length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if s.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn containerd_args(c: &Containerd) -> Vec<std::ffi::OsString> {
    vec![
        "--containerd".into(),
        c.socket.clone().into(),
        "--containerd-plugins-namespace".into(),
        c.namespace.clone().into(),
    ]
}

#[test]
fn an_sdk_authz_plugin_denies_one_request_and_allows_the_rest() {
    let containerd = Containerd::start().expect("containerd");
    let mut v1 = V1Plugins::new();
    let authz = NoForbidden::default();
    v1.serve_socket("authz1", Plugin::builder().authz(authz.clone()).build());
    raw_plugin(&v1, "netdrv", "NetworkDriver", false);
    let mut args = containerd_args(&containerd);
    args.extend(v1.args());
    args.extend(["--authorization-plugin".into(), "authz1".into()]);
    let d = Dockplugd::start_with(&args);

    // Allowed: everything but the one create.
    d.docker_ok(&["version"]);
    d.docker_ok(&["volume", "ls"]);
    d.docker_ok(&["plugin", "ls"]);
    daemon_error(
        &d.docker_err(&["volume", "create", "forbidden"]),
        "authorization denied by plugin authz1: volume name forbidden",
    );
    let raw = d.request("POST", "/v1.41/volumes/create", br#"{"Name":"forbidden"}"#);
    assert_eq!(raw.status, 403);
    assert_eq!(
        raw.text(),
        "{\"message\":\"authorization denied by plugin authz1: volume name forbidden\"}\n"
    );

    // What the plugin was given: the URI with its version, the JSON body, the user of the
    // socket's peer, headers without credentials; and the replies of allowed requests.
    let requests = authz.requests.lock().unwrap().clone();
    let create =
        requests.iter().find(|r| r.request_uri.contains("/volumes/create")).expect("create seen");
    assert_eq!(create.request_method, "POST");
    assert!(create.request_uri.starts_with("/v1."), "{}", create.request_uri);
    let body: serde_json::Value = serde_json::from_slice(&create.request_body).unwrap();
    assert_eq!(body["Name"], "forbidden");
    let me = nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().unwrap().name;
    assert_eq!(create.user, me);
    assert!(create.request_headers.contains_key("Content-Type"), "{:?}", create.request_headers);
    assert!(!create.request_headers.keys().any(|k| k.eq_ignore_ascii_case("x-registry-auth")));
    let responses = authz.responses.lock().unwrap().clone();
    let ls = responses
        .iter()
        .find(|r| r.request_uri.contains("/volumes"))
        .expect("volume ls reply seen");
    assert_eq!(ls.response_status_code, 200);
    let reply: serde_json::Value = serde_json::from_slice(&ls.response_body).unwrap();
    assert!(reply["Volumes"].is_array(), "{reply}");
    assert!(
        !responses.iter().any(|r| r.request_uri.contains("/volumes/create")),
        "denied: no reply"
    );

    // /info: the chain, and the v1 network driver the getter's handler registered.
    let info = d.docker_ok(&["info", "--format", "{{json .Plugins.Authorization}}"]);
    assert_eq!(info.trim(), "[\"authz1\"]");
    let shown = dockplug_testkit::wait_until(Duration::from_secs(20), || {
        d.docker_ok(&["info", "--format", "{{json .Plugins.Network}}"]).contains("\"netdrv\"")
    });
    assert!(
        shown,
        "netdrv never listed: {}",
        d.docker_ok(&["info", "--format", "{{json .Plugins}}"])
    );
}

#[test]
fn a_hanging_authz_plugin_fails_requests_within_its_deadline() {
    let containerd = Containerd::start().expect("containerd");
    let v1 = V1Plugins::new();
    raw_plugin(&v1, "hang", "authz", true);
    let dir = dockplug_testkit::temp_dir("dph").unwrap();
    let socket = dir.path().join("api.sock");
    let mut cmd = std::process::Command::new(dockplugd::binary());
    cmd.arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("x"))
        .arg("--pidfile")
        .arg(dir.path().join("d.pid"))
        .args(containerd_args(&containerd))
        .args(v1.args())
        .args(["--authorization-plugin", "hang", "--authorization-plugin-timeout", "2"])
        .env("PATH", dockplug_testkit::DAEMON_PATH);
    let mut daemon = Daemon::spawn("dockplugd", cmd, &dir.path().join("d.log")).unwrap();
    // Ready when it answers at all: every answer is the chain's 500.
    daemon
        .wait_ready("an answer to /_ping", Duration::from_secs(30), || {
            http::unix(&socket, &HttpRequest::get("/_ping"), Duration::from_secs(10)).is_ok()
        })
        .unwrap_or_else(|e| panic!("dockplugd did not start: {e}"));

    let started = Instant::now();
    let r =
        http::unix(&socket, &HttpRequest::get("/v1.41/volumes"), Duration::from_secs(20)).unwrap();
    let took = started.elapsed();
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("plugin hang failed with error: "), "{}", r.text());
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(10), "took {took:?}");
    // The daemon still answers (each request within its own deadline) and stops cleanly.
    let r = http::unix(&socket, &HttpRequest::get("/version"), Duration::from_secs(20)).unwrap();
    assert_eq!(r.status, 500);
    assert!(daemon.running());
    daemon.stop(Duration::from_secs(40));
}

#[test]
fn a_v2_authz_plugin_built_on_the_sdk_denies_and_leaves_the_chain_when_disabled() {
    let containerd = Containerd::start().expect("containerd");
    let mut d = Dockplugd::start(&containerd);
    let dir = super::authz_v2_plugin(&d.dir.path().join("authzv2"), "forbidden");
    d.docker_ok(&["plugin", "create", "authzv2", dir.to_str().unwrap()]);
    d.docker_ok(&["plugin", "enable", "authzv2"]);
    d.stop();
    // The same daemon again, now with the plugin in its chain (dockerd checks the plugins
    // of --authorization-plugin at start, so it must exist first).
    let mut cmd = std::process::Command::new(dockplugd::binary());
    cmd.arg("--host")
        .arg(&d.host)
        .arg("--data-root")
        .arg(&d.data_root)
        .arg("--exec-root")
        .arg(&d.exec_root)
        .arg("--pidfile")
        .arg(&d.pidfile)
        .args(containerd_args(&containerd))
        .args(["--authorization-plugin", "authzv2"])
        .env("PATH", dockplug_testkit::DAEMON_PATH);
    let mut daemon = Daemon::spawn("dockplugd", cmd, &d.dir.path().join("authz.log")).unwrap();
    let socket = d.socket.clone();
    daemon
        .wait_ready("GET /_ping", Duration::from_secs(30), || {
            http::unix(&socket, &HttpRequest::get("/_ping"), Duration::from_secs(10))
                .is_ok_and(|r| r.status == 200)
        })
        .unwrap_or_else(|e| panic!("dockplugd did not start: {e}"));

    d.docker_ok(&["volume", "ls"]);
    daemon_error(
        &d.docker_err(&["volume", "create", "forbidden"]),
        "authorization denied by plugin authzv2: volume name forbidden is not allowed",
    );
    let info = d.docker_ok(&["info", "--format", "{{json .Plugins.Authorization}}"]);
    assert_eq!(info.trim(), "[\"authzv2\"]");

    // Disabled: out of the chain, as with dockerd; the same create now reaches the volume
    // service (which has no `local` driver here).
    d.docker_ok(&["plugin", "disable", "authzv2"]);
    daemon_error(
        &d.docker_err(&["volume", "create", "forbidden"]),
        "create forbidden: error looking up volume plugin local: plugin \"local\" not found",
    );
    let info = d.docker_ok(&["info", "--format", "{{json .Plugins.Authorization}}"]);
    assert_eq!(info.trim(), "null");
    // Enabled again, it stays out (Moby does not add it back either).
    d.docker_ok(&["plugin", "enable", "authzv2"]);
    assert!(!d.docker_err(&["volume", "create", "forbidden"]).contains("authorization denied"));
    daemon.stop(Duration::from_secs(40));
}
