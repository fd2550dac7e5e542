//! Discovery: finding v1 plugins by name in a socket directory and spec directories.
//!
//! Moby's rules (`pkg/plugins/discovery.go`), with the precedence kept exactly:
//! `<socket dir>/N.sock`, `<socket dir>/N/N.sock`, then for each spec directory in order
//! `N.spec`, `N/N.spec`, `N.json`, `N/N.json`. The first existing candidate wins; a broken
//! file is an error naming it, never a fall-through to a later candidate.
//!
//! Where Moby is only accidentally different, [`LocalRegistry::scan`] is made to agree with
//! [`LocalRegistry::plugin`] (difference 2): a name is listed when and only when `plugin(name)`
//! would find a file for it, symlinked sockets are listed, and each name appears once.

use std::collections::HashSet;
use std::fs::FileType;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dockplug_protocol::common::{DEFAULT_SOCKET_DIR, DEFAULT_SPEC_DIRS};
use serde_json::Value;

use crate::address::{Address, AddressError};
use crate::tls::TlsOptions;

/// The largest spec file read (a spec holds one URL or a small JSON object).
pub const MAX_SPEC_BYTES: u64 = 64 * 1024;

/// Why discovery failed for a name or a directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// No socket or spec file has this name.
    #[error("could not find plugin {name} in v1 plugin registry: plugin not found")]
    NotFound {
        /// The name looked up.
        name: String,
    },
    /// The name is empty or holds a path separator or `..`.
    #[error("invalid plugin name {name:?}")]
    InvalidName {
        /// The name looked up.
        name: String,
    },
    /// A file or directory exists but cannot be read (permissions, a symlink loop, ...).
    #[error("cannot read {path:?}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A spec path is not a regular file (a directory, a FIFO, a device).
    #[error("spec file {path:?} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A spec file is larger than [`MAX_SPEC_BYTES`].
    #[error("spec file {path:?} is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A `.json` spec file is not valid JSON of the expected shape.
    #[error("invalid JSON spec file {path:?}: {reason}")]
    BadJson {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A spec file holds an address no transport can reach.
    #[error("spec file {path:?} holds a bad address")]
    BadAddress {
        /// The file.
        path: PathBuf,
        /// The address problem.
        #[source]
        source: AddressError,
    },
}

/// Where a plugin's name resolved: its address, TLS options and the file that said so.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginSpec {
    /// The plugin's name (from the file name, never from a `Name` key).
    pub name: String,
    /// Where it listens.
    pub addr: Address,
    /// TLS options: insecure for sockets and `.spec` files, as in Moby; `None` for a `.json`
    /// file without `TLSConfig`.
    pub tls: Option<TlsOptions>,
    /// The socket or spec file found.
    pub source: PathBuf,
    /// For a socket: its identity, so a re-created socket is told apart from a stale one.
    pub socket_id: Option<SocketId>,
}

/// The identity of a socket file (inode and change time): a socket re-created at the same
/// path has a different one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId {
    ino: u64,
    ctime: i64,
    ctime_nsec: i64,
}

impl SocketId {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        SocketId { ino: meta.ino(), ctime: meta.ctime(), ctime_nsec: meta.ctime_nsec() }
    }

    /// The identity of the socket at `path` now, if one is there.
    pub fn current(path: &Path) -> Option<SocketId> {
        std::fs::metadata(path).ok().filter(|m| m.file_type().is_socket()).map(|m| Self::of(&m))
    }
}

/// The directories v1 plugins are discovered in.
///
/// [`LocalRegistry::new`] uses Moby's defaults; [`LocalRegistry::with_dirs`] takes any
/// directories (tests and tools use their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRegistry {
    socket_dirs: Vec<PathBuf>,
    spec_dirs: Vec<PathBuf>,
    /// The listings of earlier scans, reused while their directory is unchanged.
    listings: Listings,
}

