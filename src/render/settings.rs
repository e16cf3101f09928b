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

/// Backend kinds `[render.backends.<name>].kind` may name.
pub const KINDS: [&str; 3] = ["command", "http", "blender"];

impl RenderSettings {
    /// Checks each backend's settings and the default backend's name by
    /// their values alone: builds no backend, starts and creates nothing.
    /// `Renderers::from_settings` runs it before building them.
    ///
    /// # Errors
    /// A sentence starting with the key at fault
    /// (`render.backends.<name>.<field>: ...`, `render.backend: ...`).
    pub fn check_backends(&self) -> Result<(), String> {
        for (name, b) in &self.backends {
            b.check(name)?;
        }
        if self.backend != "builtin" && !self.backends.contains_key(&self.backend) {
            return Err(format!(
                "render.backend: \"{}\" is neither builtin nor a configured backend",
                self.backend
            ));
        }
        Ok(())
    }
}

impl BackendSettings {
    /// Checks backend `name`'s settings (see [`RenderSettings::check_backends`]).
    ///
    /// # Errors
    /// A sentence starting with `render.backends.<name>.<field>`.
    pub fn check(&self, name: &str) -> Result<(), String> {
        let field = |f: &str| format!("render.backends.{name}.{f}");
        if self.timeout_secs == Some(0) {
            return Err(format!("{}: must be at least 1", field("timeout_secs")));
        }
        match self.kind.as_str() {
            "command" if self.command.first().is_none_or(String::is_empty) => Err(format!(
                "{}: a command backend needs `command = [\"program\", \"args\"...]`",
                field("command")
            )),
            "http" if !(self.url.starts_with("http://") || self.url.starts_with("https://")) => {
                Err(format!(
                    "{}: \"{}\" is not an http:// or https:// URL",
                    field("url"),
                    self.url
                ))
            }
            "blender" => super::blender::BlenderSettings::from_backend(name, self).map(|_| ()),
            k if KINDS.contains(&k) => Ok(()),
            other => Err(format!("{}: unknown kind \"{other}\"", field("kind"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(toml: &str) -> BackendSettings {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn backends_are_checked_by_name_without_building_them() {
        let cases = [
            ("kind = \"command\"\ncommand = [\"sh\"]", None),
            ("kind = \"command\"", Some("render.backends.b.command: ")),
            (
                "kind = \"command\"\ncommand = [\"\"]",
                Some("render.backends.b.command: "),
            ),
            ("kind = \"http\"\nurl = \"https://farm\"", None),
            (
                "kind = \"http\"\nurl = \"ftp://farm\"",
                Some("render.backends.b.url: "),
            ),
            ("kind = \"blender\"", None),
            (
                "kind = \"blender\"\nscale = 0",
                Some("render.backends.b.scale: "),
            ),
            (
                "kind = \"blender\"\ncommand = [\"\"]",
                Some("render.backends.b.command: "),
            ),
            (
                "kind = \"gpu\"",
                Some("render.backends.b.kind: unknown kind \"gpu\""),
            ),
            (
                "kind = \"command\"\ncommand = [\"sh\"]\ntimeout_secs = 0",
                Some("render.backends.b.timeout_secs: must be at least 1"),
            ),
        ];
        for (toml, want) in cases {
            let got = backend(toml).check("b");
            match want {
                None => assert_eq!(got, Ok(()), "{toml}"),
                Some(prefix) => assert!(
                    got.as_ref().is_err_and(|e| e.starts_with(prefix)),
                    "{toml}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn the_default_backend_must_exist() {
        let mut s: RenderSettings = toml::from_str(
            "concurrency = 1\ntimeout_secs = 1\nisolate_builtin = false\nmax_pixels = 4096\n\
             max_output_bytes = 1024\nmiss_wait_secs = 1\nbackend = \"builtin\"\n[backends]\n",
        )
        .unwrap();
        assert_eq!(s.check_backends(), Ok(()));
        s.backend = "farm".into();
        let e = s.check_backends().unwrap_err();
        assert!(e.starts_with("render.backend: \"farm\""), "{e}");
        // At start, the same check, the same sentence.
        let at_start = crate::render::Renderers::from_settings(&s, None).err();
        assert_eq!(at_start, Some(e));
        s.backends.insert(
            "farm".into(),
            backend("kind = \"http\"\nurl = \"http://f\""),
        );
        assert_eq!(s.check_backends(), Ok(()));
    }
}
