//! Upgrading: a disabled plugin gets the rootfs and config of another remote reference
//! (Moby's `Upgrade`), keeping its ID, name, settings and propagated-mount data.
//!
//! The new rootfs is fetched and staged as a pull does (privileges checked on the new config
//! before any layer). Then `<id>/rootfs` becomes `<id>/rootfs-old`, the staged tree becomes
//! `<id>/rootfs`, and the record is rewritten (config, its digest, manifest, blobs,
//! `PluginReference`; persisted at once, where Moby keeps the reference in memory only).
//! Any failure after the first rename puts the old rootfs back; `rootfs-old` is removed at
//! the end. Settings are not re-initialised from the new config, as in Moby.

use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::progress::JsonMessage;
use dockplug_protocol::{Plugin, PluginPrivilege};

use super::pull::{full_string, parse_remote};
use super::Manager;
use crate::distribution::{Distribution, Progress};
use crate::error::ManagerError;
use crate::executor::Executor;
use crate::fsutil;
use crate::store::Upgraded;

impl<E: Executor> Manager<E> {
    /// Upgrades plugin `name` to `remote`: refused unless disabled; `granted` is checked
    /// against the new config before any layer is fetched.
    pub async fn upgrade<D: Distribution>(
        &self,
        registry: &D,
        name: &str,
        remote: &str,
        auth: &AuthConfig,
        granted: &[PluginPrivilege],
        progress: &dyn Progress,
    ) -> Result<Plugin, ManagerError> {
        self.check_running()?;
        let entry = self.inner.store.resolve(name)?;
        let op = entry.lock_op().await;
        if op.is_removed() {
            return Err(ManagerError::NotFound { name: name.to_owned() });
        }
        if op.enabled() {
            return Err(ManagerError::UpgradeEnabled { name: op.name() });
        }
        let remote = parse_remote(remote)?;
        let _gc = self.inner.gc_lock.read().await;
        let (resolved, config, staging) =
            self.fetch(registry, &remote, auth, granted, progress).await?;
        let dir = op.dir().to_path_buf();
        let (rootfs, old) = (dir.join("rootfs"), dir.join("rootfs-old"));
        let _ = fsutil::remove_dir_if_exists(&old);
        let swapped = std::fs::rename(&rootfs, &old)
            .map_err(ManagerError::io("back up the rootfs to", &old))
            .and_then(|()| {
                std::fs::rename(&staging, &rootfs)
                    .map_err(ManagerError::io("rename rootfs to", &rootfs))
            });
        let result = swapped.and_then(|()| {
            op.set_upgraded(Upgraded {
                config,
                config_digest: resolved.parsed.config.digest.clone(),
                manifest_digest: resolved.digest.clone(),
                blobsums: resolved.parsed.layers.iter().map(|l| l.digest.clone()).collect(),
                plugin_reference: full_string(&remote),
            })
        });
        if let Err(e) = result {
            // Put the old rootfs back (if it was moved), drop the new one.
            if old.exists() {
                if rootfs.exists() {
                    let _ = fsutil::remove_dir_if_exists(&rootfs);
                }
                let _ = std::fs::rename(&old, &rootfs);
            }
            let _ = fsutil::remove_dir_if_exists(&staging);
            return Err(e);
        }
        let _ = fsutil::remove_dir_if_exists(&old);
        progress.send(JsonMessage::digest(&resolved.digest));
        Ok((*op.snapshot()).clone())
    }
}
