//! A content-addressed blob store, laid out as containerd's "local" store (what Moby uses at
//! `<Root>/storage`): `blobs/sha256/<hex>` plus `ingest/` for writes in progress.
//!
//! Create writes the rootfs layer, the config and the manifest here; pull and push (a later
//! issue) share it; [`BlobStore::gc`] deletes what no plugin references.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::fsutil;

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// A file-system operation failed.
    #[error("blob store {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A digest string is not `sha256:<64 hex>`.
    #[error("invalid digest {digest:?}")]
    InvalidDigest {
        /// The offending string.
        digest: String,
    },
    /// Written content does not hash to the digest it was expected to have.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io { path: path.to_path_buf(), source }
}

/// The `<hex>` of a `sha256:<hex>` digest, checked.
pub(crate) fn digest_hex(digest: &str) -> Result<&str, BlobError> {
    match digest.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(h)
        }
        _ => Err(BlobError::InvalidDigest { digest: digest.to_owned() }),
    }
}

/// A content-addressed store of blobs keyed by `sha256:<hex>`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        for d in [root.join("blobs/sha256"), root.join("ingest")] {
            fsutil::mkdir_all(&d, 0o700).map_err(io_err(&d))?;
        }
        Ok(Self { root })
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }

    /// Starts writing a blob; [`BlobWriter::commit`] makes it visible under its digest.
    pub fn writer(&self) -> Result<BlobWriter, BlobError> {
        let suffix = fsutil::random_suffix().map_err(io_err(&self.root))?;
        let path = self.root.join("ingest").join(suffix);
        let file = File::create(&path).map_err(io_err(&path))?;
        Ok(BlobWriter {
            store: self.clone(),
            path,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Stores `data` and returns its digest.
    pub fn put(&self, data: &[u8]) -> Result<String, BlobError> {
        let mut w = self.writer()?;
        w.write_all(data).map_err(io_err(&self.root))?;
        w.commit()
    }

    /// The content of blob `digest`.
    pub fn get(&self, digest: &str) -> Result<Vec<u8>, BlobError> {
        let p = self.blob_path(digest_hex(digest)?);
        fs::read(&p).map_err(io_err(&p))
    }

    /// Opens blob `digest` for reading (push streams it from here).
    pub fn open_blob(&self, digest: &str) -> Result<File, BlobError> {
        let p = self.blob_path(digest_hex(digest)?);
        File::open(&p).map_err(io_err(&p))
    }

    /// Whether blob `digest` is present.
    pub fn contains(&self, digest: &str) -> bool {
        digest_hex(digest).map(|h| self.blob_path(h).is_file()).unwrap_or(false)
    }

    /// Every digest in the store.
    pub fn list(&self) -> Result<Vec<String>, BlobError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            if digest_hex(&digest).is_ok() {
                out.push(digest);
            }
        }
        Ok(out)
    }

    /// Deletes abandoned partial writes (left by a crash). The caller makes sure no write is
    /// in progress.
    pub fn clean_ingest(&self) -> Result<(), BlobError> {
        let ingest = self.root.join("ingest");
        for entry in fs::read_dir(&ingest).map_err(io_err(&ingest))?.flatten() {
            let _ = fs::remove_file(entry.path());
        }
        Ok(())
    }

    /// Deletes every blob not in `keep` and every abandoned ingest file; returns the deleted
    /// digests. The caller makes sure no write is in progress.
    pub fn gc(&self, keep: &HashSet<String>) -> Result<Vec<String>, BlobError> {
        self.clean_ingest()?;
        let mut deleted = Vec::new();
        for digest in self.list()? {
            if !keep.contains(&digest) {
                let p = self.blob_path(digest_hex(&digest)?);
                match fs::remove_file(&p) {
                    Ok(()) => deleted.push(digest),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&p)(e)),
                }
            }
        }
        Ok(deleted)
    }
}

/// A blob being written: hashed as it goes, renamed into place on commit, deleted if dropped.
#[derive(Debug)]
pub struct BlobWriter {
    store: BlobStore,
    path: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    size: u64,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// fsyncs and moves the blob into place; returns its digest.
    pub fn commit(mut self) -> Result<String, BlobError> {
        let file = self.file.take();
        if let Some(f) = file {
            f.sync_all().map_err(io_err(&self.path))?;
        }
        let hex = fsutil::hex(&std::mem::take(&mut self.hasher).finalize());
        let target = self.store.blob_path(&hex);
        let moved = crate::failpoint::hit("blob:before_commit", &self.path)
            .and_then(|()| fs::rename(&self.path, &target));
        if let Err(e) = moved {
            let _ = fs::remove_file(&self.path);
            return Err(io_err(&target)(e));
        }
        Ok(format!("sha256:{hex}"))
    }
}

impl BlobWriter {
    /// [`BlobWriter::commit`] if the content hashes to `expected`; otherwise the partial blob
    /// is deleted (it never becomes visible) and the error says what it hashed to.
    pub fn commit_expecting(self, expected: &str) -> Result<String, BlobError> {
        digest_hex(expected)?;
        let actual = format!("sha256:{}", fsutil::hex(&self.hasher.clone().finalize()));
        if actual != expected {
            return Err(BlobError::DigestMismatch { expected: expected.to_owned(), actual });
        }
        self.commit()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f =
            self.file.as_mut().ok_or_else(|| io::Error::other("blob writer already committed"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_gc() {
        let tmp = tempfile::tempdir().unwrap();
        let s = BlobStore::open(tmp.path().join("storage")).unwrap();
        let a = s.put(b"hello").unwrap();
        assert_eq!(a, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        let b = s.put(b"world").unwrap();
        assert_eq!(s.get(&a).unwrap(), b"hello");
        let keep: HashSet<String> = [a.clone()].into();
        assert_eq!(s.gc(&keep).unwrap(), vec![b.clone()]);
        assert!(s.contains(&a));
        assert!(!s.contains(&b));
        assert!(matches!(s.get("sha256:../x"), Err(BlobError::InvalidDigest { .. })));
    }

    #[test]
    fn commit_expecting_refuses_other_content() {
        let tmp = tempfile::tempdir().unwrap();
        let s = BlobStore::open(tmp.path()).unwrap();
        let hello = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let mut w = s.writer().unwrap();
        w.write_all(b"hellO").unwrap();
        assert!(matches!(w.commit_expecting(hello), Err(BlobError::DigestMismatch { .. })));
        assert!(s.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(tmp.path().join("ingest")).unwrap().count(), 0);
        let mut w = s.writer().unwrap();
        w.write_all(b"hello").unwrap();
        assert_eq!(w.commit_expecting(hello).unwrap(), hello);
        assert_eq!(std::io::Read::bytes(s.open_blob(hello).unwrap()).count(), 5);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let s = BlobStore::open(tmp.path()).unwrap();
        let mut w = s.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(tmp.path().join("ingest")).unwrap().count(), 0);
        assert!(s.list().unwrap().is_empty());
    }
}
