//! Pulling: a plugin from a registry through the [`Distribution`] seam (Moby's `Pull`), and
//! the privileges of a remote plugin (Moby's `Privileges`).
//!
//! The config is fetched first and the granted privileges are checked against it before any
//! layer is fetched; layers go into the shared [`BlobStore`](crate::blobs::BlobStore) by
//! digest (a layer already there is not fetched again) and are applied in order onto a
//! staging rootfs in `<root>/tmp`, which the install step moves into place with the record in
//! one rename, as create does. A failed pull leaves no plugin; its blobs are referenced by
//! nothing and go at the next GC.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::privileges::{compute_privileges, validate_privileges};
use dockplug_protocol::progress::JsonMessage;
use dockplug_protocol::reference::{self, Reference};
use dockplug_protocol::{Plugin, PluginConfig, PluginPrivilege};

use super::install::Install;
use super::Manager;
use crate::distribution::{Distribution, Progress, Resolved};
use crate::error::ManagerError;
use crate::events::Event;
use crate::executor::Executor;
use crate::fsutil;
use crate::steps::Steps;

/// Options of [`Manager::pull`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PullOptions {
    /// Moby's `WithEnv`: `NAME=value` lines over the config's env defaults.
    pub env: Vec<String>,
    /// Moby's `WithSwarmService`: the swarm service that owns the plugin.
    pub swarm_service_id: String,
    /// `docker plugin install --disable`: install without enabling.
    pub disable: bool,
    /// How long the enable after install waits (`None`: the manager's start timeout).
    pub enable_timeout: Option<Duration>,
}

impl PullOptions {
    /// Install without enabling (`--disable`).
    pub fn disabled(mut self) -> Self {
        self.disable = true;
        self
    }

    /// Sets Moby's `WithEnv` lines.
    pub fn with_env(mut self, env: Vec<String>) -> Self {
        self.env = env;
        self
    }

    /// Sets Moby's `WithSwarmService` ID.
    pub fn with_swarm_service(mut self, id: impl Into<String>) -> Self {
        self.swarm_service_id = id.into();
        self
    }
}

/// Moby's `WithEnv`: the config's env values, overridden and extended by `lines`
/// (`NAME=value`; lines without `=` are dropped), de-duplicated by name. Moby iterates a Go
/// map (random order); we keep the config's order, then new names in the order given.
pub(crate) fn with_env(config: &PluginConfig, lines: &[String]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for e in config.env() {
        if let Some(v) = &e.value {
            if values.insert(e.name.clone(), v.clone()).is_none() {
                order.push(e.name.clone());
            }
        }
    }
    for line in lines {
        if let Some((k, v)) = line.split_once('=') {
            if values.insert(k.to_owned(), v.to_owned()).is_none() {
                order.push(k.to_owned());
            }
        }
    }
    order.into_iter().map(|k| format!("{k}={}", values[&k])).collect()
}

