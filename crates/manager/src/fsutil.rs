//! Small file-system helpers: random names, atomic writes, atomic removal.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `n` random bytes from the kernel.
pub(crate) fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// A short random suffix for temporary names.
pub(crate) fn random_suffix() -> io::Result<String> {
    Ok(hex(&random_bytes::<6>()?))
}

/// Writes `data` to `path` atomically: a temporary file in the same directory, fsync,
/// chmod `mode`, rename over `path`, fsync the directory. A crash leaves either the old or
/// the new content, plus at worst a `.tmp-*` file that loading ignores.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".tmp-{file_name}{}", random_suffix()?));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        drop(f);
        crate::failpoint::hit("write_atomic:before_rename", path)?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its parents with `mode` on the directories it creates.
pub(crate) fn mkdir_all(dir: &Path, mode: u32) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
}

/// The `-removing` sibling of a directory.
pub(crate) fn removing_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push("-removing");
    dir.with_file_name(name)
}

/// The durable half of removing `dir` as Moby does: rename it to `<dir>-removing` (so a
/// crash never leaves a half-deleted plugin under its real name) and fsync the parent. From
/// then on `dir` is gone for good: a `-removing` directory a crash left is deleted when the
/// store loads. Returns the directory still to delete (with [`remove_dir_if_exists`], which
/// may run later), or `None` when there was nothing to rename; a stray `-removing`
/// directory is deleted as well.
pub(crate) fn retire(dir: &Path) -> io::Result<Option<PathBuf>> {
    let removing = removing_path(dir);
    match fs::rename(dir, &removing) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            remove_dir_if_exists(&removing)?;
            return Ok(None);
        }
        Err(_) if removing.exists() => {
            // A previous removal was interrupted: delete it and try again.
            remove_dir_if_exists(&removing)?;
            match fs::rename(dir, &removing) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        let _ = sync_dir(parent);
    }
    crate::failpoint::hit("atomic_remove:after_rename", dir)?;
    Ok(Some(removing))
}

/// `remove_dir_all` that treats a missing directory as done.
pub(crate) fn remove_dir_if_exists(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atomic_remove_all(dir: &Path) -> io::Result<()> {
        match retire(dir)? {
            Some(removing) => remove_dir_if_exists(&removing),
            None => Ok(()),
        }
    }

    #[test]
    fn atomic_remove_all_normal() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("f"), b"x").unwrap();
        atomic_remove_all(&dir).unwrap();
        assert!(!dir.exists());
        assert!(!removing_path(&dir).exists());
    }

    #[test]
    fn atomic_remove_all_already_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        fs::create_dir(&dir).unwrap();
        fs::create_dir(removing_path(&dir)).unwrap();
        fs::write(removing_path(&dir).join("f"), b"x").unwrap();
        atomic_remove_all(&dir).unwrap();
        assert!(!dir.exists());
        assert!(!removing_path(&dir).exists());
    }

    #[test]
    fn atomic_remove_all_not_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        atomic_remove_all(&dir).unwrap();
        fs::create_dir(removing_path(&dir)).unwrap();
        atomic_remove_all(&dir).unwrap();
        assert!(!removing_path(&dir).exists());
    }

    #[test]
    fn write_atomic_replaces_and_sets_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("config.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
