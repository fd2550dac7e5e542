//! Installing: a plugin from a build context (`create`), and the install step every way in
//! (create now, pull later) shares.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use dockplug_protocol::config::PluginRootfs;
use dockplug_protocol::plugin::PluginSettings;
use dockplug_protocol::privileges::{compute_privileges, validate_privileges};
use dockplug_protocol::registry::{Descriptor, ImageManifest};
use dockplug_protocol::{Plugin, PluginConfig, PluginPrivilege};

use super::Manager;
use crate::error::ManagerError;
use crate::events::Event;
use crate::executor::Executor;
use crate::steps::Steps;
use crate::store::{Entry, Record};
use crate::{context, fsutil, reference};

/// What [`Manager::install`] needs: an extracted rootfs and the digests of its blobs.
pub(crate) struct Install<'a> {
    /// The normalised name.
    pub name: &'a str,
    /// The extracted rootfs, in `<root>/tmp`; moved into place.
    pub rootfs: &'a Path,
    /// The plugin config.
    pub config: PluginConfig,
    /// Digest of the config blob.
    pub config_digest: String,
    /// Layer digests.
    pub blobsums: Vec<String>,
    /// Digest of the manifest blob.
    pub manifest_digest: String,
    /// The remote reference (pull) or the name (create).
    pub plugin_reference: String,
    /// Privileges the user granted (pull, upgrade); `None` skips the check (create).
    pub granted: Option<&'a [PluginPrivilege]>,
    /// Moby's `WithEnv` create option: `NAME=value` lines over the config's defaults.
    pub env: Vec<String>,
    /// Moby's `WithSwarmService` create option.
    pub swarm_service_id: String,
}

fn new_id() -> Result<String, ManagerError> {
    loop {
        let id = fsutil::hex(
            &fsutil::random_bytes::<32>().map_err(ManagerError::io("read", "/dev/urandom"))?,
        );
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id);
        }
    }
}

