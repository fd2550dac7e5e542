//! Extraction of a plugin build context (the body of `POST /plugins/create`): a tar or
//! tar.gz stream holding `config.json` and a `rootfs/` tree.
//!
//! The tar format is parsed by the `tar` crate; every decision about *where* an entry may land
//! is made here, and nothing is ever written through a symbolic link:
//!
//! * absolute paths and `..` components are refused;
//! * a parent directory that exists as a symlink (or a non-directory) is refused, so an entry
//!   can never be written through a link planted by an earlier entry;
//! * a symbolic link whose target climbs out of the rootfs is refused (targets are judged as
//!   the plugin will see them: an absolute target is rooted at the rootfs, a relative one at
//!   the link's directory; `/bin/sh -> /bin/busybox` is fine, `x -> ../../etc` is not);
//! * a hard link must name an entry under `rootfs/` that was already extracted;
//! * device nodes are refused; FIFOs and sparse files are refused as unsupported.
//!
//! Everything is extracted into a staging directory that the caller renames into place; on
//! any error the staging directory and the partial layer blob are deleted, so nothing is left
//! behind. While extracting, the rootfs entries are re-emitted into a gzip-compressed tar that
//! becomes the plugin's layer blob (as Moby does, for push).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use tar::{Archive, Builder, EntryType, Header};

use crate::blobs::{BlobError, BlobStore, BlobWriter};

/// The largest `config.json` accepted.
const MAX_CONFIG: u64 = 4 << 20;

/// Why a build context was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The stream is not a readable tar (or gzip) archive.
    #[error("failed to read from tar")]
    Read {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry has an absolute path.
    #[error("refusing absolute path {path:?} in plugin context")]
    AbsolutePath {
        /// The path as found in the archive.
        path: PathBuf,
    },
    /// An entry's path contains `..`.
    #[error("refusing path {path:?} in plugin context: it contains '..'")]
    ParentTraversal {
        /// The path as found in the archive.
        path: PathBuf,
    },
    /// An entry would be written through a symbolic link or below a non-directory.
    #[error(
        "refusing path {path:?} in plugin context: a parent is a symbolic link or not a directory"
    )]
    ThroughLink {
        /// The path as found in the archive.
        path: PathBuf,
    },
    /// A symbolic link points outside the rootfs.
    #[error("refusing symbolic link {path:?} -> {target:?}: it points outside the rootfs")]
    SymlinkEscape {
        /// The link.
        path: PathBuf,
        /// Its target.
        target: PathBuf,
    },
    /// A hard link names something outside the rootfs or not yet extracted.
    #[error(
        "refusing hard link {path:?} -> {target:?}: the target is outside the rootfs or missing"
    )]
    HardlinkEscape {
        /// The link.
        path: PathBuf,
        /// Its target.
        target: PathBuf,
    },
    /// A device node.
    #[error("refusing device node {path:?} in plugin context")]
    DeviceNode {
        /// The path as found in the archive.
        path: PathBuf,
    },
    /// An entry type we do not extract (FIFO, sparse file, ...).
    #[error("refusing unsupported entry {path:?} in plugin context")]
    Unsupported {
        /// The path as found in the archive.
        path: PathBuf,
    },
    /// `config.json` is larger than 4 MiB.
    #[error("config.json is too large")]
    ConfigTooLarge,
    /// No `rootfs/` entry.
    #[error("no rootfs found: EOF")]
    NoRootfs,
    /// No `config.json` entry.
    #[error("config not found")]
    ConfigNotFound,
    /// Writing the extracted tree failed.
    #[error("failed to extract {path:?}")]
    Write {
        /// Where.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the layer blob failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// What a successful extraction produced.
#[derive(Debug)]
pub(crate) struct Extracted {
    /// The raw bytes of `config.json`.
    pub config: Vec<u8>,
    /// Digest of the gzip-compressed rootfs layer in the blob store.
    pub layer_digest: String,
    /// Size of that blob.
    pub layer_size: u64,
}

/// Cleans an archive path into normal components; refuses absolute paths and `..`.
pub(crate) fn clean(raw: &Path) -> Result<PathBuf, ContextError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(ContextError::ParentTraversal { path: raw.to_path_buf() })
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ContextError::AbsolutePath { path: raw.to_path_buf() })
            }
        }
    }
    Ok(out)
}

