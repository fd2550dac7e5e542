//! `/_ping`, `/version`, `/info` and `/events` (Moby's `api/server/router/system`
//! `system_routes.go`): what the docker CLI asks before its plugin commands, and the event
//! stream `docker events --filter type=plugin` reads.

use std::sync::Arc;

use bytes::Bytes;
use dockplug_protocol::filters::Filters;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA};
use http::{Method, StatusCode};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::backend::{Backend, PluginsInfo};
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::events::{now_nanos, parse_timestamp, EventFilter, EventLog};
use crate::reply::{self, Reply};
use crate::router::{Pattern, Route, RouteRequest, RouteTable};
use crate::server::{Closing, EngineConfig};

/// Event lines buffered for a slow `/events` client.
const EVENTS_BUFFER: usize = 64;

/// Adds the system routes.
pub(crate) fn routes<B: Backend>(
    table: &mut RouteTable,
    backend: &Arc<B>,
    events: &EventLog,
    config: &EngineConfig,
) {
    let config = Arc::new(config.clone());
    let mut add = |method: Method, pattern: &str, handler: crate::router::Handler| {
        table.push(Route { method, pattern: Pattern::parse(pattern), min_version: None, handler });
    };
    add(Method::GET, "/_ping", Arc::new(|r| Box::pin(async move { Ok(ping(&r)) })));
    add(Method::HEAD, "/_ping", Arc::new(|r| Box::pin(async move { Ok(ping(&r)) })));
    let c = config.clone();
    add(
        Method::GET,
        "/version",
        Arc::new(move |_| {
            let c = c.clone();
            Box::pin(async move { Ok(version(&c)) })
        }),
    );
    let b = backend.clone();
    add(
        Method::GET,
        "/info",
        Arc::new(move |_| {
            let (b, c) = (b.clone(), config.clone());
            Box::pin(async move { Ok(info(&c, b.info().await)) })
        }),
    );
    let log = events.clone();
    add(
        Method::GET,
        "/events",
        Arc::new(move |r| {
            let log = log.clone();
            Box::pin(async move { events_stream(&log, r) })
        }),
    );
}

/// `OK` (GET) or nothing (HEAD), never cached (Moby's `pingHandler`).
fn ping(r: &RouteRequest) -> Reply {
    let text_plain = HeaderValue::from_static("text/plain; charset=utf-8");
    let mut reply = if r.parts().method == Method::HEAD {
        let mut reply = reply::empty(StatusCode::OK);
        reply.headers_mut().insert(CONTENT_TYPE, text_plain);
        reply.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        reply
    } else {
        reply::with_body(StatusCode::OK, "text/plain; charset=utf-8", Bytes::from_static(b"OK"))
    };
    let h = reply.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    reply
}

/// Go's `GOARCH` for this machine.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// A first line of a small file under `/proc`, trimmed.
fn proc_value(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

fn version(config: &EngineConfig) -> Reply {
    let (server_version, api, min, experimental) = (
        config.server_version.as_str(),
        config.api_version.as_str(),
        config.min_api_version.as_str(),
        config.experimental,
    );
    let kernel = proc_value("/proc/sys/kernel/osrelease");
    let details = serde_json::json!({
        "ApiVersion": api,
        "Arch": go_arch(),
        "BuildTime": "",
        "Experimental": experimental.to_string(),
        "GitCommit": "",
        "GoVersion": "",
        "KernelVersion": kernel,
        "MinAPIVersion": min,
        "Os": "linux",
    });
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Version<'a> {
        platform: serde_json::Value,
        components: serde_json::Value,
        version: &'a str,
        api_version: &'a str,
        #[serde(rename = "MinAPIVersion")]
        min_api_version: &'a str,
        git_commit: &'a str,
        go_version: &'a str,
        os: &'a str,
        arch: &'a str,
        kernel_version: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        experimental: bool,
        build_time: &'a str,
    }
    reply::json(
        StatusCode::OK,
        &Version {
            platform: serde_json::json!({ "Name": "dockplug" }),
            components: serde_json::json!([
                { "Name": "Engine", "Version": server_version, "Details": details }
            ]),
            version: server_version,
            api_version: api,
            min_api_version: min,
            git_commit: "",
            go_version: "",
            os: "linux",
            arch: go_arch(),
            kernel_version: &kernel,
            experimental,
            build_time: "",
        },
    )
}

