//! What an operator and `gc` ask of the object store as a whole: listings
//! of objects and folders, the readiness probe, and the store's status
//! (the outbox and disk tier totals).

use super::{BlobStore, DiskTier, ObjectPath, Outbox, StoreError, StoreStatus};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

impl BlobStore {
    /// Every object under `prefix`: `(path, bytes)`, sizes as stored.
    ///
    /// # Errors
    /// When the store cannot list.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.count();
        self.inner.breaker.admit()?;
        let prefix = ObjectPath::from(prefix);
        match self
            .inner
            .remote
            .list(Some(&prefix))
            .map_ok(|m| (m.location.to_string(), m.size))
            .try_collect()
            .await
        {
            Ok(v) => {
                self.inner.breaker.succeeded();
                Ok(v)
            }
            Err(e) => Err(self.inner.breaker.failed("list", prefix.as_ref(), &e)),
        }
    }

    /// The names of the "folders" directly under `prefix`.
    ///
    /// # Errors
    /// When the store cannot list.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.count();
        self.inner.breaker.admit()?;
        let prefix = ObjectPath::from(prefix);
        match self.inner.remote.list_with_delimiter(Some(&prefix)).await {
            Ok(l) => {
                self.inner.breaker.succeeded();
                Ok(l.common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string))
                    .collect())
            }
            Err(e) => Err(self.inner.breaker.failed("list", prefix.as_ref(), &e)),
        }
    }

    /// Checks that the store answers (a HEAD of an absent object).
    ///
    /// # Errors
    /// When it does not.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.inner.breaker.admit()?;
        match self
            .inner
            .remote
            .head(&ObjectPath::from("readyz/probe"))
            .await
        {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {
                self.inner.breaker.succeeded();
                Ok(())
            }
            Err(e) => Err(self.inner.breaker.failed("head", "readyz/probe", &e)),
        }
    }

    pub fn status(&self) -> StoreStatus {
        let (outbox_objects, outbox_bytes) =
            self.inner.outbox.as_ref().map_or((0, 0), Outbox::totals);
        StoreStatus {
            url: self.inner.url.clone(),
            up: self.is_up(),
            outbox_objects,
            outbox_bytes,
            disk_bytes: self.inner.disk.as_ref().map(DiskTier::bytes),
        }
    }
}
