//! Configuration, in two stages.
//!
//! 1. [`Settings`]: the raw, merged values. Defaults are the shipped
//!    `config/layercake.toml` itself (compiled in, so the file and the
//!    defaults cannot drift apart), then the `--config` file, then
//!    `LAYERCAKE_<SECTION>__<KEY>` environment variables, then flags.
//!    [`Settings::validate`] checks them without any I/O, section by
//!    section (`http`, `storage`: storage/meta/cache, `assets`:
//!    catalog/signing/sizes, `work`: render/compose/jobs/webhooks), each
//!    error naming the key. Render backends are checked by their settings
//!    only; they are built (Blender's work folder made) when a process
//!    starts, and an error there names the backend's key too.
//! 2. The runtime built from them (`app::App`): stores, caches, queues,
//!    render backends.
//!
//! Unknown keys are errors, so a typo in a file or an environment
//! variable is reported instead of silently ignored.

mod assets;
mod http;
mod storage;
mod work;

pub use assets::{CatalogSettings, PresetSettings, SigningSettings, SizesSettings};
pub use http::{HttpSettings, parse_proxy};
pub use storage::{CacheSettings, MetaSettings, StorageSettings};
pub use work::{ComposeSettings, JobsSettings, WebhookSettings};

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The shipped configuration file, which is also the set of defaults.
pub const DEFAULT_TOML: &str = include_str!("../../config/layercake.toml");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub storage: StorageSettings,
    pub meta: MetaSettings,
    pub catalog: CatalogSettings,
    pub cache: CacheSettings,
    pub render: RenderSettings,
    pub compose: ComposeSettings,
    pub jobs: JobsSettings,
    pub webhooks: WebhookSettings,
    pub signing: SigningSettings,
    pub sizes: SizesSettings,
    pub log: LogSettings,
}

pub use crate::render::{BackendSettings, RenderSettings};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: String,
    pub level: String,
}

impl LogSettings {
    /// Checks the section's values.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming `log.format`.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !matches!(self.format.as_str(), "text" | "json") {
            return invalid(
                "log.format",
                format!("\"{}\": use text or json", self.format),
            );
        }
        Ok(())
    }
}

/// Values given as command-line flags; `None` leaves the setting alone.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `--catalog`: the catalogue folder (over `catalog.dir`).
    pub catalog: Option<PathBuf>,
}

/// Why settings are not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// The file, the environment or the flags could not be read or merged
    /// (a missing file, a value of the wrong type, an unknown key).
    #[error("configuration: {0}")]
    Load(String),
    /// A value breaks a rule beyond its type.
    #[error("configuration: {key}: {message}")]
    Invalid { key: String, message: String },
}

impl SettingsError {
    /// Turns a lower module's `"<key>: <message>"` sentence (the signer's,
    /// the render backends') into [`SettingsError::Invalid`]; a sentence
    /// without a key is put under `section`.
    fn named(section: &'static str) -> impl Fn(String) -> SettingsError {
        move |sentence| match sentence.split_once(": ") {
            Some((key, message)) if key.starts_with(section) && !key.contains(' ') => {
                SettingsError::Invalid {
                    key: key.to_string(),
                    message: message.to_string(),
                }
            }
            _ => SettingsError::Invalid {
                key: section.to_string(),
                message: sentence,
            },
        }
    }

    /// The key an [`SettingsError::Invalid`] names.
    pub fn key(&self) -> Option<&str> {
        match self {
            SettingsError::Invalid { key, .. } => Some(key),
            SettingsError::Load(_) => None,
        }
    }
}

/// `LAYERCAKE_` variables that belong to a command, not to the settings
/// (as figment names them: lower case, without the prefix).
const NOT_SETTINGS: [&str; 2] = ["worker_token", "api_token"];

/// A figment error as one sentence naming where the value came from (the
/// file, or the environment variable itself), the key, and for an unknown
/// key the nearest known one: `LAYERCAKE_RENDER_CONCURRENCY` is not a
/// setting, `LAYERCAKE_RENDER__CONCURRENCY` is.
fn load_error(e: figment::Error) -> SettingsError {
    let mut out = Vec::new();
    for e in e {
        let key = e.path.clone();
        let hint = match &e.kind {
            figment::error::Kind::UnknownField(field, expected) => {
                // The path ends with the unknown field.
                let parent = &e.path[..e.path.len().saturating_sub(1)];
                let near = crate::spelling::closest(field, expected.iter().copied()).map(|n| {
                    let mut k = parent.to_vec();
                    k.push(n.to_string());
                    k
                });
                let split = (near.is_none() && parent.is_empty())
                    .then(|| {
                        expected
                            .iter()
                            .find(|s| field.starts_with(&format!("{s}_")))
                            .map(|s| vec![s.to_string(), field[s.len() + 1..].to_string()])
                    })
                    .flatten();
                Some((near.or(split), "unknown key"))
            }
            _ => None,
        };
        let from_env = e
            .metadata
            .as_ref()
            .is_some_and(|m| m.name.contains("environment"));
        let name = |k: &[String]| {
            if from_env {
                format!("LAYERCAKE_{}", k.join("__").to_ascii_uppercase())
            } else {
                k.join(".")
            }
        };
        let place = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
            Some(figment::Source::File(f)) => format!("{}: ", f.display()),
            _ => String::new(),
        };
        let sentence = match hint {
            Some((Some(near), what)) => {
                format!(
                    "{place}{}: {what}; did you mean {}?",
                    name(&key),
                    name(&near)
                )
            }
            Some((None, what)) => format!("{place}{}: {what}", name(&key)),
            None if key.is_empty() => format!("{place}{}", e.kind),
            None => format!("{place}{}: {}", name(&key), e.kind),
        };
        out.push(sentence);
    }
    SettingsError::Load(out.join("; "))
}

