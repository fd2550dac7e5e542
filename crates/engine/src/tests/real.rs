//! The routes over the real [`Manager`], with a small executor that "runs" a plugin as a
//! task serving its socket (the seam's fake; containerd is the daemon's integration tests').

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dockplug_manager::{
    exit_channel, Executor, ExecutorError, Exit, ExitReceiver, ExitSender, Manager, ManagerConfig,
    PluginStdio, Signal,
};
use http::Method;
use oci_spec::runtime::Spec;
use serde_json::Value;

use super::fake::{assert_error, body, call, request};
use crate::events::now_nanos;
use crate::Engine;

/// A running plugin: its socket and the task serving it.
type Running = (PathBuf, tokio::task::JoinHandle<()>);

/// Serves each plugin's socket from a task; a signal ends it.
#[derive(Clone)]
pub(crate) struct SocketExecutor {
    tasks: Arc<Mutex<HashMap<String, Running>>>,
    exits: ExitSender,
    rx: Arc<Mutex<Option<ExitReceiver>>>,
}

impl SocketExecutor {
    pub(crate) fn new() -> Self {
        let (exits, rx) = exit_channel();
        Self { tasks: Arc::default(), exits, rx: Arc::new(Mutex::new(Some(rx))) }
    }
}

impl Executor for SocketExecutor {
    async fn create(&self, id: &str, spec: Spec, _stdio: PluginStdio) -> Result<(), ExecutorError> {
        let dir = spec
            .mounts()
            .as_ref()
            .and_then(|m| m.iter().find(|m| m.destination() == Path::new("/run/docker/plugins")))
            .and_then(|m| m.source().clone())
            .ok_or_else(|| ExecutorError::backend(id, "create", "no plugin socket directory"))?;
        let path = dir.join("plugin.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| ExecutorError::backend(id, "create", e))?;
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                drop(conn);
            }
        });
        self.tasks.lock().unwrap().insert(id.to_owned(), (path, task));
        Ok(())
    }

    async fn restore(&self, _id: &str, _stdio: PluginStdio) -> Result<bool, ExecutorError> {
        Ok(false)
    }

    async fn is_running(&self, id: &str) -> Result<bool, ExecutorError> {
        match self.tasks.lock().unwrap().contains_key(id) {
            true => Ok(true),
            false => Err(ExecutorError::NotFound { id: id.to_owned() }),
        }
    }

    async fn signal(&self, id: &str, signal: Signal) -> Result<(), ExecutorError> {
        let (path, task) = self
            .tasks
            .lock()
            .unwrap()
            .remove(id)
            .ok_or_else(|| ExecutorError::NotFound { id: id.to_owned() })?;
        task.abort();
        let _ = std::fs::remove_file(path);
        let _ = self.exits.send(Exit::new(id, Some(128 + signal.number() as u32)));
        Ok(())
    }

    fn take_exits(&self) -> Option<ExitReceiver> {
        self.rx.lock().ok()?.take()
    }
}

pub(crate) const CONFIG: &str = r#"{
  "Description": "engine test volume plugin",
  "Entrypoint": ["/bin/plugin"],
  "Interface": {"Socket": "plugin.sock", "Types": ["docker.volumedriver/1.0"]},
  "Network": {"Type": "host"},
  "Env": [{"Name": "DEBUG", "Settable": ["value"], "Value": "0"}]
}"#;

