//! Webhooks and their deliveries, as `/api/webhooks` answers them (the
//! published client's `webhook` shapes; the secret only in the answer to
//! a create). The events the deliveries carry are described in
//! `crate::webhooks`.

use super::rfc3339;
use crate::meta::{AttemptRow, DeliveryRow, WebhookRow};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookJson {
    pub id: String,
    pub org_id: String,
    pub topic: String,
    pub address: String,
    #[schema(value_type = Object)]
    pub filter: Value,
    pub created_at: String,
    pub updated_at: String,
    /// Set by DELETE (a soft delete); `null` while live.
    pub deleted_at: Option<String>,
    /// The signing secret: only in the answer to the create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookJson {
    pub fn new(h: &WebhookRow, with_secret: bool) -> WebhookJson {
        WebhookJson {
            id: h.id.to_string(),
            org_id: h.org_id.to_string(),
            topic: h.topic.clone(),
            address: h.address.clone(),
            filter: filter_json(&h.filter),
            created_at: rfc3339(h.created_at),
            updated_at: rfc3339(h.updated_at),
            deleted_at: h.deleted_at.map(rfc3339),
            secret: with_secret.then(|| h.secret.clone()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookList {
    pub count: usize,
    pub page: usize,
    pub per_page: usize,
    pub sort: String,
    pub webhooks: Vec<WebhookJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptJson {
    pub attempt: i64,
    /// The receiver's status, `null` when it did not answer.
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryJson {
    pub id: String,
    pub topic: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    /// The exact body sent.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: String,
    pub updated_at: String,
    pub attempt_log: Vec<AttemptJson>,
}

impl DeliveryJson {
    pub fn new(d: &DeliveryRow, attempts: &[AttemptRow]) -> DeliveryJson {
        DeliveryJson {
            id: d.id.to_string(),
            topic: d.topic.clone(),
            status: d.status.to_string(),
            attempts: d.attempts,
            next_attempt_at: (d.status == crate::meta::DeliveryStatus::Pending)
                .then(|| rfc3339(d.next_attempt_at)),
            payload: serde_json::from_str(&d.payload).unwrap_or(Value::Null),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            attempt_log: attempts
                .iter()
                .map(|a| AttemptJson {
                    attempt: a.attempt,
                    status_code: a.status_code,
                    error: a.error.clone(),
                    duration_ms: a.duration_ms,
                    created_at: rfc3339(a.created_at),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub count: usize,
    pub page: usize,
    pub per_page: usize,
    pub sort: String,
    pub deliveries: Vec<DeliveryJson>,
}

/// `{"webhook": …}`: one webhook, as the published client reads it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOne {
    pub webhook: WebhookJson,
}

/// The answer to an update: `{"webhook": …, "webhooks": [the same]}`,
/// because the published client types `updateById` as a webhook list while
/// every other answer about one webhook is `{"webhook"}`; both parse.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookUpdated {
    pub webhook: WebhookJson,
    pub webhooks: Vec<WebhookJson>,
}

impl WebhookOne {
    pub fn new(h: &WebhookRow, with_secret: bool) -> WebhookOne {
        WebhookOne {
            webhook: WebhookJson::new(h, with_secret),
        }
    }
}

/// A stored filter as answered: `status` always there (empty: any), as the
/// published client's schema requires.
pub fn filter_json(stored: &str) -> serde_json::Value {
    let mut f = match serde_json::from_str(stored) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    f.entry("status").or_insert_with(|| serde_json::json!([]));
    if let Some(t) = f.get_mut("type").filter(|t| !t.is_array()) {
        *t = serde_json::Value::Array(vec![t.take()]);
    }
    serde_json::Value::Object(f)
}
