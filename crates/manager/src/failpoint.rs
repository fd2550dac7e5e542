//! Crash injection for tests: a named step can be made to fail as if the process died there.
//!
//! In normal builds [`hit`] is a no-op that the compiler removes. Under `cfg(test)` a test arms
//! a step name for paths under one directory (its temporary root, so parallel tests do not see
//! each other's failpoints); the step then returns an error, and the test reloads the store
//! from disk to check what a crash at that point leaves.

use std::io;
use std::path::Path;

#[cfg(test)]
static ARMED: std::sync::Mutex<Vec<(&'static str, std::path::PathBuf)>> =
    std::sync::Mutex::new(Vec::new());

/// The message of a fired failpoint.
#[cfg(test)]
pub(crate) const CRASH: &str = "injected crash";

/// Arms `step` for every path under `root`.
#[cfg(test)]
pub(crate) fn arm(step: &'static str, root: &Path) {
    crate::lock::lock(&ARMED).push((step, root.to_path_buf()));
}

/// Disarms every failpoint under `root`.
#[cfg(test)]
pub(crate) fn disarm(root: &Path) {
    crate::lock::lock(&ARMED).retain(|(_, r)| r != root);
}

/// The environment variable that makes a step abort the whole process (a real crash: no
/// cleanup, no destructors), used by the child processes of the crash tests.
#[cfg(test)]
pub(crate) const ABORT_AT: &str = "DOCKPLUG_MANAGER_ABORT_AT";

/// Fails with [`CRASH`] when `step` is armed for `path`; aborts the process when `step` is
/// named by [`ABORT_AT`].
#[cfg(test)]
pub(crate) fn hit(step: &str, path: &Path) -> io::Result<()> {
    if std::env::var(ABORT_AT).is_ok_and(|s| s == step) {
        std::process::abort();
    }
    let armed = crate::lock::lock(&ARMED).iter().any(|(s, r)| *s == step && path.starts_with(r));
    if armed {
        Err(io::Error::other(CRASH))
    } else {
        Ok(())
    }
}

/// No-op outside tests.
#[cfg(not(test))]
#[inline(always)]
pub(crate) fn hit(_step: &str, _path: &Path) -> io::Result<()> {
    Ok(())
}

/// Whether `err` comes from a fired failpoint (so cleanup must not run: a crash would not).
#[cfg(test)]
pub(crate) fn is_crash(err: &crate::error::ManagerError) -> bool {
    match err {
        crate::error::ManagerError::Io { source, .. } => source.to_string() == CRASH,
        _ => false,
    }
}

/// Always false outside tests.
#[cfg(not(test))]
#[inline(always)]
pub(crate) fn is_crash(_err: &crate::error::ManagerError) -> bool {
    false
}
