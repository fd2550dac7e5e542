//! The volume service: volumes through volume plugins of both kinds (Moby's
//! `daemon/volume/service`: `service.go`, `store.go`, `restore.go`), with Moby's error texts.
//!
//! Which driver owns which volume is kept in a [`VolumeStore`] of the service's own. Each
//! volume created through a v2 driver holds one reference on it ([`LookupMode::Acquire`]),
//! released when the volume is removed, so `docker plugin disable` of a driver with volumes
//! fails with `plugin NAME is in use`, as with dockerd. The manager persists reference
//! counts, so at restore a reference is taken again only for a volume whose recorded plugin
//! ID is not the plugin's current one (see [`Getter`]'s note on restore).
//!
//! `Mount` and `Unmount` have no caller in a daemon without containers; they are here
//! ([`VolumeService::mount`], [`VolumeService::unmount`]) for the daemon's own use, not on
//! the API.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dockplug_manager::LookupMode;
use dockplug_protocol::filters::Filters;
use dockplug_protocol::timestamp::ZERO_TIME;
use futures_util::StreamExt;

use crate::error::chain;
use crate::getter::Getter;

mod driver;
mod error;
mod store;

pub use driver::{Driver, DriverError, CAPABILITY};
pub use error::VolumeError;
pub use store::{VolumeRecord, VolumeStore, MAX_STORE_BYTES};

/// The label Moby gives volumes created without a name.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
/// The driver of a volume created without one (Moby's built-in; here only a plugin of that
/// name can serve it).
pub const DEFAULT_DRIVER: &str = "local";
/// The list filters Moby accepts.
pub const LIST_FILTERS: &[&str] = &["dangling", "name", "driver", "label"];

/// How many drivers `list` asks at once.
const LIST_PARALLELISM: usize = 8;

/// A volume as the API shows it (Moby's `volume.Volume`, without usage data).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Volume {
    /// The name.
    pub name: String,
    /// The driver.
    pub driver: String,
    /// `CreatedAt`, RFC 3339 (Go's zero time when the driver did not say, as dockerd shows).
    pub created_at: String,
    /// The host path, when known.
    pub mountpoint: String,
    /// Labels as created.
    pub labels: Option<BTreeMap<String, String>>,
    /// Driver options as created.
    pub options: Option<BTreeMap<String, String>>,
    /// `local` or `global`.
    pub scope: String,
    /// The driver's `Status` (inspect only).
    pub status: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Settings of a [`VolumeService`].
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct VolumeConfig {
    /// Bound on every driver call (`None`: Moby's, 1 to 2 minutes).
    pub call_timeout: Option<Duration>,
}

/// The volume service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct VolumeService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    getter: Getter,
    config: VolumeConfig,
    store: Mutex<VolumeStore>,
    /// One lock per volume name: operations on a name are serialised, others run alongside.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// v1 drivers used so far (`/info` lists them, as Moby lists its cached v1 drivers).
    v1_drivers: Mutex<HashSet<String>>,
    /// What Moby's store keeps of each known volume in memory (`names`): its `CreatedAt`
    /// and last known mount point, as the last create, get, mount or unmount left them. A
    /// create of a known volume answers with these, as dockerd does.
    cached: Mutex<HashMap<String, (String, String)>>,
    /// Set once the restore has gone through every known volume.
    restored: tokio::sync::watch::Sender<bool>,
}

impl VolumeService {
    /// Opens the service with its store in `dir` (Moby: `<data-root>/volumes`) and starts
    /// restoring driver references in the background (the API need not wait for drivers
    /// that are still coming back; [`VolumeService::restored`] waits for it): a volume whose
    /// driver no longer has it is dropped; a volume on a v2 driver whose reference was not
    /// recorded against the plugin's current ID takes one; a volume whose driver cannot be
    /// asked is kept as it is. Needs a tokio runtime.
    ///
    /// # Errors
    /// [`VolumeError::Store`] when the store cannot be opened.
    pub async fn open(
        getter: Getter,
        dir: &Path,
        config: VolumeConfig,
    ) -> Result<Self, VolumeError> {
        let store = VolumeStore::open(dir)?;
        let service = Self {
            inner: Arc::new(Inner {
                getter,
                config,
                store: Mutex::new(store),
                locks: Mutex::default(),
                v1_drivers: Mutex::default(),
                cached: Mutex::default(),
                restored: tokio::sync::watch::Sender::new(false),
            }),
        };
        let s = service.clone();
        tokio::spawn(async move { s.restore().await });
        Ok(service)
    }

