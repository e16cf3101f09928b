//! Webhooks: subscriptions, events, and signed deliveries with retries.
//!
//! Topics: `job.stopped` (a job's tasks have all stopped, or it was
//! cancelled; the data is the job object with its counters) and
//! `layer.created` (a render was stored and recorded; the data names the
//! layer, its file, asset, view, key, job, task and run). A webhook with
//! topic `*` gets both. Its optional `filter` is an object whose every
//! entry must match the same top-level entry of the event's data: equal
//! to it, or, for an array, equal to one of its elements, e.g.
//! `{"assetId": "…"}` for `layer.created` or `{"type": ["batch"]}` for
//! `job.stopped`. One entry is special, as in the published client's
//! schema: `status`, an array of outcomes (`success`, `failed`; empty: any).
//! A `job.stopped` event's outcome is `failed` when a task failed or the
//! job was cancelled, else `success`; a `layer.created` is a `success`.
//!
//! A delivery is `POST <address>` with body
//! `{"id", "topic", "orgId", "webhookId", "createdAt", "data"}` and headers
//! `X-Layercake-Topic`, `X-Layercake-Delivery` (the id: receivers dedupe
//! on it) and `X-Layercake-Signature: sha256=<hex HMAC-SHA256 of the exact
//! body, keyed by the webhook's secret>`. Any 2xx is success; anything else,
//! or no answer within `webhooks.timeout_secs`, is retried with doubling
//! backoff up to `webhooks.max_attempts`. Deliveries are rows in the
//! metadata store (`meta::webhooks`), written when the event happens and
//! claimed under a lease by a dispatcher (`dispatch`), so they survive
//! restarts and no two processes send the same one at once.
//!
//! Addresses: public only, unless configured (`address`), checked when a
//! webhook is saved and again at every delivery; a refused delivery fails
//! at once (no retries) with the reason in its log. An org has at most
//! `webhooks.max_per_org` webhooks, and at most
//! `webhooks.per_org_concurrency` of this process's
//! `webhooks.concurrency` delivery slots.

pub mod address;
mod dispatch;

use crate::config::WebhookSettings;
use crate::error::Error;
use crate::meta::{AttemptRow, DeliveryRow, DeliveryStatus, Meta, WebhookRow, Window};
use crate::wire::rfc3339;
pub use crate::wire::webhooks::filter_json;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// The topics a webhook may subscribe to.
pub const TOPICS: &[&str] = &["job.stopped", "layer.created", "*"];

/// The signature header's value for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The outcomes a filter's `status` may list.
pub const OUTCOMES: &[&str] = &["success", "failed"];

/// An event's outcome (see the module's docs).
fn outcome(data: &serde_json::Value) -> &'static str {
    let failures = data
        .get("taskResultFailures")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    let cancelled = data.get("schedulerState").and_then(|s| s.as_str()) == Some("cancelled");
    if failures > 0 || cancelled {
        "failed"
    } else {
        "success"
    }
}

/// Whether every entry of `filter` matches the same entry of `data`.
pub fn matches(filter: &serde_json::Value, data: &serde_json::Value) -> bool {
    let Some(f) = filter.as_object() else {
        return true;
    };
    f.iter().all(|(k, v)| match (k.as_str(), v) {
        ("status", serde_json::Value::Array(any)) => {
            any.is_empty() || any.iter().any(|s| s.as_str() == Some(outcome(data)))
        }
        (_, serde_json::Value::Array(any)) => {
            data.get(k) == Some(v) || data.get(k).is_some_and(|d| any.contains(d))
        }
        _ => data.get(k) == Some(v),
    })
}

/// A webhook as a client creates or updates it.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    pub topic: Option<String>,
    pub address: Option<String>,
    pub filter: Option<serde_json::Value>,
    pub secret: Option<String>,
}

/// The webhooks service of this process.
pub struct Webhooks {
    meta: Arc<Meta>,
    settings: WebhookSettings,
    policy: Arc<address::Policy>,
    client: reqwest::Client,
    /// Deliveries in flight in this process, per org (for fair slots).
    busy: std::sync::Mutex<std::collections::HashMap<Uuid, usize>>,
    /// Wakes this process's dispatcher when a delivery is queued.
    queued: Notify,
}

