//! Pushing: a plugin's stored manifest and blobs to the registry its name points at (Moby's
//! `Push`), through the [`Distribution`] seam.
//!
//! The manifest pushed is the one the record names, byte for byte (so the registry's digest
//! is the record's); only when it is missing from the blob store (Moby's GC did not keep
//! manifests) is a schema2 manifest rebuilt from the config and layers, as dockerd does.

use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::progress::{JsonMessage, PushResult};
use dockplug_protocol::reference::Reference;
use dockplug_protocol::registry::{Descriptor, ImageManifest, DOCKER_MANIFEST_V2};

use super::Manager;
use crate::distribution::{Distribution, Progress, PushRequest};
use crate::error::ManagerError;
use crate::executor::Executor;

impl<E: Executor> Manager<E> {
    /// Pushes plugin `name` to the registry and repository of its name; streams progress and
    /// ends with Moby's aux `{"Tag","Digest","Size"}`, which is also returned.
    pub async fn push<D: Distribution>(
        &self,
        registry: &D,
        name: &str,
        auth: &AuthConfig,
        progress: &dyn Progress,
    ) -> Result<PushResult, ManagerError> {
        let _gc = self.inner.gc_lock.read().await;
        let entry = self.inner.store.resolve(name)?;
        let record = entry.record();
        let target = Reference::parse(&record.plugin.name).map_err(|source| {
            ManagerError::InvalidName { name: record.plugin.name.clone(), source }
        })?;
        let blobs = self.inner.blobs.clone();
        let (manifest, parsed) = {
            let record = record.clone();
            let blobs = blobs.clone();
            ManagerError::blocking(
                "read the manifest to push",
                move || -> Result<(Vec<u8>, ImageManifest), ManagerError> {
                    if blobs.contains(&record.manifest) {
                        let bytes = blobs.get(&record.manifest)?;
                        let parsed: ImageManifest =
                            serde_json::from_slice(&bytes).map_err(ManagerError::ConfigParse)?;
                        return Ok((bytes, parsed));
                    }
                    let size = |d: &str| -> Result<i64, ManagerError> {
                        let f = blobs.open_blob(d)?;
                        let len =
                            f.metadata().map_err(ManagerError::io("stat", d.to_owned()))?.len();
                        Ok(i64::try_from(len).unwrap_or(i64::MAX))
                    };
                    let layers = record
                        .blobsums
                        .clone()
                        .unwrap_or_default()
                        .iter()
                        .map(|d| Ok(Descriptor::gzip_layer(d.clone(), size(d)?)))
                        .collect::<Result<Vec<_>, ManagerError>>()?;
                    let m = ImageManifest::plugin(
                        Descriptor::plugin_config(record.config.clone(), size(&record.config)?),
                        layers,
                    );
                    let bytes = m.to_bytes().map_err(ManagerError::ConfigParse)?;
                    blobs.put(&bytes)?;
                    Ok((bytes, m))
                },
            )
            .await?
        };
        let mut descriptors = vec![parsed.config.clone()];
        descriptors.extend(parsed.layers.iter().cloned());
        let media_type = if parsed.media_type.is_empty() {
            DOCKER_MANIFEST_V2.to_owned()
        } else {
            parsed.media_type.clone()
        };
        // Blobs pulled from another repository of the same registry can be mounted from there.
        let source = Reference::parse(&record.plugin.plugin_reference).ok();
        let request = PushRequest::new(&target, auth, &manifest, &media_type, &descriptors)
            .mount_from(source.as_ref());
        let result = registry.push(request, &blobs, progress).await?;
        if let Ok(aux) = JsonMessage::aux(&result) {
            progress.send(aux);
        }
        Ok(result)
    }
}