/// Whether a symlink at `link` (relative to the root) with `target` stays inside the root.
pub(crate) fn symlink_stays_inside(link: &Path, target: &Path) -> bool {
    let mut depth: i64 =
        if target.is_absolute() { 0 } else { link.components().count() as i64 - 1 };
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    true
}

/// Creates the missing parents of `rel` under `root`, refusing to pass a symlink or a file.
pub(crate) fn ensure_parents(root: &Path, rel: &Path, raw: &Path) -> Result<(), ContextError> {
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(ContextError::ThroughLink { path: raw.to_path_buf() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&cur)
                    .map_err(|source| ContextError::Write { path: cur.clone(), source })?;
            }
            Err(source) => return Err(ContextError::Write { path: cur.clone(), source }),
        }
    }
    Ok(())
}

/// Removes whatever non-directory sits at `path` (a later entry replaces an earlier one).
pub(crate) fn clear_slot(path: &Path, for_dir: bool) -> Result<(), ContextError> {
    let werr = |source| ContextError::Write { path: path.to_path_buf(), source };
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => {
            if !for_dir {
                fs::remove_dir_all(path).map_err(werr)?;
            }
            Ok(())
        }
        Ok(_) => fs::remove_file(path).map_err(werr),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(werr(e)),
    }
}

pub(crate) fn chown(path: &Path, header: &Header) {
    if let (Ok(uid), Ok(gid)) = (header.uid(), header.gid()) {
        if let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) {
            // Only root may chown; as another user the files stay ours, which is what we want.
            let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
        }
    }
}

/// The rootfs layer's gzip stream, compressed on a thread of its own while extraction goes
/// on (compressing is most of `create`): the tar stream goes over in chunks through a
/// bounded channel, so memory stays at a few chunks.
///
/// Level 1: the layer's digest (in `diff_ids` and `blobsums`) is of our own gzip stream at
/// any level (Moby's `CreateFromContext` stores Go's gzip output, which no other compressor
/// reproduces), and level 1 is several times faster than the default 6 for a somewhat
/// larger blob.
struct Compressor {
    chunk: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    /// Chunks the thread is done with, filled again instead of allocated: a fresh 256 KiB
    /// buffer per chunk cost a page fault per 4 KiB on both threads.
    spent: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<io::Result<BlobWriter>>>,
}

const CHUNK: usize = 256 * 1024;

impl Compressor {
    fn start(blob: BlobWriter, root: &Path) -> Result<Compressor, ContextError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let (give_back, spent) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let thread = std::thread::Builder::new()
            .name("layer-gzip".to_owned())
            .spawn(move || {
                let mut gz = GzEncoder::new(blob, flate2::Compression::fast());
                for mut chunk in rx {
                    gz.write_all(&chunk)?;
                    chunk.clear();
                    // At most 4 wait to be reused; more (never, with 4 in flight) are dropped.
                    let _ = give_back.try_send(chunk);
                }
                gz.finish()
            })
            .map_err(|source| {
                ContextError::Blob(BlobError::Io { path: root.to_owned(), source })
            })?;
        Ok(Compressor {
            chunk: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            spent,
            thread: Some(thread),
        })
    }

    /// The compressing thread's own result (its error, or a panic as an error).
    fn join(&mut self) -> io::Result<BlobWriter> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(io::Error::other("layer-gzip panicked"))),
            None => Err(io::Error::other("layer compressor already finished")),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let next = self.spent.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.chunk, next);
        let sent = self.tx.as_ref().map(|tx| tx.send(chunk).is_ok()).unwrap_or(false);
        if sent {
            return Ok(());
        }
        // The thread stopped: its error is the one to report.
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other("layer compressor stopped early")),
        }
    }

    /// Sends the rest, waits for the thread and returns the blob, gzip stream complete.
    fn finish(mut self) -> io::Result<BlobWriter> {
        self.send()?;
        self.join()
    }
}

