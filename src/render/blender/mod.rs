//! The `blender` backend: layers of a 3D scene rendered by Blender (Cycles).
//!
//! Blender runs as long-lived child processes, each driven by the script
//! shipped in `render/blender/layercake.py` (compiled into this binary and
//! written to a private folder at start): one request per line on its
//! stdin, one answer line back (see the script). A process renders one
//! request at a time and is handed back to the pool afterwards, so Blender
//! starts once per slot rather than once per layer; it reloads the scene
//! for every request, so no request sees another's changes. A process
//! that times out, dies or answers nonsense is killed (with its process
//! group) and the next render starts a fresh one; each is also replaced
//! after `max_renders_per_process` renders, to bound what a leak can hold.
//!
//! What a render shows is decided in Rust (`plan`); the scene file travels
//! inside the asset (its bytes are part of every layer key) and is written
//! under its content hash, so a node renders exactly the scene its keys
//! were made from. Samples, seed, device, threads and resolution scale are
//! this backend's settings; the output is checked like any backend's
//! (size and pixel budget from the header before decoding, the canvas).

pub mod plan;

use super::command::KillGroup;
use super::external::decode_output;
use super::{BackendSettings, RenderError, RenderRequest, Renderer};
use crate::catalog::{Asset, Scene};
use crate::compose::{Fit, LayerImage, Rect, Rgba8, geometry, resize_into, unpremultiply};
use serde_json::{Map, Value as J};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub use plan::Target;

/// The backend's script, shipped inside the binary.
const SCRIPT: &str = include_str!("../../../render/blender/layercake.py");
/// The prefix of the script's answer lines.
const MARK: &str = "@@layercake ";
/// Lines of Blender's own output kept for an error message, and the
/// bytes kept of each.
const TAIL_LINES: usize = 12;
const TAIL_LINE_BYTES: usize = 300;

/// How Blender renders (from `[render.backends.<name>]`, kind "blender").
#[derive(Debug, Clone, PartialEq)]
pub struct BlenderSettings {
    /// The program and arguments before the script's (default `["blender"]`).
    pub command: Vec<String>,
    pub samples: u32,
    pub seed: u32,
    /// `CPU`, `CUDA`, `OPTIX`, `HIP`, `ONEAPI` or `METAL`.
    pub device: String,
    /// Render threads per process; 0: one per CPU.
    pub threads: u32,
    /// Render at this percentage of the canvas, then resample to it
    /// (drafts and previews; 100 for production).
    pub scale: u32,
    pub max_renders_per_process: u32,
}

const DEVICES: [&str; 6] = ["CPU", "CUDA", "OPTIX", "HIP", "ONEAPI", "METAL"];

impl BlenderSettings {
    /// # Errors
    /// A message naming the field of `[render.backends.<name>]` at fault.
    pub fn from_backend(name: &str, b: &BackendSettings) -> Result<BlenderSettings, String> {
        let field = |f: &str| format!("render.backends.{name}.{f}");
        let device = b
            .device
            .clone()
            .unwrap_or_else(|| "CPU".into())
            .to_uppercase();
        if !DEVICES.contains(&device.as_str()) {
            return Err(format!(
                "{}: \"{device}\" is not one of {}",
                field("device"),
                DEVICES.join(", ")
            ));
        }
        let samples = b.samples.unwrap_or(64);
        if !(1..=65_536).contains(&samples) {
            return Err(format!(
                "{}: {samples} is outside 1..=65536",
                field("samples")
            ));
        }
        let scale = b.scale.unwrap_or(100);
        if !(1..=100).contains(&scale) {
            return Err(format!(
                "{}: {scale} is outside 1..=100 (percent of the canvas)",
                field("scale")
            ));
        }
        let max_renders = b.max_renders_per_process.unwrap_or(100);
        if max_renders == 0 {
            return Err(format!(
                "{}: must be at least 1",
                field("max_renders_per_process")
            ));
        }
        let command = if b.command.is_empty() {
            vec!["blender".to_string()]
        } else if b.command[0].is_empty() {
            return Err(format!("{}: the program is empty", field("command")));
        } else {
            b.command.clone()
        };
        let seed = b.seed.unwrap_or(0);
        if i32::try_from(seed).is_err() {
            return Err(format!(
                "{}: {seed} is over {} (Cycles' seed is a signed 32-bit integer)",
                field("seed"),
                i32::MAX
            ));
        }
        Ok(BlenderSettings {
            command,
            samples,
            seed,
            device,
            threads: b.threads.unwrap_or(0),
            scale,
            max_renders_per_process: max_renders,
        })
    }
}