impl Webhooks {
    /// # Errors
    /// [`Error::Internal`] when the HTTP client cannot be built.
    pub fn new(meta: Arc<Meta>, settings: WebhookSettings) -> Result<Webhooks, Error> {
        let policy = Arc::new(address::Policy::new(
            settings.allow_private_addresses,
            &settings.private_hosts,
        ));
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(settings.timeout_secs))
            // Every connection goes to an address `Guarded` checked: no
            // redirect, no proxy (a proxy would connect where it likes).
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(address::Guarded(Arc::clone(&policy))))
            .user_agent(concat!("layercake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("webhook client: {e}")))?;
        Ok(Webhooks {
            meta,
            settings,
            policy,
            client,
            busy: std::sync::Mutex::default(),
            queued: Notify::new(),
        })
    }

    /// Queues `topic` with `data` for every matching webhook of `org`.
    /// Never fails the caller: an event that cannot be queued is logged.
    pub async fn emit(&self, org: Uuid, topic: &str, data: serde_json::Value) {
        let hooks = match self.meta.subscribers(org, topic).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(topic, error = %e, "webhook event lost: cannot read subscribers");
                return;
            }
        };
        let mut queued = false;
        for h in hooks {
            let filter: serde_json::Value =
                serde_json::from_str(&h.filter).unwrap_or(serde_json::Value::Null);
            if !matches(&filter, &data) {
                continue;
            }
            let id = Uuid::new_v4();
            let now = self.meta.now();
            let payload = serde_json::json!({
                "id": id,
                "topic": topic,
                "orgId": org,
                "webhookId": h.id,
                "createdAt": rfc3339(now),
                "data": data,
            });
            let d = DeliveryRow {
                id,
                org_id: org,
                webhook_id: h.id,
                topic: topic.to_string(),
                payload: payload.to_string(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: now,
                created_at: now,
                updated_at: now,
            };
            match self.meta.insert_delivery(&d).await {
                Ok(()) => queued = true,
                Err(e) => {
                    tracing::error!(webhook = %h.id, topic, error = %e, "webhook event lost")
                }
            }
        }
        if queued {
            self.queued.notify_one();
        }
    }

    /// Creates a webhook; returns it (the only time its secret is shown).
    ///
    /// # Errors
    /// 422 naming the missing or invalid field.
    pub async fn create(&self, org: Uuid, input: WebhookInput) -> Result<WebhookRow, Error> {
        let address = input
            .address
            .as_deref()
            .ok_or_else(|| Error::invalid("address", "is required"))?;
        let topic = input.topic.as_deref().ok_or_else(|| {
            Error::invalid(
                "topic",
                format!("is required (one of {})", TOPICS.join(", ")),
            )
        })?;
        let secret = match input.secret {
            Some(s) if s.len() >= 16 => s,
            Some(_) => return Err(Error::invalid("secret", "must be at least 16 characters")),
            None => format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
        };
        let address = self.check_address(address)?;
        let topic = check_topic(topic)?;
        self.check_room(org).await?;
        let now = self.meta.now();
        let row = WebhookRow {
            id: Uuid::new_v4(),
            org_id: org,
            topic,
            address,
            filter: check_filter(input.filter.as_ref())?,
            secret,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        self.meta.insert_webhook(&row).await?;
        Ok(row)
    }

    /// Changes the given fields of a webhook.
    ///
    /// # Errors
    /// 404 for another org's or an unknown id; 422 for an invalid field.
    pub async fn update(
        &self,
        org: Uuid,
        id: Uuid,
        input: WebhookInput,
    ) -> Result<WebhookRow, Error> {
        let mut row = self.meta.webhook(org, id).await?;
        if let Some(t) = &input.topic {
            row.topic = check_topic(t)?;
        }
        if let Some(a) = &input.address {
            row.address = self.check_address(a)?;
        }
        if input.filter.is_some() {
            row.filter = check_filter(input.filter.as_ref())?;
        }
        if input.secret.is_some() {
            return Err(Error::invalid(
                "secret",
                "cannot be changed; create a new webhook",
            ));
        }
        self.meta.update_webhook(&row).await?;
        Ok(self.meta.webhook(org, id).await?)
    }
}

impl Webhooks {
    /// An `http(s)` URL whose host the address policy lets through.
    fn check_address(&self, a: &str) -> Result<String, Error> {
        let url = parse_address(a)?;
        if let Some(host) = url.host() {
            self.policy
                .check_host(&host)
                .map_err(|m| Error::invalid("address", m))?;
        }
        Ok(a.to_string())
    }

    /// A page of `org`'s webhooks; soft-deleted ones too with `deleted`.
    ///
    /// # Errors
    /// Metadata failures.
    pub async fn list(
        &self,
        org: Uuid,
        deleted: bool,
        w: Window,
    ) -> Result<(usize, Vec<WebhookRow>), Error> {
        Ok(self.meta.webhooks(org, deleted, w).await?)
    }

