//! `[render]` settings: the renderers' part of the configuration (see
//! `config` for how settings are loaded; defined here so that `render`
//! depends on nothing above it).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RenderSettings {
    pub concurrency: usize,
    pub timeout_secs: u64,
    pub isolate_builtin: bool,
    pub max_pixels: u64,
    pub max_output_bytes: usize,
    pub miss_wait_secs: u64,
    pub backend: String,
    pub backends: std::collections::BTreeMap<String, BackendSettings>,
}

/// One named render backend (`[render.backends.<name>]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackendSettings {
    /// `command`, `http` or `blender`.
    pub kind: String,
    /// `command`: the program and its arguments; `blender`: the Blender
    /// program and arguments before the script's (default `["blender"]`).
    #[serde(default)]
    pub command: Vec<String>,
    /// `http`: where to POST render requests.
    #[serde(default)]
    pub url: String,
    /// Overrides `render.timeout_secs` for this backend.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// `http`: retries after a connection error or a 5xx.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// `command`: environment variables passed to the program besides
    /// PATH, HOME, LANG, LC_ALL, TMPDIR and TZ (the server's own
    /// environment, with its credentials, is not).
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// `blender`: Cycles samples per pixel (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<u32>,
    /// `blender`: the noise seed (default 0); the same request with the
    /// same seed gives the same pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    /// `blender`: `CPU` (default), `CUDA`, `OPTIX`, `HIP`, `ONEAPI`, `METAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// `blender`: render threads per Blender process (default 0: one per CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// `blender`: render at this percentage of the canvas and resample to
    /// it (default 100; less for drafts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// `blender`: renders before a Blender process is replaced (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_renders_per_process: Option<u32>,
}

fn default_retries() -> u32 {
    2
}
