//! Writes waiting for the object store.
//!
//! While the object store is unreachable, a finished render must be
//! neither lost nor half-written: its sealed object goes to
//! `<data_dir>/outbox/<blake3 of the path>` (temporary file + rename, so a
//! crash leaves a whole entry or none), is readable from there meanwhile,
//! and is written to the object store in the background, oldest first,
//! once it answers again. One entry per path: a newer write of the same
//! path replaces the waiting one. Entries survive restarts.
//!
//! Entry file: `LCO1` ‖ written at (µs since the Unix epoch, u64) ‖ mode
//! (0 overwrite, 1 create-if-absent) ‖ path length (u16) ‖ path ‖ sealed
//! object; integers big-endian.

use super::{StoreError, envelope};
use crate::telemetry;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

const MAGIC: &[u8; 4] = b"LCO1";

/// A waiting write, as the flusher sees it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub path: String,
    /// Create-if-absent: an object already there wins.
    pub create: bool,
    pub sealed: Bytes,
    generation: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    path: String,
    size: u64,
    generation: u64,
    written: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    bytes: u64,
    next_generation: u64,
}

#[derive(Clone)]
pub struct Outbox {
    dir: Arc<PathBuf>,
    max_bytes: u64,
    state: Arc<Mutex<State>>,
    _lock: Arc<std::fs::File>,
}

fn name_of(path: &str) -> String {
    blake3::hash(path.as_bytes()).to_hex().to_string()
}

/// Bytes before the path.
const HEAD: usize = 4 + 8 + 1 + 2;