/// A gzipped build context: `config.json` and a rootfs with one file.
fn context() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], kind: tar::EntryType| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    };
    add("config.json", CONFIG.as_bytes(), tar::EntryType::Regular);
    add("rootfs", b"", tar::EntryType::Directory);
    add("rootfs/plugin", b"#!/bin/sh\n", tar::EntryType::Regular);
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[tokio::test]
async fn every_local_route_through_the_manager() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ManagerConfig::new(dir.path().join("plugins"), dir.path().join("run"));
    config.share_propagated_mounts = false;
    config.start_timeout = Duration::from_secs(10);
    let manager = Manager::new(config, SocketExecutor::new()).await.unwrap();
    let engine = Engine::new(manager.clone());
    let start = now_nanos();

    let create = || {
        request(
            Method::POST,
            "/v1.41/plugins/create?name=myorg%2Fmyplug",
            Some("application/x-tar"),
            &context(),
        )
    };
    let r = engine.handle(create()).await;
    assert_eq!(r.status(), 204, "{}", body(r).await);
    let r = engine.handle(create()).await;
    assert_error(r, 409, "plugin myorg/myplug:latest already exists").await;

    let r = call(&engine, Method::GET, "/v1.41/plugins").await;
    let list = json(&body(r).await);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let id = list[0]["Id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["Name"], "myorg/myplug:latest");
    assert_eq!(list[0]["Enabled"], false);
    assert_eq!(list[0]["Config"]["rootfs"]["type"], "layers");
    for name in ["myorg/myplug", "myorg/myplug:latest", &id[..12]] {
        let r = call(&engine, Method::GET, &format!("/v1.41/plugins/{name}/json")).await;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(json(&body(r).await)["Id"], id.as_str());
    }

    let set = |args: &'static [u8]| {
        request(Method::POST, "/v1.41/plugins/myorg/myplug/set", Some("application/json"), args)
    };
    assert_eq!(engine.handle(set(br#"["DEBUG=1"]"#)).await.status(), 204);
    let r = engine.handle(set(br#"["NOPE=1"]"#)).await;
    assert_eq!(
        json(&body(r).await)["message"],
        "setting \"NOPE\" not found in the plugin configuration"
    );

    let r = call(&engine, Method::POST, "/v1.41/plugins/myorg/myplug/enable?timeout=0").await;
    assert_eq!(r.status(), 200, "{}", body(r).await);
    let r = call(&engine, Method::POST, "/v1.41/plugins/myorg/myplug/enable?timeout=5").await;
    assert_error(r, 409, "plugin already enabled: plugin myorg/myplug:latest is enabled").await;
    let r = call(&engine, Method::DELETE, "/v1.41/plugins/myorg/myplug").await;
    assert_error(r, 409, "plugin myorg/myplug:latest is enabled").await;

    let r = call(&engine, Method::GET, "/info").await;
    assert_eq!(
        json(&body(r).await)["Plugins"]["Volume"],
        serde_json::json!(["myorg/myplug:latest"])
    );
    let r = call(&engine, Method::GET, "/v1.41/plugins/myorg/myplug:latest/json").await;
    let inspected = json(&body(r).await);
    assert_eq!(inspected["Enabled"], true);
    assert!(inspected["Settings"]["Env"].as_array().unwrap().contains(&"DEBUG=1".into()));

    let r = call(&engine, Method::POST, "/v1.41/plugins/myorg/myplug/disable").await;
    assert_eq!(r.status(), 200, "{}", body(r).await);
    let r = call(&engine, Method::POST, "/v1.41/plugins/myorg/myplug/disable").await;
    assert_error(
        r,
        409,
        "plugin is already disabled: plugin myorg/myplug:latest found but disabled",
    )
    .await;
    let r = call(&engine, Method::DELETE, "/v1.41/plugins/myorg/myplug?force=1").await;
    assert_eq!(r.status(), 200, "{}", body(r).await);
    let r = call(&engine, Method::GET, "/v1.41/plugins/myorg/myplug/json").await;
    assert_error(r, 404, "plugin \"myorg/myplug\" not found").await;

    // The manager's events, as `docker events --filter type=plugin` shows them.
    let uri = format!(
        "/events?since={}&until={}&filters=%7B%22type%22%3A%5B%22plugin%22%5D%7D",
        start / 1_000_000_000,
        now_nanos() / 1_000_000_000 + 1
    );
    let r = call(&engine, Method::GET, &uri).await;
    let text = tokio::time::timeout(Duration::from_secs(10), body(r)).await.unwrap();
    let events: Vec<(String, String, String)> = text
        .lines()
        .map(|l| {
            let v = json(l);
            let s = |v: &Value| v.as_str().unwrap().to_owned();
            (s(&v["Action"]), s(&v["Actor"]["ID"]), s(&v["Actor"]["Attributes"]["name"]))
        })
        .collect();
    let name = |n: &str| n.to_owned();
    assert_eq!(
        events,
        [
            (name("create"), id.clone(), name("myorg/myplug:latest")),
            (name("enable"), id.clone(), name("myorg/myplug")),
            (name("disable"), id.clone(), name("myorg/myplug")),
            (name("remove"), id.clone(), name("myorg/myplug")),
        ]
    );
    manager.shutdown().await;
}
