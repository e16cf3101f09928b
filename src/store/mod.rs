//! Storage tiers: bounded memory caches over an object store.
//!
//! - [`MemoryTiers`]: two moka caches weighed in bytes, one for encoded
//!   composites (what a hit serves) and one for decoded layers (what a miss
//!   composes from; one layer serves thousands of configurations).
//! - [`BlobStore`]: layers and composites by key in an `object_store`
//!   (local filesystem under the data dir by default, in-memory for tests).
//!   Writes are whole-object puts, which object_store makes atomic (the
//!   local backend writes a temporary file and renames it).
//! - [`Flights`]: one computation per key, shared by every waiter.
//!
//! Only this module imports `object_store`; its errors are translated into
//! [`StoreError`] here. Deciding what to render or compose is `pipeline`'s.

mod flight;

pub use flight::Flights;

use crate::compose::{Format, LayerImage};
use crate::keys::Key;
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path as ObjectPath};
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("bad storage url \"{0}\": {1}")]
    BadUrl(String, String),
    #[error("{0}")]
    Backend(String),
}

impl StoreError {
    /// Whether a retry might succeed (I/O trouble rather than a bad setting).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Backend(_))
    }
}

fn backend(e: object_store::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// An object store holding layers and composites by key.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    url: String,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({})", self.url)
    }
}

impl BlobStore {
    /// Opens the store named by `url`: `file:///abs/path` or `memory://`.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] for another scheme or a folder that cannot be created.
    pub fn open(url: &str) -> Result<BlobStore, StoreError> {
        let bad = |m: String| StoreError::BadUrl(url.to_string(), m);
        let inner: Arc<dyn ObjectStore> = if let Some(path) = url.strip_prefix("file://") {
            std::fs::create_dir_all(path).map_err(|e| bad(e.to_string()))?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| bad(e.to_string()))?,
            )
        } else if url == "memory://" {
            Arc::new(object_store::memory::InMemory::new())
        } else {
            return Err(bad("supported schemes are file:// and memory://".into()));
        };
        Ok(BlobStore {
            inner,
            url: url.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// # Errors
    /// [`StoreError::Backend`] for anything but "not found", which is `None`.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&ObjectPath::from(path)).await {
            Ok(r) => r.bytes().await.map(Some).map_err(backend),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    /// # Errors
    /// [`StoreError::Backend`] when the write fails; nothing partial is left.
    pub async fn put(&self, path: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&ObjectPath::from(path), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(backend)
    }

    /// Writes only if nothing is at `path` yet; `false` when something was.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the write fails.
    pub async fn put_new(&self, path: &str, bytes: Bytes) -> Result<bool, StoreError> {
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&ObjectPath::from(path), PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    /// Whether an object is at `path`, without reading it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for anything but "not found".
    pub async fn exists(&self, path: &str) -> Result<bool, StoreError> {
        match self.inner.head(&ObjectPath::from(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }
}

/// `layers/ab/abcd….png`: two hex digits of fan-out keep directories small
/// on filesystems and spread S3 key prefixes.
pub fn layer_path(key: &Key) -> String {
    let h = key.hex();
    format!("layers/{}/{h}.png", &h[..2])
}

pub fn composite_path(key: &Key, format: Format) -> String {
    let h = key.hex();
    format!("composites/{}/{h}.{}", &h[..2], format.name())
}

/// An encoded composite as served.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Bytes,
    pub format: Format,
}

/// Byte budgets of the memory tiers.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    pub composite_bytes: u64,
    pub layer_bytes: u64,
}

/// The in-memory tiers. Cheap to clone (the caches are shared).
#[derive(Clone)]
pub struct MemoryTiers {
    pub composites: moka::sync::Cache<Key, Encoded>,
    pub layers: moka::sync::Cache<Key, Arc<LayerImage>>,
}

/// moka weighs entries in u32; a single entry larger than that is
/// impossible here (the canvas is at most 8192² RGBA = 256 MiB).
fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl MemoryTiers {
    pub fn new(b: Budgets) -> MemoryTiers {
        MemoryTiers {
            composites: moka::sync::Cache::builder()
                .max_capacity(b.composite_bytes)
                .weigher(|_, v: &Encoded| weight(v.bytes.len() + 64))
                .build(),
            layers: moka::sync::Cache::builder()
                .max_capacity(b.layer_bytes)
                .weigher(|_, v: &Arc<LayerImage>| weight(v.byte_size()))
                .build(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_new_never_overwrites() {
        for url in [
            "memory://".to_string(),
            format!("file://{}", tempfile::tempdir().unwrap().keep().display()),
        ] {
            let s = BlobStore::open(&url).unwrap();
            assert!(!s.exists("a/b").await.unwrap());
            assert!(
                s.put_new("a/b", Bytes::from_static(b"one")).await.unwrap(),
                "{url}"
            );
            assert!(
                !s.put_new("a/b", Bytes::from_static(b"two")).await.unwrap(),
                "{url}"
            );
            assert_eq!(
                s.get("a/b").await.unwrap().unwrap(),
                Bytes::from_static(b"one")
            );
            assert!(s.exists("a/b").await.unwrap());
            s.put("a/b", Bytes::from_static(b"three")).await.unwrap();
            assert_eq!(
                s.get("a/b").await.unwrap().unwrap(),
                Bytes::from_static(b"three")
            );
        }
    }
}
