//! The checks the crash loop makes after each restart: records and rootfs, acknowledged
//! results, staging, containerd's tasks, containers and shims, and GC.

use super::*;

impl CrashLoop {
    /// The checks after a restart; returns the plugins as listed.
    pub(super) fn check(&self) -> Result<BTreeMap<String, State>, Error> {
        let root = self.daemon.data_root.join("plugins");
        let leftovers = |dir: PathBuf| -> Vec<String> {
            std::fs::read_dir(&dir)
                .map(|it| {
                    it.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
                })
                .unwrap_or_default()
        };
        let tmp = leftovers(root.join("tmp"));
        let ingest = leftovers(root.join("storage/ingest"));
        if !tmp.is_empty() || !ingest.is_empty() {
            return Err(protocol(
                "the staging directories after a restart",
                format!("tmp {tmp:?}, ingest {ingest:?}"),
            ));
        }
        let broken: Vec<String> =
            leftovers(root.clone()).into_iter().filter(|n| n.contains("-broken-")).collect();
        if !broken.is_empty() {
            return Err(protocol(
                "the plugin store after a restart",
                format!("set aside as broken: {broken:?}\n{}", self.daemon.log()),
            ));
        }
        let listed = self.api("/plugins")?;
        let mut observed = BTreeMap::new();
        for p in listed.as_array().into_iter().flatten() {
            let name = p["Name"].as_str().unwrap_or_default().to_owned();
            let inspected = self.api(&format!("/plugins/{name}/json"))?;
            let id = inspected["Id"].as_str().unwrap_or_default().to_owned();
            if id.len() != 64 || inspected["Name"] != p["Name"] {
                return Err(protocol(&format!("inspect {name}"), inspected.to_string()));
            }
            let dir = root.join(&id);
            let size = std::fs::metadata(dir.join("rootfs/localvol")).map(|m| m.len()).unwrap_or(0);
            if size != self.binary_size || !dir.join("config.json").is_file() {
                return Err(protocol(
                    &format!("plugin {name} on disk"),
                    format!("rootfs/localvol has {size} bytes of {}", self.binary_size),
                ));
            }
            let log = inspected["Settings"]["Env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str()?.strip_prefix("LOCALVOL_LOG="))
                .map(str::to_owned)
                .next();
            let state = State {
                id,
                enabled: inspected["Enabled"].as_bool().unwrap_or(false),
                log,
                reference: inspected["PluginReference"].as_str().unwrap_or_default().to_owned(),
            };
            observed.insert(name, state);
        }
        let enabled: BTreeSet<String> =
            observed.values().filter(|s| s.enabled).map(|s| s.id.clone()).collect();
        let mut last = String::new();
        let settled = wait_until(SETTLE, || match self.containerd_view() {
            Ok((tasks, containers, shims)) => {
                let ok = tasks == enabled
                    && containers == enabled
                    && shims == enabled.len()
                    && enabled.iter().all(|id| self.plugin_answers(id));
                last = format!("tasks {tasks:?}, containers {containers:?}, shims {shims}");
                ok
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        });
        if !settled {
            return Err(protocol(
                "containerd after a restart",
                format!(
                    "enabled {enabled:?}, found {last}\n{}\ncontainerd's log:\n{}",
                    self.daemon.log(),
                    self.containerd.log_tail()
                ),
            ));
        }
        Ok(observed)
    }

    pub(super) fn api(&self, path: &str) -> Result<serde_json::Value, Error> {
        let r = self.daemon.request("GET", path, b"")?;
        if r.status != 200 {
            return Err(protocol(&format!("GET {path}"), format!("{} {}", r.status, r.text())));
        }
        serde_json::from_slice(&r.body).map_err(|e| protocol(&format!("GET {path}"), e.to_string()))
    }

    pub(super) fn plugin_answers(&self, id: &str) -> bool {
        let socket =
            self.daemon.exec_root.join("plugins").join(id).join(crate::package::LOCALVOL_SOCKET);
        let req = Request { method: "POST", path: "/Plugin.Activate", headers: &[], body: b"" };
        http::unix(&socket, &req, Duration::from_secs(5)).is_ok_and(|r| r.status == 200)
    }

    /// Running task IDs, container IDs and live shims of the plugins' namespace.
    pub(super) fn containerd_view(
        &self,
    ) -> Result<(BTreeSet<String>, BTreeSet<String>, usize), Error> {
        let ctr = |args: &[&str]| -> Result<String, Error> {
            let out = Command::new(program("ctr")?)
                .arg("-a")
                .arg(&self.containerd.socket)
                .arg("-n")
                .arg(&self.containerd.namespace)
                .args(args)
                .output()
                .map_err(|e| Error::io("run ctr", e))?;
            if !out.status.success() {
                return Err(protocol("ctr", String::from_utf8_lossy(&out.stderr)));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let mut tasks = BTreeSet::new();
        for line in ctr(&["tasks", "ls"])?.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if let [id, _pid, status, ..] = cols[..] {
                // A task in any other state (stopped, created) is one without a plugin.
                let shown =
                    if status == "RUNNING" { id.to_owned() } else { format!("{id} ({status})") };
                tasks.insert(shown);
            }
        }
        let containers = ctr(&["containers", "ls", "-q"])?.lines().map(str::to_owned).collect();
        let mut shims: Vec<u32> = self
            .containerd
            .leftover_pids()
            .into_iter()
            .filter(|(kind, pid)| kind == "shim.pid" && Path::new(&format!("/proc/{pid}")).exists())
            .map(|(_, pid)| pid)
            .collect();
        shims.sort_unstable();
        shims.dedup();
        Ok((tasks, containers, shims.len()))
    }

    /// Creates and removes a probe plugin (a remove starts GC) and waits until the store
    /// holds only blobs some plugin references; returns how many orphans went.
    pub fn gc_check(&mut self) -> Result<usize, Error> {
        let before = self.orphans()?.len();
        let dir = self.path_str(&self.plugin_dir)?;
        self.docker_ok(&["plugin", "create", "gcprobe", &dir])?;
        self.docker_ok(&["plugin", "rm", "gcprobe"])?;
        let mut left = BTreeSet::new();
        let clean = wait_until(Duration::from_secs(30), || {
            left = self.orphans().unwrap_or_default();
            left.is_empty()
        });
        if !clean {
            return Err(protocol("GC after a remove", format!("orphaned blobs stay: {left:?}")));
        }
        self.summary.gc_checks += 1;
        self.summary.gc_removed += before;
        Ok(before)
    }

    /// Blobs in the store that no plugin record references.
    pub(super) fn orphans(&self) -> Result<BTreeSet<String>, Error> {
        let root = self.daemon.data_root.join("plugins");
        let mut referenced = BTreeSet::new();
        for e in
            std::fs::read_dir(&root).map_err(|e| Error::io("list the plugin root", e))?.flatten()
        {
            let Ok(data) = std::fs::read(e.path().join("config.json")) else { continue };
            let record: serde_json::Value = serde_json::from_slice(&data)
                .map_err(|e| protocol("a plugin record", e.to_string()))?;
            for key in ["Config", "Manifest"] {
                if let Some(d) = record[key].as_str() {
                    referenced.insert(d.to_owned());
                }
            }
            for d in record["Blobsums"].as_array().into_iter().flatten().filter_map(|d| d.as_str())
            {
                referenced.insert(d.to_owned());
            }
        }
        let blobs = root.join("storage/blobs/sha256");
        Ok(std::fs::read_dir(&blobs)
            .map(|it| {
                it.flatten()
                    .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                    .filter(|d| !referenced.contains(d))
                    .collect()
            })
            .unwrap_or_default())
    }
}
