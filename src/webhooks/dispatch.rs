//! The dispatcher: claims due deliveries and POSTs them, a few at a time.

use super::{Webhooks, sign};
use crate::meta::{AttemptRow, DeliveryRow, WebhookRow};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// How often an idle dispatcher looks for deliveries queued elsewhere or due for retry.
const POLL: Duration = Duration::from_millis(500);

impl Webhooks {
    /// Starts the dispatcher on `tracker`; it stops when `stop` fires.
    pub fn spawn_dispatcher(self: &Arc<Self>, tracker: &TaskTracker, stop: &CancellationToken) {
        let (me, stop, inner) = (Arc::clone(self), stop.clone(), tracker.clone());
        tracker.spawn(async move { me.dispatch(stop, inner).await });
    }

    async fn dispatch(self: Arc<Self>, stop: CancellationToken, tracker: TaskTracker) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let lease = Duration::from_secs(self.settings.timeout_secs + 10);
        while !stop.is_cancelled() {
            let queued = self.queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let until = self.meta.after(lease);
            let full = self.full_orgs();
            match self.meta.claim_delivery(until, &full).await {
                Ok(Some((d, hook))) => {
                    let me = Arc::clone(&self);
                    me.hold(d.org_id, 1);
                    tracker.spawn(async move {
                        let org = d.org_id;
                        me.deliver(d, hook).await;
                        me.hold(org, -1);
                        drop(permit);
                        // An org below its share again may have more due.
                        me.queued.notify_one();
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

    /// Orgs holding their whole share of this process's delivery slots.
    fn full_orgs(&self) -> Vec<Uuid> {
        let busy = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        busy.iter()
            .filter(|&(_, &n)| n >= self.settings.per_org_concurrency)
            .map(|(org, _)| *org)
            .collect()
    }

    fn hold(&self, org: Uuid, delta: isize) {
        let mut busy = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = busy.entry(org).or_default();
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            busy.remove(&org);
        }
    }

    /// POSTs `d`; `Err` carries why its address was refused (no retry).
    async fn send(
        &self,
        d: &DeliveryRow,
        hook: &WebhookRow,
    ) -> (Option<u16>, Option<String>, bool) {
        // A literal address is not resolved, so the resolver never sees
        // it: checked here (a row saved before the policy, or under another).
        if let Ok(url) = reqwest::Url::parse(&hook.address)
            && let Some(host) = url.host()
            && let Err(why) = self.policy.check_host(&host)
        {
            return (None, Some(format!("refused: {why}")), true);
        }
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
        match result {
            Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None, false),
            Ok(resp) => (
                Some(resp.status().as_u16()),
                Some(format!("the receiver answered {}", resp.status())),
                false,
            ),
            Err(e) => {
                let mut cause: Option<&dyn std::error::Error> = Some(&e);
                while let Some(c) = cause {
                    if let Some(r) = c.downcast_ref::<super::address::Refused>() {
                        // The resolved addresses stay in the server log: the
                        // delivery log is the customer's, and must not map
                        // internal names to internal addresses.
                        tracing::warn!(webhook = %hook.id, reason = %r, "webhook address refused");
                        let host = reqwest::Url::parse(&hook.address)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_string))
                            .unwrap_or_default();
                        return (
                            None,
                            Some(format!(
                                "refused: {host} does not resolve to public addresses only"
                            )),
                            true,
                        );
                    }
                    cause = c.source();
                }
                tracing::debug!(webhook = %hook.id, error = %e, "webhook delivery got no answer");
                // Coarse on purpose: the customer learns whether the
                // receiver answered, not how name resolution went.
                let why = if e.is_timeout() {
                    "no answer within webhooks.timeout_secs"
                } else if e.is_connect() {
                    "no answer: cannot connect"
                } else {
                    "no answer"
                };
                (None, Some(why.to_string()), false)
            }
        }
    }

    async fn deliver(&self, d: DeliveryRow, hook: WebhookRow) {
        let started = Instant::now();
        let (code, error, refused) = self.send(&d, &hook).await;
        if refused {
            metrics::counter!(crate::telemetry::WEBHOOKS_REFUSED).increment(1);
        }
        let delivered = error.is_none();
        let retry_at = (!delivered
            && !refused
            && d.attempts < i64::from(self.settings.max_attempts))
        .then(|| {
            let wait = crate::meta::backoff(
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