fn micros(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn encode(path: &str, create: bool, sealed: &[u8], written: u64) -> Result<Vec<u8>, StoreError> {
    let len = u16::try_from(path.len())
        .map_err(|_| StoreError::Backend(format!("object path too long: {path}")))?;
    let mut out = Vec::with_capacity(HEAD + path.len() + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&written.to_be_bytes());
    out.push(u8::from(create));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(sealed);
    Ok(out)
}

/// An entry file's fields.
struct Decoded {
    written: u64,
    path: String,
    create: bool,
    sealed: Bytes,
}

fn decode(file: Bytes) -> Option<Decoded> {
    if file.len() < HEAD || &file[..4] != MAGIC {
        return None;
    }
    let written = u64::from_be_bytes(file[4..12].try_into().ok()?);
    let create = file[12] == 1;
    let len = usize::from(u16::from_be_bytes([file[13], file[14]]));
    let path = std::str::from_utf8(file.get(HEAD..HEAD + len)?)
        .ok()?
        .to_string();
    Some(Decoded {
        written,
        path,
        create,
        sealed: file.slice(HEAD + len..),
    })
}

impl Outbox {
    /// Opens (creating) the outbox in `dir` with the entries left there.
    ///
    /// # Errors
    /// The folder cannot be created or read.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Outbox> {
        let lock = super::disk::lock_dir(dir)?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        for e in std::fs::read_dir(dir.join("tmp"))? {
            let _ = std::fs::remove_file(e?.path());
        }
        let mut state = State::default();
        for e in std::fs::read_dir(dir)? {
            let Ok((e, meta)) = e.and_then(|e| e.metadata().map(|m| (e, m))) else {
                continue;
            };
            if !meta.is_file() || e.file_name() == ".lock" {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            match decode(Bytes::from(bytes)) {
                Some(d) if name_of(&d.path) == name => {
                    state.bytes += meta.len();
                    state.next_generation += 1;
                    let entry = Entry {
                        path: d.path,
                        size: meta.len(),
                        generation: state.next_generation,
                        written: d.written,
                    };
                    state.entries.insert(name, entry);
                }
                _ => {
                    tracing::warn!(file = %e.path().display(), "unreadable outbox entry; deleting it");
                    metrics::counter!(telemetry::STORE_CORRUPT, "tier" => "outbox").increment(1);
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let outbox = Outbox {
            dir: Arc::new(dir.to_path_buf()),
            max_bytes,
            state: Arc::new(Mutex::new(state)),
            _lock: Arc::new(lock),
        };
        outbox.report();
        Ok(outbox)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn report(&self) {
        let (n, bytes) = self.totals();
        metrics::gauge!(telemetry::STORE_OUTBOX, "unit" => "objects").set(n as f64);
        metrics::gauge!(telemetry::STORE_OUTBOX, "unit" => "bytes").set(bytes as f64);
    }

    /// Objects and bytes waiting.
    pub fn totals(&self) -> (usize, u64) {
        let s = self.lock();
        (s.entries.len(), s.bytes)
    }

    /// Under 90% of the byte budget.
    pub fn has_room(&self) -> bool {
        self.lock().bytes < self.max_bytes / 10 * 9
    }

    pub fn contains(&self, path: &str) -> bool {
        self.lock().entries.contains_key(&name_of(path))
    }

    /// Keeps `sealed` for `path` until the flusher writes it.
    ///
    /// # Errors
    /// [`StoreError::Full`] past the byte budget; [`StoreError::Backend`]
    /// when the local write fails.
    pub async fn put(&self, path: &str, sealed: &Bytes, create: bool) -> Result<(), StoreError> {
        let name = name_of(path);
        let written = micros(SystemTime::now());
        let file = encode(path, create, sealed, written)?;
        let size = file.len() as u64;
        let dir = Arc::clone(&self.dir);
        let tmp_name = format!("{name}.{}", uuid::Uuid::new_v4().simple());
        let tmp = dir.join("tmp").join(tmp_name);
        let staged = tmp.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut f = std::fs::File::create(&staged)?;
            f.write_all(&file)?;
            // On disk before it is renamed in: after a crash an entry is
            // whole or absent.
            f.sync_all()
        })
        .await
        .map_err(|e| StoreError::Backend(format!("outbox write task: {e}")))?
        .map_err(|e| StoreError::Backend(format!("outbox write: {e}")))?;
        {
            // Rename and index together, so that `done` (which removes under
            // the same lock) never deletes a file newer than its entry.
            let mut s = self.lock();
            let replaced = s.entries.get(&name).map_or(0, |e| e.size);
            if s.bytes - replaced + size > self.max_bytes {
                let _ = std::fs::remove_file(&tmp);
                return Err(StoreError::Full(format!(
                    "{} bytes already wait for the object store (storage.outbox_max_bytes = {})",
                    s.bytes, self.max_bytes
                )));
            }
            if let Err(e) = std::fs::rename(&tmp, dir.join(&name)) {
                let _ = std::fs::remove_file(&tmp);
                return Err(StoreError::Backend(format!("outbox write: {e}")));
            }
            s.next_generation += 1;
            let entry = Entry {
                path: path.to_string(),
                size,
                generation: s.next_generation,
                written,
            };
            if let Some(old) = s.entries.insert(name, entry) {
                s.bytes -= old.size;
            }
            s.bytes += size;
        }
        self.report();
        Ok(())
    }

    /// The waiting body of `path`, verified. A damaged entry is dropped.
    pub async fn get(&self, path: &str) -> Option<Bytes> {
        let name = name_of(path);
        let generation = self.lock().entries.get(&name)?.generation;
        let pending = self.read(path, generation).await?;
        match envelope::open(pending.sealed) {
            Ok(body) => Some(body),
            Err(e) => {
                tracing::warn!(path, error = %e, "corrupt outbox entry; deleting it");
                metrics::counter!(telemetry::STORE_CORRUPT, "tier" => "outbox").increment(1);
                self.done(&pending.path, generation);
                None
            }
        }
    }

    /// The entry of `path` as it is on disk now.
    pub async fn read(&self, path: &str, generation: u64) -> Option<Pending> {
        let bytes = tokio::fs::read(self.dir.join(name_of(path))).await.ok()?;
        let d = decode(Bytes::from(bytes))?;
        Some(Pending {
            path: d.path,
            create: d.create,
            sealed: d.sealed,
            generation,
        })
    }

    /// The waiting paths with their generations, oldest first.
    pub fn waiting(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(u64, String, u64)> = self
            .lock()
            .entries
            .values()
            .map(|e| (e.written, e.path.clone(), e.generation))
            .collect();
        all.sort();
        all.into_iter().map(|(_, p, g)| (p, g)).collect()
    }

    /// Drops the entry of `path` if it is still the given generation (a
    /// newer write of the same path, made while this one was being
    /// flushed, stays).
    pub fn done(&self, path: &str, generation: u64) {
        let name = name_of(path);
        {
            let mut s = self.lock();
            match s.entries.get(&name) {
                Some(e) if e.generation == generation => {}
                _ => return,
            }
            if let Some(old) = s.entries.remove(&name) {
                s.bytes -= old.size;
            }
            // Under the lock: a `put` of the same path renames its file in
            // under it too, so this never removes a newer file.
            let _ = std::fs::remove_file(self.dir.join(&name));
        }
        self.report();
    }

    /// Drops any entry of `path` (a newer write reached the object store).
    pub fn forget(&self, path: &str) {
        let generation = self
            .lock()
            .entries
            .get(&name_of(path))
            .map(|e| e.generation);
        if let Some(g) = generation {
            self.done(path, g);
        }
    }
}

impl Pending {
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_readable_replaced_bounded_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path(), 10_000).unwrap();
        ob.put("layers/a", &envelope::seal(b"one"), true)
            .await
            .unwrap();
        ob.put("layers/b", &envelope::seal(b"two"), false)
            .await
            .unwrap();
        ob.put("layers/a", &envelope::seal(b"three"), true)
            .await
            .unwrap();
        assert_eq!(
            ob.get("layers/a").await.unwrap(),
            Bytes::from_static(b"three")
        );
        assert_eq!(ob.totals().0, 2);
        let big = envelope::seal(&[7u8; 20_000]);
        assert!(matches!(
            ob.put("layers/c", &big, false).await,
            Err(StoreError::Full(_))
        ));
        drop(ob);

        let ob = Outbox::open(dir.path(), 10_000).unwrap();
        let waiting = ob.waiting();
        let paths: Vec<&str> = waiting.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["layers/b", "layers/a"], "oldest first");
        let mut pending = Vec::new();
        for (p, g) in &waiting {
            pending.push(ob.read(p, *g).await.unwrap());
        }
        assert!(pending[1].create && !pending[0].create);
        // A write made while the old one was being flushed survives it.
        ob.put("layers/b", &envelope::seal(b"newer"), false)
            .await
            .unwrap();
        ob.done("layers/b", pending[0].generation());
        assert_eq!(
            ob.get("layers/b").await.unwrap(),
            Bytes::from_static(b"newer")
        );
        ob.done("layers/a", pending[1].generation());
        assert!(ob.get("layers/a").await.is_none());
        assert!(!ob.contains("layers/a"));
        ob.forget("layers/b");
        assert_eq!(ob.totals(), (0, 0));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "only tmp/ and .lock"
        );
    }
}