    /// Webhook `id` as reads see it: a soft-deleted one is gone (it is in
    /// the listing with `deleted`, and a restore brings it back).
    ///
    /// # Errors
    /// 404 when `org` has no such webhook, or it is deleted.
    pub async fn read(&self, org: Uuid, id: Uuid) -> Result<WebhookRow, Error> {
        let h = self.meta.webhook(org, id).await?;
        if h.deleted_at.is_some() {
            return Err(Error::NotFound(format!(
                "webhook {id} is deleted (see GET /api/webhooks?deleted=true; restore it to read it)"
            )));
        }
        Ok(h)
    }

    /// Soft-deletes (`deleted`) or restores webhook `id`; a restore counts
    /// against `webhooks.max_per_org` like a new webhook.
    ///
    /// # Errors
    /// 404 when `org` has no such webhook; 422 at the cap.
    pub async fn set_deleted(
        &self,
        org: Uuid,
        id: Uuid,
        deleted: bool,
    ) -> Result<WebhookRow, Error> {
        if !deleted && self.meta.webhook(org, id).await?.deleted_at.is_some() {
            self.check_room(org).await?;
        }
        self.meta.set_webhook_deleted(org, id, deleted).await?;
        Ok(self.meta.webhook(org, id).await?)
    }

    /// A page of webhook `id`'s deliveries, each with its attempts (three
    /// queries and a count, whatever the page size).
    ///
    /// # Errors
    /// 404 when `org` has no such webhook, or it is deleted.
    pub async fn deliveries(
        &self,
        org: Uuid,
        id: Uuid,
        w: Window,
    ) -> Result<(usize, Vec<(DeliveryRow, Vec<AttemptRow>)>), Error> {
        let hook = self.read(org, id).await?;
        let (count, rows) = self.meta.deliveries(hook.id, w).await?;
        let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
        let mut attempts = self.meta.attempts_among(&ids).await?;
        let page = rows
            .into_iter()
            .map(|d| {
                let a = attempts.remove(&d.id).unwrap_or_default();
                (d, a)
            })
            .collect();
        Ok((count, page))
    }

    /// Room for one more live webhook of `org` (`webhooks.max_per_org`).
    ///
    /// # Errors
    /// 422 naming the cap at it.
    pub async fn check_room(&self, org: Uuid) -> Result<(), Error> {
        let window = Window {
            offset: 0,
            limit: 1,
            descending: false,
        };
        let (live, _) = self.meta.webhooks(org, false, window).await?;
        if live as u64 >= self.settings.max_per_org {
            return Err(Error::invalid(
                "webhooks",
                format!(
                    "this org has {live} webhooks, the most webhooks.max_per_org ({}) allows; delete one first",
                    self.settings.max_per_org
                ),
            ));
        }
        Ok(())
    }
}

fn check_topic(t: &str) -> Result<String, Error> {
    if TOPICS.contains(&t) {
        Ok(t.to_string())
    } else {
        Err(Error::invalid(
            "topic",
            format!("\"{t}\" is not a topic (topics: {})", TOPICS.join(", ")),
        ))
    }
}