impl Default for LocalRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalRegistry {
    /// Moby's directories: sockets in `/run/docker/plugins`; specs in `/etc/docker/plugins`
    /// then `/usr/lib/docker/plugins`, or the rootless paths of [`spec_dirs_for_env`] when
    /// `ROOTLESSKIT_STATE_DIR` is set.
    pub fn new() -> Self {
        Self {
            socket_dirs: vec![PathBuf::from(DEFAULT_SOCKET_DIR)],
            spec_dirs: spec_dirs_for_env(|k| std::env::var_os(k)),
            listings: Listings::default(),
        }
    }

    /// The given directories, searched in order: all socket directories first, then all
    /// spec directories.
    pub fn with_dirs<S, P>(socket_dirs: S, spec_dirs: P) -> Self
    where
        S: IntoIterator,
        S::Item: Into<PathBuf>,
        P: IntoIterator,
        P::Item: Into<PathBuf>,
    {
        Self {
            socket_dirs: socket_dirs.into_iter().map(Into::into).collect(),
            spec_dirs: spec_dirs.into_iter().map(Into::into).collect(),
            listings: Listings::default(),
        }
    }

    /// The socket directories searched.
    pub fn socket_dirs(&self) -> &[PathBuf] {
        &self.socket_dirs
    }

    /// The spec directories searched, in priority order.
    pub fn spec_dirs(&self) -> &[PathBuf] {
        &self.spec_dirs
    }

    /// Every plugin name found, each once, in lookup order (sockets, then spec directories).
    ///
    /// Missing directories are skipped; a directory that cannot be read is an error. Entries
    /// that `plugin(name)` would not resolve (a directory named `x.spec`, `a/b.sock` inside a
    /// directory not named `b`) are not listed.
    ///
    /// A directory unchanged since an earlier scan by this value (same device, inode, size,
    /// link count, modification and change times, the change at least 2 s before that scan
    /// read it) is not read again: its names and entry types are the ones listed then.
    /// Symbolic links and sub-directories are looked at anew every time.
    pub fn scan(&self) -> Result<Vec<String>, DiscoveryError> {
        // Every listing first (sockets, then specs), so the names can be borrowed for the
        // duplicate check.
        let dirs: Vec<&PathBuf> = self.socket_dirs.iter().chain(&self.spec_dirs).collect();
        let lists: Vec<Arc<[Entry]>> =
            dirs.iter().map(|d| self.listings.get(d)).collect::<Result<_, _>>()?;
        let total = lists.iter().map(|l| l.len()).sum();
        let mut seen: HashSet<&str, BuildHasherDefault<NameHasher>> =
            HashSet::with_capacity_and_hasher(total, Default::default());
        let mut names = Vec::new();
        for (l, (dir, list)) in dirs.iter().zip(&lists).enumerate() {
            let sockets = l < self.socket_dirs.len();
            for e in list.iter() {
                let len = if sockets { e.socket_name(dir) } else { e.spec_name(dir) };
                if let Some(len) = len {
                    let name = &e.file_name[..len];
                    if seen.insert(name) {
                        names.push(name.to_owned());
                    }
                }
            }
        }
        Ok(names)
    }

