//! The threads a miss's CPU work runs on (compose, resize, encode,
//! stored-layer decode), apart from the threads serving connections.
//!
//! These threads can run at a lower priority (`compose.nice`, a Linux nice
//! value; 0 by default): at 19, a weight of 15 against a serving thread's
//! 1024, the threads serving connections get the CPU they ask for and the
//! compose threads what is left, every idle cycle included; but so does
//! every other normal-priority process on the machine. How many run at
//! once is decided upstream (the compose and AVIF semaphores, whose
//! permits the jobs hold until they finish); the pool has one thread per
//! slot, so a job never queues here behind another slot's, and a job whose
//! caller gave up before it started is skipped.

use crate::error::Error;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of lower-priority threads. Cheap to share; the threads end
/// when the pool is dropped and their queue is empty.
pub(super) struct CpuPool {
    jobs: mpsc::Sender<Job>,
}

impl CpuPool {
    /// Starts `threads` threads (at least one) at nice value `nice`
    /// (0: the process's own priority).
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub(super) fn new(threads: usize, nice: i32) -> std::io::Result<CpuPool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("layercake-cpu-{i}"))
                .spawn(move || {
                    lower_priority(nice);
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(CpuPool { jobs: tx })
    }

    /// Runs `f` on a pool thread and waits for its result.
    ///
    /// # Errors
    /// [`Error::Internal`] when `f` panics (the thread survives it) or the
    /// pool is gone.
    pub(super) async fn run<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // Nobody waits any more (the caller was cancelled while the job
            // queued): skip it; dropping `f` releases what it holds.
            if done.is_closed() {
                return;
            }
            let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Internal("cpu pool: stopped".into()))?;
        match result.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(panic)) => Err(Error::Internal(format!(
                "cpu task panicked: {}",
                panic_text(panic.as_ref())
            ))),
            Err(_) => Err(Error::Internal("cpu pool: job dropped".into())),
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Lowers the calling thread's scheduling priority to `nice` (Linux keeps
/// a nice value per thread), never raising it: a process started at a
/// higher nice value keeps its own. Raising one's own nice value needs no
/// privilege; a failure only leaves the thread at normal priority.
fn lower_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread, no pointers.
        let rc = unsafe {
            let tid = libc::gettid() as libc::id_t;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, nice.max(now))
        };
        if rc != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "compose threads keep normal priority");
        }
    }
}

/// The calling thread's nice value (tests).
#[cfg(all(test, target_os = "linux"))]
fn current_nice() -> i32 {
    // SAFETY: plain syscalls on the calling thread.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_pool_and_a_panic_is_an_error_not_a_lost_thread() {
        let pool = CpuPool::new(1, 0).unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("layercake-cpu-0"));
        let e = pool.run(|| -> u32 { panic!("boom") }).await.unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        // the one thread survived its job's panic
        assert_eq!(pool.run(|| 6 * 7).await.unwrap(), 42);
    }

    #[tokio::test]
    async fn a_job_whose_caller_gave_up_before_it_started_is_skipped() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let pool = Arc::new(CpuPool::new(1, 0).unwrap());
        let (release, held) = std::sync::mpsc::channel::<()>();
        // the one thread busy until released
        let busy = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.run(move || held.recv().is_ok()).await }
        });
        tokio::task::yield_now().await;
        let ran = Arc::new(AtomicBool::new(false));
        // polled once (which queues the job), then dropped: the caller gives up
        let mut queued = Box::pin(pool.run({
            let ran = Arc::clone(&ran);
            move || ran.store(true, Ordering::SeqCst)
        }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(queued.as_mut().poll(&mut cx).is_pending());
        drop(queued);
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        // a job queued after the skipped one runs: the skip happened first
        pool.run(|| ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst), "the abandoned job ran");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn pool_threads_run_at_the_configured_nice_value() {
        let base = current_nice();
        let pool = CpuPool::new(2, 7).unwrap();
        let niced = pool.run(current_nice).await.unwrap();
        // lowered to 7, or left where the process already was if lower
        assert_eq!(niced, 7.max(base), "base {base}");
        assert_eq!(
            current_nice(),
            base,
            "the caller's own priority is untouched"
        );
        let plain = CpuPool::new(1, 0).unwrap();
        assert_eq!(plain.run(current_nice).await.unwrap(), base);
    }
}
