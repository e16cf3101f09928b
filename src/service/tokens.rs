//! Tokens: who a request acts for.
//!
//! A token is a UUID handed out once (`layercake token create`); only its
//! blake3 hash is stored. A *private* token may do anything its org may;
//! a *public* token (for storefront pages) may only read (GET/HEAD), and
//! only from the origins it lists.
//!
//! Every node keeps the whole set of live tokens in memory and reads it
//! again every [`CACHE_TTL`], so a revocation takes effect within that time
//! on every node and a request with a token costs no query, whether the
//! token is known or made up. A token the set does not have reads the set
//! again if it is older than [`MISS_REFRESH`] (one reader at a time): a
//! token created on another node works within that, and a flood of made-up
//! tokens costs at most one query per [`MISS_REFRESH`].
//!
//! A store where no token was ever created is in development mode: every
//! request acts for the default org, and `serve` binds loopback only.

use crate::error::Error;
use crate::meta::{DEFAULT_ORG, Meta, TokenRow};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long the set of live tokens (or the dev-mode check) is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

/// The youngest set a token it lacks makes this node read again.
pub const MISS_REFRESH: Duration = Duration::from_secs(1);

/// The live tokens by hash, as read at `read_at` (ms since the service's
/// epoch; `None`: never read).
#[derive(Default)]
struct Snapshot {
    grants: std::collections::HashMap<String, Grant>,
    read_at: Option<u64>,
}

/// A token's rights, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub org: Uuid,
    pub private: bool,
    /// A render node's token (`worker` kind): it may use the worker
    /// protocol (`/api/jobs/worker/...`) and nothing else.
    pub worker: bool,
    pub origins: Vec<String>,
}

pub struct TokenService {
    meta: Arc<Meta>,
    snapshot: std::sync::RwLock<Arc<Snapshot>>,
    /// Held while the set is read, so concurrent misses read it once.
    refreshing: tokio::sync::Mutex<()>,
    /// When the "does any token exist" answer was last read (ms since
    /// `epoch`), so the hot path costs two atomic loads.
    checked_at: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
    /// Set once authentication is on (a token was seen, or the server
    /// listens beyond loopback): never back to development mode, whatever
    /// the table says later (a restored backup, a wiped database).
    enforced: std::sync::atomic::AtomicBool,
}

fn hash(token: &str) -> String {
    blake3::hash(token.trim().as_bytes()).to_hex().to_string()
}

