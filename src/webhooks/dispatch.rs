//! The dispatcher: claims due deliveries and POSTs them, a few at a time.

use super::{Webhooks, sign};
use crate::meta::{AttemptRow, DeliveryRow, WebhookRow};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Deliveries in flight at once per process.
const PARALLEL: usize = 8;
/// How often an idle dispatcher looks for deliveries queued elsewhere or due for retry.
const POLL: Duration = Duration::from_millis(500);

impl Webhooks {
    /// Starts the dispatcher on `tracker`; it stops when `stop` fires.
    pub fn spawn_dispatcher(self: &Arc<Self>, tracker: &TaskTracker, stop: &CancellationToken) {
        let (me, stop, inner) = (Arc::clone(self), stop.clone(), tracker.clone());
        tracker.spawn(async move { me.dispatch(stop, inner).await });
    }

    async fn dispatch(self: Arc<Self>, stop: CancellationToken, tracker: TaskTracker) {
        let slots = Arc::new(Semaphore::new(PARALLEL));
        let lease = Duration::from_secs(self.settings.timeout_secs + 10);
        while !stop.is_cancelled() {
            let queued = self.queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let until = self.meta.after(lease);
            match self.meta.claim_delivery(until).await {
                Ok(Some((d, hook))) => {
                    let me = Arc::clone(&self);
                    tracker.spawn(async move {
                        me.deliver(d, hook).await;
                        drop(permit);
                    });
                    continue;
                }
                Ok(None) => drop(permit),
                Err(e) => {
                    drop(permit);
                    tracing::warn!(error = %e, "cannot claim webhook deliveries");
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = &mut queued => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn deliver(&self, d: DeliveryRow, hook: WebhookRow) {
        let started = Instant::now();
        let body = d.payload.clone().into_bytes();
        let result = self
            .client
            .post(&hook.address)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-layercake-topic", &d.topic)
            .header("x-layercake-delivery", d.id.to_string())
            .header("x-layercake-signature", sign(&hook.secret, &body))
            .body(body)
            .send()
            .await;
        let (code, error) = match result {
            Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None),
            Ok(resp) => (
                Some(resp.status().as_u16()),
                Some(format!("the receiver answered {}", resp.status())),
            ),
            Err(e) => (None, Some(format!("no answer: {e}"))),
        };
        let delivered = error.is_none();
        let retry_at =
            (!delivered && d.attempts < i64::from(self.settings.max_attempts)).then(|| {
                let wait = crate::jobs::backoff(
                    d.attempts,
                    self.settings.backoff_ms,
                    self.settings.backoff_max_ms,
                );
                self.meta.after(wait)
            });
        let attempt = AttemptRow {
            id: Uuid::new_v4(),
            delivery_id: d.id,
            attempt: d.attempts,
            status_code: code.map(i64::from),
            error: error.clone(),
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            created_at: 0,
        };
        let label = match (&error, retry_at) {
            (None, _) => "delivered",
            (Some(_), Some(_)) => "retry",
            (Some(_), None) => "failed",
        };
        metrics::counter!(crate::telemetry::WEBHOOK_DELIVERIES, "result" => label).increment(1);
        match &error {
            None => {
                tracing::info!(webhook = %hook.id, delivery = %d.id, topic = %d.topic, attempt = d.attempts, "webhook delivered")
            }
            Some(e) => {
                tracing::warn!(webhook = %hook.id, delivery = %d.id, topic = %d.topic, attempt = d.attempts, retry = retry_at.is_some(), error = %e, "webhook delivery failed")
            }
        }
        if let Err(e) = self
            .meta
            .record_attempt(&d, &attempt, delivered, retry_at)
            .await
        {
            // The lease expires and the delivery is tried again: receivers
            // dedupe on the delivery id.
            tracing::error!(delivery = %d.id, error = %e, "cannot record the webhook attempt");
        }
    }
}
