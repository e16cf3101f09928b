//! Opening the object store named by a URL, with its timeouts and retries.

use super::StoreError;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};
use std::sync::Arc;
use std::time::Duration;

/// Settings for `s3://` URLs; empty fields fall back to the `AWS_*`
/// environment variables (object_store's `from_env`).
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub allow_http: bool,
}

/// Per-request bounds of a network object store.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
    pub max_retries: usize,
    pub retry_budget: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(5),
            max_retries: 2,
            retry_budget: Duration::from_secs(3),
        }
    }
}

/// The store for `url`: `file:///abs/path`, `memory://` or
/// `s3://bucket[/prefix]`.
///
/// # Errors
/// [`StoreError::BadUrl`] for another scheme, a folder that cannot be
/// created, or S3 settings object_store refuses.
pub fn open(url: &str, s3: &S3Options, t: Timeouts) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let bad = |m: String| StoreError::BadUrl(url.to_string(), m);
    if let Some(path) = url.strip_prefix("file://") {
        std::fs::create_dir_all(path).map_err(|e| bad(e.to_string()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(path)
            .map_err(|e| bad(e.to_string()))?;
        return Ok(Arc::new(fs));
    }
    if url == "memory://" {
        return Ok(Arc::new(object_store::memory::InMemory::new()));
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(bad(
            "supported schemes are file://, s3:// and memory://".into()
        ));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("no bucket name".into()));
    }
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(800),
            base: 2.0,
        },
        max_retries: t.max_retries,
        retry_timeout: t.retry_budget,
    };
    // Client settings as config keys, on top of what `from_env` read (a
    // proxy, custom certificates...), rather than replacing them.
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let client = |k| AmazonS3ConfigKey::Client(k);
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(false)
        .with_config(client(ClientConfigKey::ConnectTimeout), ms(t.connect))
        .with_config(client(ClientConfigKey::Timeout), ms(t.request))
        .with_retry(retry);
    if s3.allow_http {
        b = b.with_allow_http(true);
    }
    if !s3.endpoint.is_empty() {
        b = b.with_endpoint(&s3.endpoint);
    }
    if !s3.region.is_empty() {
        b = b.with_region(&s3.region);
    }
    if !s3.access_key_id.is_empty() {
        b = b.with_access_key_id(&s3.access_key_id);
    }
    if !s3.secret_access_key.is_empty() {
        b = b.with_secret_access_key(&s3.secret_access_key);
    }
    let store: Arc<dyn ObjectStore> = Arc::new(b.build().map_err(|e| bad(e.to_string()))?);
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        Ok(store)
    } else {
        Ok(Arc::new(object_store::prefix::PrefixStore::new(
            store, prefix,
        )))
    }
}
