//! dockerd as a real client of dockplug-sdk: a private dockerd uses localvol as a v1 plugin
//! (found through a spec file) and as a packaged v2 plugin (`docker plugin create` +
//! `enable`), creating, using from containers, listing, inspecting and removing volumes.
//!
//! The same dockerd also logs a container through an SDK `LogDriver` served from this test
//! process: the FIFO stream read with `LogStream`, `docker logs` answered through `ReadLogs`.
//!
//! One dockerd serves every step, to keep the suite fast.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dockplug::protocol::common::DEFAULT_SPEC_DIRS;
use dockplug::protocol::log::{Capability, Info, LogEntry, ReadLogsRequest};
use dockplug_sdk::log::{LogEntries, LogStream};
use dockplug_sdk::{LogDriver, Plugin, PluginResult, SpecFile, UnixListen};

use crate::support::dockerd::Dockerd;
use crate::support::localvol::{self, LocalVol};

const IMAGE: &str = "dockplug-it/busybox:latest";

#[test]
fn dockerd_uses_localvol_as_v1_and_v2_plugin() {
    crate::support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let dockerd = Dockerd::start(&tmp.path().join("dockerd"));
    dockerd.import_busybox(IMAGE);
    eprintln!("dockerd up and image imported in {:.1?}", started.elapsed());

    v1_plugin(&dockerd, &tmp.path().join("v1"));
    eprintln!("v1 steps done at {:.1?}", started.elapsed());
    v2_plugin(&dockerd, &tmp.path().join("v2"));
    eprintln!("v2 steps done at {:.1?}", started.elapsed());
    log_driver(&dockerd, &tmp.path().join("log"));
    eprintln!("log driver steps done at {:.1?}", started.elapsed());
}

/// A log driver built on the SDK: keeps every line it reads from the daemon's FIFOs, and
/// replays them for `docker logs`.
#[derive(Default)]
struct KeepLines {
    lines: Arc<Mutex<Vec<(String, String)>>>,
    /// Per stream: the signal to drain and stop, and the reader task.
    readers: Mutex<Vec<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>>,
}

