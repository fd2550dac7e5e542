//! Applying a pulled rootfs layer (a tar or tar.gz blob from the [`BlobStore`]) onto a
//! staging rootfs, with the same rules as a build context ([`crate::context`]): no absolute
//! path or `..`, never written through a symbolic link, links that stay inside the rootfs,
//! hard links to entries already extracted, no device nodes. Whiteouts (`.wh.<name>` and the
//! opaque `.wh..wh..opq`) remove what earlier layers put there, as `archive.ApplyLayer` does
//! in Moby.

use std::fs::{self, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use crate::context::{
    chown, clean, clear_slot, ensure_parents, is_metadata, open_archive, symlink_stays_inside,
    ContextError,
};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Removes `path` (file, link or tree) if it exists, never following a link.
fn remove_any(path: &Path) -> Result<(), ContextError> {
    let werr = |source| ContextError::Write { path: path.to_path_buf(), source };
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => fs::remove_dir_all(path).map_err(werr),
        Ok(_) => fs::remove_file(path).map_err(werr),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(werr(e)),
    }
}

/// A blocking reader over the chunks a [`Tee`](crate::distribution::Tee) delivers.
pub(crate) struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        Self { rx, chunk: Vec::new(), pos: 0 }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Applies the layer arriving through `reader` onto `root`, then reads what follows the
/// archive's end so the sender can finish (and verify) the whole blob.
pub(crate) fn apply_streamed(mut reader: ChannelReader, root: &Path) -> Result<(), ContextError> {
    apply_from(&mut reader, root)?;
    io::copy(&mut reader, &mut io::sink()).map_err(|source| ContextError::Read { source })?;
    Ok(())
}