    /// Resolve `name` to an address, by Moby's precedence (see the module docs).
    pub fn plugin(&self, name: &str) -> Result<PluginSpec, DiscoveryError> {
        if name.is_empty()
            || name.contains('/')
            || name == "."
            || name == ".."
            || name.contains('\0')
        {
            return Err(DiscoveryError::InvalidName { name: name.to_owned() });
        }
        for dir in &self.socket_dirs {
            for nested in [false, true] {
                // Each candidate is built only when the one before it is missing.
                let path = candidate(dir, name, nested, "sock");
                let Some(meta) = stat(&path)? else { continue };
                if !meta.file_type().is_socket() {
                    continue;
                }
                let text = format!("unix://{}", path.display());
                let addr = text
                    .parse()
                    .map_err(|source| DiscoveryError::BadAddress { path: path.clone(), source })?;
                return Ok(PluginSpec {
                    name: name.to_owned(),
                    addr,
                    tls: Some(TlsOptions::insecure()),
                    source: path,
                    socket_id: Some(SocketId::of(&meta)),
                });
            }
        }
        for dir in &self.spec_dirs {
            for (nested, ext) in [(false, "spec"), (true, "spec"), (false, "json"), (true, "json")]
            {
                let path = candidate(dir, name, nested, ext);
                let Some(meta) = stat(&path)? else { continue };
                // Opening a FIFO would block: only regular files are read.
                if !meta.is_file() {
                    return Err(DiscoveryError::NotAFile { path });
                }
                let text = read_spec(&path, meta.len())?;
                let (addr, tls) = if ext == "json" {
                    parse_json_spec(&path, &text)?
                } else {
                    (text.trim().to_owned(), Some(TlsOptions::insecure()))
                };
                let addr = addr
                    .parse()
                    .map_err(|source| DiscoveryError::BadAddress { path: path.clone(), source })?;
                return Ok(PluginSpec {
                    name: name.to_owned(),
                    addr,
                    tls,
                    source: path,
                    socket_id: None,
                });
            }
        }
        Err(DiscoveryError::NotFound { name: name.to_owned() })
    }
}

/// Moby's spec directories for an environment (`env` looks a variable up).
///
/// Rootless (`ROOTLESSKIT_STATE_DIR` non-empty): `$XDG_CONFIG_HOME/docker/plugins` (else
/// `$HOME/.config/docker/plugins`, else `/etc/docker/plugins`), then
/// `$HOME/.local/lib/docker/plugins` (else `/usr/lib/docker/plugins`). This is what Moby's
/// documentation intends; its code since v25 inverts the first test (difference 1), which we do not
/// copy. Otherwise: `/etc/docker/plugins`, `/usr/lib/docker/plugins`.
pub fn spec_dirs_for_env(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Vec<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    if set("ROOTLESSKIT_STATE_DIR").is_none() {
        return DEFAULT_SPEC_DIRS.iter().map(PathBuf::from).collect();
    }
    let home = set("HOME").map(PathBuf::from);
    let config = set("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")))
        .map(|c| c.join("docker/plugins"))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SPEC_DIRS[0]));
    let lib = home
        .map(|h| h.join(".local/lib/docker/plugins"))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SPEC_DIRS[1]));
    vec![config, lib]
}

/// `stat` following symlinks: `None` when nothing is there, an error for anything else
/// (permissions, a symlink loop).
fn stat(path: &Path) -> Result<Option<std::fs::Metadata>, DiscoveryError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(20 /* ENOTDIR */) =>
        {
            Ok(None)
        }
        Err(source) => Err(DiscoveryError::Io { path: path.to_owned(), source }),
    }
}

/// The text of the spec file at `path`, whose `stat` said `size` bytes: bounded by
/// [`MAX_SPEC_BYTES`] whatever the file does meanwhile.
fn read_spec(path: &Path, size: u64) -> Result<String, DiscoveryError> {
    let io = |source| DiscoveryError::Io { path: path.to_owned(), source };
    let too_large = || DiscoveryError::TooLarge { path: path.to_owned(), limit: MAX_SPEC_BYTES };
    if size > MAX_SPEC_BYTES {
        return Err(too_large());
    }
    let mut file = std::fs::File::open(path).map_err(io)?;
    // Room for the whole file and one byte more, so one read usually sees it all.
    let mut buf = vec![0u8; size as usize + 1];
    let mut len = 0;
    loop {
        if len == buf.len() {
            if buf.len() as u64 > MAX_SPEC_BYTES {
                return Err(too_large());
            }
            let grow = (buf.len() * 2).min(MAX_SPEC_BYTES as usize + 1);
            buf.resize(grow, 0);
        }
        let n = match file.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        len += n;
        // The end: a read of nothing, or exactly the size `stat` gave with room to spare
        // (a regular file read short of the buffer is at its end; a file that changed
        // size meanwhile is read on to the end).
        if n == 0 || (len as u64 == size && len < buf.len()) {
            break;
        }
    }
    if len as u64 > MAX_SPEC_BYTES {
        return Err(too_large());
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|_| DiscoveryError::BadJson {
        path: path.to_owned(),
        reason: "not UTF-8 text".into(),
    })
}

