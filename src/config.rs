//! Configuration, in two stages.
//!
//! 1. [`Settings`]: the raw, merged values. Defaults are the shipped
//!    `config/layercake.toml` itself (compiled in, so the file and the
//!    defaults cannot drift apart), then the `--config` file, then
//!    `LAYERCAKE_<SECTION>__<KEY>` environment variables, then flags.
//!    [`Settings::validate`] checks them without any I/O, naming the key.
//! 2. The runtime built from them (`app::App`): stores, caches, queues.
//!
//! Unknown keys are errors, so a typo in a file or an environment
//! variable is reported instead of silently ignored.

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The shipped configuration file, which is also the set of defaults.
pub const DEFAULT_TOML: &str = include_str!("../config/layercake.toml");

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

/// `[sizes]`: what sizes URLs anyone can change may ask for (see
/// `http::sizes`), and the named presets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SizesSettings {
    pub ladder: Vec<u32>,
    pub quality_step: u8,
    pub crop_step: u32,
    pub presets: std::collections::BTreeMap<String, PresetSettings>,
}

/// One `[sizes.presets.<name>]`: the parameters it stands for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PresetSettings {
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub fit: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub quality: Option<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningSettings {
    pub keys: Vec<String>,
    pub required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: String,
    pub max_dimension: u32,
    pub request_timeout_secs: u64,
    pub max_age_secs: u64,
    pub stale_while_revalidate_secs: u64,
    pub cache_buster: String,
    pub shutdown_grace_secs: u64,
    pub max_query_bytes: usize,
    pub max_body_bytes: usize,
    pub max_upload_bytes: usize,
    pub header_read_timeout_secs: u64,
    pub send_timeout_secs: u64,
    pub max_connections: usize,
    pub io_threads: usize,
    pub ops_listen: String,
    pub public_url: String,
    pub trusted_proxies: Vec<String>,
}

