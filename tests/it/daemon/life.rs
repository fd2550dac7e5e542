//! The daemon's own life: one instance per data root, the pidfile, a clean exit on SIGTERM
//! that stops plugins (or keeps them with `--live-restore`), a restart where the API answers
//! while plugins are still coming back, a private containerd when none is given, and plugin
//! output in the daemon's log with the plugin's name and ID.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dockplug_testkit::http::{self, Request};
use dockplug_testkit::{wait_until, Containerd};

use super::dockplugd::{binary, Dockplugd};
use super::localvol_dir;

fn plugin_answers(d: &Dockplugd, id: &str) -> bool {
    let socket = d.exec_root.join("plugins").join(id).join("localvol.sock");
    let req = Request { method: "POST", path: "/Plugin.Activate", headers: &[], body: b"" };
    http::unix(&socket, &req, Duration::from_secs(5)).is_ok_and(|r| r.status == 200)
}

/// Creates and enables the packaged localvol as `name`; returns its ID.
fn enabled_localvol(d: &Dockplugd, plugin_dir: &Path, name: &str) -> String {
    d.docker_ok(&["plugin", "create", name, plugin_dir.to_str().unwrap()]);
    d.docker_ok(&["plugin", "enable", name]);
    d.docker_ok(&["plugin", "inspect", "-f", "{{.Id}}", name]).trim().to_owned()
}

/// The init PIDs of the tasks running on `containerd`.
fn task_pids(containerd: &Containerd) -> Vec<u32> {
    let mut pids: Vec<u32> = containerd
        .leftover_pids()
        .into_iter()
        .filter(|(kind, pid)| kind == "init.pid" && Path::new(&format!("/proc/{pid}")).exists())
        .map(|(_, pid)| pid)
        .collect();
    pids.sort_unstable();
    pids
}

/// localvol behind a shell that sleeps `START_DELAY` seconds first (a settable env), so a
/// start can be made slow on purpose.
fn slow_localvol(dir: &Path) -> PathBuf {
    let plugin = localvol_dir(dir);
    let rootfs = plugin.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(dockplug_testkit::program("busybox").unwrap(), rootfs.join("bin/busybox"))
        .unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plugin.join("config.json")).unwrap()).unwrap();
    let command = "/bin/busybox sleep \"$START_DELAY\"; exec /localvol --socket /run/docker/plugins/localvol.sock --root /data";
    config["Entrypoint"] = serde_json::json!(["/bin/sh", "-c", command]);
    config["Env"] = serde_json::json!([
        {"Name": "START_DELAY", "Description": "seconds to wait before listening", "Settable": ["value"], "Value": "0"}
    ]);
    std::fs::write(plugin.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    plugin
}

