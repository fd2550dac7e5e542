//! One daemon per data root: an exclusive `flock` on `<data-root>/dockplugd.lock`, held for
//! the life of the process (the kernel drops it when the process dies, however it dies), and
//! the PID file, written once the lock is held.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in the data root.
pub const LOCK_FILE: &str = "dockplugd.lock";

/// The held lock on a data root.
#[derive(Debug)]
pub struct DataRootLock {
    _lock: Flock<File>,
}

impl DataRootLock {
    /// Takes the lock or says which process holds it.
    pub fn acquire(data_root: &Path) -> anyhow::Result<DataRootLock> {
        std::fs::create_dir_all(data_root)
            .with_context(|| format!("cannot create the data root {}", data_root.display()))?;
        let path = data_root.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // The holder's PID, for the message a second instance prints.
                lock.set_len(0).with_context(|| format!("cannot truncate {}", path.display()))?;
                write!(lock, "{}", std::process::id())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(DataRootLock { _lock: lock })
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                bail!(
                    "data root {} is in use by another dockplugd (pid {}): refusing to start a second instance",
                    data_root.display(),
                    holder.trim()
                )
            }
            Err((_, e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }
}

/// The PID file: written (temp file, rename) at start, removed at a clean exit.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
}

impl Pidfile {
    /// Writes this process's PID to `path`.
    pub fn write(path: &Path) -> anyhow::Result<Pidfile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, format!("{}", std::process::id()))
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("cannot write the pidfile {}", path.display()))?;
        Ok(Pidfile { path: path.to_owned() })
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_root_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let held = DataRootLock::acquire(dir.path())?;
        // flock locks belong to the open file description: a second open in this process
        // conflicts exactly as a second process would.
        let err = DataRootLock::acquire(dir.path()).expect_err("a second lock").to_string();
        assert!(err.contains("in use by another dockplugd"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(held);
        DataRootLock::acquire(dir.path())?;
        Ok(())
    }

    #[test]
    fn the_pidfile_holds_our_pid_until_dropped() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("run/d.pid");
        let pidfile = Pidfile::write(&path)?;
        assert_eq!(std::fs::read_to_string(&path)?, std::process::id().to_string());
        drop(pidfile);
        assert!(!path.exists());
        Ok(())
    }
}