/// A `.json` spec: `Addr` and `TLSConfig`, keys matched case-insensitively as Go does, `Name`
/// ignored. A `TLSConfig` without `CAFile` forces `InsecureSkipVerify` (Moby's rule, kept
/// because existing spec files rely on it; difference 6).
fn parse_json_spec(
    path: &Path,
    text: &str,
) -> Result<(String, Option<TlsOptions>), DiscoveryError> {
    let bad = |reason: String| DiscoveryError::BadJson { path: path.to_owned(), reason };
    let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(bad("not a JSON object".into()));
    };
    let get = |obj: &serde_json::Map<String, Value>, key: &str| {
        obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone())
    };
    let addr = match get(&obj, "Addr") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(bad("Addr is not a string".into())),
    };
    let tls = match get(&obj, "TLSConfig") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) => {
            let path_of = |key: &str| -> Result<Option<PathBuf>, DiscoveryError> {
                match get(&t, key) {
                    Some(Value::String(s)) if !s.is_empty() => Ok(Some(PathBuf::from(s))),
                    None | Some(Value::Null) | Some(Value::String(_)) => Ok(None),
                    Some(_) => Err(bad(format!("TLSConfig.{key} is not a string"))),
                }
            };
            let flag = |key: &str| -> Result<bool, DiscoveryError> {
                match get(&t, key) {
                    Some(Value::Bool(b)) => Ok(b),
                    None | Some(Value::Null) => Ok(false),
                    Some(_) => Err(bad(format!("TLSConfig.{key} is not a boolean"))),
                }
            };
            let min_version = match get(&t, "MinVersion") {
                None | Some(Value::Null) => 0,
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| bad("TLSConfig.MinVersion is not a uint16".into()))?,
                Some(_) => return Err(bad("TLSConfig.MinVersion is not a number".into())),
            };
            let mut opts = TlsOptions {
                ca_file: path_of("CAFile")?,
                cert_file: path_of("CertFile")?,
                key_file: path_of("KeyFile")?,
                insecure_skip_verify: flag("InsecureSkipVerify")?,
                exclusive_root_pools: flag("ExclusiveRootPools")?,
                min_version,
            };
            if opts.ca_file.is_none() {
                opts.insecure_skip_verify = true;
            }
            Some(opts)
        }
        Some(_) => return Err(bad("TLSConfig is not an object".into())),
    };
    Ok((addr, tls))
}

/// One directory entry as `scan` reads it.
struct Entry {
    file_name: String,
    /// Where the extension's dot is, when the name has an extension and a stem.
    dot: Option<usize>,
    kind: Kind,
    /// The name's first 8 bytes, big-endian and zero-padded: sorting compares these first
    /// (a name holds no NUL, so the order is the names' byte order).
    key: u64,
}

impl Entry {
    fn ext(&self) -> Option<&str> {
        self.dot.map(|d| &self.file_name[d + 1..])
    }

    fn path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.file_name)
    }

    /// In a socket directory: the length of the plugin name this entry lists (`N.sock`, a
    /// socket; `N/`, holding the socket `N.sock`), if it lists one.
    fn socket_name(&self, dir: &Path) -> Option<usize> {
        if self.ext() == Some("sock") && self.kind.is(|| self.path(dir), Want::Socket) {
            return self.dot;
        }
        let nested = || candidate(dir, &self.file_name, true, "sock");
        (self.kind.is(|| self.path(dir), Want::Dir) && is_socket(&nested()))
            .then_some(self.file_name.len())
    }

    /// In a spec directory: the length of the plugin name this entry lists (`N.spec` or
    /// `N.json`, a regular file; `N/`, holding one of them), if it lists one.
    fn spec_name(&self, dir: &Path) -> Option<usize> {
        if self.kind.is(|| self.path(dir), Want::Dir) {
            let listed =
                ["spec", "json"].iter().any(|x| candidate(dir, &self.file_name, true, x).is_file());
            return listed.then_some(self.file_name.len());
        }
        if matches!(self.ext(), Some("spec" | "json"))
            && self.kind.is(|| self.path(dir), Want::File)
        {
            return self.dot;
        }
        None
    }
}