impl TokenService {
    pub fn new(meta: Arc<Meta>) -> TokenService {
        TokenService {
            meta,
            snapshot: std::sync::RwLock::default(),
            refreshing: tokio::sync::Mutex::new(()),
            checked_at: std::sync::atomic::AtomicU64::new(u64::MAX),
            epoch: std::time::Instant::now(),
            enforced: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Turns authentication on for the life of this process.
    pub fn enforce(&self) {
        self.enforced
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether no token was ever created (development mode).
    ///
    /// # Errors
    /// Store failures.
    pub async fn development_mode(&self) -> Result<bool, Error> {
        use std::sync::atomic::Ordering;
        if self.enforced.load(Ordering::Acquire) {
            return Ok(false);
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let checked = self.checked_at.load(Ordering::Acquire);
        if checked != u64::MAX && now.saturating_sub(checked) < CACHE_TTL.as_millis() as u64 {
            return Ok(true);
        }
        if self.meta.token_count().await? > 0 {
            self.enforce();
            return Ok(false);
        }
        self.checked_at.store(now, Ordering::Release);
        Ok(true)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reads the set of live tokens again, unless another caller did so
    /// since `asked_at`.
    async fn refresh(&self, asked_at: u64) -> Result<Arc<Snapshot>, Error> {
        let _one = self.refreshing.lock().await;
        let current = self.current();
        if current.read_at.is_some_and(|t| t >= asked_at) {
            return Ok(current);
        }
        let read_at = self.now_ms();
        let grants = self
            .meta
            .live_tokens()
            .await?
            .into_iter()
            .map(|t| {
                let grant = Grant {
                    org: t.org_id,
                    private: t.kind == "private",
                    worker: t.kind == "worker",
                    origins: serde_json::from_str(&t.origins).unwrap_or_default(),
                };
                (t.hash, grant)
            })
            .collect();
        let fresh = Arc::new(Snapshot {
            grants,
            read_at: Some(read_at),
        });
        match self.snapshot.write() {
            Ok(mut s) => *s = Arc::clone(&fresh),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&fresh),
        }
        Ok(fresh)
    }

    /// The grant of a live token; `None` for an unknown or revoked one.
    ///
    /// # Errors
    /// Store failures, when the set must be read again and cannot be; a
    /// token the old set has keeps working meanwhile.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Grant>, Error> {
        let h = hash(token);
        let now = self.now_ms();
        let snap = self.current();
        let age = snap.read_at.map(|t| now.saturating_sub(t));
        let known = snap.grants.get(&h);
        let trusted = |limit: Duration| age.is_some_and(|a| a < limit.as_millis() as u64);
        if trusted(CACHE_TTL) && (known.is_some() || trusted(MISS_REFRESH)) {
            return Ok(known.cloned());
        }
        match self.refresh(now).await {
            Ok(fresh) => Ok(fresh.grants.get(&h).cloned()),
            Err(e) => match known {
                Some(g) => {
                    tracing::warn!(error = %e, "token set not read again; the last one is used");
                    Ok(Some(g.clone()))
                }
                None => Err(e),
            },
        }
    }

    /// Creates a token for `org` and returns it with its record (the
    /// token is shown this once).
    ///
    /// # Errors
    /// 422 for a public token without origins or a malformed origin.
    pub async fn create(
        &self,
        org: Option<Uuid>,
        name: &str,
        public: bool,
        origins: &[String],
    ) -> Result<(String, TokenRow), Error> {
        self.create_kind(
            org,
            name,
            if public { "public" } else { "private" },
            origins,
        )
        .await
    }

    /// Creates a render node's token: it claims and finishes tasks of
    /// every org over the worker protocol, and can read or write nothing
    /// else. Returned as [`TokenService::create`] does.
    ///
    /// # Errors
    /// Store failures.
    pub async fn create_worker(&self, name: &str) -> Result<(String, TokenRow), Error> {
        self.create_kind(None, name, "worker", &[]).await
    }

    async fn create_kind(
        &self,
        org: Option<Uuid>,
        name: &str,
        kind: &str,
        origins: &[String],
    ) -> Result<(String, TokenRow), Error> {
        let public = kind == "public";
        if public && origins.is_empty() {
            return Err(Error::invalid(
                "origin",
                "a public token needs at least one allowed origin",
            ));
        }
        for o in origins {
            if !origin_is_valid(o) {
                return Err(Error::invalid(
                    "origin",
                    format!("\"{o}\" is not an origin like https://shop.example.com"),
                ));
            }
        }
        let token = Uuid::new_v4().to_string();
        let row = TokenRow {
            id: Uuid::new_v4(),
            org_id: org.unwrap_or(DEFAULT_ORG),
            name: name.to_string(),
            kind: kind.into(),
            hash: hash(&token),
            origins: serde_json::to_string(origins).unwrap_or_else(|_| "[]".into()),
            created_at: self.meta.now(),
            revoked_at: None,
        };
        self.meta.insert_token(&row).await?;
        self.enforce();
        // Usable on this node at once.
        if let Err(e) = self.refresh(self.now_ms().saturating_add(1)).await {
            tracing::warn!(error = %e, "token set not read again after a create");
        }
        Ok((token, row))
    }
}

/// `scheme://host[:port]`, nothing more.
pub fn origin_is_valid(o: &str) -> bool {
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.contains(['/', '?', '#', '@', ' ']))
}

/// The origin of a `Referer` URL: `scheme://host[:port]`.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(origin_is_valid("https://shop.example.com"));
        assert!(origin_is_valid("http://localhost:3000"));
        assert!(!origin_is_valid("https://shop.example.com/"));
        assert!(!origin_is_valid("shop.example.com"));
        assert_eq!(
            origin_of("https://shop.example.com/sofas?x=1").as_deref(),
            Some("https://shop.example.com")
        );
        assert_eq!(origin_of("nonsense"), None);
    }
}