#[test]
fn a_second_instance_on_the_same_data_root_is_refused() {
    let containerd = Containerd::start().expect("containerd");
    let d = Dockplugd::start(&containerd);
    let other = d.dir.path().join("other.sock");
    let out = Command::new(binary())
        .arg("--host")
        .arg(format!("unix://{}", other.display()))
        .arg("--data-root")
        .arg(&d.data_root)
        .arg("--exec-root")
        .arg(d.dir.path().join("x2"))
        .arg("--pidfile")
        .arg(d.dir.path().join("other.pid"))
        .arg("--containerd")
        .arg(&containerd.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is in use by another dockplugd"), "{stderr}");
    assert!(stderr.contains(&d.pid().to_string()), "names the holder: {stderr}");
    assert!(!other.exists(), "the refused instance never listened");
    // The first one is untouched.
    assert_eq!(d.docker_ok(&["plugin", "ls", "-q"]), "");
}

#[test]
fn sigterm_stops_plugins_exits_cleanly_and_removes_the_pidfile() {
    let containerd = Containerd::start().expect("containerd");
    let mut d = Dockplugd::start(&containerd);
    let pid = d.pid();
    assert_eq!(std::fs::read_to_string(&d.pidfile).unwrap(), pid.to_string());
    let id = enabled_localvol(&d, &localvol_dir(d.dir.path()), "localvol");
    assert!(plugin_answers(&d, &id));
    assert_eq!(task_pids(&containerd).len(), 1);

    let status = d.stop();
    assert!(status.success(), "exit status {status}");
    assert!(!d.pidfile.exists(), "pidfile removed");
    assert!(!d.socket.exists(), "API socket removed");
    assert!(task_pids(&containerd).is_empty(), "the plugin was stopped");

    // It is still enabled, and comes back with the daemon.
    d.restart();
    assert_eq!(
        d.docker_ok(&["plugin", "inspect", "-f", "{{.Enabled}}", "localvol"]).trim(),
        "true"
    );
    assert!(wait_until(Duration::from_secs(30), || plugin_answers(&d, &id)), "{}", d.log_tail());
}

#[test]
fn the_api_answers_at_once_while_plugins_are_restored() {
    let containerd = Containerd::start().expect("containerd");
    let mut d = Dockplugd::start(&containerd);
    let plugin = slow_localvol(d.dir.path());
    d.docker_ok(&["plugin", "create", "slow", plugin.to_str().unwrap()]);
    d.docker_ok(&["plugin", "set", "slow", "START_DELAY=8"]);
    d.docker_ok(&["plugin", "enable", "--timeout", "30", "slow"]);
    let id = d.docker_ok(&["plugin", "inspect", "-f", "{{.Id}}", "slow"]).trim().to_owned();
    assert!(plugin_answers(&d, &id));

    d.stop();
    let restarted = Instant::now();
    d.restart();
    let answered = restarted.elapsed();
    // The plugin needs eight seconds before it listens; the API did not wait for it.
    assert!(answered < Duration::from_secs(5), "the API answered after {answered:?}");
    let listed = d.request("GET", "/plugins", b"");
    assert_eq!(listed.status, 200);
    let plugins: serde_json::Value = serde_json::from_slice(&listed.body).unwrap();
    assert_eq!(plugins[0]["Name"], "slow:latest");
    assert_eq!(plugins[0]["Enabled"], true, "its state shows while it comes back");
    assert!(!plugin_answers(&d, &id), "still starting");
    assert!(wait_until(Duration::from_secs(30), || plugin_answers(&d, &id)), "{}", d.log_tail());
    d.docker_ok(&["plugin", "disable", "slow"]);
}

#[test]
fn live_restore_keeps_plugins_running_across_a_restart() {
    let containerd = Containerd::start().expect("containerd");
    let mut d = Dockplugd::start_with(&[
        "--containerd".into(),
        containerd.socket.clone().into(),
        "--containerd-plugins-namespace".into(),
        containerd.namespace.clone().into(),
        "--live-restore".into(),
    ]);
    let id = enabled_localvol(&d, &localvol_dir(d.dir.path()), "localvol");
    let before = task_pids(&containerd);
    assert_eq!(before.len(), 1);

    assert!(d.stop().success());
    assert_eq!(task_pids(&containerd), before, "the plugin kept running");
    assert!(plugin_answers(&d, &id));

    d.restart();
    assert_eq!(task_pids(&containerd), before, "the same process, re-attached");
    assert_eq!(
        d.docker_ok(&["plugin", "inspect", "-f", "{{.Enabled}}", "localvol"]).trim(),
        "true"
    );
    assert_eq!(d.docker_ok(&["plugin", "disable", "localvol"]), "localvol\n");
    assert!(task_pids(&containerd).is_empty());
}

#[test]
fn a_private_containerd_when_none_answers() {
    let namespace = format!("dockplug-it-priv-{}", std::process::id());
    let mut d = Dockplugd::start_with(&[
        "--system-containerd".into(),
        "/nonexistent/containerd.sock".into(),
        "--containerd-plugins-namespace".into(),
        namespace.clone().into(),
    ]);
    let pidfile = d.exec_root.join("containerd/containerd.pid");
    let ctd: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{ctd}/comm")).unwrap();
    assert_eq!(comm.trim(), "containerd");
    assert!(d.exec_root.join("containerd/containerd.sock").exists());

    let id = enabled_localvol(&d, &localvol_dir(d.dir.path()), "localvol");
    assert!(plugin_answers(&d, &id));

    // A crash leaves containerd running: the next start adopts it instead of starting a
    // second one, and brings the plugin back.
    d.kill();
    d.restart();
    let adopted: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(adopted, ctd, "the running containerd was adopted");
    assert!(wait_until(Duration::from_secs(30), || plugin_answers(&d, &id)), "{}", d.log_tail());

    assert!(d.stop().success());
    let gone = wait_until(Duration::from_secs(10), || !Path::new(&format!("/proc/{ctd}")).exists());
    assert!(gone, "the private containerd was stopped by PID");
    assert!(!pidfile.exists());
    let _ = std::fs::remove_dir_all(Path::new("/run/containerd/runc").join(&namespace));
}

#[test]
fn plugin_output_is_logged_with_name_and_id() {
    let containerd = Containerd::start().expect("containerd");
    let d = Dockplugd::start(&containerd);
    let plugin = localvol_dir(d.dir.path());
    d.docker_ok(&["plugin", "create", "talker", plugin.to_str().unwrap()]);
    d.docker_ok(&["plugin", "set", "talker", "LOCALVOL_LOG=debug"]);
    d.docker_ok(&["plugin", "enable", "talker"]);
    let id = d.docker_ok(&["plugin", "inspect", "-f", "{{.Id}}", "talker"]).trim().to_owned();
    let tag = format!("plugin{{name=talker:latest id={id}}}");
    assert!(
        wait_until(Duration::from_secs(10), || d.log().contains(&tag)),
        "no output line tagged {tag}:\n{}",
        d.log()
    );
    d.docker_ok(&["plugin", "disable", "talker"]);
}