/// `dir/name.ext`, or `dir/name/name.ext` when `nested`, in one allocation (as
/// `dir.join(..)` would spell it).
fn candidate(dir: &Path, name: &str, nested: bool, ext: &str) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let d = dir.as_os_str().as_bytes();
    let mut v = Vec::with_capacity(d.len() + 2 * name.len() + ext.len() + 3);
    v.extend_from_slice(d);
    if !d.is_empty() && !d.ends_with(b"/") {
        v.push(b'/');
    }
    v.extend_from_slice(name.as_bytes());
    if nested {
        v.push(b'/');
        v.extend_from_slice(name.as_bytes());
    }
    v.push(b'.');
    v.extend_from_slice(ext.as_bytes());
    PathBuf::from(std::ffi::OsString::from_vec(v))
}

/// A cheap hash for `scan`'s duplicate check (names from a local directory: short, and
/// written by whoever may write there anyway). FxHash's word step.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or_default());
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.0 =
            (self.0.rotate_left(5) ^ u64::from_le_bytes(tail) ^ rest.len() as u64).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// How long a directory must have been unchanged before its listing is kept for reuse: far
/// more than the file system clock's granularity, so a change made after the listing was
/// read always gives the directory a different change time.
const SETTLED: Duration = Duration::from_secs(2);

/// The listings `scan` read, per directory, with the directory's identity at the time.
#[derive(Default)]
struct Listings(Mutex<Vec<Listing>>);

struct Listing {
    dir: PathBuf,
    id: DirId,
    entries: Arc<[Entry]>,
}

/// What changes whenever a directory's entries do.
#[derive(Clone, Copy, PartialEq, Eq)]
struct DirId {
    dev: u64,
    ino: u64,
    size: u64,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl DirId {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        DirId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            nlink: meta.nlink(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the last change (`ctime`; `mtime` can be set back, `ctime` cannot) was
    /// at least [`SETTLED`] before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else { return false };
        let nanos = |(s, ns): (i64, i64)| i128::from(s) * 1_000_000_000 + i128::from(ns);
        let now = now.as_nanos() as i128;
        let settled = SETTLED.as_nanos() as i128;
        nanos(self.ctime) + settled <= now && nanos(self.mtime) + settled <= now
    }
}

impl Listings {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Listing>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entries of `dir`: the kept listing while the directory is unchanged, else read.
    fn get(&self, dir: &Path) -> Result<Arc<[Entry]>, DiscoveryError> {
        // The clock is read before the directory: a change after this instant gives it a
        // change time after `now - SETTLED`, so it cannot match a settled identity.
        self.get_at(dir, SystemTime::now())
    }

    fn get_at(&self, dir: &Path, now: SystemTime) -> Result<Arc<[Entry]>, DiscoveryError> {
        let Ok(meta) = std::fs::metadata(dir) else {
            // Missing, or unreadable: `entries` says which (and nothing is kept).
            self.lock().retain(|l| l.dir != dir);
            return entries(dir).map(Arc::from);
        };
        let id = DirId::of(&meta);
        if let Some(l) = self.lock().iter().find(|l| l.dir == dir && l.id == id) {
            return Ok(Arc::clone(&l.entries));
        }
        let list: Arc<[Entry]> = entries(dir)?.into();
        let mut kept = self.lock();
        kept.retain(|l| l.dir != dir);
        if id.settled(now) {
            kept.push(Listing { dir: dir.to_owned(), id, entries: Arc::clone(&list) });
        }
        Ok(list)
    }
}

impl Clone for Listings {
    /// A clone starts with nothing kept.
    fn clone(&self) -> Self {
        Listings::default()
    }
}

impl PartialEq for Listings {
    /// What is kept never changes what a scan returns.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Listings {}

impl std::fmt::Debug for Listings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listings")
    }
}

