//! Mount helpers for the propagated mount and for removal.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mount points at or below `dir`, deepest first (from `/proc/self/mountinfo`).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Makes `dir` a shared mount (bind-mounting it onto itself first when needed), as Moby does
/// for `<root>/<id>/propagated-mount`.
pub(crate) fn make_rshared(dir: &Path) -> io::Result<()> {
    if !mounts_under(dir).iter().any(|m| m == dir) {
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(io::Error::from)?;
    }
    mount(None::<&str>, dir, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>)
        .map_err(io::Error::from)
}

/// Detaches every mount at or below `dir` (and nothing outside it). Errors are logged.
pub(crate) fn unmount_all_under(dir: &Path) {
    for m in mounts_under(dir) {
        if let Err(e) = umount2(&m, MntFlags::MNT_DETACH) {
            tracing::warn!(path = %m.display(), error = %e, "error unmounting plugin data");
        }
    }
}