/// `Err(Invalid)` naming `key`.
fn invalid<T>(key: &str, message: impl Into<String>) -> Result<T, SettingsError> {
    Err(SettingsError::Invalid {
        key: key.to_string(),
        message: message.into(),
    })
}

impl Settings {
    /// Merges defaults, `file`, the environment and `flags`, then validates.
    ///
    /// # Errors
    /// [`SettingsError`] naming the key and where it came from.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Settings, SettingsError> {
        Self::load_from(file, flags, Env::prefixed("LAYERCAKE_").split("__"))
    }

    /// [`Settings::load`] with the environment given (tests pass one that
    /// reads nothing).
    pub(crate) fn load_from(
        file: Option<&Path>,
        flags: &Overrides,
        env: Env,
    ) -> Result<Settings, SettingsError> {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(f) = file {
            if !f.is_file() {
                return Err(SettingsError::Load(format!(
                    "{}: no such file",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(f));
        }
        // Variables of the binary's own that are not settings.
        fig = fig.merge(env.ignore(&NOT_SETTINGS));
        if let Some(l) = &flags.listen {
            fig = fig.merge(Serialized::default("http.listen", l));
        }
        if let Some(d) = &flags.data_dir {
            fig = fig.merge(Serialized::default("storage.data_dir", d));
        }
        if let Some(d) = &flags.catalog {
            fig = fig.merge(Serialized::default("catalog.dir", d));
        }
        let mut s: Settings = fig.extract().map_err(load_error)?;
        // A path written in a file is relative to that file's folder, so
        // `serve --config /etc/layercake/blender.toml` works from anywhere;
        // one from the environment or a flag is relative to the working
        // directory, as a shell user expects.
        let base = |key: &str| match fig.find_metadata(key).and_then(|m| m.source.as_ref()) {
            Some(figment::Source::File(f)) => f.parent().map(Path::to_path_buf),
            _ => None,
        };
        if let Some(dir) = base("storage.data_dir")
            && s.storage.data_dir.is_relative()
        {
            s.storage.data_dir = dir.join(&s.storage.data_dir);
        }
        if let Some(dir) = base("catalog.dir")
            && !s.catalog.dir.is_empty()
            && Path::new(&s.catalog.dir).is_relative()
        {
            s.catalog.dir = dir.join(&s.catalog.dir).display().to_string();
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks every value that has rules beyond its type, section by
    /// section, then the rules across sections. Pure: opens, creates and
    /// starts nothing.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.http.validate()?;
        self.catalog.validate()?;
        self.meta.validate()?;
        storage::validate_stores(&self.meta, &self.storage)?;
        self.storage.validate()?;
        work::validate_render(&self.render)?;
        if self.http.request_timeout_secs <= self.render.miss_wait_secs {
            return invalid(
                "http.request_timeout_secs",
                format!(
                    "must be longer than render.miss_wait_secs ({}), so that a slow miss answers its own 503",
                    self.render.miss_wait_secs
                ),
            );
        }
        self.signing.validate()?;
        self.sizes.validate(self.http.max_dimension)?;
        self.jobs.validate()?;
        self.webhooks.validate()?;
        self.compose.validate()?;
        self.log.validate()
    }

    /// The object store URL, with the default resolved against `data_dir`.
    pub fn store_url(&self) -> String {
        if !self.storage.url.is_empty() {
            return self.storage.url.clone();
        }
        let dir = self.storage.data_dir.join("objects");
        let abs = std::path::absolute(&dir).unwrap_or(dir);
        format!("file://{}", abs.display())
    }

    /// How to open the object store: its URL, S3 settings, bounds, and the
    /// outbox and disk tier folders under `data_dir`.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        let s = &self.storage;
        let ms = std::time::Duration::from_millis;
        let under = |name: &str| {
            let dir = s.data_dir.join(name);
            std::path::absolute(&dir).unwrap_or(dir)
        };
        crate::store::StoreOptions {
            url: self.store_url(),
            s3: crate::store::S3Options {
                endpoint: s.s3_endpoint.clone(),
                region: s.s3_region.clone(),
                access_key_id: s.s3_access_key_id.clone(),
                secret_access_key: s.s3_secret_access_key.clone(),
                allow_http: s.s3_allow_http,
            },
            timeouts: crate::store::Timeouts {
                connect: ms(s.connect_timeout_ms),
                request: ms(s.request_timeout_ms),
                max_retries: s.max_retries,
                retry_budget: ms(s.retry_budget_ms),
            },
            down_cooldown: ms(s.down_cooldown_ms),
            // Nothing outlives a memory store, so neither does its outbox.
            outbox: (s.url != "memory://").then(|| (under("outbox"), s.outbox_max_bytes)),
            disk: Some((under("disk-cache"), s.disk_cache_bytes)),
        }
    }

    /// The metadata store URL, with the default resolved against `data_dir`.
    pub fn meta_url(&self) -> String {
        if !self.meta.url.is_empty() {
            return self.meta.url.clone();
        }
        let file = self.storage.data_dir.join("layercake.db");
        let abs = std::path::absolute(&file).unwrap_or(file);
        format!("sqlite://{}", abs.display())
    }

    /// The merged settings as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }

    /// `n`, or the number of CPU cores when `n` is 0.
    pub fn threads(n: usize) -> usize {
        if n > 0 {
            n
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }
    }
}

#[cfg(test)]
mod tests;