fn is_socket(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| m.file_type().is_socket()).unwrap_or(false)
}

/// An entry's type as the directory listing gives it (no `stat` per entry, as Go's
/// `os.ReadDir` in Moby's `Scan`); a symbolic link is followed when asked about.
#[derive(Clone, Copy)]
enum Kind {
    Listed { socket: bool, dir: bool, file: bool },
    Link,
}

impl Kind {
    fn of(t: FileType) -> Kind {
        if t.is_symlink() {
            Kind::Link
        } else {
            Kind::Listed { socket: t.is_socket(), dir: t.is_dir(), file: t.is_file() }
        }
    }

    /// Whether the entry is `want`, following a link as `std::fs::metadata` does.
    fn is(self, path: impl FnOnce() -> PathBuf, want: Want) -> bool {
        let test = |t: FileType| match want {
            Want::Socket => t.is_socket(),
            Want::Dir => t.is_dir(),
            Want::File => t.is_file(),
        };
        match self {
            Kind::Link => std::fs::metadata(path()).map(|m| test(m.file_type())).unwrap_or(false),
            Kind::Listed { socket, dir, file } => match want {
                Want::Socket => socket,
                Want::Dir => dir,
                Want::File => file,
            },
        }
    }
}

/// The entry types `scan` asks about.
#[derive(Clone, Copy)]
enum Want {
    Socket,
    Dir,
    File,
}