impl LogDriver for KeepLines {
    async fn start_logging(&self, file: String, _info: Info) -> PluginResult<()> {
        let mut stream = LogStream::open(&file).await?;
        let lines = self.lines.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let keep = move |e: LogEntry| {
            let line = String::from_utf8_lossy(&e.line).into_owned();
            lines.lock().unwrap().push((e.source, line));
        };
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    next = stream.next_entry() => match next {
                        Ok(Some(e)) => keep(e),
                        _ => break,
                    },
                    _ = &mut stopped => {
                        for e in stream.drain().await.unwrap_or_default() {
                            keep(e);
                        }
                        break;
                    }
                }
            }
        });
        self.readers.lock().unwrap().push((stop, task));
        Ok(())
    }
    async fn stop_logging(&self, _file: String) -> PluginResult<()> {
        // The daemon deletes the FIFO once we answer: drain first.
        let readers: Vec<_> = self.readers.lock().unwrap().drain(..).collect();
        for (stop, task) in readers {
            let _ = stop.send(());
            let _ = task.await;
        }
        Ok(())
    }
    async fn capabilities(&self) -> PluginResult<Capability> {
        Ok(Capability { read_logs: true })
    }
    async fn read_logs(&self, _req: ReadLogsRequest) -> PluginResult<LogEntries> {
        let (tx, rx) = LogEntries::channel(16);
        let lines = self.lines.lock().unwrap().clone();
        tokio::spawn(async move {
            for (i, (source, line)) in lines.into_iter().enumerate() {
                // dockerd prints lines as is: a complete line ends with its newline.
                let e = LogEntry {
                    source,
                    time_nano: i as i64 + 1,
                    line: format!("{line}\n").into_bytes(),
                    ..LogEntry::default()
                };
                if tx.send(e).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

/// An SDK log driver served from this process as a v1 plugin, used by dockerd for a container.
fn log_driver(dockerd: &Dockerd, dir: &Path) {
    let name = format!("dockplug-itlog-{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = KeepLines::default();
    let lines = driver.lines.clone();
    let plugin = Plugin::builder().log(driver).build();
    let listen = UnixListen::new(dir.join("log.sock"))
        .spec_file(SpecFile::new(DEFAULT_SPEC_DIRS[0], name.as_str()));
    let server = rt.block_on(plugin.bind_unix(listen)).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = rt.spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let container = format!("dockplug-itlog-{}", std::process::id());
    dockerd.ok(&[
        "run",
        "--name",
        &container,
        "--network",
        "none",
        "--log-driver",
        &name,
        IMAGE,
        "/bin/sh",
        "-c",
        "echo first line; echo second line >&2",
    ]);
    // stdout and stderr are copied by two goroutines in dockerd: their order is not fixed.
    let mut seen = lines.lock().unwrap().clone();
    seen.sort();
    let logs = dockerd.docker(&["logs", &container]);
    let _ = dockerd.docker(&["rm", "--force", &container]);
    let _ = stop.send(());
    rt.block_on(served).unwrap().unwrap();
    assert!(!Path::new(DEFAULT_SPEC_DIRS[0]).join(format!("{name}.spec")).exists());

    assert_eq!(
        seen,
        [
            ("stderr".to_owned(), "second line".to_owned()),
            ("stdout".to_owned(), "first line".to_owned())
        ],
        "lines read from the FIFO"
    );
    assert!(logs.status.success(), "docker logs: {}", String::from_utf8_lossy(&logs.stderr));
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "first line\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "second line\n");
}

/// localvol as a v1 plugin: its socket in a temp dir, a uniquely named spec file in Moby's
/// spec directory (the one place dockerd 20.10 looks), removed when localvol stops.
fn v1_plugin(dockerd: &Dockerd, dir: &Path) {
    let name = format!("dockplug-it-{}", std::process::id());
    let spec = Path::new(DEFAULT_SPEC_DIRS[0]).join(&name);
    let t = Instant::now();
    let lv = LocalVol::start(dir, Some(&spec));
    eprintln!("localvol started in {:.1?}", t.elapsed());
    assert!(spec.with_extension("spec").is_file(), "localvol wrote no spec file");

    dockerd.ok(&["volume", "create", "-d", &name, "-o", "mode=0777", "itvol"]);
    let ls = dockerd.ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    assert!(ls.lines().any(|l| l == format!("{name} itvol")), "volume ls: {ls}");
    let mountpoint = dockerd.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "itvol"]);
    assert_eq!(Path::new(&mountpoint), lv.root.join("volumes/itvol"));
    let status = dockerd.ok(&["volume", "inspect", "--format", "{{json .Status}}", "itvol"]);
    assert_eq!(status, r#"{"mounts":0}"#);

    // One container writes, a second one reads it back.
    dockerd.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "itvol:/vol",
        IMAGE,
        "/bin/sh",
        "-c",
        "echo written-by-the-first-container > /vol/greeting",
    ]);
    assert_eq!(
        std::fs::read_to_string(lv.root.join("volumes/itvol/greeting")).unwrap(),
        "written-by-the-first-container\n"
    );
    let read = dockerd.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "itvol:/vol",
        IMAGE,
        "/bin/cat",
        "/vol/greeting",
    ]);
    assert_eq!(read, "written-by-the-first-container");
    // Every Mount had its Unmount.
    let status = dockerd.ok(&["volume", "inspect", "--format", "{{json .Status}}", "itvol"]);
    assert_eq!(status, r#"{"mounts":0}"#);

    dockerd.ok(&["volume", "rm", "itvol"]);
    assert!(!lv.root.join("volumes/itvol").exists(), "volume rm left the directory");
    let ls = dockerd.ok(&["volume", "ls", "--quiet"]);
    assert!(!ls.lines().any(|l| l == "itvol"), "volume ls after rm: {ls}");
    let t = Instant::now();
    drop(lv);
    eprintln!("localvol stopped in {:.1?}", t.elapsed());
    assert!(!spec.with_extension("spec").exists(), "localvol left its spec file");
}

/// The packaged localvol as a v2 plugin: `docker plugin create` + `enable`, a volume through
/// it used by a container, then everything removed.
fn v2_plugin(dockerd: &Dockerd, dir: &Path) {
    let plugin = format!("dockplug-it/localvol:{}", std::process::id());
    let pkg = localvol::packaged(&dir.join("localvol-plugin"));
    dockerd.ok(&["plugin", "create", &plugin, pkg.to_str().unwrap()]);
    let enabled = dockerd.docker(&["plugin", "enable", &plugin]);
    if !enabled.status.success() {
        let _ = dockerd.docker(&["plugin", "rm", "--force", &plugin]);
        panic!(
            "docker plugin enable failed: {}\n{}",
            String::from_utf8_lossy(&enabled.stderr),
            dockerd.daemon.log_tail()
        );
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dockerd.ok(&["volume", "create", "-d", &plugin, "v2vol"]);
        let driver = dockerd.ok(&["volume", "inspect", "--format", "{{.Driver}}", "v2vol"]);
        assert_eq!(driver, plugin);
        dockerd.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "v2vol:/vol",
            IMAGE,
            "/bin/sh",
            "-c",
            "echo through-v2 > /vol/f",
        ]);
        let read = dockerd.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "v2vol:/vol",
            IMAGE,
            "/bin/cat",
            "/vol/f",
        ]);
        assert_eq!(read, "through-v2");
        dockerd.ok(&["volume", "rm", "v2vol"]);
    }));
    let _ = dockerd.docker(&["plugin", "disable", "--force", &plugin]);
    let removed = dockerd.docker(&["plugin", "rm", "--force", &plugin]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(removed.status.success(), "plugin rm: {}", String::from_utf8_lossy(&removed.stderr));
}
