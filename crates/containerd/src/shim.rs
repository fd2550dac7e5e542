//! Shims containerd has lost: a `containerd-shim-runc-v2` process started for one of our
//! containers that containerd no longer tracks. A caller killed while containerd creates a
//! task (the create is cancelled and containerd drops the shim, whose shutdown then finds
//! work left and is refused) or deletes one (the shutdown call itself is cancelled) leaves
//! one behind. Nothing ever stops it, it keeps its socket, and the next shim of the same id
//! connects to it instead of starting afresh.
//!
//! A shim is found by its command line (`-namespace NS -id ID -address SOCKET`, as
//! containerd's `runtime/v2/shim/util.go` `Command` starts it) and is killed with the
//! processes it started, only when containerd has no task for that id.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long a killed shim and its children may take to go.
const GONE_DEADLINE: Duration = Duration::from_secs(5);

/// The PIDs of the shims the containerd at `socket` started for `namespace`/`id`.
pub(crate) fn find(socket: &Path, namespace: &str, id: &str) -> Vec<u32> {
    let canonical = std::fs::canonicalize(socket).ok();
    processes()
        .filter(|(_, args)| {
            let flag = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].as_str());
            let is_shim = args.first().is_some_and(|a| {
                Path::new(a)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("containerd-shim"))
            });
            let same_socket = flag("-address").is_some_and(|a| {
                Path::new(a) == socket
                    || canonical.is_some() && std::fs::canonicalize(a).ok() == canonical
            });
            is_shim
                && same_socket
                && flag("-namespace") == Some(namespace)
                && flag("-id") == Some(id)
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Kills each shim in `shims` after the processes it started (SIGKILL), and waits a bounded
/// time for all of them to go; returns whether they did.
pub(crate) async fn kill_all(shims: &[u32]) -> bool {
    let mut victims = Vec::new();
    for &shim in shims {
        victims.extend(children(shim));
    }
    victims.extend_from_slice(shims);
    for &pid in &victims {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    let end = Instant::now() + GONE_DEADLINE;
    loop {
        if victims.iter().all(|&p| gone(p)) {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every process with its command line.
fn processes() -> impl Iterator<Item = (u32, Vec<String>)> {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse().ok()?;
        let raw = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        Some((pid, args))
    })
}

/// The state letter and parent of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: read after the last one.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|(_, p)| p == parent))
        .collect()
}

/// Whether `pid` is gone (or a zombie waiting for its parent).
fn gone(pid: u32) -> bool {
    stat(pid).is_none_or(|(state, _)| state == 'Z' || state == 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_read_from_proc() {
        let me = std::process::id();
        let (state, parent) = stat(me).expect("our own stat");
        assert!(state == 'R' || state == 'S', "{state}");
        assert_eq!(parent, std::os::unix::process::parent_id());
        assert!(!gone(me));
        assert!(processes().any(|(pid, args)| pid == me && !args.is_empty()));
    }

    #[tokio::test]
    async fn only_a_shim_of_that_socket_namespace_and_id_is_found_and_killed() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A stand-in with a shim's name and flags (a copy of `sh`), and a child of its own.
        let fake = dir.path().join("containerd-shim-runc-v2");
        std::fs::copy("/bin/sh", &fake).expect("copy sh");
        let socket = dir.path().join("c.sock");
        let spawn = |ns: &str, id: &str| {
            std::process::Command::new(&fake)
                .args(["-c", "sleep 1000; :", "shim", "-namespace", ns, "-id", id, "-address"])
                .arg(&socket)
                .spawn()
                .expect("spawn")
        };
        let mut ours = spawn("ns", "p1");
        let mut other_id = spawn("ns", "p2");
        let mut other_ns = spawn("ns2", "p1");
        let found = find(&socket, "ns", "p1");
        assert_eq!(found, vec![ours.id()]);
        let end = Instant::now() + GONE_DEADLINE;
        while children(ours.id()).is_empty() && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let child = children(ours.id());
        assert_eq!(child.len(), 1, "the stand-in's sleep");
        assert!(kill_all(&found).await, "gone within the deadline");
        assert!(gone(child[0]), "its child too");
        assert!(!ours.wait().expect("wait").success(), "killed");
        assert!(find(&socket, "ns", "p1").is_empty());
        assert_eq!(find(&socket, "ns", "p2"), vec![other_id.id()], "another id lives on");
        for child in [&mut other_id, &mut other_ns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