fn entries(dir: &Path) -> Result<Vec<Entry>, DiscoveryError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(DiscoveryError::Io { path: dir.to_owned(), source }),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| DiscoveryError::Io { path: dir.to_owned(), source })?;
        let Ok(file_name) = entry.file_name().into_string() else { continue };
        // Linux fills the type from the listing (d_type); elsewhere this is one lstat.
        // An entry whose type cannot be read is followed like a link (one stat).
        let kind = entry.file_type().map(Kind::of).unwrap_or(Kind::Link);
        let dot = file_name.rfind('.').filter(|&d| d > 0);
        let mut key = [0u8; 8];
        let head = &file_name.as_bytes()[..file_name.len().min(8)];
        key[..head.len()].copy_from_slice(head);
        out.push(Entry { file_name, dot, kind, key: u64::from_be_bytes(key) });
    }
    // Names are unique within a directory: the unstable sort gives the one order (Go's
    // `os.ReadDir` order, by name).
    out.sort_unstable_by(|a, b| a.key.cmp(&b.key).then_with(|| a.file_name.cmp(&b.file_name)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn spec_dirs_follow_xdg_when_rootless() {
        assert_eq!(
            spec_dirs_for_env(env(&[("HOME", "/home/u")])),
            vec![PathBuf::from("/etc/docker/plugins"), PathBuf::from("/usr/lib/docker/plugins")]
        );
        assert_eq!(
            spec_dirs_for_env(env(&[
                ("ROOTLESSKIT_STATE_DIR", "/r"),
                ("XDG_CONFIG_HOME", "/x"),
                ("HOME", "/home/u")
            ])),
            vec![
                PathBuf::from("/x/docker/plugins"),
                PathBuf::from("/home/u/.local/lib/docker/plugins")
            ]
        );
        assert_eq!(
            spec_dirs_for_env(env(&[("ROOTLESSKIT_STATE_DIR", "/r"), ("HOME", "/home/u")])),
            vec![
                PathBuf::from("/home/u/.config/docker/plugins"),
                PathBuf::from("/home/u/.local/lib/docker/plugins")
            ]
        );
        assert_eq!(
            spec_dirs_for_env(env(&[("ROOTLESSKIT_STATE_DIR", "/r")])),
            vec![PathBuf::from("/etc/docker/plugins"), PathBuf::from("/usr/lib/docker/plugins")]
        );
    }

    #[test]
    fn listings_are_kept_only_once_settled_and_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.spec"), "unix:///a.sock").unwrap();
        let kept = Listings::default();
        let names = |l: &[Entry]| l.iter().map(|e| e.file_name.clone()).collect::<Vec<_>>();
        // Changed just now: read, not kept.
        let first = kept.get(dir.path()).unwrap();
        assert_eq!(names(&first), ["a.spec"]);
        assert!(kept.lock().is_empty());
        // Seen as settled (the clock read later): kept, and reused while unchanged.
        let later = SystemTime::now() + 2 * SETTLED;
        let kept_once = kept.get_at(dir.path(), later).unwrap();
        assert!(Arc::ptr_eq(&kept_once, &kept.get_at(dir.path(), later).unwrap()));
        // A change gives the directory another identity (here its link count): read again.
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/b.spec"), "unix:///b.sock").unwrap();
        let changed = kept.get_at(dir.path(), later + 2 * SETTLED).unwrap();
        assert!(!Arc::ptr_eq(&kept_once, &changed));
        assert_eq!(names(&changed), ["a.spec", "b"]);
        assert_eq!(kept.lock().len(), 1, "one listing per directory");
        // Gone: empty, and nothing kept for it.
        drop(dir);
        assert!(kept.get_at(Path::new("/nonexistent/dockplug"), later).unwrap().is_empty());
        let reg = LocalRegistry::with_dirs(["/nonexistent/s"], ["/nonexistent/p"]);
        assert_eq!(reg.clone(), reg, "what is kept never makes two registries differ");
    }

    #[test]
    fn settled_means_changed_long_enough_ago() {
        let at = |s: i64| DirId { dev: 1, ino: 2, size: 3, nlink: 4, mtime: (s, 0), ctime: (s, 5) };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert!(at(990).settled(now));
        assert!(!at(999).settled(now));
        assert!(!at(2_000).settled(now), "a change time in the future is never settled");
    }

    #[test]
    fn json_spec_keys_are_case_insensitive_and_name_is_ignored() {
        let (addr, tls) = parse_json_spec(
            Path::new("x.json"),
            r#"{"name":"other","addr":"https://h:1","tlsconfig":{"cafile":"/ca","CertFile":"/c","KeyFile":"/k"}}"#,
        )
        .unwrap();
        assert_eq!(addr, "https://h:1");
        let tls = tls.unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some(Path::new("/ca")));
        assert!(!tls.insecure_skip_verify);
        let (_, tls) =
            parse_json_spec(Path::new("x.json"), r#"{"Addr":"https://h:1","TLSConfig":{}}"#)
                .unwrap();
        assert!(tls.unwrap().insecure_skip_verify, "no CAFile forces insecure (difference 6)");
        let (_, tls) = parse_json_spec(Path::new("x.json"), r#"{"Addr":"tcp://h:1"}"#).unwrap();
        assert!(tls.is_none());
        let (_, tls) = parse_json_spec(
            Path::new("x.json"),
            r#"{"Addr":"https://h:1","TLSConfig":{"CAFile":"/ca","minversion":772}}"#,
        )
        .unwrap();
        assert_eq!(tls.unwrap().min_version, crate::tls::TLS13);
        for bad in [r#"{"TLSConfig":{"MinVersion":70000}}"#, r#"{"TLSConfig":{"MinVersion":"x"}}"#]
        {
            assert!(matches!(
                parse_json_spec(Path::new("x.json"), bad),
                Err(DiscoveryError::BadJson { .. })
            ));
        }
        assert!(matches!(
            parse_json_spec(Path::new("x.json"), "[1]"),
            Err(DiscoveryError::BadJson { .. })
        ));
    }
}