/// The total memory in bytes, from `/proc/meminfo`.
fn mem_total() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `PRETTY_NAME` of `/etc/os-release`.
fn operating_system() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "linux".to_owned())
}

/// A minimal `GET /info`: the plugins by kind, the host, no containers or images.
fn info(config: &EngineConfig, plugins: PluginsInfo) -> Reply {
    let (server_version, experimental) = (config.server_version.as_str(), config.experimental);
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let body = serde_json::json!({
        "ID": "",
        "Containers": 0,
        "ContainersRunning": 0,
        "ContainersPaused": 0,
        "ContainersStopped": 0,
        "Images": 0,
        "Driver": "",
        "Plugins": plugins,
        "Name": proc_value("/proc/sys/kernel/hostname"),
        "ServerVersion": server_version,
        "OSType": "linux",
        "OperatingSystem": operating_system(),
        "Architecture": std::env::consts::ARCH,
        "KernelVersion": proc_value("/proc/sys/kernel/osrelease"),
        "NCPU": ncpu,
        "MemTotal": mem_total(),
        "ExperimentalBuild": experimental,
        "Swarm": { "LocalNodeState": "inactive" },
        "Warnings": null,
    });
    reply::json(StatusCode::OK, &body)
}

/// `GET /events`: the kept events in `[since, until]`, then new ones until `until` passes,
/// the client leaves or the server shuts down (Moby's `getEvents`).
fn events_stream(log: &EventLog, r: RouteRequest) -> Result<Reply, ApiError> {
    let since = parse_timestamp(r.query("since")).map_err(ApiError::invalid_parameter)?;
    let until = parse_timestamp(r.query("until")).map_err(ApiError::invalid_parameter)?;
    if let Some(u) = until {
        if u < since.unwrap_or(0) {
            return Err(ApiError::invalid_parameter(format!(
                "`since` time ({}) cannot be after `until` time ({})",
                r.query("since"),
                r.query("until")
            )));
        }
    }
    let filter = EventFilter::new(Filters::from_json(r.query("filters"))?);
    let only_past = until.is_some_and(|u| u < now_nanos());
    let mut closing = r.parts().extensions.get::<Closing>().map(|c| c.0.clone());
    let (past, mut rx) = log.subscribe(since, until, &filter);
    let (tx, body_rx) = mpsc::channel::<Bytes>(EVENTS_BUFFER);
    let task = tokio::spawn(async move {
        let line = |e: &dockplug_protocol::events::EventMessage| {
            dockplug_protocol::gojson::to_vec_line(e).map(Bytes::from).ok()
        };
        for e in &past {
            if let Some(l) = line(e) {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
        }
        if only_past {
            return;
        }
        let deadline = until.map(|u| {
            let wait = u.saturating_sub(now_nanos()).max(0);
            tokio::time::Instant::now()
                + std::time::Duration::from_nanos(u64::try_from(wait).unwrap_or(0))
        });
        loop {
            let until_passed = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let shutdown = async {
                match closing.as_mut() {
                    Some(c) => {
                        while !*c.borrow_and_update() {
                            if c.changed().await.is_err() {
                                return;
                            }
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = rx.recv() => match received {
                    Ok(e) => {
                        if filter.include(&e) {
                            if let Some(l) = line(&e) {
                                if tx.send(l).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "an /events client is too slow; events dropped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = until_passed => return,
                () = shutdown => return,
            }
        }
    });
    Ok(reply::json_stream(ResponseBody::stream_owning(body_rx, task.abort_handle())))
}
