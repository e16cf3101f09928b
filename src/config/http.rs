//! `[http]`: the public and ops listeners, request bounds, cache headers,
//! and who may set the client address (`trusted_proxies`); its checks,
//! pure, each naming the key it refuses.

use super::{SettingsError, invalid};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

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
    pub ignored_params: Vec<String>,
}

impl HttpSettings {
    /// Threads serving connections: `io_threads`, or one per CPU when 0.
    pub fn serving_threads(&self) -> usize {
        match self.io_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        }
    }

    /// Checks the section's values.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return invalid(
                "http.listen",
                format!("\"{}\" is not an address like 127.0.0.1:8080", self.listen),
            );
        }
        if !(1..=16384).contains(&self.max_dimension) {
            return invalid("http.max_dimension", "must be 1..=16384");
        }
        if self.request_timeout_secs == 0 {
            return invalid("http.request_timeout_secs", "must be at least 1");
        }
        if let Some(bad) = self.ignored_params.iter().find(|p| !is_param_pattern(p)) {
            return invalid(
                "http.ignored_params",
                format!(
                    "\"{bad}\" is not a parameter name or a prefix ending in * (letters, digits, _ - . [ ])"
                ),
            );
        }
        if self.max_query_bytes < 256 {
            return invalid("http.max_query_bytes", "must be at least 256");
        }
        if self.max_body_bytes < 1024 || self.max_upload_bytes < 1024 {
            return invalid(
                "http.max_body_bytes",
                "body limits must be at least 1024 bytes",
            );
        }
        for (key, v) in [
            (
                "http.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("http.send_timeout_secs", self.send_timeout_secs),
        ] {
            if v == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if self.max_connections == 0 {
            return invalid("http.max_connections", "must be at least 1");
        }
        if self.io_threads > 256 {
            return invalid(
                "http.io_threads",
                format!("is {}; at most 256 (0: one per CPU)", self.io_threads),
            );
        }
        self.validate_addresses()?;
        if !self
            .cache_buster
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return invalid(
                "http.cache_buster",
                "letters, digits, '-', '_' and '.' only",
            );
        }
        Ok(())
    }

    /// `ops_listen`, `public_url` and `trusted_proxies`.
    fn validate_addresses(&self) -> Result<(), SettingsError> {
        if !self.ops_listen.is_empty() && self.ops_listen.parse::<SocketAddr>().is_err() {
            return invalid(
                "http.ops_listen",
                format!(
                    "\"{}\" is not an address like 127.0.0.1:9090 (or \"\" for none)",
                    self.ops_listen
                ),
            );
        }
        if !self.public_url.is_empty() && !is_base_url(&self.public_url) {
            return invalid(
                "http.public_url",
                format!(
                    "\"{}\" is not a base URL like https://images.example.com (or \"\" for the request's Host)",
                    self.public_url
                ),
            );
        }
        if let Some(p) = self
            .trusted_proxies
            .iter()
            .find(|p| parse_proxy(p).is_none())
        {
            return invalid(
                "http.trusted_proxies",
                format!("\"{p}\" is not an IP address or CIDR block like 10.0.0.0/8"),
            );
        }
        Ok(())
    }
}

/// An http(s) URL with a host and neither query nor fragment.
fn is_base_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.query().is_none()
            && u.fragment().is_none()
    })
}

/// One entry of `http.trusted_proxies`: a CIDR block, or one address.
pub fn parse_proxy(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// A parameter name, or a prefix of one followed by `*` (`*` alone ignores
/// every unknown parameter).
fn is_param_pattern(p: &str) -> bool {
    let name = p.strip_suffix('*').unwrap_or(p);
    (p == "*" || !name.is_empty())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
}