    fn store(&self) -> std::sync::MutexGuard<'_, VolumeStore> {
        self.inner.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, name: &str, created_at: &str, mountpoint: &str) {
        let mut c = self.inner.cached.lock().unwrap_or_else(|e| e.into_inner());
        c.insert(name.to_owned(), (created_at.to_owned(), mountpoint.to_owned()));
    }

    fn remembered(&self, name: &str) -> Option<(String, String)> {
        self.inner.cached.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    fn record(&self, name: &str) -> Option<VolumeRecord> {
        self.store().get(name).cloned()
    }

    async fn lock(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(name.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn driver(&self, plugin: crate::CompatPlugin) -> Driver {
        if plugin.is_v1() {
            let mut v1 = self.inner.v1_drivers.lock().unwrap_or_else(|e| e.into_inner());
            v1.insert(plugin.name().to_owned());
        }
        let d = Driver::new(plugin);
        match self.inner.config.call_timeout {
            Some(t) => d.with_timeout(t),
            None => d,
        }
    }

    async fn lookup(
        &self,
        op: &'static str,
        name: &str,
        driver: &str,
        mode: LookupMode,
    ) -> Result<Driver, VolumeError> {
        match self.inner.getter.get(driver, CAPABILITY, mode).await {
            Ok(p) => Ok(self.driver(p)),
            Err(source) => Err(VolumeError::Lookup {
                op,
                name: name.to_owned(),
                driver: driver.to_owned(),
                source: Box::new(source),
            }),
        }
    }

    /// Moby's `restore`, one volume at a time per name (under its lock), several at once.
    async fn restore(&self) {
        let records: Vec<VolumeRecord> = self.store().all().cloned().collect();
        futures_util::stream::iter(records)
            .for_each_concurrent(LIST_PARALLELISM, |r| async move {
                let _guard = self.lock(&r.name).await;
                // Still ours (a remove may have come first)?
                if self.record(&r.name).as_ref() == Some(&r) {
                    self.restore_one(r).await;
                }
            })
            .await;
        self.inner.restored.send_replace(true);
    }

    async fn restore_one(&self, mut r: VolumeRecord) {
        let driver = match self.inner.getter.lookup(&r.driver, CAPABILITY).await {
            Ok(p) => self.driver(p),
            Err(e) => {
                tracing::warn!(volume = %r.name, driver = %r.driver, error = %e,
                    "volume driver not available at restore; keeping the volume");
                return;
            }
        };
        match driver.get(&r.name).await {
            Err(e) if e.is_communication() => {
                tracing::warn!(volume = %r.name, driver = %r.driver, error = %e,
                    "error restoring volume; keeping it");
                return;
            }
            Ok(Some(v)) => self.remember(&r.name, &created_at(&v), &driver.scoped(&v.mountpoint)),
            Ok(None) | Err(_) => {
                tracing::info!(volume = %r.name, driver = %r.driver,
                    "volume no longer in its driver; dropping it");
                let _ = self.purge(&r.name).await;
                return;
            }
        }
        let current = driver.plugin().id().map(str::to_owned);
        if current.is_some() && current != r.plugin_id {
            match self.inner.getter.acquire(&r.driver, CAPABILITY).await {
                Ok(_) => {
                    r.plugin_id = current;
                    if let Err(e) = self.store().put(r.clone()) {
                        tracing::error!(volume = %r.name, error = %e, "cannot record the driver reference");
                    }
                }
                Err(e) => {
                    tracing::warn!(volume = %r.name, error = %e, "cannot take a driver reference")
                }
            }
        }
    }

    /// Waits until the restore that [`VolumeService::open`] started has gone through every
    /// known volume.
    pub async fn restored(&self) {
        let mut rx = self.inner.restored.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Drops a volume from the store and releases its driver reference.
    async fn purge(&self, name: &str) -> Result<(), VolumeError> {
        let Some(r) = self.store().remove(name)? else { return Ok(()) };
        self.inner.cached.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        if let Some(id) = &r.plugin_id {
            match self.inner.getter.lookup(&r.driver, CAPABILITY).await {
                Ok(p) if p.id() == Some(id.as_str()) => {
                    if let Err(e) = self.inner.getter.release(&r.driver, CAPABILITY).await {
                        tracing::warn!(volume = name, error = %e, "cannot release the driver reference");
                    }
                }
                // Another plugin by that name now (the old one and its count are gone), or
                // the plugin is disabled: nothing of ours to release.
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(volume = name, error = %e, "cannot release the driver reference")
                }
            }
        }
        Ok(())
    }

    /// `POST /volumes/create`: Moby's `VolumeStore.Create`. A volume the driver already has
    /// is adopted, not created again; an empty name gets a random one and the anonymous
    /// label; an empty driver is `local`.
    ///
    /// # Errors
    /// [`VolumeError::Lookup`] (driver missing or disabled), [`VolumeError::NameConflict`],
    /// [`VolumeError::Driver`] (the driver's `Create` failed), [`VolumeError::Store`].
    pub async fn create(
        &self,
        name: &str,
        driver: &str,
        options: Option<BTreeMap<String, String>>,
        mut labels: Option<BTreeMap<String, String>>,
    ) -> Result<Volume, VolumeError> {
        let mut driver_name = driver.to_owned();
        let name = if name.is_empty() {
            if driver_name.is_empty() {
                DEFAULT_DRIVER.clone_into(&mut driver_name);
            }
            labels
                .get_or_insert_with(BTreeMap::new)
                .insert(ANONYMOUS_LABEL.to_owned(), String::new());
            random_id()
        } else {
            name.to_owned()
        };
        let _guard = self.lock(&name).await;
        if let Some(existing) = self.check_conflict(&name, &driver_name).await? {
            return Ok(existing);
        }
        if driver_name.is_empty() {
            DEFAULT_DRIVER.clone_into(&mut driver_name);
        }
        let driver = self.lookup("create", &name, &driver_name, LookupMode::Acquire).await?;
        let release = || async {
            if driver.plugin().id().is_some() {
                if let Err(e) = self.inner.getter.release(&driver_name, CAPABILITY).await {
                    tracing::error!(driver = %driver_name, error = %e, "error releasing reference to volume driver");
                }
            }
        };
        let existing = driver.get(&name).await.ok().flatten();
        if existing.is_none() {
            if let Err(source) = driver.create(&name, options.clone()).await {
                release().await;
                return Err(VolumeError::Driver { op: "create", name, source });
            }
        }
        let mut record = VolumeRecord::new(&name, driver.name());
        record.labels = labels;
        record.options = options;
        record.plugin_id = driver.plugin().id().map(str::to_owned);
        let stored = self.store().put(record.clone());
        if let Err(e) = stored {
            release().await;
            return Err(e);
        }
        let scope = driver.scope().await;
        let (created_at, mountpoint) = match &existing {
            Some(v) => (created_at(v), driver.scoped(&v.mountpoint)),
            None => (ZERO_TIME.to_owned(), String::new()),
        };
        self.remember(&name, &created_at, &mountpoint);
        Ok(Volume {
            name,
            driver: driver.name().to_owned(),
            created_at,
            mountpoint,
            labels: record.labels,
            options: record.options,
            scope: scope.as_str().to_owned(),
            status: None,
        })
    }

    /// Moby's `checkConflict`: the known volume of that name, when its driver still has it
    /// and it is the driver asked for; an error when another driver has it; `None` (and a
    /// stale record purged) otherwise.
    async fn check_conflict(
        &self,
        name: &str,
        driver: &str,
    ) -> Result<Option<Volume>, VolumeError> {
        let Some(record) = self.record(name) else { return Ok(None) };
        let mut conflict = false;
        if !driver.is_empty() {
            let asked = self.lookup("create", name, driver, LookupMode::Lookup).await?;
            conflict = asked.name() != record.driver;
        }
        // A driver that cannot be found or asked keeps its name: Moby's `found reference to
        // volume ... but got an error while checking the driver` conflict.
        let check = |message: String| VolumeError::CheckConflict {
            name: name.to_owned(),
            driver: record.driver.clone(),
            message,
        };
        let existing = match self.inner.getter.lookup(&record.driver, CAPABILITY).await {
            Ok(p) => {
                let d = self.driver(p);
                d.get(name).await.map(|v| v.map(|v| (d, v)))
            }
            Err(e) => {
                let message =
                    format!("error looking up volume plugin {}: {}", record.driver, chain(&e));
                return Err(check(message));
            }
        };
        match existing {
            Err(e) if e.is_communication() => Err(check(chain(&e))),
            Ok(Some(_)) if conflict => {
                Err(VolumeError::NameConflict { name: name.to_owned(), driver: record.driver })
            }
            Ok(Some((d, v))) => {
                let mut vol = self.to_api(&d, &record, &v, false).await;
                match self.remembered(name) {
                    Some((created_at, mountpoint)) => {
                        vol.created_at = created_at;
                        vol.mountpoint = mountpoint;
                    }
                    None => self.remember(name, &vol.created_at, &vol.mountpoint),
                }
                Ok(Some(vol))
            }
            Ok(None) | Err(_) => {
                self.purge(name).await?;
                Ok(None)
            }
        }
    }

    async fn to_api(
        &self,
        d: &Driver,
        record: &VolumeRecord,
        v: &dockplug_protocol::volume::Volume,
        status: bool,
    ) -> Volume {
        Volume {
            name: record.name.clone(),
            driver: record.driver.clone(),
            created_at: created_at(v),
            mountpoint: d.scoped(&v.mountpoint),
            labels: record.labels.clone(),
            options: record.options.clone(),
            scope: d.scope().await.as_str().to_owned(),
            status: if status { Some(v.status.clone().unwrap_or_default()) } else { None },
        }
    }

    /// `GET /volumes/{name}`: Moby's `VolumeStore.Get` with the driver's status. A name the
    /// store does not know is asked of every volume driver.
    ///
    /// # Errors
    /// [`VolumeError::NoSuchVolume`]; [`VolumeError::Lookup`] or [`VolumeError::Check`] when
    /// the volume's driver cannot be asked.
    pub async fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        let _guard = self.lock(name).await;
        self.get_locked("get", name).await.map(|(_, v)| v)
    }

    async fn get_locked(
        &self,
        op: &'static str,
        name: &str,
    ) -> Result<(Driver, Volume), VolumeError> {
        let no_such = || VolumeError::NoSuchVolume { op, name: name.to_owned() };
        let Some(record) = self.record(name) else {
            // Not ours: probe every driver, as Moby does.
            let drivers =
                self.inner.getter.get_all_by_capability(CAPABILITY).await.unwrap_or_default();
            for p in drivers {
                let d = self.driver(p);
                if let Ok(Some(v)) = d.get(name).await {
                    let record = VolumeRecord::new(name, d.name());
                    let vol = self.to_api(&d, &record, &v, true).await;
                    return Ok((d, vol));
                }
            }
            return Err(no_such());
        };
        let check = |message: String| VolumeError::Check {
            op,
            name: name.to_owned(),
            driver: record.driver.clone(),
            message,
        };
        let d = match self.inner.getter.lookup(&record.driver, CAPABILITY).await {
            Ok(p) => self.driver(p),
            Err(e) => {
                return Err(check(format!(
                    "error looking up volume plugin {}: {}",
                    record.driver,
                    chain(&e)
                )))
            }
        };
        match d.get(name).await {
            Err(e) if e.is_communication() => Err(check(chain(&e))),
            Ok(Some(v)) => {
                let vol = self.to_api(&d, &record, &v, true).await;
                self.remember(name, &vol.created_at, &vol.mountpoint);
                Ok((d, vol))
            }
            Ok(None) | Err(_) => {
                self.purge(name).await?;
                Err(no_such())
            }
        }
    }

    /// `GET /volumes`: every volume driver's `List`, merged with what the store knows. A
    /// driver that fails is named in the warnings (`list NAME: <err>`) and its known volumes
    /// are listed from the store; it never fails the whole list.
    ///
    /// # Errors
    /// [`VolumeError::Filter`] for a filter Moby does not accept.
    pub async fn list(&self, filters: &Filters) -> Result<(Vec<Volume>, Vec<String>), VolumeError> {
        filters.validate(LIST_FILTERS)?;
        let dangling = filters.get_bool("dangling")?;
        let mut warnings = Vec::new();
        let drivers = match self.inner.getter.get_all_by_capability(CAPABILITY).await {
            Ok(d) => d,
            Err(e) => {
                warnings.push(e.to_string());
                self.inner.getter.get_all_managed_by_capability(CAPABILITY)
            }
        };
        let results: Vec<_> = futures_util::stream::iter(drivers)
            .map(|p| async move {
                let d = self.driver(p);
                let listed = d.list().await;
                let scope = d.scope().await;
                (d, scope, listed)
            })
            .buffer_unordered(LIST_PARALLELISM)
            .collect()
            .await;
        let mut out = Vec::new();
        let mut bad = HashSet::new();
        let mut seen = HashSet::new();
        for (d, scope, listed) in results {
            match listed {
                Err(e) => {
                    warnings.push(format!("list {}: {}", d.name(), chain(&e)));
                    bad.insert(d.name().to_owned());
                }
                Ok(vols) => {
                    for v in vols {
                        if !seen.insert((d.name().to_owned(), v.name.clone())) {
                            continue;
                        }
                        let record = self.record(&v.name).filter(|r| r.driver == d.name());
                        out.push(Volume {
                            name: v.name.clone(),
                            driver: d.name().to_owned(),
                            created_at: ZERO_TIME.to_owned(),
                            mountpoint: d.scoped(&v.mountpoint),
                            labels: record.as_ref().and_then(|r| r.labels.clone()),
                            options: record.as_ref().and_then(|r| r.options.clone()),
                            scope: scope.as_str().to_owned(),
                            status: None,
                        });
                    }
                }
            }
        }
        for r in self.store().all().filter(|r| bad.contains(&r.driver)) {
            out.push(Volume {
                name: r.name.clone(),
                driver: r.driver.clone(),
                created_at: ZERO_TIME.to_owned(),
                mountpoint: String::new(),
                labels: r.labels.clone(),
                options: r.options.clone(),
                scope: "local".to_owned(),
                status: None,
            });
        }
        // No containers here: every volume is dangling.
        out.retain(|v| dangling != Some(false) && matches(filters, v));
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.driver.cmp(&b.driver)));
        Ok((out, warnings))
    }

    /// `DELETE /volumes/{name}`: Moby's `VolumesService.Remove`. With `force`, a volume
    /// that does not exist is not an error, and one whose driver fails to remove it is
    /// dropped from the store anyway.
    ///
    /// # Errors
    /// [`VolumeError::NoSuchVolume`], [`VolumeError::Driver`], [`VolumeError::Check`].
    pub async fn remove(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        let _guard = self.lock(name).await;
        let (d, _) = match self.get_locked("get", name).await {
            Ok(found) => found,
            Err(VolumeError::NoSuchVolume { .. }) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let result = d.remove(name).await.map_err(|source| VolumeError::Driver {
            op: "remove",
            name: name.to_owned(),
            source,
        });
        if result.is_ok() || force {
            self.purge(name).await?;
        }
        result
    }

    /// Mounts volume `name` for mount ID `id` (`VolumeDriver.Mount`): the host path.
    ///
    /// # Errors
    /// As [`VolumeService::get`], or [`VolumeError::Driver`].
    pub async fn mount(&self, name: &str, id: &str) -> Result<PathBuf, VolumeError> {
        let _guard = self.lock(name).await;
        let (d, vol) = self.get_locked("mount", name).await?;
        let path = d.mount(name, id).await.map_err(|source| VolumeError::Driver {
            op: "mount",
            name: name.to_owned(),
            source,
        })?;
        self.remember(name, &vol.created_at, &path.to_string_lossy());
        Ok(path)
    }

    /// Unmounts mount ID `id` of volume `name` (`VolumeDriver.Unmount`).
    ///
    /// # Errors
    /// As [`VolumeService::get`], or [`VolumeError::Driver`].
    pub async fn unmount(&self, name: &str, id: &str) -> Result<(), VolumeError> {
        let _guard = self.lock(name).await;
        let (d, vol) = self.get_locked("unmount", name).await?;
        d.unmount(name, id).await.map_err(|source| VolumeError::Driver {
            op: "unmount",
            name: name.to_owned(),
            source,
        })?;
        self.remember(name, &vol.created_at, "");
        Ok(())
    }

    /// The v1 volume drivers used so far (for `/info`; v2 ones are listed by the manager).
    pub fn v1_driver_names(&self) -> Vec<String> {
        let v1 = self.inner.v1_drivers.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = v1.iter().cloned().collect();
        names.sort();
        names
    }
}

fn created_at(v: &dockplug_protocol::volume::Volume) -> String {
    v.created_at.as_ref().map_or_else(|| ZERO_TIME.to_owned(), |t| t.as_str().to_owned())
}

/// `name` (substring, as Moby's `filters.Match` without a regex), `driver` (exact) and
/// `label` (`key` or `key=value`).
fn matches(filters: &Filters, v: &Volume) -> bool {
    let names = filters.get("name");
    if !names.is_empty() && !names.iter().any(|n| v.name.contains(n)) {
        return false;
    }
    let drivers = filters.get("driver");
    if !drivers.is_empty() && !drivers.iter().any(|d| *d == v.driver) {
        return false;
    }
    filters.get("label").iter().all(|l| {
        let labels = v.labels.as_ref();
        match l.split_once('=') {
            Some((k, val)) => labels.and_then(|m| m.get(k)).is_some_and(|x| x == val),
            None => labels.is_some_and(|m| m.contains_key(*l)),
        }
    })
}

/// 64 random hex digits (Moby's `stringid.GenerateRandomID`).
fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes[..16].copy_from_slice(&t.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
