//! The store's time: microseconds since the epoch, strictly increasing in
//! this process, read from the system clock or from a manual clock that
//! tests move ([`Meta::with_manual_clock`], [`Meta::advance`]).

use super::Meta;
use std::sync::atomic::{AtomicI64, Ordering};

/// Where [`Meta::now`] reads the time. Leases, retry times and TTLs are
/// compared with times this process wrote, so a test moves them by moving
/// this clock; tokio's paused time cannot drive them, as the database
/// driver's own timers would make a paused clock jump while a statement runs.
pub(super) enum Clock {
    System,
    /// Microseconds since the epoch, set by the test.
    Manual(AtomicI64),
}

impl Meta {
    /// `now()` plus `d`, saturating: a lease end, a retry time.
    pub fn after(&self, d: std::time::Duration) -> i64 {
        self.now().saturating_add(micros(d))
    }

    /// Reads the time from a clock the caller moves with [`Meta::advance`],
    /// starting at the system's time now (tests of leases, backoff, TTLs).
    #[doc(hidden)]
    #[must_use]
    pub fn with_manual_clock(mut self) -> Meta {
        self.clock = Clock::Manual(AtomicI64::new(self.now()));
        self
    }

    /// Moves a manual clock forward by `d` (no effect on the system clock).
    #[doc(hidden)]
    pub fn advance(&self, d: std::time::Duration) {
        if let Clock::Manual(t) = &self.clock {
            t.fetch_add(micros(d), Ordering::Relaxed);
        }
    }

    /// Microseconds since the Unix epoch, strictly increasing in this process.
    pub fn now(&self) -> i64 {
        let wall = match &self.clock {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        };
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = wall.max(prev + 1);
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }
}

/// A duration in the store's time unit (microseconds), saturating.
pub fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
