//! `[storage]`, `[meta]` and `[cache]`: where objects and records live and
//! how much memory the caches may hold; their checks, pure, each naming
//! the key it refuses (URLs are checked by their spelling, nothing is
//! opened).

use super::{SettingsError, invalid};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
pub struct CacheSettings {
    pub composite_bytes: u64,
    pub layer_bytes: u64,
    pub stand_in_bytes: u64,
    pub flattened_bytes: u64,
    pub configuration_bytes: u64,
}

impl MetaSettings {
    /// Checks the section's values.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the first bad key (a URL without
    /// its password).
    pub fn validate(&self) -> Result<(), SettingsError> {
        let postgres = ["postgres://", "postgresql://"]
            .iter()
            .any(|p| self.url.starts_with(p));
        if !(self.url.is_empty() || self.url.starts_with("sqlite:") || postgres) {
            return invalid(
                "meta.url",
                format!(
                    "\"{}\": use \"\", a sqlite: URL or a postgres:// URL",
                    crate::meta::redact(&self.url)
                ),
            );
        }
        if self.max_connections == 0 {
            return invalid("meta.max_connections", "must be at least 1");
        }
        Ok(())
    }

    /// Whether the records live in memory only.
    fn in_memory(&self) -> bool {
        self.url.contains(":memory:") || self.url.contains("mode=memory")
    }
}

impl StorageSettings {
    /// Checks the section's values.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let url = &self.url;
        if !(url.is_empty()
            || url.starts_with("file:///")
            || url == "memory://"
            || url
                .strip_prefix("s3://")
                .is_some_and(|b| !b.is_empty() && !b.starts_with('/')))
        {
            return invalid(
                "storage.url",
                format!(
                    "\"{url}\": use \"\", file:///absolute/path, s3://bucket/prefix or memory://"
                ),
            );
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return invalid(
                "storage.request_timeout_ms",
                "object store timeouts must be at least 1 ms",
            );
        }
        if self.composite_sweep_secs == 0 {
            return invalid("storage.composite_sweep_secs", "must be at least 1");
        }
        Ok(())
    }
}

/// The two stores together: records kept in memory only need objects kept
/// in memory only.
///
/// # Errors
/// [`SettingsError::Invalid`] naming `meta.url`.
pub fn validate_stores(
    meta: &MetaSettings,
    storage: &StorageSettings,
) -> Result<(), SettingsError> {
    if meta.in_memory() && storage.url != "memory://" {
        // Records (asset versions, layer epochs) would be forgotten while
        // the objects made under them stay: stale images after a restart.
        return invalid(
            "meta.url",
            "an in-memory metadata store needs the in-memory object store (storage.url = \"memory://\")",
        );
    }
    Ok(())
}
