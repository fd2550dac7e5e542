//! Garbage collection of the blob store.

use std::collections::HashSet;

use super::Manager;
use crate::error::ManagerError;
use crate::executor::Executor;

impl<E: Executor> Manager<E> {
    /// Deletes every blob no plugin references; returns the deleted digests.
    pub async fn gc(&self) -> Result<Vec<String>, ManagerError> {
        let _w = self.inner.gc_lock.write().await;
        let mut keep = HashSet::new();
        for e in self.inner.store.all() {
            let r = e.record();
            keep.insert(r.config);
            keep.insert(r.manifest);
            keep.extend(r.blobsums.unwrap_or_default());
        }
        let blobs = self.inner.blobs.clone();
        let deleted =
            ManagerError::blocking("collect unused blobs", move || Ok(blobs.gc(&keep)?)).await?;
        Ok(deleted)
    }
}
