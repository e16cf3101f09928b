//! Single flight: one computation per key, however many ask for it.
//!
//! The computation is spawned on the runtime, not run inside the first
//! caller's future, so a caller that goes away (a browser that navigated
//! elsewhere, a request that timed out) cancels nothing that others wait
//! on, and the result still lands in the cache for the next request.
//!
//! Race-freedom relies on one rule, kept by callers: the computation puts
//! its result in the cache *before* it ends, and `check` looks in that
//! cache. A flight leaves the map only after its result is cached, and a
//! new one starts only after `check` failed under the same lock, so no
//! key is ever computed twice because of timing.

use crate::error::Error;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tracing::Instrument;

type Flight<T> = Shared<BoxFuture<'static, Result<T, Error>>>;

/// In-flight computations by key.
pub struct Flights<K, T: Clone> {
    // A std mutex: it is held only to look up or insert, never across await.
    inflight: Mutex<HashMap<K, Flight<T>>>,
}

impl<K, T: Clone> Default for Flights<K, T> {
    fn default() -> Self {
        Flights {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, T> Flights<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// Joins the flight for `key`, or, if `check` finds no finished value,
    /// starts `make` as a new one.
    ///
    /// # Errors
    /// Whatever the computation returned, shared with every waiter; a
    /// panic inside it becomes [`Error::Internal`].
    pub async fn run<C, M, F>(self: &Arc<Self>, key: K, check: C, make: M) -> Result<T, Error>
    where
        C: FnOnce() -> Option<T>,
        M: FnOnce() -> F,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let flight = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = map.get(&key) {
                f.clone()
            } else if let Some(v) = check() {
                return Ok(v);
            } else {
                self.start(&mut map, key, make())
            }
        };
        flight.await
    }

    /// Runs `make` as the flight for `key` once no other computation for it
    /// is under way, waiting for any that is. Callers of [`Flights::run`]
    /// meanwhile join this one: nothing computed from the state before
    /// `make` can land after it (used to replace a layer image).
    ///
    /// # Errors
    /// What `make` returned.
    pub async fn exclusive<M, F>(self: &Arc<Self>, key: K, make: M) -> Result<T, Error>
    where
        M: FnOnce() -> F,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let mut make = Some(make);
        loop {
            // Decide under the lock, await outside it.
            let step = {
                let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
                match (map.get(&key), make.take()) {
                    (Some(f), m) => {
                        make = m;
                        Err(f.clone())
                    }
                    (None, Some(m)) => Ok(self.start(&mut map, key.clone(), m())),
                    (None, None) => {
                        return Err(Error::Internal(
                            "exclusive flight lost its computation".into(),
                        ));
                    }
                }
            };
            match step {
                Ok(ours) => return ours.await,
                // Its outcome is not ours to report; only its end matters.
                Err(running) => {
                    let _ = running.await;
                }
            }
        }
    }

    fn start<F>(self: &Arc<Self>, map: &mut HashMap<K, Flight<T>>, key: K, fut: F) -> Flight<T>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let this = Arc::clone(self);
        let k = key.clone();
        // The work logs under the span of the request that started it (its
        // request id), however many requests join it later.
        // Its I/O counts for that request too, where a test tallies it.
        let handle = tokio::spawn(
            crate::telemetry::carry_io(async move {
                // Dropped after the result (and on a panic, while unwinding).
                let _leave = Leave {
                    flights: this,
                    key: Some(k),
                };
                fut.await
            })
            .in_current_span(),
        );
        let f = async move {
            handle
                .await
                .unwrap_or_else(|e| Err(Error::Internal(format!("computation panicked: {e}"))))
        }
        .boxed()
        .shared();
        map.insert(key, f.clone());
        f
    }

    /// Number of computations under way.
    pub fn len(&self) -> usize {
        self.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Takes a finished (or panicked) flight out of the map.
struct Leave<K: Hash + Eq, T: Clone> {
    flights: Arc<Flights<K, T>>,
    key: Option<K>,
}

impl<K: Hash + Eq, T: Clone> Drop for Leave<K, T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.flights
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let flights: Arc<Flights<u32, u32>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flights, runs) = (flights.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run(
                        7,
                        || None,
                        || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok(42)
                        },
                    )
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(42));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_first_caller_does_not_cancel_the_work() {
        let flights: Arc<Flights<u32, u32>> = Arc::default();
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let (flights, done) = (flights.clone(), done.clone());
            tokio::spawn(async move {
                flights
                    .run(
                        1,
                        || None,
                        || async move {
                            let _ = rx.await;
                            done.fetch_add(1, Ordering::SeqCst);
                            Ok(5)
                        },
                    )
                    .await
            })
        };
        tokio::task::yield_now().await;
        while flights.is_empty() {
            tokio::task::yield_now().await;
        }
        first.abort();
        let second = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run(1, || None, || async { Ok(99) }).await })
        };
        tx.send(()).unwrap();
        assert_eq!(
            second.await.unwrap(),
            Ok(5),
            "the second caller joined the first computation"
        );
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn exclusive_waits_for_the_running_flight_and_is_joined_meanwhile() {
        let flights: Arc<Flights<u32, u32>> = Arc::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let old = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run(
                        1,
                        || None,
                        || async move {
                            let _ = rx.await;
                            Ok(1)
                        },
                    )
                    .await
            })
        };
        while flights.is_empty() {
            tokio::task::yield_now().await;
        }
        let new = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.exclusive(1, || async { Ok(2) }).await })
        };
        tokio::task::yield_now().await;
        assert!(!new.is_finished(), "waits for the running flight");
        tx.send(()).unwrap();
        assert_eq!(old.await.unwrap(), Ok(1));
        assert_eq!(new.await.unwrap(), Ok(2));
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn a_finished_value_is_found_by_check() {
        let flights: Arc<Flights<u32, u32>> = Arc::default();
        let v = flights.run(3, || Some(8), || async { Ok(0) }).await;
        assert_eq!(v, Ok(8));
    }

    #[tokio::test]
    async fn a_panic_is_an_error_for_every_waiter() {
        let flights: Arc<Flights<u32, u32>> = Arc::default();
        let v = flights.run(3, || None, || async { panic!("boom") }).await;
        assert!(matches!(v, Err(Error::Internal(_))));
        assert!(
            flights.is_empty(),
            "a panicked flight does not stay in the map"
        );
    }
}