/// The reference as Moby's `reference.Named.String()` prints it (full domain and path).
pub(crate) fn full_string(r: &Reference) -> String {
    let mut s = r.name();
    if let Some(t) = r.tag() {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = r.digest() {
        s.push('@');
        s.push_str(d);
    }
    s
}

pub(crate) fn parse_remote(remote: &str) -> Result<Reference, ManagerError> {
    Reference::parse(remote)
        .map(Reference::with_default_tag)
        .map_err(|source| ManagerError::InvalidName { name: remote.to_owned(), source })
}

/// The local name of a pull: `name` if given, else the remote's familiar name and tag
/// (`latest` for a digest-only reference), as Moby's router does.
fn local_name(remote: &Reference, name: Option<&str>) -> Result<String, ManagerError> {
    let wanted = match name {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => {
            format!("{}:{}", remote.familiar_name(), remote.tag().unwrap_or(reference::DEFAULT_TAG))
        }
    };
    reference::normalize(&wanted)
        .map_err(|source| ManagerError::InvalidName { name: wanted.clone(), source })
}

impl<E: Executor> Manager<E> {
    /// The privileges a remote plugin asks for, from its config (fetched, no layer). Fetch
    /// errors are returned (Moby swallows them into an empty list).
    pub async fn remote_privileges<D: Distribution>(
        &self,
        registry: &D,
        remote: &str,
        auth: &AuthConfig,
    ) -> Result<Vec<PluginPrivilege>, ManagerError> {
        let remote = parse_remote(remote)?;
        let resolved = registry.resolve(&remote, auth, &crate::distribution::NoProgress).await?;
        let config = PluginConfig::from_slice(&resolved.config)?;
        Ok(compute_privileges(&config))
    }

    /// Installs the plugin `remote` from a registry as `name` (default: the remote's
    /// familiar name), checking `granted` against its config before fetching any layer,
    /// then enables it unless [`PullOptions::disable`]. Progress goes to `progress`.
    // Moby's `Pull` takes these seven; a request struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn pull<D: Distribution>(
        &self,
        registry: &D,
        remote: &str,
        name: Option<&str>,
        auth: &AuthConfig,
        granted: &[PluginPrivilege],
        progress: &dyn Progress,
        options: &PullOptions,
    ) -> Result<Plugin, ManagerError> {
        self.check_running()?;
        let remote = parse_remote(remote)?;
        let name = local_name(&remote, name)?;
        let plugin = {
            let _gc = self.inner.gc_lock.read().await;
            if self.inner.store.name_taken(&name) {
                return Err(ManagerError::AlreadyExists { name });
            }
            let mut steps = Steps::start("pull", &name);
            let (resolved, config, staging) =
                self.fetch(registry, &remote, auth, granted, progress).await?;
            steps.step("fetched and applied");
            let result = self.install(Install {
                name: &name,
                rootfs: &staging,
                config,
                config_digest: resolved.parsed.config.digest.clone(),
                blobsums: resolved.parsed.layers.iter().map(|l| l.digest.clone()).collect(),
                manifest_digest: resolved.digest.clone(),
                plugin_reference: full_string(&remote),
                granted: Some(granted),
                env: options.env.clone(),
                swarm_service_id: options.swarm_service_id.clone(),
            });
            if result.is_err() {
                let _ = fsutil::remove_dir_if_exists(&staging);
            }
            let plugin = result?;
            steps.step("installed");
            progress.send(JsonMessage::digest(&resolved.digest));
            plugin
        };
        self.inner.events.publish(Event::Create(plugin.clone()));
        // Moby logs `pull` (actor: the remote reference) and no daemon `create`.
        self.daemon_event(&remote.to_string(), &plugin.name, "pull");
        if options.disable {
            return Ok(plugin);
        }
        self.enable(&plugin.id, options.enable_timeout).await
    }

    /// Resolves `remote`, checks the privileges, then fetches each layer into the blob store
    /// while applying it, in order, onto a new staging rootfs in `<root>/tmp` (a bounded
    /// channel between the download and a blocking extractor); stores config and manifest.
    /// The staging tree is used only once every layer is verified; on any error it is
    /// removed.
    pub(crate) async fn fetch<D: Distribution>(
        &self,
        registry: &D,
        remote: &Reference,
        auth: &AuthConfig,
        granted: &[PluginPrivilege],
        progress: &dyn Progress,
    ) -> Result<(Resolved, PluginConfig, PathBuf), ManagerError> {
        let name = full_string(remote);
        let mut steps = Steps::start("fetch", &name);
        let resolved = registry.resolve(remote, auth, progress).await?;
        steps.step("manifest and config fetched");
        let config = PluginConfig::from_slice(&resolved.config)?;
        validate_privileges(&compute_privileges(&config), granted)?;
        let suffix = fsutil::random_suffix().map_err(ManagerError::io("read", "/dev/urandom"))?;
        let staging = self.inner.config.root.join("tmp").join(format!(".rootfs{suffix}"));
        let result = self.fetch_into(registry, remote, auth, &resolved, progress, &staging).await;
        steps.step("layers fetched and applied, blobs stored");
        if let Err(e) = result {
            let _ = fsutil::remove_dir_if_exists(&staging);
            return Err(e);
        }
        Ok((resolved, config, staging))
    }

    async fn fetch_into<D: Distribution>(
        &self,
        registry: &D,
        remote: &Reference,
        auth: &AuthConfig,
        resolved: &Resolved,
        progress: &dyn Progress,
        staging: &Path,
    ) -> Result<(), ManagerError> {
        fsutil::mkdir_all(staging, 0o755).map_err(ManagerError::io("mkdir", staging))?;
        // The config and manifest are known already: stored (two fsyncs) while the layers
        // download. A pull that fails leaves them unreferenced, for the next GC.
        let blobs = self.inner.blobs.clone();
        let (config_blob, manifest) = (resolved.config.clone(), resolved.manifest.clone());
        let small = ManagerError::blocking("store the config and manifest blobs", move || {
            blobs.put(&config_blob)?;
            blobs.put(&manifest)?;
            Ok(())
        });
        let (layers, small) = tokio::join!(
            self.fetch_layers(registry, remote, auth, resolved, progress, staging),
            small
        );
        layers.and(small)
    }

    /// Fetches each layer into the blob store while applying it, in order, onto `staging`.
    async fn fetch_layers<D: Distribution>(
        &self,
        registry: &D,
        remote: &Reference,
        auth: &AuthConfig,
        resolved: &Resolved,
        progress: &dyn Progress,
        staging: &Path,
    ) -> Result<(), ManagerError> {
        for layer in &resolved.parsed.layers {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            let dir = staging.to_path_buf();
            let apply = ManagerError::blocking("apply a layer", move || {
                Ok(crate::layer::apply_streamed(crate::layer::ChannelReader::new(rx), &dir)?)
            });
            let fetch =
                registry.fetch_blob_tee(remote, auth, layer, &self.inner.blobs, progress, tx);
            let (fetched, applied) = tokio::join!(fetch, apply);
            // A failed download first (the extractor then only saw a cut stream); a refused
            // layer closes the tee, which ends the download without an error.
            fetched?;
            applied?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