impl<E: Executor> Manager<E> {
    /// Installs a plugin from a build context: a tar or tar.gz stream with `config.json` and
    /// `rootfs/`. Returns the new plugin.
    pub async fn create_from_context<R: Read + Send + 'static>(
        &self,
        context: R,
        name: &str,
    ) -> Result<Plugin, ManagerError> {
        let _gc = self.inner.gc_lock.read().await;
        let name = reference::normalize(name)
            .map_err(|source| ManagerError::InvalidName { name: name.to_owned(), source })?;
        if self.inner.store.name_taken(&name) {
            return Err(ManagerError::AlreadyExists { name });
        }
        let mut steps = Steps::start("create", &name);
        let suffix = fsutil::random_suffix().map_err(ManagerError::io("read", "/dev/urandom"))?;
        let staging = self.inner.config.root.join("tmp").join(format!(".rootfs{suffix}"));
        let blobs = self.inner.blobs.clone();
        let staging2 = staging.clone();
        let extracted = ManagerError::blocking("extract the build context", move || {
            Ok(context::extract(context, &staging2, &blobs)?)
        })
        .await?;
        steps.step("extract and compress the layer");
        let result = self.finish_create(&name, &staging, extracted);
        if result.is_err() {
            let _ = fsutil::remove_dir_if_exists(&staging);
        }
        let plugin = result?;
        steps.step("config, manifest and record written");
        self.inner.events.publish(Event::Create(plugin.clone()));
        self.daemon_event(&plugin.id, &plugin.name, "create");
        Ok(plugin)
    }

    fn finish_create(
        &self,
        name: &str,
        staging: &Path,
        extracted: context::Extracted,
    ) -> Result<Plugin, ManagerError> {
        let mut config = PluginConfig::from_slice(&extracted.config)?;
        config.rootfs = Some(PluginRootfs::layers([extracted.layer_digest.clone()]));
        let config_blob = config.to_blob().map_err(ManagerError::ConfigParse)?;
        let config_digest = self.inner.blobs.put(&config_blob)?;
        let manifest = ImageManifest::plugin(
            Descriptor::plugin_config(config_digest.clone(), config_blob.len() as i64),
            vec![Descriptor::gzip_layer(
                extracted.layer_digest.clone(),
                extracted.layer_size as i64,
            )],
        )
        .to_bytes()
        .map_err(ManagerError::ConfigParse)?;
        let manifest_digest = self.inner.blobs.put(&manifest)?;
        self.install(Install {
            name,
            rootfs: staging,
            config,
            config_digest,
            blobsums: vec![extracted.layer_digest],
            manifest_digest,
            // Persisted at once (Moby keeps it in memory until the next save).
            plugin_reference: name.to_owned(),
            granted: None,
            env: Vec::new(),
            swarm_service_id: String::new(),
        })
    }

    /// Moby's `createPlugin`, shared by create and (later) pull: checks the name and the
    /// granted privileges, then moves the extracted rootfs and the new record into place in
    /// one rename and adds the plugin to the store.
    pub(crate) fn install(&self, req: Install<'_>) -> Result<Plugin, ManagerError> {
        let Install {
            name,
            rootfs: staging,
            config,
            config_digest,
            blobsums,
            manifest_digest,
            plugin_reference,
            granted,
            env,
            swarm_service_id,
        } = req;
        if self.inner.store.name_taken(name) {
            return Err(ManagerError::AlreadyExists { name: name.to_owned() });
        }
        if let Some(granted) = granted {
            validate_privileges(&compute_privileges(&config), granted)?;
        }
        let id = new_id()?;
        let dir = self.inner.store.plugin_dir(&id);
        let mut settings = PluginSettings::from_config(&config);
        if !env.is_empty() {
            settings.env = Some(super::pull::with_env(&config, &env));
        }
        let record = Record {
            plugin: Arc::new(Plugin {
                config,
                enabled: false,
                id: id.clone(),
                name: name.to_owned(),
                plugin_reference,
                settings,
            }),
            rootfs: String::new(),
            config: config_digest,
            blobsums: Some(blobsums),
            manifest: manifest_digest,
            swarm_service_id,
        };
        // Everything is assembled in `<root>/tmp/.plugin*` and appears under `<root>/<id>` in
        // one rename: a crash at any step leaves either nothing (tmp is swept at start) or
        // the whole plugin.
        let suffix = fsutil::random_suffix().map_err(ManagerError::io("read", "/dev/urandom"))?;
        let staged = self.inner.config.root.join("tmp").join(format!(".plugin{suffix}"));
        let steps = || -> Result<(), ManagerError> {
            let crash = |p: &Path| ManagerError::io("create", p.to_path_buf());
            fsutil::mkdir_all(&staged, 0o700).map_err(ManagerError::io("mkdir", &staged))?;
            crate::failpoint::hit("create:after_mkdir", &staged).map_err(crash(&staged))?;
            let rootfs = staged.join("rootfs");
            std::fs::rename(staging, &rootfs)
                .map_err(ManagerError::io("rename rootfs to", &rootfs))?;
            crate::failpoint::hit("create:after_rename", &staged).map_err(crash(&staged))?;
            if !record.plugin.config.propagated_mount.is_empty() {
                // Present from the start, so restore never mistakes the rootfs's own
                // directory for data to migrate.
                let pm = staged.join("propagated-mount");
                fsutil::mkdir_all(&pm, 0o755).map_err(ManagerError::io("mkdir", &pm))?;
            }
            record.write_in(&staged)?;
            std::fs::rename(&staged, &dir)
                .map_err(ManagerError::io("rename plugin dir to", &dir))?;
            if let Err(e) = fsutil::sync_dir(&self.inner.config.root) {
                tracing::warn!(error = %e, "fsync of the plugin root failed");
            }
            crate::failpoint::hit("create:after_commit", &dir).map_err(crash(&dir))
        };
        if let Err(e) = steps() {
            if !crate::failpoint::is_crash(&e) {
                let _ = fsutil::remove_dir_if_exists(&staged);
            }
            return Err(e);
        }
        let entry = Arc::new(Entry::new(record.clone(), 0, dir.clone()));
        if let Err(e) = self.inner.store.insert(entry) {
            let _ = fsutil::remove_dir_if_exists(&dir);
            return Err(e);
        }
        Ok((*record.plugin).clone())
    }
}