/// The private folder: the script, scene files by content hash, outputs.
/// Its `owner` file stays locked (`flock`) while this process holds it, so
/// another process can tell a folder left behind from one in use.
#[derive(Debug)]
struct WorkDir {
    path: PathBuf,
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
    fn create() -> std::io::Result<WorkDir> {
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
fn scene_file(dir: &Path, scene: &Scene) -> Result<PathBuf, RenderError> {
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
struct Output(PathBuf);

impl Drop for Output {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What Blender said lately, for error messages.
type Tail = Arc<Mutex<VecDeque<String>>>;

fn remember(tail: &Tail, mut line: String) {
    if line.len() > TAIL_LINE_BYTES {
        let mut end = TAIL_LINE_BYTES;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
    if t.len() == TAIL_LINES {
        t.pop_front();
    }
    t.push_back(line);
}

fn recent(tail: &Tail) -> String {
    let t = tail.lock().unwrap_or_else(|p| p.into_inner());
    t.iter().cloned().collect::<Vec<_>>().join(" | ")
}

/// One Blender process, ready for a request.
struct Process {
    child: Child,
    _group: Option<KillGroup>,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    tail: Tail,
    renders: u32,
}

impl Process {
    /// The next answer line, Blender's own lines remembered on the way.
    async fn answer(&mut self) -> Result<J, RenderError> {
        loop {
            match self.stdout.next_line().await {
                Ok(Some(line)) => match line.find(MARK).map(|at| &line[at + MARK.len()..]) {
                    Some(json) => {
                        return serde_json::from_str(json).map_err(|e| {
                            RenderError::Failed(format!("blender answered nonsense ({e}): {json}"))
                        });
                    }
                    None => remember(&self.tail, line),
                },
                Ok(None) => {
                    return Err(RenderError::Failed(format!(
                        "blender exited: {}",
                        recent(&self.tail)
                    )));
                }
                Err(e) => {
                    return Err(RenderError::Failed(format!(
                        "reading blender's output: {e}"
                    )));
                }
            }
        }
    }
}

/// The `blender` render backend.
pub struct BlenderRenderer {
    settings: BlenderSettings,
    env: Vec<(String, String)>,
    timeout: Duration,
    max_pixels: u64,
    max_output_bytes: usize,
    dir: WorkDir,
    idle: Mutex<Vec<Process>>,
}

impl BlenderRenderer {
    /// The backend `[render.backends.<name>]` describes.
    ///
    /// # Errors
    /// A message naming the field at fault, or the private folder's error.
    pub fn configured(
        name: &str,
        b: &BackendSettings,
        s: &super::RenderSettings,
    ) -> Result<BlenderRenderer, String> {
        BlenderRenderer::new(
            BlenderSettings::from_backend(name, b)?,
            super::command::environment(&b.pass_env),
            Duration::from_secs(b.timeout_secs.unwrap_or(s.timeout_secs)),
            s.max_pixels,
            s.max_output_bytes,
        )
    }

    /// # Errors
    /// A message when the private folder cannot be made.
    pub fn new(
        settings: BlenderSettings,
        env: Vec<(String, String)>,
        timeout: Duration,
        max_pixels: u64,
        max_output_bytes: usize,
    ) -> Result<BlenderRenderer, String> {
        let dir =
            WorkDir::create().map_err(|e| format!("blender backend: a private folder: {e}"))?;
        Ok(BlenderRenderer {
            settings,
            env,
            timeout,
            max_pixels,
            max_output_bytes,
            dir,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn start(&self) -> Result<Process, RenderError> {
        let s = &self.settings;
        let mut command = Command::new(&s.command[0]);
        super::command::die_with_parent(&mut command);
        let mut child = command
            .args(&s.command[1..])
            .args(["-b", "--factory-startup", "-noaudio", "--python"])
            .arg(self.dir.path.join("layercake.py"))
            .args(["--", "--serve"])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir.path)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RenderError::Failed(format!("cannot start {}: {e}", s.command[0])))?;
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(KillGroup);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(RenderError::Failed("blender's pipes are missing".into()));
        };
        let tail: Tail = Arc::default();
        let errors = Arc::clone(&tail);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "layercake::render::blender", "{line}");
                remember(&errors, line);
            }
        });
        let mut p = Process {
            child,
            _group: group,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            tail,
            renders: 0,
        };
        let hello = p.answer().await?;
        if hello["ready"] != true {
            return Err(RenderError::Failed(format!(
                "blender did not start the script: {hello}"
            )));
        }
        tracing::info!(blender = %hello["blender"], "blender render process started");
        Ok(p)
    }

    /// An idle process that is still alive (one that died idle is dropped).
    fn take_idle(&self) -> Option<Process> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(mut p) = idle.pop() {
            if matches!(p.child.try_wait(), Ok(None)) {
                return Some(p);
            }
        }
        None
    }