impl Drop for Compressor {
    /// An extraction that failed waits for the thread (a few chunks at most), so the
    /// unfinished blob is gone from `ingest` when the error is returned.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that writes what it reads to `to` as well, remembering which side failed.
struct Tee<'a, R: Read> {
    from: &'a mut R,
    to: File,
    read_failed: bool,
    write: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.from.read(buf).inspect_err(|_| self.read_failed = true)?;
        if let Err(e) = self.to.write_all(&buf[..n]) {
            let reported = io::Error::new(e.kind(), e.to_string());
            self.write = Some(e);
            return Err(reported);
        }
        Ok(n)
    }
}

/// Extracts `input` into `staging` (which must not exist) and writes the rootfs layer into
/// `blobs`. On error `staging` is removed.
pub(crate) fn extract(
    input: impl Read,
    staging: &Path,
    blobs: &BlobStore,
) -> Result<Extracted, ContextError> {
    fs::DirBuilder::new()
        .mode(0o755)
        .create(staging)
        .map_err(|source| ContextError::Write { path: staging.to_path_buf(), source })?;
    let result = extract_into(input, staging, blobs);
    if result.is_err() {
        let _ = fs::remove_dir_all(staging);
    }
    result
}

/// A tar stream, gunzipped when it starts with gzip's magic bytes (contexts and layers may be
/// either, as Moby's `archive.DecompressStream` accepts).
pub(crate) fn open_archive<'a, R: BufRead + 'a>(
    mut buffered: R,
) -> Result<Archive<Box<dyn Read + 'a>>, ContextError> {
    let is_gzip = buffered
        .fill_buf()
        .map_err(|source| ContextError::Read { source })?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read + 'a> =
        if is_gzip { Box::new(GzDecoder::new(buffered)) } else { Box::new(buffered) };
    Ok(Archive::new(reader))
}

/// Entries that only carry metadata for the next one (PAX and GNU long-name headers), which the
/// `tar` crate has already applied.
pub(crate) fn is_metadata(kind: EntryType) -> bool {
    matches!(
        kind,
        EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
    )
}