impl HttpSettings {
    /// Threads serving connections: `io_threads`, or one per CPU when 0.
    pub fn serving_threads(&self) -> usize {
        match self.io_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub data_dir: PathBuf,
    pub url: String,
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
    pub s3_allow_http: bool,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub max_retries: usize,
    pub retry_budget_ms: u64,
    pub down_cooldown_ms: u64,
    pub outbox_max_bytes: u64,
    pub disk_cache_bytes: u64,
    pub composite_budget_bytes: u64,
    pub composite_sweep_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetaSettings {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    pub dir: String,
    pub refresh_ms: u64,
    pub max_views: usize,
    pub max_layers: usize,
    pub max_attributes: usize,
    pub max_options: usize,
    pub max_template_bytes: usize,
    pub max_data_url_bytes: usize,
    pub max_scene_bytes: usize,
    pub max_canvas_pixels: u64,
    pub max_compose_bytes: u64,
}

impl CatalogSettings {
    /// The caps the asset loader applies.
    pub fn limits(&self) -> crate::catalog::Limits {
        crate::catalog::Limits {
            views: self.max_views,
            layers: self.max_layers,
            attributes: self.max_attributes,
            options: self.max_options,
            template_bytes: self.max_template_bytes,
            data_url_bytes: self.max_data_url_bytes,
            scene_bytes: self.max_scene_bytes,
            canvas_pixels: self.max_canvas_pixels,
            compose_bytes: self.max_compose_bytes,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    pub composite_bytes: u64,
    pub layer_bytes: u64,
    pub stand_in_bytes: u64,
    pub flattened_bytes: u64,
    pub configuration_bytes: u64,
}

pub use crate::render::{BackendSettings, RenderSettings};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    pub in_process: bool,
    pub max_pending: i64,
    pub max_pending_per_org: i64,
    pub lease_secs: u64,
    pub poll_ms: u64,
    pub max_attempts: u32,
    pub backoff_ms: u64,
    pub backoff_max_ms: u64,
    pub failure_ttl_secs: u64,
    pub scheduling_timeout_secs: u64,
    pub max_batch_configurations: usize,
    pub max_plan_keys: u64,
    pub notify: bool,
    pub remote_claim_wait_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub backoff_ms: u64,
    pub backoff_max_ms: u64,
    pub allow_private_addresses: bool,
    pub private_hosts: Vec<String>,
    pub max_per_org: u64,
    pub concurrency: usize,
    pub per_org_concurrency: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComposeSettings {
    pub concurrency: usize,
    pub max_waiting: usize,
    pub default_format: String,
    pub jpeg_quality: u8,
    pub webp_quality: u8,
    pub avif_quality: u8,
    pub avif_budget_ms: u64,
    pub avif_concurrency: usize,
    pub nice: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: String,
    pub level: String,
}

/// Values given as command-line flags; `None` leaves the setting alone.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct SettingsError(pub String);

impl ComposeSettings {
    /// The quality a lossy `format` gets when the request names none.
    pub fn default_quality(&self, format: crate::compose::Format) -> u8 {
        match format {
            crate::compose::Format::Webp => self.webp_quality,
            crate::compose::Format::Avif => self.avif_quality,
            _ => self.jpeg_quality,
        }
    }
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
                return Err(SettingsError(format!("{}: no such file", f.display())));
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(env);
        if let Some(l) = &flags.listen {
            fig = fig.merge(Serialized::default("http.listen", l));
        }
        if let Some(d) = &flags.data_dir {
            fig = fig.merge(Serialized::default("storage.data_dir", d));
        }
        let s: Settings = fig.extract().map_err(|e| SettingsError(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    fn validate_sizes(&self) -> Result<(), SettingsError> {
        let bad = |key: String, msg: String| Err(SettingsError(format!("{key}: {msg}")));
        let (s, max) = (&self.sizes, self.http.max_dimension);
        if let Some(w) = s.ladder.iter().find(|w| **w == 0 || **w > max) {
            return bad(
                "sizes.ladder".into(),
                format!("{w} is outside 1..=http.max_dimension ({max})"),
            );
        }
        if !(1..=100).contains(&s.quality_step) {
            return bad("sizes.quality_step".into(), "must be 1..=100".into());
        }
        if s.crop_step == 0 {
            return bad(
                "sizes.crop_step".into(),
                "must be at least 1 (1: any crop)".into(),
            );
        }
        for (name, p) in &s.presets {
            let key = format!("sizes.presets.{name}");
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return bad(
                    key,
                    "a preset name is 1 to 64 letters, digits, '-' or '_'".into(),
                );
            }
            for (side, v) in [("width", p.width), ("height", p.height)] {
                if let Some(v) = v
                    && (v == 0 || v > max)
                {
                    return bad(
                        format!("{key}.{side}"),
                        format!("{v} is outside 1..=http.max_dimension ({max})"),
                    );
                }
            }
            if let Some(f) = &p.fit
                && crate::compose::Fit::parse(f).is_none()
            {
                return bad(
                    format!("{key}.fit"),
                    format!("\"{f}\": use cover, contain, fitWidth or fitHeight"),
                );
            }
            if let Some(f) = &p.format
                && f != "auto"
                && crate::compose::Format::parse(f).is_none()
            {
                return bad(
                    format!("{key}.format"),
                    format!("\"{f}\": use png, jpg, webp, avif or auto"),
                );
            }
            if let Some(q) = p.quality
                && !(1..=100).contains(&q)
            {
                return bad(format!("{key}.quality"), format!("{q} is outside 1..=100"));
            }
        }
        Ok(())
    }

    /// Checks every value that has rules beyond its type.
    ///
    /// # Errors
    /// [`SettingsError`] naming the first bad key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |key: &str, msg: String| Err(SettingsError(format!("{key}: {msg}")));
        if self.http.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "http.listen",
                format!(
                    "\"{}\" is not an address like 127.0.0.1:8080",
                    self.http.listen
                ),
            );
        }
        if !(1..=16384).contains(&self.http.max_dimension) {
            return bad("http.max_dimension", "must be 1..=16384".into());
        }
        if self.http.request_timeout_secs == 0 {
            return bad("http.request_timeout_secs", "must be at least 1".into());
        }
        if self.http.max_query_bytes < 256 {
            return bad("http.max_query_bytes", "must be at least 256".into());
        }
        if self.http.max_body_bytes < 1024 || self.http.max_upload_bytes < 1024 {
            return bad(
                "http.max_body_bytes",
                "body limits must be at least 1024 bytes".into(),
            );
        }
        let l = &self.catalog;
        if [
            l.max_views,
            l.max_layers,
            l.max_attributes,
            l.max_options,
            l.max_template_bytes,
            l.max_data_url_bytes,
            l.max_scene_bytes,
        ]
        .contains(&0)
            || l.max_canvas_pixels == 0
            || l.max_compose_bytes == 0
        {
            return bad(
                "catalog.max_views",
                "every catalog.max_* cap must be at least 1".into(),
            );
        }
        if self.http.header_read_timeout_secs == 0 {
            return bad("http.header_read_timeout_secs", "must be at least 1".into());
        }
        if self.http.send_timeout_secs == 0 {
            return bad("http.send_timeout_secs", "must be at least 1".into());
        }
        if self.http.max_connections == 0 {
            return bad("http.max_connections", "must be at least 1".into());
        }
        if self.http.io_threads > 256 {
            return bad(
                "http.io_threads",
                format!("is {}; at most 256 (0: one per CPU)", self.http.io_threads),
            );
        }
        if !self.http.ops_listen.is_empty() && self.http.ops_listen.parse::<SocketAddr>().is_err() {
            return bad(
                "http.ops_listen",
                format!(
                    "\"{}\" is not an address like 127.0.0.1:9090 (or \"\" for none)",
                    self.http.ops_listen
                ),
            );
        }
        if !self.http.public_url.is_empty() {
            let ok = url::Url::parse(&self.http.public_url).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            if !ok {
                return bad(
                    "http.public_url",
                    format!(
                        "\"{}\" is not a base URL like https://images.example.com (or \"\" for the request's Host)",
                        self.http.public_url
                    ),
                );
            }
        }
        if let Some(p) = self
            .http
            .trusted_proxies
            .iter()
            .find(|p| parse_proxy(p).is_none())
        {
            return bad(
                "http.trusted_proxies",
                format!("\"{p}\" is not an IP address or CIDR block like 10.0.0.0/8"),
            );
        }
        let postgres = ["postgres://", "postgresql://"]
            .iter()
            .any(|p| self.meta.url.starts_with(p));
        if !(self.meta.url.is_empty() || self.meta.url.starts_with("sqlite:") || postgres) {
            return bad(
                "meta.url",
                format!(
                    "\"{}\": use \"\", a sqlite: URL or a postgres:// URL",
                    crate::meta::redact(&self.meta.url)
                ),
            );
        }
        if self.meta.max_connections == 0 {
            return bad("meta.max_connections", "must be at least 1".into());
        }
        let meta_in_memory =
            self.meta.url.contains(":memory:") || self.meta.url.contains("mode=memory");
        if meta_in_memory && self.storage.url != "memory://" {
            // Records (asset versions, layer epochs) would be forgotten while
            // the objects made under them stay: stale images after a restart.
            return bad("meta.url", "an in-memory metadata store needs the in-memory object store (storage.url = \"memory://\")".into());
        }
        let url = &self.storage.url;
        if !(url.is_empty()
            || url.starts_with("file:///")
            || url == "memory://"
            || url
                .strip_prefix("s3://")
                .is_some_and(|b| !b.is_empty() && !b.starts_with('/')))
        {
            return bad(
                "storage.url",
                format!(
                    "\"{url}\": use \"\", file:///absolute/path, s3://bucket/prefix or memory://"
                ),
            );
        }
        if self.storage.request_timeout_ms == 0 || self.storage.connect_timeout_ms == 0 {
            return bad(
                "storage.request_timeout_ms",
                "object store timeouts must be at least 1 ms".into(),
            );
        }
        if self.storage.composite_sweep_secs == 0 {
            return bad("storage.composite_sweep_secs", "must be at least 1".into());
        }
        if self.render.timeout_secs == 0 || self.render.miss_wait_secs == 0 {
            return bad(
                "render.timeout_secs",
                "timeouts must be at least 1 second".into(),
            );
        }
        if self.http.request_timeout_secs <= self.render.miss_wait_secs {
            return bad(
                "http.request_timeout_secs",
                format!(
                    "must be longer than render.miss_wait_secs ({}), so that a slow miss answers its own 503",
                    self.render.miss_wait_secs
                ),
            );
        }
        if let Err(e) = crate::signing::Signer::new(&self.signing.keys) {
            return Err(SettingsError(e));
        }
        self.validate_sizes()?;
        if self.signing.required && self.signing.keys.is_empty() {
            return bad(
                "signing.required",
                "needs at least one key in signing.keys".into(),
            );
        }
        if !self
            .http
            .cache_buster
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return bad(
                "http.cache_buster",
                "letters, digits, '-', '_' and '.' only".into(),
            );
        }
        if let Err(e) = crate::render::Renderers::from_settings(&self.render, None) {
            return Err(SettingsError(e));
        }
        if self.render.max_output_bytes < 1024 {
            return bad("render.max_output_bytes", "must be at least 1024".into());
        }
        if self.jobs.lease_secs < 1 {
            return bad("jobs.lease_secs", "must be at least 1".into());
        }
        if self.jobs.scheduling_timeout_secs < 1 {
            return bad("jobs.scheduling_timeout_secs", "must be at least 1".into());
        }
        if self.jobs.poll_ms < 10 {
            return bad("jobs.poll_ms", "must be at least 10".into());
        }
        if self.jobs.max_attempts < 1 {
            return bad("jobs.max_attempts", "must be at least 1".into());
        }
        if self.webhooks.max_attempts < 1 {
            return bad("webhooks.max_attempts", "must be at least 1".into());
        }
        if self.jobs.max_pending_per_org < 1 {
            return bad("jobs.max_pending_per_org", "must be at least 1".into());
        }
        if self.webhooks.concurrency < 1 || self.webhooks.per_org_concurrency < 1 {
            return bad(
                "webhooks.concurrency",
                "webhooks.concurrency and webhooks.per_org_concurrency must be at least 1".into(),
            );
        }
        if self.webhooks.timeout_secs < 1 {
            return bad("webhooks.timeout_secs", "must be at least 1".into());
        }
        if self.render.max_pixels < 64 * 64 {
            return bad("render.max_pixels", "must be at least 4096".into());
        }
        if self.compose.default_format != "auto"
            && crate::compose::Format::parse(&self.compose.default_format).is_none()
        {
            return bad(
                "compose.default_format",
                format!(
                    "\"{}\": use png, jpg, webp, avif or auto",
                    self.compose.default_format
                ),
            );
        }
        for (k, q) in [
            ("compose.jpeg_quality", self.compose.jpeg_quality),
            ("compose.webp_quality", self.compose.webp_quality),
            ("compose.avif_quality", self.compose.avif_quality),
        ] {
            if !(1..=100).contains(&q) {
                return bad(k, "must be 1..=100".into());
            }
        }
        if !(0..=19).contains(&self.compose.nice) {
            return bad(
                "compose.nice",
                format!("is {}; use 0 (normal priority) to 19", self.compose.nice),
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad(
                "log.format",
                format!("\"{}\": use text or json", self.log.format),
            );
        }
        Ok(())
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

/// One entry of `http.trusted_proxies`: a CIDR block, or one address.
pub fn parse_proxy(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
// figment's Jail hands out its own (large) error type; fine in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    fn no_env() -> Env {
        Env::prefixed("LAYERCAKE_TEST_NOTHING_")
    }

    #[test]
    fn shipped_file_is_complete_and_valid() {
        // deny_unknown_fields + no serde defaults: every key is in the file.
        let s = Settings::load_from(None, &Overrides::default(), no_env()).unwrap();
        assert_eq!(s.http.listen, "127.0.0.1:8080");
        assert_eq!(s.storage.data_dir, PathBuf::from("./data"));
        // The loader's defaults (catalogue checks, tests) are the file's.
        assert_eq!(s.catalog.limits(), crate::catalog::Limits::default());
    }

    #[test]
    fn environment_and_flags_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LAYERCAKE_HTTP__LISTEN", "127.0.0.1:9000");
            jail.set_env("LAYERCAKE_CACHE__LAYER_BYTES", "1024");
            let s = Settings::load(None, &Overrides::default()).unwrap();
            assert_eq!(s.http.listen, "127.0.0.1:9000");
            assert_eq!(s.cache.layer_bytes, 1024);
            // Lists and booleans, as the README spells them.
            let (new, old) = ("n".repeat(32), "o".repeat(32));
            jail.set_env("LAYERCAKE_SIGNING__KEYS", format!(r#"["{new}", "{old}"]"#));
            jail.set_env("LAYERCAKE_SIGNING__REQUIRED", "true");
            let s = Settings::load(None, &Overrides::default()).unwrap();
            assert_eq!(s.signing.keys, [new, old]);
            assert!(s.signing.required);
            let flags = Overrides {
                listen: Some("127.0.0.1:9100".into()),
                data_dir: None,
            };
            assert_eq!(
                Settings::load(None, &flags).unwrap().http.listen,
                "127.0.0.1:9100"
            );
            jail.set_env("LAYERCAKE_HTTP__LISTN", "x");
            let e = Settings::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("listn"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[compose]\ndefault_format = \"gif\"\n")?;
            let e = Settings::load(Some(Path::new("bad.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("compose.default_format"), "{e}");
            jail.create_file("mem.toml", "[meta]\nurl = \"sqlite::memory:\"\n")?;
            let e = Settings::load(Some(Path::new("mem.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("meta.url"),
                "in-memory records over a persistent store: {e}"
            );
            jail.create_file("bad2.toml", "[http]\nmax_dimension = \"big\"\n")?;
            let e = Settings::load(Some(Path::new("bad2.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("max_dimension"), "{e}");
            // PostgreSQL is accepted; other databases are named, without
            // their password.
            jail.create_file("pg.toml", "[meta]\nurl = \"postgres://u:pw@db:5432/lc\"\n")?;
            let s = Settings::load(Some(Path::new("pg.toml")), &Overrides::default()).unwrap();
            assert_eq!(s.meta_url(), "postgres://u:pw@db:5432/lc");
            jail.create_file("my.toml", "[meta]\nurl = \"mysql://u:pw@db/lc\"\n")?;
            let e = Settings::load(Some(Path::new("my.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("meta.url") && e.contains("postgres://"), "{e}");
            assert!(!e.contains("pw"), "{e}");
            jail.create_file("conn.toml", "[meta]\nmax_connections = 0\n")?;
            let e = Settings::load(Some(Path::new("conn.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("meta.max_connections"), "{e}");
            // The size policy: each bad value names its key.
            for (toml, key) in [
                ("[sizes]\nladder = [0, 320]\n", "sizes.ladder"),
                ("[sizes]\nladder = [99999]\n", "sizes.ladder"),
                ("[sizes]\nquality_step = 0\n", "sizes.quality_step"),
                ("[sizes]\ncrop_step = 0\n", "sizes.crop_step"),
                ("[sizes.presets.\"a b\"]\nwidth = 10\n", "sizes.presets.a b"),
                ("[sizes.presets.x]\nwidth = 0\n", "sizes.presets.x.width"),
                (
                    "[sizes.presets.x]\nfit = \"stretch\"\n",
                    "sizes.presets.x.fit",
                ),
                (
                    "[sizes.presets.x]\nformat = \"gif\"\n",
                    "sizes.presets.x.format",
                ),
                (
                    "[sizes.presets.x]\nquality = 101\n",
                    "sizes.presets.x.quality",
                ),
            ] {
                jail.create_file("sizes.toml", toml)?;
                let e = Settings::load(Some(Path::new("sizes.toml")), &Overrides::default())
                    .unwrap_err()
                    .to_string();
                assert!(e.contains(key), "{toml}: {e}");
            }
            jail.create_file(
                "ok.toml",
                "[sizes.presets.hero]\nwidth = 1600\nformat = \"auto\"\n",
            )?;
            let s = Settings::load(Some(Path::new("ok.toml")), &Overrides::default()).unwrap();
            assert_eq!(s.sizes.presets["hero"].width, Some(1600));
            assert!(
                s.sizes.presets.contains_key("plp-tile"),
                "the shipped presets stay"
            );
            Ok(())
        });
    }
}
