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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackendSettings {
    /// `command` or `http`.
    pub kind: String,
    /// `command`: the program and its arguments.
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
}

fn default_retries() -> u32 {
    2
}
