//! Unit tests of the manager with the test executor: the fixtures here, the tests in a file
//! per concern (as `manager/` splits the operations).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dockplug_protocol::filters::PluginListFilter;
use dockplug_protocol::PluginPrivilege;
use flate2::write::GzEncoder;

use crate::executor::{ExecutorError, Signal};
use crate::settable::SetError;
use crate::testexec::TestExecutor;
use crate::*;

pub(crate) const VOLUME_CONFIG: &str = r#"{
  "Description": "test volume plugin",
  "Entrypoint": ["/bin/plugin", "--serve"],
  "WorkDir": "/work",
  "Interface": {"Socket": "plugin.sock", "Types": ["docker.volumedriver/1.0"]},
  "Network": {"Type": "host"},
  "PidHost": true,
  "PropagatedMount": "/data",
  "Env": [{"Name": "DEBUG", "Settable": ["value"], "Value": "0"},
          {"Name": "UNSET", "Settable": ["value"], "Value": null},
          {"Name": "FIXED", "Value": "1"}],
  "Args": {"Name": "args", "Settable": ["value"], "Value": ["-a"]},
  "Mounts": [{"Name": "state", "Destination": "/state", "Source": "/var/lib/x", "Type": "bind",
              "Options": ["rbind"], "Settable": ["source"]},
             {"Name": "shm", "Destination": "/dev/shm", "Source": "/dev/shm", "Type": "bind", "Options": ["rbind"]}],
  "Linux": {"Capabilities": ["CAP_SYS_ADMIN"],
            "Devices": [{"Name": "null", "Path": "/dev/null", "Settable": ["path"]}]}
}"#;

/// A tar (optionally gzipped) build context with `config` and a few rootfs files.
pub(crate) fn context(config: &str, gzip: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, p, std::io::empty()).unwrap();
    };
    dir(&mut b, "rootfs");
    dir(&mut b, "rootfs/bin");
    let file = |b: &mut tar::Builder<Vec<u8>>, p: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, p, data).unwrap();
    };
    file(&mut b, "config.json", config.as_bytes(), 0o644);
    file(&mut b, "rootfs/bin/plugin", b"#!/bin/sh\n", 0o755);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "rootfs/bin/sh", "/bin/plugin").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "rootfs/bin/plugin2", "rootfs/bin/plugin").unwrap();
    dir(&mut b, "ignored");
    let data = b.into_inner().unwrap();
    if gzip {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        gz.finish().unwrap()
    } else {
        data
    }
}

pub(crate) struct Fixture {
    pub tmp: tempfile::TempDir,
    pub exec: TestExecutor,
    pub m: Manager<TestExecutor>,
}

impl Fixture {
    pub(crate) fn config(tmp: &Path) -> ManagerConfig {
        let mut c = ManagerConfig::new(tmp.join("root"), tmp.join("exec"));
        c.start_timeout = Duration::from_secs(5);
        c.stop_timeout = Duration::from_millis(200);
        c.share_propagated_mounts = false;
        c
    }

    pub(crate) async fn new() -> Self {
        let tmp = tempfile::Builder::new().prefix("dpm").tempdir_in("/tmp").unwrap();
        let exec = TestExecutor::new();
        let m = Manager::new(Self::config(tmp.path()), exec.clone()).await.unwrap();
        Self { tmp, exec, m }
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    /// A new manager over the same directories (a restart), with a fresh executor.
    pub(crate) async fn restart(&self, exec: TestExecutor) -> Manager<TestExecutor> {
        Manager::new(Self::config(self.tmp.path()), exec).await.unwrap()
    }

    pub(crate) async fn create(&self, name: &str) -> dockplug_protocol::Plugin {
        self.m
            .create_from_context(std::io::Cursor::new(context(VOLUME_CONFIG, false)), name)
            .await
            .unwrap()
    }
}

fn names(list: &[std::sync::Arc<dockplug_protocol::Plugin>]) -> Vec<&str> {
    list.iter().map(|p| p.name.as_str()).collect()
}

mod crash;
mod golden;
mod install;
mod lifecycle;
mod malicious;
mod mounts;
mod query;
mod restore;
mod state;
mod supervise;
