//! The object store's circuit breaker: after a request fails for good the
//! store is taken as down for a cooldown, during which requests fail at
//! once (503) except one probe per cooldown; the first success closes it.

use super::{StoreError, backend};
use crate::telemetry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(super) struct Breaker {
    url: String,
    cooldown: Duration,
    /// Milliseconds since `epoch` until which the store is taken as down;
    /// 0 while it is up.
    down_until: AtomicU64,
    epoch: Instant,
    /// Requests let through to the object store.
    requests: AtomicU64,
    /// Told when the store answers again (the outbox flusher waits on it).
    pub(super) wake: tokio::sync::Notify,
}

impl Breaker {
    pub(super) fn new(url: &str, cooldown: Duration) -> Breaker {
        Breaker {
            url: url.to_string(),
            cooldown,
            down_until: AtomicU64::new(0),
            epoch: Instant::now(),
            requests: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Requests let through to the object store so far.
    pub(super) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(super) fn is_up(&self) -> bool {
        self.down_until.load(Ordering::Acquire) == 0
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether a request may go to the store now: yes while it is up; while
    /// it is down, only one probe per cooldown.
    pub(super) fn admit(&self) -> Result<(), StoreError> {
        let until = self.down_until.load(Ordering::Acquire);
        if until == 0 {
            self.requests.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let now = self.now_ms();
        let next = now + u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX / 2);
        if now >= until
            && self
                .down_until
                .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.requests.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        Err(StoreError::Down(format!(
            "the object store {} did not answer",
            self.url
        )))
    }

    pub(super) fn succeeded(&self) {
        if self.down_until.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!(store = %self.url, "the object store answers again");
            metrics::gauge!(telemetry::STORE_UP).set(1.0);
            self.wake.notify_one();
        }
    }

    pub(super) fn failed(
        &self,
        op: &'static str,
        path: &str,
        e: &object_store::Error,
    ) -> StoreError {
        metrics::counter!(telemetry::STORE_ERRORS, "op" => op).increment(1);
        // Only what says "the store is not answering" (connection errors,
        // timeouts, 5xx, 429: object_store's `Generic` after its retries)
        // takes it down; a refusal about one request (permissions, a
        // precondition, an unsupported operation) is that request's error.
        if !matches!(e, object_store::Error::Generic { .. }) {
            tracing::warn!(store = %self.url, op, path, error = %e, "object store request refused");
            return backend(e);
        }
        let next = self.now_ms() + u64::try_from(self.cooldown.as_millis()).unwrap_or(0);
        if self.down_until.swap(next, Ordering::AcqRel) == 0 {
            tracing::error!(store = %self.url, op, path, error = %e, "the object store failed; taking it as down");
            metrics::gauge!(telemetry::STORE_UP).set(0.0);
        }
        backend(e)
    }
}