    fn give_back(&self, p: Process) {
        if p.renders < self.settings.max_renders_per_process {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(p);
        }
    }

    /// The script's request for `target` of `asset` at `view`.
    fn request(
        &self,
        asset: &Asset,
        view: usize,
        target: Target<'_>,
        scene_path: &Path,
        output: &Path,
    ) -> Result<J, RenderError> {
        let scene = asset
            .scene
            .as_ref()
            .ok_or_else(|| RenderError::Rejected(format!("{} has no 3D scene", asset.name)))?;
        let camera = asset.views[view].camera.as_ref().ok_or_else(|| {
            RenderError::Rejected(format!("view \"{}\" has no camera", asset.views[view].name))
        })?;
        let mut m: Map<String, J> = plan::plan(asset, target)?.to_json();
        let s = &self.settings;
        m.insert("scene".into(), scene_path.display().to_string().into());
        m.insert("output".into(), output.display().to_string().into());
        m.insert("width".into(), asset.width.into());
        m.insert("height".into(), asset.height.into());
        m.insert("scale".into(), s.scale.into());
        m.insert("samples".into(), scene.samples.unwrap_or(s.samples).into());
        m.insert("seed".into(), scene.seed.unwrap_or(s.seed).into());
        m.insert("device".into(), s.device.clone().into());
        m.insert("threads".into(), s.threads.into());
        m.insert(
            "floor".into(),
            scene.floor.clone().map_or(J::Null, J::String),
        );
        m.insert(
            "camera".into(),
            serde_json::to_value(camera).map_err(|e| RenderError::Failed(e.to_string()))?,
        );
        Ok(J::Object(m))
    }

    /// Renders `target` of `asset` at `view`: the canvas, straight alpha.
    ///
    /// # Errors
    /// [`RenderError`]: `Rejected` when the asset or scene is wrong (a
    /// retry cannot help), `Failed` or `Timeout` otherwise.
    pub async fn render_target(
        &self,
        asset: &Asset,
        view: usize,
        target: Target<'_>,
    ) -> Result<LayerImage, RenderError> {
        let scene = asset
            .scene
            .clone()
            .ok_or_else(|| RenderError::Rejected(format!("{} has no 3D scene", asset.name)))?;
        let scenes = self.dir.path.join("scenes");
        let scene_path = blocking(move || scene_file(&scenes, &scene)).await?;
        let output = Output(
            self.dir
                .path
                .join(format!("{}.png", uuid::Uuid::new_v4().simple())),
        );
        let request = self.request(asset, view, target, &scene_path, &output.0)?;
        let what = match target {
            Target::Layer { layer, .. } => asset.layers[layer].name.as_str(),
            Target::Full { .. } => "the full scene",
        };
        let started = Instant::now();
        let work = async {
            let mut p = match self.take_idle() {
                Some(p) => p,
                None => self.start().await?,
            };
            let mut line = serde_json::to_vec(&request)
                .map_err(|e| RenderError::Failed(format!("request encoding: {e}")))?;
            line.push(b'\n');
            p.stdin.write_all(&line).await.map_err(|e| {
                RenderError::Failed(format!("writing to blender: {e} {}", recent(&p.tail)))
            })?;
            let answer = p.answer().await?;
            p.renders += 1;
            // A clean answer, success or not, leaves the process usable.
            self.give_back(p);
            Ok::<J, RenderError>(answer)
        };
        // Past the timeout the future is dropped, and with it the process
        // (its whole group is killed).
        let answer = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| RenderError::Timeout(self.timeout))??;
        if answer["ok"] != true {
            let error = answer["error"]
                .as_str()
                .unwrap_or("no reason given")
                .to_string();
            return Err(if answer["scene"] == true {
                RenderError::Rejected(format!("blender: {error}"))
            } else {
                RenderError::Failed(format!("blender: {error}"))
            });
        }
        let path = output.0.clone();
        let (max_bytes, max_pixels, scale) =
            (self.max_output_bytes, self.max_pixels, self.settings.scale);
        let (width, height) = (asset.width, asset.height);
        let image = blocking(move || {
            let image = read_output(&path, max_bytes, max_pixels)?;
            to_canvas(image, width, height, scale)
        })
        .await?;
        drop(output);
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            asset = %asset.name,
            layer = what,
            view = %asset.views[view].name,
            "blender render"
        );
        Ok(image)
    }
}

