//! The optional local disk tier: a bounded, least-recently-used copy of
//! objects read from or written to the object store, so that a restarted
//! node serves its hot set without refetching it.
//!
//! Files are `<dir>/<ab>/<blake3 of the object path>`, holding the sealed
//! object (see [`super::envelope`]), so every read is verified. Writes go to
//! `<dir>/tmp` and are renamed into place: a crash leaves either the old
//! file, the new one, or a temporary file removed at the next start. The
//! index (names and sizes, in recency order) lives in memory and is rebuilt
//! at start from the files, oldest modification first; a read refreshes a
//! file's modification time so the order survives restarts.

use super::envelope;
use crate::telemetry;
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Clone)]
pub struct DiskTier {
    dir: Arc<PathBuf>,
    index: moka::sync::Cache<Arc<str>, u32>,
    _lock: Arc<std::fs::File>,
}

/// Takes `<dir>/.lock` for this process: a folder indexed in memory can
/// have only one owner (a `serve` and a `worker` sharing a data dir: the
/// second runs without it). `WouldBlock` when another process holds it.
pub(super) fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let f = std::fs::File::create(dir.join(".lock"))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!("{} is in use by another process", dir.display()),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

fn name_of(path: &str) -> String {
    blake3::hash(path.as_bytes()).to_hex().to_string()
}

fn file_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(&name[..2]).join(name)
}

