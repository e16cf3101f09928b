//! `[render]`, `[compose]`, `[jobs]` and `[webhooks]`: the work a process
//! does and its bounds; their checks, pure, each naming the key it
//! refuses. The render backends are checked by their settings here and
//! built (Blender's work folder made) only when a process starts
//! (`render::Renderers::from_settings`).

use super::{SettingsError, invalid};
use crate::render::RenderSettings;
use serde::{Deserialize, Serialize};

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

/// Checks `[render]`: its timeouts and bounds, then each backend's
/// settings and the default backend's name (`RenderSettings::check_backends`),
/// without building any backend.
///
/// # Errors
/// [`SettingsError::Invalid`] naming the first bad key.
pub fn validate_render(r: &RenderSettings) -> Result<(), SettingsError> {
    if r.timeout_secs == 0 || r.miss_wait_secs == 0 {
        return invalid("render.timeout_secs", "timeouts must be at least 1 second");
    }
    if r.max_output_bytes < 1024 {
        return invalid("render.max_output_bytes", "must be at least 1024");
    }
    if r.max_pixels < 64 * 64 {
        return invalid("render.max_pixels", "must be at least 4096");
    }
    r.check_backends().map_err(SettingsError::named("render"))
}

impl JobsSettings {
    /// Checks the section's values.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let at_least_one = "must be at least 1";
        for (key, refused, rule) in [
            ("jobs.lease_secs", self.lease_secs < 1, at_least_one),
            (
                "jobs.scheduling_timeout_secs",
                self.scheduling_timeout_secs < 1,
                at_least_one,
            ),
            ("jobs.poll_ms", self.poll_ms < 10, "must be at least 10"),
            ("jobs.max_attempts", self.max_attempts < 1, at_least_one),
            (
                "jobs.max_pending_per_org",
                self.max_pending_per_org < 1,
                at_least_one,
            ),
        ] {
            if refused {
                return invalid(key, rule);
            }
        }
        Ok(())
    }
}

impl WebhookSettings {
    /// Checks the section's values.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max_attempts < 1 {
            return invalid("webhooks.max_attempts", "must be at least 1");
        }
        if self.concurrency < 1 || self.per_org_concurrency < 1 {
            return invalid(
                "webhooks.concurrency",
                "webhooks.concurrency and webhooks.per_org_concurrency must be at least 1",
            );
        }
        if self.timeout_secs < 1 {
            return invalid("webhooks.timeout_secs", "must be at least 1");
        }
        Ok(())
    }
}

impl ComposeSettings {
    /// The quality a lossy `format` gets when the request names none.
    pub fn default_quality(&self, format: crate::compose::Format) -> u8 {
        match format {
            crate::compose::Format::Webp => self.webp_quality,
            crate::compose::Format::Avif => self.avif_quality,
            _ => self.jpeg_quality,
        }
    }

    /// Checks the section's values.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.default_format != "auto"
            && crate::compose::Format::parse(&self.default_format).is_none()
        {
            return invalid(
                "compose.default_format",
                format!(
                    "\"{}\": use png, jpg, webp, avif or auto",
                    self.default_format
                ),
            );
        }
        for (k, q) in [
            ("compose.jpeg_quality", self.jpeg_quality),
            ("compose.webp_quality", self.webp_quality),
            ("compose.avif_quality", self.avif_quality),
        ] {
            if !(1..=100).contains(&q) {
                return invalid(k, "must be 1..=100");
            }
        }
        if !(0..=19).contains(&self.nice) {
            return invalid(
                "compose.nice",
                format!("is {}; use 0 (normal priority) to 19", self.nice),
            );
        }
        Ok(())
    }
}