/// `f` on the blocking pool (file I/O, decoding, resampling): never on the
/// runtime's threads, which also serve requests.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RenderError> + Send + 'static,
) -> Result<T, RenderError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RenderError::Failed(format!("the blender backend's task: {e}")))?
}

/// Blender's PNG, within the size and pixel budgets.
fn read_output(path: &Path, max_bytes: usize, max_pixels: u64) -> Result<LayerImage, RenderError> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max_bytes as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| RenderError::Failed(format!("blender's output: {e}")))?;
    if bytes.len() > max_bytes {
        return Err(RenderError::Rejected(format!(
            "blender's output is over render.max_output_bytes ({max_bytes})"
        )));
    }
    decode_output("blender", &bytes, max_pixels)
}

/// A render at `scale` percent resampled to the canvas (premultiplied
/// Lanczos); at 100 it is left as it is (the canvas check, `jobs::validate`,
/// names a mismatch).
fn to_canvas(
    image: LayerImage,
    width: u32,
    height: u32,
    scale: u32,
) -> Result<LayerImage, RenderError> {
    if (image.canvas_width == width && image.canvas_height == height) || scale == 100 {
        return Ok(image);
    }
    let region = Rect {
        x: 0,
        y: 0,
        width: image.canvas_width,
        height: image.canvas_height,
    };
    let premul = crate::compose::compose(region, &[&image]);
    let g = geometry(
        (region.width, region.height),
        Some(width),
        Some(height),
        Fit::Contain,
    );
    let mut out = resize_into(premul, &g);
    unpremultiply(&mut out.data, out.width, out.height);
    Ok(LayerImage {
        image: Rgba8 {
            width: out.width,
            height: out.height,
            data: out.data,
        },
        x: 0,
        y: 0,
        canvas_width: width,
        canvas_height: height,
    })
}

#[async_trait::async_trait]
impl Renderer for BlenderRenderer {
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        self.render_target(
            &req.asset,
            req.view,
            Target::Layer {
                layer: req.layer,
                values: &req.values,
            },
        )
        .await
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

    #[test]
    fn settings_are_checked_by_name() {
        let mut b: BackendSettings = toml::from_str("kind = \"blender\"").unwrap();
        let s = BlenderSettings::from_backend("b", &b).unwrap();
        assert_eq!((s.samples, s.scale, s.device.as_str()), (64, 100, "CPU"));
        assert_eq!(s.command, ["blender"]);
        b.device = Some("tpu".into());
        let e = BlenderSettings::from_backend("b", &b).unwrap_err();
        assert!(e.starts_with("render.backends.b.device: \"TPU\""), "{e}");
        b.device = Some("optix".into());
        b.scale = Some(0);
        let e = BlenderSettings::from_backend("b", &b).unwrap_err();
        assert!(e.starts_with("render.backends.b.scale"), "{e}");
    }
}
