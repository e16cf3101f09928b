//! Wake-ups: who waits for what, in this process and across processes.
//!
//! Idle workers and long-polling remote claims of this process wait for
//! "work queued"; requests wait for "task stopped" ([`Watch`], one
//! `Notify` per task while someone waits). A worker of this process wakes
//! them at once; other processes hear of it through `LISTEN/NOTIFY` (on
//! PostgreSQL with `jobs.notify`), as `<origin> work` or
//! `<origin> done <task>`, and everyone polls (`jobs.poll_ms`) for what
//! was missed.

use super::Jobs;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

impl Jobs {
    /// Hears the wake-ups other processes send (on PostgreSQL, with
    /// `jobs.notify`): work queued wakes this process's idle workers and
    /// long-polling remote claims, a task stopped wakes the requests here
    /// that wait for it. A dropped connection is made again; polling
    /// covers what was missed.
    pub fn spawn_listener(self: &Arc<Self>, tracker: &TaskTracker, stop: &CancellationToken) {
        if !self.settings.notify || !self.meta.can_notify() {
            return;
        }
        let (me, stop) = (Arc::clone(self), stop.clone());
        tracker.spawn(async move {
            let mut wait = Duration::from_millis(250);
            while !stop.is_cancelled() {
                let mut listener = match me.meta.listen().await {
                    Ok(Some(l)) => l,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for wake-ups; polling meanwhile");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                        wait = (wait * 2).min(Duration::from_secs(10));
                        continue;
                    }
                };
                wait = Duration::from_millis(250);
                loop {
                    let next = tokio::select! {
                        () = stop.cancelled() => return,
                        n = listener.next() => n,
                    };
                    match next {
                        Ok(Some(payload)) => me.heard(&payload),
                        // Reconnected: what was sent meanwhile is lost.
                        Ok(None) => me.work.notify_waiters(),
                        Err(e) => {
                            tracing::warn!(error = %e, "wake-up connection lost; connecting again");
                            break;
                        }
                    }
                }
            }
        });
    }

    /// One wake-up from another process: `<origin> work` or
    /// `<origin> done <task>`.
    fn heard(&self, payload: &str) {
        let mut words = payload.split(' ');
        if words.next() == Some(self.origin.to_string().as_str()) {
            return;
        }
        match (
            words.next(),
            words.next().and_then(|t| Uuid::parse_str(t).ok()),
        ) {
            (Some("work"), None) => self.work.notify_waiters(),
            (Some("done"), Some(task)) => self.wake_waiters(task),
            _ => tracing::debug!(payload, "unknown wake-up ignored"),
        }
    }

    /// Tells the other processes (best effort; they poll too).
    pub(super) fn announce(&self, what: String) {
        if !self.settings.notify || !self.meta.can_notify() {
            return;
        }
        let meta = Arc::clone(&self.meta);
        let payload = format!("{} {what}", self.origin);
        tokio::spawn(async move {
            if let Err(e) = meta.notify(&payload).await {
                tracing::debug!(error = %e, "wake-up not sent; the others poll");
            }
        });
    }

    /// Called by a worker of this process when a task stopped or went back
    /// to pending: wakes who waits for it here and on the other processes.
    pub(crate) fn task_changed(&self, id: Uuid) {
        self.wake_waiters(id);
        self.announce(format!("done {id}"));
    }

    fn wake_waiters(&self, id: Uuid) {
        let n = {
            let map = self.done.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&id).cloned()
        };
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    /// Resolves when work may have been queued in this process.
    pub(crate) fn work_queued(&self) -> tokio::sync::futures::Notified<'_> {
        self.work.notified()
    }
}

/// A waiter's registration for a task's wake-ups; removed when the last
/// waiter of the task goes (also on cancellation or error).
pub(super) struct Watch<'a> {
    jobs: &'a Jobs,
    id: Uuid,
    pub(super) notify: Arc<Notify>,
}

impl<'a> Watch<'a> {
    pub(super) fn new(jobs: &'a Jobs, id: Uuid) -> Watch<'a> {
        let mut map = jobs.done.lock().unwrap_or_else(|p| p.into_inner());
        let notify = Arc::clone(map.entry(id).or_default());
        Watch { jobs, id, notify }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut map = self.jobs.done.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map and this waiter hold it: nobody else is waiting.
        if Arc::strong_count(&self.notify) == 2 {
            map.remove(&self.id);
        }
    }
}
