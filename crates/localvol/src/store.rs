//! The volume store: directories under a root, their options, and the mounts held on each,
//! kept in `<root>/localvol.json` so that they survive restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use dockplug_sdk::protocol::timestamp::Timestamp;
use dockplug_sdk::protocol::volume::Volume;
use serde::{Deserialize, Serialize};

/// The name of the state file under the root.
pub const STATE_FILE: &str = "localvol.json";

/// A failed volume operation; its text is what the daemon shows the user.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No volume of that name.
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    /// The name cannot be a directory name.
    #[error("invalid volume name {0:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 255 bytes")]
    InvalidName(String),
    /// A `-o` option the driver does not know.
    #[error("unknown option {0:?}: localvol knows uid, gid and mode")]
    UnknownOption(String),
    /// A `-o` option with a bad value.
    #[error("invalid value {value:?} for option {key}: {why}")]
    InvalidOption {
        /// The option.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Remove of a volume that is still mounted.
    #[error("volume {name} is in use by {mounts} mount(s)")]
    InUse {
        /// The volume.
        name: String,
        /// How many mounts hold it.
        mounts: usize,
    },
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was done.
        action: &'static str,
        /// To which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file does not parse.
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io { action, path, source }
}

/// What is recorded of one volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Creation time, RFC 3339 (a text that does not parse reads as none).
    #[serde(default, deserialize_with = "lenient_time", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Owner uid given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Owner gid given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Permission bits given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// The mount ids that hold the volume.
    #[serde(default)]
    pub mounts: BTreeSet<String>,
}

fn lenient_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.and_then(|t| Timestamp::parse(&t).ok()))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    volumes: BTreeMap<String, Record>,
}

/// The store. Every change is written to the state file (temp file, fsync, rename) before the
/// call returns.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// `<root>/volumes` as text, the prefix of every mount point in a reply.
    volumes_dir: String,
    state: RwLock<State>,
}

/// Parsed `-o` options.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
}

fn parse_options(opts: &BTreeMap<String, String>) -> Result<Options, StoreError> {
    let mut o = Options::default();
    for (k, v) in opts {
        let bad = |why| StoreError::InvalidOption { key: k.clone(), value: v.clone(), why };
        match k.as_str() {
            "uid" => o.uid = Some(v.parse().map_err(|_| bad("expected a numeric uid"))?),
            "gid" => o.gid = Some(v.parse().map_err(|_| bad("expected a numeric gid"))?),
            "mode" => {
                let m = u32::from_str_radix(v.trim_start_matches("0o"), 8)
                    .map_err(|_| bad("expected octal permission bits such as 0755"))?;
                if m > 0o7777 {
                    return Err(bad("expected octal permission bits such as 0755"));
                }
                o.mode = Some(m);
            }
            _ => return Err(StoreError::UnknownOption(k.clone())),
        }
    }
    Ok(o)
}

