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
/// Lines of Blender's own output kept for an error message.
const TAIL_LINES: usize = 12;

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
        Ok(BlenderSettings {
            command,
            samples,
            seed: b.seed.unwrap_or(0),
            device,
            threads: b.threads.unwrap_or(0),
            scale,
            max_renders_per_process: max_renders,
        })
    }
}

/// The private folder: the script, scene files by content hash, outputs.
#[derive(Debug)]
struct WorkDir(PathBuf);

/// The prefix of every work folder, followed by the owner's process id.
const WORKDIR_PREFIX: &str = "layercake-blender-";

impl WorkDir {
    fn create() -> std::io::Result<WorkDir> {
        remove_orphans(&std::env::temp_dir());
        let dir = std::env::temp_dir().join(format!(
            "{WORKDIR_PREFIX}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("scenes"))?;
        std::fs::write(dir.join("layercake.py"), SCRIPT)?;
        Ok(WorkDir(dir))
    }

    /// The scene file on disk under its content hash, written on first use.
    fn scene(&self, scene: &Scene) -> Result<PathBuf, RenderError> {
        let path =
            self.0
                .join("scenes")
                .join(format!("{}.{}", scene.hash_hex(), scene.extension()));
        if !path.exists() {
            let part = path.with_extension(format!("part-{}", uuid::Uuid::new_v4().simple()));
            std::fs::write(&part, &scene.bytes[..])
                .and_then(|()| std::fs::rename(&part, &path))
                .map_err(|e| RenderError::Failed(format!("writing the scene file: {e}")))?;
        }
        Ok(path)
    }
}

/// Removes the work folders (scene copies, outputs) of processes that are
/// gone without removing their own (killed, or ended by `exit`).
fn remove_orphans(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WORKDIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What Blender said lately, for error messages.
type Tail = Arc<Mutex<VecDeque<String>>>;

fn remember(tail: &Tail, line: String) {
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
    _child: Child,
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
                Ok(Some(line)) => match line.strip_prefix(MARK) {
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
            .arg(self.dir.0.join("layercake.py"))
            .args(["--", "--serve"])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir.0)
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
            _child: child,
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

    fn take_idle(&self) -> Option<Process> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
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
        m.insert(
            "scene".into(),
            self.dir.scene(scene)?.display().to_string().into(),
        );
        m.insert("output".into(), output.display().to_string().into());
        m.insert("width".into(), asset.width.into());
        m.insert("height".into(), asset.height.into());
        m.insert("scale".into(), s.scale.into());
        m.insert("samples".into(), s.samples.into());
        m.insert("seed".into(), s.seed.into());
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
        let output = self
            .dir
            .0
            .join(format!("{}.png", uuid::Uuid::new_v4().simple()));
        let request = self.request(asset, view, target, &output)?;
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
        let answer = tokio::time::timeout(self.timeout, work).await;
        let result = self.finish(answer, &output);
        let _ = std::fs::remove_file(&output);
        let image = result?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            asset = %asset.name,
            layer = what,
            view = %asset.views[view].name,
            "blender render"
        );
        self.to_canvas(image, asset.width, asset.height)
    }

    fn finish(
        &self,
        answer: Result<Result<J, RenderError>, tokio::time::error::Elapsed>,
        output: &Path,
    ) -> Result<LayerImage, RenderError> {
        let answer = answer.map_err(|_| RenderError::Timeout(self.timeout))??;
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
        let size = std::fs::metadata(output)
            .map_err(|e| RenderError::Failed(format!("blender's output: {e}")))?
            .len();
        if size > self.max_output_bytes as u64 {
            return Err(RenderError::Rejected(format!(
                "blender's output is {size} bytes, over render.max_output_bytes ({})",
                self.max_output_bytes
            )));
        }
        let bytes = std::fs::read(output)
            .map_err(|e| RenderError::Failed(format!("blender's output: {e}")))?;
        decode_output("blender", &bytes, self.max_pixels)
    }

    /// A render at `scale` resampled to the canvas (premultiplied Lanczos).
    fn to_canvas(
        &self,
        image: LayerImage,
        width: u32,
        height: u32,
    ) -> Result<LayerImage, RenderError> {
        if image.canvas_width == width && image.canvas_height == height {
            return Ok(image);
        }
        if self.settings.scale == 100 {
            return Ok(image); // the canvas check (`jobs::validate`) names the mismatch
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
    fn work_folders_of_dead_processes_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        // Pid 4294967 is above any pid_max Linux allows (4194304); ours stays.
        let dead = tmp.path().join(format!("{WORKDIR_PREFIX}4294967-abc"));
        let mine = tmp
            .path()
            .join(format!("{WORKDIR_PREFIX}{}-abc", std::process::id()));
        let other = tmp.path().join("layercake-other-1");
        for d in [&dead, &mine, &other] {
            std::fs::create_dir_all(d.join("scenes")).unwrap();
        }
        remove_orphans(tmp.path());
        assert!(!dead.exists());
        assert!(mine.exists() && other.exists());
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