/// Applies a layer stream onto `root`.
pub(crate) fn apply_from(input: impl Read, root: &Path) -> Result<(), ContextError> {
    let read_err = |source| ContextError::Read { source };
    // Large reads: a layer is tens of megabytes read once, front to back.
    let mut archive = open_archive(BufReader::with_capacity(1 << 20, input))?;
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let kind = entry.header().entry_type();
        if is_metadata(kind) {
            continue;
        }
        let raw = entry.path().map_err(read_err)?.into_owned();
        let rel = clean(&raw)?;
        if rel.as_os_str().is_empty() {
            if kind == EntryType::Directory {
                dir_modes
                    .push((root.to_path_buf(), entry.header().mode().unwrap_or(0o755) & 0o7777));
            }
            continue;
        }
        let dest = root.join(&rel);
        let werr = |source| ContextError::Write { path: dest.clone(), source };
        let base = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(hidden) = base.strip_prefix(WHITEOUT) {
            ensure_parents(root, &rel, &raw)?;
            let dir = dest.parent().unwrap_or(root);
            if base == OPAQUE {
                if let Ok(children) = fs::read_dir(dir) {
                    for c in children.flatten() {
                        remove_any(&c.path())?;
                    }
                }
            } else if !hidden.is_empty() {
                remove_any(&dir.join(hidden))?;
            }
            continue;
        }
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        match kind {
            EntryType::Directory => {
                ensure_parents(root, &rel, &raw)?;
                clear_slot(&dest, true)?;
                if !dest.is_dir() {
                    fs::DirBuilder::new().mode(0o755).create(&dest).map_err(werr)?;
                }
                chown(&dest, &header);
                dir_modes.push((dest.clone(), mode));
            }
            EntryType::Regular | EntryType::Continuous => {
                ensure_parents(root, &rel, &raw)?;
                clear_slot(&dest, false)?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&dest)
                    .map_err(werr)?;
                io::copy(&mut entry, &mut f).map_err(read_err)?;
                drop(f);
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode & 0o777))
                    .map_err(werr)?;
                chown(&dest, &header);
                if mode & 0o7000 != 0 {
                    fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(werr)?;
                }
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(read_err)?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target.as_os_str().is_empty() || !symlink_stays_inside(&rel, &target) {
                    return Err(ContextError::SymlinkEscape { path: raw, target });
                }
                ensure_parents(root, &rel, &raw)?;
                clear_slot(&dest, false)?;
                std::os::unix::fs::symlink(&target, &dest).map_err(werr)?;
                chown(&dest, &header);
            }
            EntryType::Link => {
                let target_raw = entry
                    .link_name()
                    .map_err(read_err)?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let escape = || ContextError::HardlinkEscape {
                    path: raw.clone(),
                    target: target_raw.clone(),
                };
                let target_rel = clean(&target_raw).map_err(|_| escape())?;
                if target_rel.as_os_str().is_empty() {
                    return Err(escape());
                }
                ensure_parents(root, &target_rel, &raw).map_err(|_| escape())?;
                let target_abs = root.join(&target_rel);
                match fs::symlink_metadata(&target_abs) {
                    Ok(m) if !m.file_type().is_dir() => {}
                    _ => return Err(escape()),
                }
                ensure_parents(root, &rel, &raw)?;
                if target_abs != dest {
                    clear_slot(&dest, false)?;
                    fs::hard_link(&target_abs, &dest).map_err(werr)?;
                }
            }
            EntryType::Char | EntryType::Block => {
                return Err(ContextError::DeviceNode { path: raw })
            }
            _ => return Err(ContextError::Unsupported { path: raw }),
        }
    }
    for (dir, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|source| ContextError::Write { path: dir.clone(), source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8]),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
        Dev(&'a str),
    }

    fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            h.set_size(0);
            match e {
                E::Dir(p) => {
                    h.set_entry_type(EntryType::Directory);
                    b.append_data(&mut h, p, io::empty()).unwrap();
                }
                E::File(p, d) => {
                    h.set_size(d.len() as u64);
                    b.append_data(&mut h, p, *d).unwrap();
                }
                E::Sym(p, t) => {
                    h.set_entry_type(EntryType::Symlink);
                    b.append_link(&mut h, p, t).unwrap();
                }
                E::Hard(p, t) => {
                    h.set_entry_type(EntryType::Link);
                    b.append_link(&mut h, p, t).unwrap();
                }
                E::Dev(p) => {
                    h.set_entry_type(EntryType::Char);
                    b.append_data(&mut h, p, io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    /// A raw tar header for a path the `tar` builder refuses to write (`..`, absolute).
    fn raw_tar(path: &str) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(0o644);
        h.set_size(1);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(b"x");
        out.resize(512 * 2, 0);
        out.extend_from_slice(&[0; 1024]);
        out
    }

    #[test]
    fn layers_apply_with_whiteouts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        apply_from(
            &tar_of(&[
                E::Dir("bin"),
                E::File("bin/a", b"a"),
                E::File("bin/b", b"b"),
                E::Dir("etc"),
                E::File("etc/x", b"x"),
                E::Sym("bin/sh", "/bin/a"),
                E::Hard("bin/c", "bin/a"),
            ])[..],
            root,
        )
        .unwrap();
        assert_eq!(fs::read(root.join("bin/c")).unwrap(), b"a");
        apply_from(
            &tar_of(&[
                E::File("bin/.wh.b", b""),
                E::File("etc/.wh..wh..opq", b""),
                E::File("etc/y", b"y"),
            ])[..],
            root,
        )
        .unwrap();
        assert!(!root.join("bin/b").exists());
        assert!(root.join("bin/a").exists());
        assert!(!root.join("etc/x").exists());
        assert!(root.join("etc/y").exists());
    }

    #[test]
    fn hostile_layers_are_refused() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dotdot", raw_tar("../escape")),
            ("absolute", raw_tar("/etc/escape")),
            ("symlink out", tar_of(&[E::Sym("x", "../../etc")])),
            ("write through link", tar_of(&[E::Sym("d", "/"), E::File("d/etc/passwd", b"x")])),
            ("hardlink out", tar_of(&[E::Hard("h", "../../etc/passwd")])),
            ("hardlink to missing", tar_of(&[E::Hard("h", "nothing")])),
            ("device", tar_of(&[E::Dev("dev/null")])),
            ("whiteout through link", tar_of(&[E::Sym("l", "/"), E::File("l/.wh.etc", b"")])),
        ];
        for (name, data) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("rootfs");
            fs::create_dir(&root).unwrap();
            assert!(apply_from(&data[..], &root).is_err(), "{name}");
            assert!(
                !tmp.path().join("escape").exists() && !tmp.path().join("etc").exists(),
                "{name}"
            );
        }
    }
}