impl DiskTier {
    /// Opens (creating) the tier in `dir`, indexing the files already there.
    ///
    /// # Errors
    /// The folder cannot be created or listed.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<DiskTier> {
        let lock = lock_dir(dir)?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        for e in std::fs::read_dir(dir.join("tmp"))? {
            let _ = std::fs::remove_file(e?.path());
        }
        let evict_dir = dir.to_path_buf();
        let index = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .weigher(|_, size: &u32| *size)
            .eviction_listener(move |name: Arc<Arc<str>>, _, cause| {
                if cause != moka::notification::RemovalCause::Replaced {
                    let _ = std::fs::remove_file(file_of(&evict_dir, &name));
                }
            })
            .build();
        let mut found: Vec<(SystemTime, Arc<str>, u32)> = Vec::new();
        for fan in std::fs::read_dir(dir)? {
            let fan = fan?;
            if fan.file_name() == "tmp" || !fan.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for f in std::fs::read_dir(fan.path())? {
                // A file gone since the listing is simply not indexed.
                let Ok(meta) = f.and_then(|f| f.metadata().map(|m| (f, m))) else {
                    continue;
                };
                let (f, meta) = meta;
                let name = f.file_name().to_string_lossy().into_owned();
                if name.len() != 64 || !meta.is_file() {
                    continue;
                }
                let size = u32::try_from(meta.len()).unwrap_or(u32::MAX);
                let when = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.push((when, name.into(), size));
            }
        }
        found.sort();
        for (_, name, size) in found {
            index.insert(name, size);
        }
        index.run_pending_tasks();
        Ok(DiskTier {
            dir: Arc::new(dir.to_path_buf()),
            index,
            _lock: Arc::new(lock),
        })
    }

    /// The verified body of `path`, if the tier has a sound copy. A damaged
    /// copy is deleted (and counted) and reads as a miss.
    pub async fn get(&self, path: &str) -> Option<Bytes> {
        let name: Arc<str> = name_of(path).into();
        self.index.get(&name)?;
        let file = file_of(&self.dir, &name);
        let read = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&file)?;
            // Recency that survives a restart; failing to touch is harmless.
            let _ = std::fs::File::options()
                .write(true)
                .open(&file)
                .and_then(|f| f.set_modified(SystemTime::now()));
            Ok::<_, std::io::Error>(bytes)
        })
        .await;
        match read {
            Ok(Ok(bytes)) => match envelope::open(Bytes::from(bytes)) {
                Ok(body) => Some(body),
                Err(e) => {
                    tracing::warn!(path, error = %e, "corrupt object in the disk tier; deleting it");
                    metrics::counter!(telemetry::STORE_CORRUPT, "tier" => "disk").increment(1);
                    self.index.invalidate(&name);
                    let _ = tokio::fs::remove_file(file_of(&self.dir, &name)).await;
                    None
                }
            },
            _ => {
                self.index.invalidate(&name);
                None
            }
        }
    }

    /// Keeps a copy of the sealed object `sealed` for `path`. Failing to
    /// (a full disk, say) only loses the copy.
    pub async fn put(&self, path: &str, sealed: Bytes) {
        let name = name_of(path);
        let dir = Arc::clone(&self.dir);
        let size = u32::try_from(sealed.len()).unwrap_or(u32::MAX);
        let file = name.clone();
        let wrote = tokio::task::spawn_blocking(move || {
            let tmp = dir
                .join("tmp")
                .join(format!("{file}.{}", uuid::Uuid::new_v4().simple()));
            let target = file_of(&dir, &file);
            std::fs::create_dir_all(target.parent().unwrap_or(&dir))?;
            std::fs::write(&tmp, &sealed)?;
            std::fs::rename(&tmp, &target).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
        })
        .await;
        match wrote {
            Ok(Ok(())) => {
                self.index.insert(name.into(), size);
                // Evict now, so the bytes on disk stay within the budget.
                self.index.run_pending_tasks();
            }
            Ok(Err(e)) => tracing::warn!(path, error = %e, "cannot write to the disk tier"),
            Err(e) => tracing::warn!(path, error = %e, "disk tier write task failed"),
        }
    }

    /// Drops the copy of `path`, if any.
    pub async fn remove(&self, path: &str) {
        let name: Arc<str> = name_of(path).into();
        self.index.invalidate(&name);
        let _ = tokio::fs::remove_file(file_of(&self.dir, &name)).await;
    }

    /// Bytes held (after pending evictions).
    pub fn bytes(&self) -> u64 {
        self.index.run_pending_tasks();
        self.index.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(n: usize, fill: u8) -> Bytes {
        envelope::seal(&vec![fill; n])
    }

    #[tokio::test]
    async fn bounded_lru_that_survives_a_restart_and_drops_damage() {
        let dir = tempfile::tempdir().unwrap();
        let one = sealed(1000, 1).len() as u64;
        let tier = DiskTier::open(dir.path(), 3 * one).unwrap();
        for (i, p) in ["a", "b", "c"].iter().enumerate() {
            tier.put(p, sealed(1000, i as u8)).await;
        }
        // "a" is used, so "b" is the least recently used when "d" arrives.
        assert_eq!(tier.get("a").await.unwrap()[0], 0);
        tier.put("d", sealed(1000, 3)).await;
        assert!(tier.bytes() <= 3 * one);
        assert!(tier.get("b").await.is_none(), "b was least recently used");
        assert!(tier.get("a").await.is_some());
        assert!(tier.get("d").await.is_some());
        let files = |d: &Path| {
            walk(d)
                .into_iter()
                .filter(|p| !p.starts_with(d.join("tmp")) && !p.ends_with(".lock"))
                .count()
        };
        assert_eq!(files(dir.path()), 3, "evicted files are deleted");
        drop(tier);

        // A restart finds the same three, and still bounds them.
        let tier = DiskTier::open(dir.path(), 3 * one).unwrap();
        assert_eq!(tier.bytes(), 3 * one);
        assert_eq!(tier.get("c").await.unwrap()[0], 2);

        // Damage on disk: the copy is refused and removed.
        let file = file_of(dir.path(), &name_of("d"));
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[envelope::OVERHEAD] ^= 0xff;
        std::fs::write(&file, bytes).unwrap();
        assert!(tier.get("d").await.is_none());
        assert!(!file.exists());
        assert!(tier.get("d").await.is_none());
    }

    fn walk(d: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
