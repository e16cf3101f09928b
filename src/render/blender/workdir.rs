//! The backend's private folder (the script, scene files by content hash,
//! outputs), locked while this process holds it; folders no live process
//! holds are removed at start, and a render's output file however the
//! render ends.

use crate::catalog::Scene;
use crate::render::RenderError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The backend's script, shipped inside the binary.
const SCRIPT: &str = include_str!("../../../render/blender/layercake.py");

/// The private folder: the script, scene files by content hash, outputs.
/// Its `owner` file stays locked (`flock`) while this process holds it, so
/// another process can tell a folder left behind from one in use.
#[derive(Debug)]
pub(super) struct WorkDir {
    pub(super) path: PathBuf,
    _owner: std::fs::File,
}

/// The prefix of every work folder.
const WORKDIR_PREFIX: &str = "layercake-blender-";
/// A scene file not used for this long is removed (it is written again
/// from the asset if a render needs it).
const SCENE_IDLE: Duration = Duration::from_secs(3600);

/// Takes `file`'s exclusive lock without waiting; whether it was free.
fn try_lock(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock on a descriptor this File owns; no memory is touched.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

impl WorkDir {
    pub(super) fn create() -> std::io::Result<WorkDir> {
        let tmp = std::env::temp_dir();
        remove_orphans(&tmp);
        let path = tmp.join(format!(
            "{WORKDIR_PREFIX}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(path.join("scenes"))?;
        let owner = std::fs::File::create(path.join("owner"))?;
        if !try_lock(&owner) {
            return Err(std::io::Error::other("cannot lock the work folder"));
        }
        std::fs::write(path.join("layercake.py"), SCRIPT)?;
        Ok(WorkDir {
            path,
            _owner: owner,
        })
    }
}

/// The scene file on disk under its content hash, written on first use
/// and touched on every use; scene files idle for an hour are removed
/// when another is written.
pub(super) fn scene_file(dir: &Path, scene: &Scene) -> Result<PathBuf, RenderError> {
    let path = dir.join(format!("{}.{}", scene.hash_hex(), scene.extension()));
    let now = std::time::SystemTime::now();
    let touched = std::fs::File::options()
        .append(true)
        .open(&path)
        .and_then(|f| f.set_modified(now));
    if touched.is_err() {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let idle = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok());
            if idle.is_some_and(|d| d > SCENE_IDLE) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let part = path.with_extension(format!("part-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&part, &scene.bytes[..])
            .and_then(|()| std::fs::rename(&part, &path))
            .map_err(|e| RenderError::Failed(format!("writing the scene file: {e}")))?;
    }
    Ok(path)
}

/// Removes the work folders (scene copies, outputs) that no live process
/// holds: their owner was killed, or ended without dropping them.
fn remove_orphans(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let is_ours = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(WORKDIR_PREFIX));
        if !is_ours {
            continue;
        }
        // A folder without its owner file is being made right now, or is
        // not ours to judge: left alone.
        let Ok(owner) = std::fs::File::open(e.path().join("owner")) else {
            continue;
        };
        if try_lock(&owner) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes a render's output file however the render ends.
pub(super) struct Output(pub(super) PathBuf);

impl Drop for Output {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_folders_nobody_holds_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let d = tmp.path().join(name);
            std::fs::create_dir_all(d.join("scenes")).unwrap();
            d
        };
        let (left, held) = (dir("layercake-blender-1-a"), dir("layercake-blender-2-b"));
        let (making, other) = (dir("layercake-blender-3-c"), dir("layercake-other-1"));
        std::fs::File::create(left.join("owner")).unwrap();
        let owner = std::fs::File::create(held.join("owner")).unwrap();
        assert!(try_lock(&owner));
        remove_orphans(tmp.path());
        assert!(!left.exists(), "nobody holds it");
        assert!(held.exists(), "its owner holds the lock");
        assert!(making.exists() && other.exists());
        drop(owner);
        remove_orphans(tmp.path());
        assert!(!held.exists(), "its owner is gone");
    }
}
