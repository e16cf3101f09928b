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

mod output;
pub mod plan;
mod process;
mod settings;
mod workdir;

use super::{BackendSettings, RenderError, RenderRequest, Renderer};
use crate::catalog::Asset;
use crate::compose::LayerImage;
use output::{blocking, read_output, to_canvas};
use process::{Process, recent};
use serde_json::{Map, Value as J};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use workdir::{Output, WorkDir, scene_file};

pub use plan::Target;
pub use settings::BlenderSettings;

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

    /// Sends `request` to an idle process (or a new one) and reads its
    /// answer, within the timeout.
    async fn exchange(&self, request: &J) -> Result<J, RenderError> {
        let work = async {
            let mut p = match self.take_idle() {
                Some(p) => p,
                None => Process::start(&self.settings, &self.env, &self.dir.path).await?,
            };
            let mut line = serde_json::to_vec(request)
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
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| RenderError::Timeout(self.timeout))?
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
        let answer = self.exchange(&request).await?;
        refusal(&answer)?;
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

/// The script's refusal as an error: `Rejected` when the scene itself is
/// at fault (a retry cannot help), `Failed` otherwise.
fn refusal(answer: &J) -> Result<(), RenderError> {
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
    Ok(())
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