/// Whether `name` is a safe directory name (Docker's local-driver rule).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Store {
    /// Open the store at `root` (created when missing), reading its state file.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(root.join("volumes")).map_err(io("create", root))?;
        let root = root.canonicalize().map_err(io("resolve", root))?;
        let file = root.join(STATE_FILE);
        let state = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { path: file.clone(), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io("read", &file)(e)),
        };
        let volumes_dir = root.join("volumes").display().to_string();
        Ok(Store { root, volumes_dir, state: RwLock::new(state) })
    }

    /// The root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where volume `name` lives.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    fn lock(&self) -> RwLockWriteGuard<'_, State> {
        // A panic while holding the lock leaves the state as last saved: keep serving.
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn save(&self, state: &State) -> Result<(), StoreError> {
        let file = self.root.join(STATE_FILE);
        let tmp = self.root.join(format!(".{STATE_FILE}.tmp"));
        let data = serde_json::to_vec_pretty(state)
            .map_err(|source| StoreError::Corrupt { path: file.clone(), source })?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &file)?;
            std::fs::File::open(&self.root)?.sync_all()
        };
        write().map_err(io("write", &file))
    }

    /// Create volume `name` with `-o` options (idempotent: an existing volume is kept).
    pub fn create(&self, name: &str, opts: &BTreeMap<String, String>) -> Result<(), StoreError> {
        if !valid_name(name) {
            return Err(StoreError::InvalidName(name.to_owned()));
        }
        let o = parse_options(opts)?;
        let mut state = self.lock();
        if state.volumes.contains_key(name) {
            return Ok(());
        }
        let dir = self.mountpoint(name);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        if let Some(mode) = o.mode {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                .map_err(io("chmod", &dir))?;
        }
        if o.uid.is_some() || o.gid.is_some() {
            nix::unistd::chown(
                &dir,
                o.uid.map(nix::unistd::Uid::from_raw),
                o.gid.map(nix::unistd::Gid::from_raw),
            )
            .map_err(|e| io("chown", &dir)(e.into()))?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let record = Record {
            created_at: Some(Timestamp::from_unix_nanos(now)),
            uid: o.uid,
            gid: o.gid,
            mode: o.mode,
            mounts: BTreeSet::new(),
        };
        state.volumes.insert(name.to_owned(), record);
        if let Err(e) = self.save(&state) {
            state.volumes.remove(name);
            return Err(e);
        }
        tracing::info!(name, "created");
        Ok(())
    }

    /// Remove volume `name` and its data; refused while it is mounted.
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        let Some(record) = state.volumes.get(name) else {
            return Err(StoreError::NoSuchVolume(name.to_owned()));
        };
        if !record.mounts.is_empty() {
            return Err(StoreError::InUse { name: name.to_owned(), mounts: record.mounts.len() });
        }
        let dir = self.mountpoint(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &dir)(e)),
        }
        let record = state.volumes.remove(name);
        if let Err(e) = self.save(&state) {
            if let Some(r) = record {
                state.volumes.insert(name.to_owned(), r);
            }
            return Err(e);
        }
        tracing::info!(name, "removed");
        Ok(())
    }

    fn volume(&self, name: &str, record: &Record, with_status: bool) -> Volume {
        // What `mountpoint(name).display()` gives, without a path join per call.
        let mut mountpoint = String::with_capacity(self.volumes_dir.len() + 1 + name.len());
        mountpoint.push_str(&self.volumes_dir);
        mountpoint.push('/');
        mountpoint.push_str(name);
        let mut v = Volume::new(name, mountpoint);
        v.created_at.clone_from(&record.created_at);
        if with_status {
            let mut status = serde_json::Map::new();
            status.insert("mounts".into(), record.mounts.len().into());
            v.status = Some(status);
        }
        v
    }

    /// Describe volume `name`, with its mount count in `Status`.
    pub fn get(&self, name: &str) -> Result<Volume, StoreError> {
        self.get_in(&self.read(), name)
    }

    fn get_in(&self, state: &State, name: &str) -> Result<Volume, StoreError> {
        let record =
            state.volumes.get(name).ok_or_else(|| StoreError::NoSuchVolume(name.to_owned()))?;
        Ok(self.volume(name, record, true))
    }

    /// Every volume, sorted by name.
    pub fn list(&self) -> Vec<Volume> {
        self.list_in(&self.read())
    }

    fn list_in(&self, state: &State) -> Vec<Volume> {
        state.volumes.iter().map(|(n, r)| self.volume(n, r, false)).collect()
    }

    /// The state to read when no change holds it (a change holds it while it writes the state
    /// file), `None` when one does: a read need not wait for a disk write, nor block a thread.
    fn try_read(&self) -> Option<RwLockReadGuard<'_, State>> {
        match self.state.try_read() {
            Ok(state) => Some(state),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// [`Store::get`] if no change is being written meanwhile, else `None`.
    pub fn try_get(&self, name: &str) -> Option<Result<Volume, StoreError>> {
        self.try_read().map(|state| self.get_in(&state, name))
    }

    /// [`Store::list`] if no change is being written meanwhile, else `None`.
    pub fn try_list(&self) -> Option<Vec<Volume>> {
        self.try_read().map(|state| self.list_in(&state))
    }

    /// Record mount `id` of volume `name` (idempotent) and return the mount point.
    pub fn mount(&self, name: &str, id: &str) -> Result<PathBuf, StoreError> {
        let mut state = self.lock();
        let record =
            state.volumes.get_mut(name).ok_or_else(|| StoreError::NoSuchVolume(name.to_owned()))?;
        let dir = self.mountpoint(name);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        }
        if record.mounts.insert(id.to_owned()) {
            let n = record.mounts.len();
            self.save(&state)?;
            tracing::info!(name, id, mounts = n, "mounted");
        }
        Ok(dir)
    }

    /// Forget mount `id` of volume `name` (an unknown id is not an error: calls may repeat).
    pub fn unmount(&self, name: &str, id: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        let record =
            state.volumes.get_mut(name).ok_or_else(|| StoreError::NoSuchVolume(name.to_owned()))?;
        if record.mounts.remove(id) {
            let n = record.mounts.len();
            self.save(&state)?;
            tracing::info!(name, id, mounts = n, "unmounted");
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn lifecycle_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create("v1", &opts(&[("mode", "0750")])).unwrap();
        let mp = store.mount("v1", "a").unwrap();
        store.mount("v1", "b").unwrap();
        store.mount("v1", "a").unwrap();
        assert!(mp.is_dir());
        assert_eq!(std::fs::metadata(&mp).unwrap().permissions().mode() & 0o7777, 0o750);
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        let v = store.get("v1").unwrap();
        assert_eq!(v.status.unwrap()["mounts"], 2);
        assert!(v.created_at.is_some());
        assert!(matches!(store.remove("v1"), Err(StoreError::InUse { mounts: 2, .. })));
        store.unmount("v1", "a").unwrap();
        store.unmount("v1", "a").unwrap();
        store.unmount("v1", "b").unwrap();
        store.remove("v1").unwrap();
        assert!(!mp.exists());
        assert!(matches!(store.get("v1"), Err(StoreError::NoSuchVolume(_))));
        assert_eq!(Store::open(dir.path()).unwrap().list(), vec![]);
    }

    #[test]
    fn reads_answer_at_once_unless_a_change_holds_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create("v", &opts(&[])).unwrap();
        let v = store.try_get("v").unwrap().unwrap();
        assert_eq!(v, store.get("v").unwrap());
        assert_eq!(v.mountpoint, store.mountpoint("v").display().to_string());
        assert!(matches!(store.try_get("w"), Some(Err(StoreError::NoSuchVolume(_)))));
        assert_eq!(store.try_list().unwrap(), store.list());
        let writing = store.lock();
        assert!(store.try_get("v").is_none());
        assert!(store.try_list().is_none());
        drop(writing);
        assert!(store.try_get("v").is_some());
    }

    #[test]
    fn hostile_names_and_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for bad in ["", "..", "../x", "a/b", ".hidden", "-x", &"a".repeat(256)] {
            assert!(
                matches!(store.create(bad, &opts(&[])), Err(StoreError::InvalidName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            store.create("v", &opts(&[("size", "1G")])),
            Err(StoreError::UnknownOption(_))
        ));
        assert!(matches!(
            store.create("v", &opts(&[("mode", "999")])),
            Err(StoreError::InvalidOption { .. })
        ));
        assert!(matches!(
            store.create("v", &opts(&[("uid", "root")])),
            Err(StoreError::InvalidOption { .. })
        ));
        assert!(store.list().is_empty());
    }

    #[test]
    fn owner_options_apply() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let me = nix::unistd::getuid().as_raw();
        let my_gid = nix::unistd::getgid().as_raw();
        store
            .create("owned", &opts(&[("uid", &me.to_string()), ("gid", &my_gid.to_string())]))
            .unwrap();
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(store.mountpoint("owned")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (me, my_gid));
    }

    #[test]
    fn creation_times_are_kept_as_written_and_a_bad_one_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let state = r#"{"volumes":{"a":{"created_at":"2024-05-01T12:00:00.5Z","mounts":[]},"b":{"created_at":"","mounts":[]}}}"#;
        std::fs::write(dir.path().join(STATE_FILE), state).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.get("a").unwrap().created_at.unwrap();
        assert_eq!(a.as_str(), "2024-05-01T12:00:00.5Z");
        assert_eq!(store.get("b").unwrap().created_at, None);
        store.create("c", &opts(&[])).unwrap();
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(saved["volumes"]["a"]["created_at"], "2024-05-01T12:00:00.5Z");
        let c = store.get("c").unwrap().created_at.unwrap();
        assert_eq!(saved["volumes"]["c"]["created_at"], c.as_str());
    }

    #[test]
    fn corrupt_state_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let e = Store::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is corrupt"), "{e}");
    }
}
