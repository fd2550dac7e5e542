//! The process guard every launcher builds on, and the waits (a condition with a deadline,
//! never a bare sleep).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::Error;

/// How many lines of a daemon's log an error or an assertion message shows.
const LOG_TAIL_LINES: usize = 40;

/// A daemon process we started, stopped by PID when dropped: SIGTERM, a bounded wait, then
/// SIGKILL. Its stdout and stderr go to `log`, which a failing test can print.
#[derive(Debug)]
pub struct Daemon {
    /// The name used in messages.
    pub name: String,
    /// The process.
    pub child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` with its stdin closed and its output written to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Daemon, Error> {
        let out = std::fs::File::create(log)
            .map_err(|e| Error::io(format!("create {}", log.display()), e))?;
        let err = out.try_clone().map_err(|e| Error::io("clone a log handle", e))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().map_err(|e| Error::io(format!("start {name}"), e))?;
        Ok(Daemon { name: name.to_owned(), child, log: log.to_owned() })
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the daemon's log, for error and assertion messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Whether the process is still running (reaps it if it has exited).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until `ready` holds, failing with the log tail if the process exits first or
    /// `deadline` passes. `probe` names what is awaited, for the error.
    pub fn wait_ready(
        &mut self,
        probe: &str,
        deadline: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), Error> {
        let mut exited = None;
        let up = wait_until(deadline, || {
            if ready() {
                return true;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return true;
            }
            false
        });
        if let Some(status) = exited {
            return Err(Error::Exited {
                name: self.name.clone(),
                status: status.to_string(),
                log: self.log_tail(),
            });
        }
        if !up {
            return Err(Error::NotReady {
                name: self.name.clone(),
                probe: probe.to_owned(),
                deadline,
                log: self.log_tail(),
            });
        }
        Ok(())
    }

    /// Stops the process by PID: SIGTERM, waits up to `grace`, then SIGKILL and reaps it.
    pub fn stop(&mut self, grace: Duration) {
        if !self.running() {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        if !wait_until(grace, || !self.running()) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Polls `cond` every 20 ms until it holds or `deadline` passes; returns whether it held.
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a unix socket at `path` accepts a connection; returns whether it did.
pub fn wait_for_socket(path: &Path, deadline: Duration) -> bool {
    wait_until(deadline, || std::os::unix::net::UnixStream::connect(path).is_ok())
}

/// The absolute path of an installed program, looked up in the system directories first
/// (`/usr/bin/docker` is Debian's 20.10 CLI; `/usr/local/bin/docker`, a newer one, would come
/// first in PATH).
pub fn program(name: &str) -> Result<PathBuf, Error> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Missing { program: name.to_owned() })
}

/// Whether this process runs as root (the daemons need it).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The resident memory of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Every process on the machine with its command line (from `/proc`).
pub(crate) fn processes() -> Vec<(u32, Vec<String>)> {
    read_dir(Path::new("/proc"))
        .into_iter()
        .filter_map(|dir| {
            let pid = dir.file_name()?.to_str()?.parse().ok()?;
            let raw = std::fs::read(dir.join("cmdline")).ok()?;
            let args = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
        .collect()
}

/// Whether `pid` is gone or a zombie.
pub(crate) fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// The entries of `dir`, empty when it cannot be read.
pub(crate) fn read_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}
