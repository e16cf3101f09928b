//! Admission to the CPU: one semaphore (`compose.concurrency`) for
//! composes, encodes and stored-layer decodes, and a bound on how many may
//! wait for it (`compose.max_waiting`) beyond which new requests get a
//! fast 429 instead of a queue.

use super::Inner;
use crate::error::Error;
use crate::telemetry;
use std::sync::Arc;

/// Whether a CPU step may be refused when too many wait for a slot.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// A new request's first CPU step: refused (429) beyond the bound.
    OrReject,
    /// A step of work already admitted, or shared by several requests.
    Wait,
}

impl Inner {
    /// A compose slot: at once if one is free, after a wait if fewer than
    /// `compose_max_waiting` wait already, else (for [`Admit::OrReject`]) a
    /// fast 429. Work already admitted ([`Admit::Wait`]) waits its turn but
    /// still counts as waiting, so new requests see the load.
    pub(super) async fn cpu_slot(
        &self,
        admit: Admit,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        use std::sync::atomic::Ordering;
        if let Ok(p) = Arc::clone(&self.cpu).try_acquire_owned() {
            return Ok(p);
        }
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Decrement(&self.waiting);
        if admit == Admit::OrReject && before >= self.limits.compose_max_waiting {
            metrics::counter!(telemetry::REJECTED, "reason" => "compose").increment(1);
            return Err(Error::overloaded(format!(
                "over capacity: {before} images are waiting to be composed; retry shortly"
            )));
        }
        metrics::gauge!(telemetry::COMPOSE_WAITING).set((before + 1) as f64);
        Arc::clone(&self.cpu)
            .acquire_owned()
            .await
            .map_err(|_| Error::unavailable("shutting down"))
    }
}

/// Decrements a counter when dropped.
struct Decrement<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        let left = self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) - 1;
        metrics::gauge!(telemetry::COMPOSE_WAITING).set(left as f64);
    }
}
