//! Hang guards: waiting in a test for an event it caused (a delivery
//! made, a child process gone, a job stopped), polled a bounded number of
//! times.
//!
//! The bound is never a claim about speed: it only turns a test that would
//! otherwise wait forever into a failure that names what never happened.
//! A test that means "this happens before that" says so with an event (a
//! marker file not yet written, a process still running, a count), not
//! with an elapsed time; where the event's absence must be told from its
//! lateness, the thing waited on is made to take far longer than the guard
//! (a program that sleeps for ten minutes).

use std::future::Future;
use std::time::Duration;

/// How many times a condition is looked at before the guard gives up.
pub const TRIES: u32 = 1200;
/// The pause between two looks: with [`TRIES`], about a minute in all
/// (plus the time the looks themselves take).
pub const PAUSE: Duration = Duration::from_millis(50);

/// The guard's failure: `what` (the event waited for) never came.
fn never(what: &str) -> ! {
    panic!(
        "hang guard: still waiting for {what} after {TRIES} looks {}ms apart",
        PAUSE.as_millis()
    )
}

/// Waits until `cond` holds, looking at most [`TRIES`] times; panics
/// naming `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..TRIES {
        if cond().await {
            return;
        }
        tokio::time::sleep(PAUSE).await;
    }
    never(what)
}

/// Waits until `look` finds something, looking at most [`TRIES`] times,
/// and returns it; panics naming `what` otherwise.
pub async fn eventually_some<T, F, Fut>(what: &str, mut look: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..TRIES {
        if let Some(found) = look().await {
            return found;
        }
        tokio::time::sleep(PAUSE).await;
    }
    never(what)
}

/// [`eventually_some`] for code outside a runtime (or that must block its
/// thread): the pause is a thread sleep.
pub fn eventually_blocking<T>(what: &str, mut look: impl FnMut() -> Option<T>) -> T {
    for _ in 0..TRIES {
        if let Some(found) = look() {
            return found;
        }
        std::thread::sleep(PAUSE);
    }
    never(what)
}

/// `fut`, which must end: awaited for at most the guard's minute
/// ([`TRIES`] × [`PAUSE`]); panics naming `what` otherwise.
pub async fn finishes<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PAUSE * TRIES, fut).await {
        Ok(v) => v,
        Err(_) => never(what),
    }
}

/// The same bound for a hand-written polling loop (one whose look has
/// more to do than a closure comfortably holds): [`Guard::wait`] where the
/// loop pauses.
pub struct Guard {
    left: u32,
}

impl Default for Guard {
    fn default() -> Self {
        Guard { left: TRIES }
    }
}

impl Guard {
    pub fn new() -> Guard {
        Guard::default()
    }

    /// Pauses before the next look; panics naming `what` (the event
    /// still waited for) once the looks are spent.
    pub async fn wait(&mut self, what: &str) {
        if self.left == 0 {
            never(what)
        }
        self.left -= 1;
        tokio::time::sleep(PAUSE).await;
    }

    /// [`Guard::wait`] blocking the thread.
    pub fn wait_blocking(&mut self, what: &str) {
        if self.left == 0 {
            never(what)
        }
        self.left -= 1;
        std::thread::sleep(PAUSE);
    }
}