fn extract_into(
    input: impl Read,
    root: &Path,
    blobs: &BlobStore,
) -> Result<Extracted, ContextError> {
    let read_err = |source| ContextError::Read { source };
    let mut archive = open_archive(BufReader::new(input))?;
    let mut layer = Builder::new(Compressor::start(blobs.writer()?, root)?);
    layer.mode(tar::HeaderMode::Complete);
    let mut config: Option<Vec<u8>> = None;
    let mut saw_rootfs = false;
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();

    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let kind = entry.header().entry_type();
        if is_metadata(kind) {
            continue;
        }
        let raw = entry.path().map_err(read_err)?.into_owned();
        let path = clean(&raw)?;
        if path == Path::new("config.json") {
            if entry.size() > MAX_CONFIG {
                return Err(ContextError::ConfigTooLarge);
            }
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(read_err)?;
            config = Some(buf);
            continue;
        }
        let rel = match path.strip_prefix("rootfs") {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => continue,
        };
        saw_rootfs = true;
        let dest = root.join(&rel);
        let werr = |source| ContextError::Write { path: dest.clone(), source };
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let mut header = entry.header().clone();
        match kind {
            EntryType::Directory => {
                if rel.as_os_str().is_empty() {
                    dir_modes.push((dest.clone(), mode));
                    continue;
                }
                ensure_parents(root, &rel, &raw)?;
                clear_slot(&dest, true)?;
                if !dest.is_dir() {
                    fs::DirBuilder::new().mode(0o755).create(&dest).map_err(werr)?;
                }
                chown(&dest, &header);
                dir_modes.push((dest.clone(), mode));
                layer.append_data(&mut header, &rel, io::empty()).map_err(|source| {
                    ContextError::Blob(BlobError::Io { path: dest.clone(), source })
                })?;
            }
            EntryType::Regular | EntryType::Continuous => {
                if rel.as_os_str().is_empty() {
                    return Err(ContextError::ThroughLink { path: raw });
                }
                ensure_parents(root, &rel, &raw)?;
                clear_slot(&dest, false)?;
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&dest)
                    .map_err(werr)?;
                // The content goes to the file and into the layer in one pass (the entry's
                // size is the header's; the tar reader stops at it).
                header.set_size(entry.size());
                let mut tee = Tee { from: &mut entry, to: f, read_failed: false, write: None };
                let appended = layer.append_data(&mut header, &rel, &mut tee);
                let Tee { to: f, read_failed, write, .. } = tee;
                match (appended, write) {
                    (Ok(()), _) => {}
                    (Err(_), Some(source)) => return Err(werr(source)),
                    (Err(source), None) if read_failed => {
                        return Err(ContextError::Read { source })
                    }
                    (Err(source), None) => {
                        return Err(ContextError::Blob(BlobError::Io {
                            path: dest.clone(),
                            source,
                        }))
                    }
                }
                drop(f);
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode & 0o777))
                    .map_err(werr)?;
                chown(&dest, &header);
                if mode & 0o7000 != 0 {
                    // chown clears set-id bits; put them back.
                    fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(werr)?;
                }
                crate::failpoint::hit("extract:file", &dest).map_err(werr)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(read_err)?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if rel.as_os_str().is_empty()
                    || target.as_os_str().is_empty()
                    || !symlink_stays_inside(&rel, &target)
                {
                    return Err(ContextError::SymlinkEscape { path: raw, target });
                }
                ensure_parents(root, &rel, &raw)?;
                clear_slot(&dest, false)?;
                std::os::unix::fs::symlink(&target, &dest).map_err(werr)?;
                chown(&dest, &header);
                layer.append_link(&mut header, &rel, &target).map_err(|source| {
                    ContextError::Blob(BlobError::Io { path: dest.clone(), source })
                })?;
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
                let target = clean(&target_raw).map_err(|_| escape())?;
                // Moby strips a leading `rootfs/` (case-insensitively) from link targets.
                let mut comps = target.components();
                let first = comps.next().map(|c| c.as_os_str().to_string_lossy().to_lowercase());
                if first.as_deref() != Some("rootfs") || rel.as_os_str().is_empty() {
                    return Err(escape());
                }
                let target_rel: PathBuf = comps.collect();
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
                layer.append_link(&mut header, &rel, &target_rel).map_err(|source| {
                    ContextError::Blob(BlobError::Io { path: dest.clone(), source })
                })?;
            }
            EntryType::Char | EntryType::Block => {
                return Err(ContextError::DeviceNode { path: raw })
            }
            _ => return Err(ContextError::Unsupported { path: raw }),
        }
    }
    if !saw_rootfs {
        return Err(ContextError::NoRootfs);
    }
    let config = config.ok_or(ContextError::ConfigNotFound)?;
    // Directory modes last, so a read-only directory did not block its children.
    for (dir, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|source| ContextError::Write { path: dir.clone(), source })?;
    }
    let blob_io = |source| ContextError::Blob(BlobError::Io { path: root.to_path_buf(), source });
    let gz = layer.into_inner().map_err(blob_io)?;
    let writer: BlobWriter = gz.finish().map_err(blob_io)?;
    let layer_size = writer.size();
    let layer_digest = writer.commit()?;
    Ok(Extracted { config, layer_digest, layer_size })
}