fn parse_address(a: &str) -> Result<reqwest::Url, Error> {
    let url =
        reqwest::Url::parse(a).map_err(|e| Error::invalid("address", format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::invalid(
            "address",
            "must be an http:// or https:// URL",
        ));
    }
    if let Some(url::Host::Domain(d)) = url.host() {
        // A name DNS can answer: labels of 1 to 63 letters, digits, `-`
        // or `_` (the URL standard lets through `*`, `!` and the like).
        let name = d.strip_suffix('.').unwrap_or(d);
        let label = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.len() > 253 || !name.split('.').all(label) {
            return Err(Error::invalid(
                "address",
                format!(
                    "\"{d}\" is not a host name (letters, digits, - and _ in labels of 1 to 63)"
                ),
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            "address",
            "must not carry credentials; verify deliveries by their signature",
        ));
    }
    Ok(url)
}

fn check_filter(f: Option<&serde_json::Value>) -> Result<String, Error> {
    match f {
        None | Some(serde_json::Value::Null) => Ok("{}".into()),
        Some(serde_json::Value::Object(m)) => {
            if let Some(status) = m.get("status") {
                let ok = status.as_array().is_some_and(|a| {
                    a.iter()
                        .all(|s| s.as_str().is_some_and(|s| OUTCOMES.contains(&s)))
                });
                if !ok {
                    return Err(Error::invalid(
                        "filter.status",
                        format!("must be an array of outcomes ({})", OUTCOMES.join(", ")),
                    ));
                }
            }
            // `type` as the published client has it: a list (one value
            // means the same as a list of it).
            let mut m = m.clone();
            if let Some(t) = m.get_mut("type") {
                if !t.is_array() {
                    *t = serde_json::Value::Array(vec![t.take()]);
                }
                if !t
                    .as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_string))
                {
                    return Err(Error::invalid(
                        "filter.type",
                        "must be a job type or a list of them",
                    ));
                }
            }
            Ok(serde_json::Value::Object(m).to_string())
        }
        Some(_) => Err(Error::invalid("filter", "must be an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_http_urls_of_host_names_without_credentials() {
        for ok in [
            "https://hooks.example.com/x?y=1",
            "http://a.b2:8080",
            "http://my_service.internal./p",
            "http://93.184.216.34/hook",
        ] {
            assert!(parse_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://0.aa*",
            "http://a!.example.com",
            "mailto:x@y",
            "https://u:p@example.com",
            "not a url",
        ] {
            assert!(
                matches!(parse_address(bad), Err(Error::Invalid { param, .. }) if param == "address"),
                "{bad}"
            );
        }
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn filters_match_top_level_entries() {
        let data = serde_json::json!({"type": "batch", "assetId": "a"});
        assert!(matches(&serde_json::json!({}), &data));
        assert!(matches(&serde_json::json!({"type": "batch"}), &data));
        assert!(!matches(&serde_json::json!({"type": "render"}), &data));
        assert!(!matches(&serde_json::json!({"missing": 1}), &data));
        // Arrays are any-of.
        assert!(matches(
            &serde_json::json!({"type": ["render", "batch"]}),
            &data
        ));
        assert!(!matches(&serde_json::json!({"type": ["render"]}), &data));
    }

    #[test]
    fn status_filters_on_the_outcome() {
        let ok = serde_json::json!({"status": "stopped", "taskResultFailures": 0, "schedulerState": "finished"});
        let failed = serde_json::json!({"status": "stopped", "taskResultFailures": 2, "schedulerState": "finished"});
        let cancelled = serde_json::json!({"status": "stopped", "taskResultFailures": 0, "schedulerState": "cancelled"});
        let layer = serde_json::json!({"layerId": "x"});
        let only_ok = serde_json::json!({"status": ["success"]});
        let only_failed = serde_json::json!({"status": ["failed"]});
        assert!(matches(&only_ok, &ok) && matches(&only_ok, &layer));
        assert!(!matches(&only_ok, &failed) && !matches(&only_ok, &cancelled));
        assert!(matches(&only_failed, &failed) && matches(&only_failed, &cancelled));
        assert!(matches(&serde_json::json!({"status": []}), &failed));
        assert!(check_filter(Some(&serde_json::json!({"status": ["In Cart"]}))).is_err());
        assert!(check_filter(Some(&serde_json::json!({"status": "success"}))).is_err());
        assert!(
            check_filter(Some(
                &serde_json::json!({"status": ["failed"], "type": ["batch"]})
            ))
            .is_ok()
        );
        assert_eq!(filter_json("{}"), serde_json::json!({"status": []}));
        // A single type is kept, and answered, as a list of it.
        let stored = check_filter(Some(&serde_json::json!({"type": "batch"}))).unwrap();
        assert_eq!(stored, r#"{"type":["batch"]}"#);
        assert_eq!(
            filter_json(r#"{"type":"batch"}"#),
            serde_json::json!({"status": [], "type": ["batch"]})
        );
        assert!(check_filter(Some(&serde_json::json!({"type": [1]}))).is_err());
        assert_eq!(
            filter_json(r#"{"status":["failed"],"assetId":"a"}"#),
            serde_json::json!({"status": ["failed"], "assetId": "a"})
        );
    }

    #[test]
    fn fields_are_checked() {
        assert!(check_topic("job.stopped").is_ok());
        assert!(check_topic("job.started").is_err());
        assert!(parse_address("http://127.0.0.1:9/x").is_ok());
        assert!(parse_address("ftp://x").is_err());
        assert!(parse_address("nope").is_err());
        assert!(parse_address("https://user:pw@hooks.example/").is_err());
        assert!(check_filter(Some(&serde_json::json!([1]))).is_err());
    }
}
