//! The volume service's own store: which driver owns which volume, with its labels and
//! options, and which v2 plugin it holds a reference on (Moby keeps the same facts in
//! `<data-root>/volumes/metadata.db`; here `<dir>/volumes.json`).
//!
//! The whole file is rewritten on each change (temp file, fsync, rename, fsync of the
//! directory), so a crash leaves the old or the new content. A file that cannot be read is
//! set aside as `volumes.json.broken-<n>` and logged: the daemon starts with no volumes
//! rather than not at all.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::VolumeError;

/// The largest store file read (a store of ordinary volumes is a few hundred bytes each).
pub const MAX_STORE_BYTES: u64 = 64 << 20;

/// What the store keeps of one volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VolumeRecord {
    /// The volume name.
    #[serde(rename = "Name")]
    pub name: String,
    /// The driver's name as the getter gives it (`localvol:latest` for a v2 plugin).
    #[serde(rename = "Driver")]
    pub driver: String,
    /// `Labels` as created (`null` when none were sent).
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// The driver options as created.
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, String>>,
    /// The ID of the v2 plugin this volume holds a reference on; `None` for a v1 driver
    /// (not counted) or a reference not taken.
    #[serde(rename = "PluginID", default, skip_serializing_if = "Option::is_none")]
    pub plugin_id: Option<String>,
}

impl VolumeRecord {
    /// A record of `name` on `driver`.
    pub fn new(name: impl Into<String>, driver: impl Into<String>) -> Self {
        Self { name: name.into(), driver: driver.into(), ..Self::default() }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    #[serde(rename = "Volumes", default)]
    volumes: Vec<VolumeRecord>,
}

/// The store: records in memory, written through to disk.
#[derive(Debug)]
pub struct VolumeStore {
    path: PathBuf,
    volumes: BTreeMap<String, VolumeRecord>,
}

impl VolumeStore {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// [`VolumeError::Store`] when `dir` cannot be created.
    pub fn open(dir: &Path) -> Result<Self, VolumeError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| VolumeError::Store { path: dir.to_owned(), source })?;
        let path = dir.join("volumes.json");
        let volumes = match read(&path) {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                let aside = set_aside(&path);
                tracing::error!(path = %path.display(), error = %e, aside = ?aside,
                    "volume store unreadable; set aside, starting with no volumes");
                BTreeMap::new()
            }
        };
        Ok(Self { path, volumes })
    }

    /// The file behind the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record of `name`.
    pub fn get(&self, name: &str) -> Option<&VolumeRecord> {
        self.volumes.get(name)
    }

    /// Every record, by name.
    pub fn all(&self) -> impl Iterator<Item = &VolumeRecord> {
        self.volumes.values()
    }

    /// Adds or replaces a record; in memory only once it is on disk.
    ///
    /// # Errors
    /// [`VolumeError::Store`] when the file cannot be written.
    pub fn put(&mut self, record: VolumeRecord) -> Result<(), VolumeError> {
        let mut next = self.volumes.clone();
        next.insert(record.name.clone(), record);
        self.write(next)
    }

    /// Removes a record; returns it.
    ///
    /// # Errors
    /// [`VolumeError::Store`] when the file cannot be written.
    pub fn remove(&mut self, name: &str) -> Result<Option<VolumeRecord>, VolumeError> {
        let mut next = self.volumes.clone();
        let old = next.remove(name);
        if old.is_some() {
            self.write(next)?;
        }
        Ok(old)
    }

    fn write(&mut self, next: BTreeMap<String, VolumeRecord>) -> Result<(), VolumeError> {
        let file = OnDisk { volumes: next.values().cloned().collect() };
        let err = |source| VolumeError::Store { path: self.path.clone(), source };
        let data = serde_json::to_vec(&file).map_err(|e| err(io::Error::other(e)))?;
        write_atomic(&self.path, &data).map_err(err)?;
        self.volumes = next;
        Ok(())
    }
}

fn read(path: &Path) -> io::Result<BTreeMap<String, VolumeRecord>> {
    let f = File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file"));
    }
    let mut data = Vec::new();
    f.take(MAX_STORE_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_STORE_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "larger than 64 MiB"));
    }
    let file: OnDisk =
        serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(file.volumes.into_iter().map(|v| (v.name.clone(), v)).collect())
}

fn set_aside(path: &Path) -> Option<PathBuf> {
    (0..100).find_map(|n| {
        let aside = path.with_extension(format!("json.broken-{n}"));
        (!aside.exists() && fs::rename(path, &aside).is_ok()).then_some(aside)
    })
}

/// Temp file in the same directory, fsync, rename over `path`, fsync the directory.
fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(".volumes.json.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f =
            OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_a_broken_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = VolumeStore::open(dir.path()).unwrap();
        let mut r = VolumeRecord::new("v1", "localvol:latest");
        r.labels = Some([("a".to_owned(), "b".to_owned())].into());
        r.plugin_id = Some("abc".to_owned());
        s.put(r.clone()).unwrap();
        s.put(VolumeRecord::new("v2", "legacy")).unwrap();
        assert_eq!(s.remove("v2").unwrap().unwrap().driver, "legacy");
        assert_eq!(s.remove("v2").unwrap(), None);
        let s = VolumeStore::open(dir.path()).unwrap();
        assert_eq!(s.all().collect::<Vec<_>>(), [&r]);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(leftovers.len(), 1, "only volumes.json, no temp files");

        fs::write(dir.path().join("volumes.json"), b"{not json").unwrap();
        let s = VolumeStore::open(dir.path()).unwrap();
        assert_eq!(s.all().count(), 0);
        assert!(dir.path().join("volumes.json.broken-0").exists());
    }
}
