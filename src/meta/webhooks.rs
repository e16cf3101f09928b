//! Webhooks, their deliveries and every delivery attempt.
//!
//! A delivery is durable: it is written when the event happens and claimed
//! under a lease by whichever process dispatches, so an event survives a
//! restart and is not sent twice by two processes at once.

use super::states::state;
use super::{
    DeliveryStatus, Meta, MetaError, Where, Window, int, opt_int, opt_text, placeholders, text,
    translate, uuid,
};
use sqlx::any::AnyRow;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub topic: String,
    pub address: String,
    /// JSON object.
    pub filter: String,
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub webhook_id: Uuid,
    pub topic: String,
    /// The exact JSON body sent (and signed).
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub created_at: i64,
}

const HOOK_COLUMNS: &str =
    "id, org_id, topic, address, filter, secret, created_at, updated_at, deleted_at";
const DELIVERY_COLUMNS: &str = "id, org_id, webhook_id, topic, payload, status, attempts, next_attempt_at, created_at, updated_at";
const ATTEMPT_COLUMNS: &str =
    "id, delivery_id, attempt, status_code, error, duration_ms, created_at";

fn hook_row(r: &AnyRow) -> Result<WebhookRow, MetaError> {
    Ok(WebhookRow {
        id: uuid(r, "id")?,
        org_id: uuid(r, "org_id")?,
        topic: text(r, "topic")?,
        address: text(r, "address")?,
        filter: text(r, "filter")?,
        secret: text(r, "secret")?,
        created_at: int(r, "created_at")?,
        updated_at: int(r, "updated_at")?,
        deleted_at: opt_int(r, "deleted_at")?,
    })
}

fn delivery_row(r: &AnyRow) -> Result<DeliveryRow, MetaError> {
    Ok(DeliveryRow {
        id: uuid(r, "id")?,
        org_id: uuid(r, "org_id")?,
        webhook_id: uuid(r, "webhook_id")?,
        topic: text(r, "topic")?,
        payload: text(r, "payload")?,
        status: state(r, "status")?,
        attempts: int(r, "attempts")?,
        next_attempt_at: int(r, "next_attempt_at")?,
        created_at: int(r, "created_at")?,
        updated_at: int(r, "updated_at")?,
    })
}

fn attempt_row(r: &AnyRow) -> Result<AttemptRow, MetaError> {
    Ok(AttemptRow {
        id: uuid(r, "id")?,
        delivery_id: uuid(r, "delivery_id")?,
        attempt: int(r, "attempt")?,
        status_code: opt_int(r, "status_code")?,
        error: opt_text(r, "error")?,
        duration_ms: int(r, "duration_ms")?,
        created_at: int(r, "created_at")?,
    })
}

impl Meta {
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn insert_webhook(&self, h: &WebhookRow) -> Result<(), MetaError> {
        sqlx::query(&format!(
            "INSERT INTO webhooks ({HOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)"
        ))
        .bind(h.id.to_string())
        .bind(h.org_id.to_string())
        .bind(h.topic.clone())
        .bind(h.address.clone())
        .bind(h.filter.clone())
        .bind(h.secret.clone())
        .bind(h.created_at)
        .bind(h.updated_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(translate)
    }

    /// Replaces topic, address and filter of a webhook (deleted or not).
    ///
    /// # Errors
    /// [`MetaError::NotFound`] when the org has no such webhook.
    pub async fn update_webhook(&self, h: &WebhookRow) -> Result<(), MetaError> {
        let done = sqlx::query(
            "UPDATE webhooks SET topic = $3, address = $4, filter = $5, updated_at = $6 WHERE id = $1 AND org_id = $2",
        )
        .bind(h.id.to_string())
        .bind(h.org_id.to_string())
        .bind(h.topic.clone())
        .bind(h.address.clone())
        .bind(h.filter.clone())
        .bind(self.now())
        .execute(&self.pool)
        .await
        .map_err(translate)?;
        if done.rows_affected() == 0 {
            return Err(MetaError::NotFound);
        }
        Ok(())
    }

    /// Soft-deletes (`deleted = true`) or restores a webhook.
    ///
    /// # Errors
    /// [`MetaError::NotFound`] when the org has no such webhook.
    pub async fn set_webhook_deleted(
        &self,
        org: Uuid,
        id: Uuid,
        deleted: bool,
    ) -> Result<(), MetaError> {
        let now = self.now();
        let done = sqlx::query(
            "UPDATE webhooks SET deleted_at = $3, updated_at = $4 WHERE id = $1 AND org_id = $2",
        )
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(deleted.then_some(now))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(translate)?;
        if done.rows_affected() == 0 {
            return Err(MetaError::NotFound);
        }
        Ok(())
    }

    /// # Errors
    /// [`MetaError::NotFound`] when the org has no such webhook.
    pub async fn webhook(&self, org: Uuid, id: Uuid) -> Result<WebhookRow, MetaError> {
        let r = sqlx::query(&format!(
            "SELECT {HOOK_COLUMNS} FROM webhooks WHERE id = $1 AND org_id = $2"
        ))
        .bind(id.to_string())
        .bind(org.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(translate)?;
        hook_row(&r)
    }

    /// Webhooks of the org; deleted ones only when `with_deleted`.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn webhooks(
        &self,
        org: Uuid,
        with_deleted: bool,
        w: Window,
    ) -> Result<(usize, Vec<WebhookRow>), MetaError> {
        let mut f = Where::default();
        f.eq("org_id", Some(org));
        if !with_deleted {
            f.clauses.push("deleted_at IS NULL".into());
        }
        self.page("webhooks", HOOK_COLUMNS, &f, Some(w), hook_row)
            .await
    }

    /// Live webhooks of the org subscribed to `topic` (or to `*`).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn subscribers(&self, org: Uuid, topic: &str) -> Result<Vec<WebhookRow>, MetaError> {
        let rows = sqlx::query(&format!(
            "SELECT {HOOK_COLUMNS} FROM webhooks WHERE org_id = $1 AND (topic = $2 OR topic = '*') AND deleted_at IS NULL"
        ))
        .bind(org.to_string())
        .bind(topic.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?;
        rows.iter().map(hook_row).collect()
    }

    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn insert_delivery(&self, d: &DeliveryRow) -> Result<(), MetaError> {
        sqlx::query(&format!(
            "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}, lease_expires) \
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6, NULL)"
        ))
        .bind(d.id.to_string())
        .bind(d.org_id.to_string())
        .bind(d.webhook_id.to_string())
        .bind(d.topic.clone())
        .bind(d.payload.clone())
        .bind(d.created_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(translate)
    }

    /// Claims the oldest due delivery until `lease_until`, with its webhook,
    /// skipping the orgs in `skip_orgs` (those holding their share of slots).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn claim_delivery(
        &self,
        lease_until: i64,
        skip_orgs: &[Uuid],
    ) -> Result<Option<(DeliveryRow, WebhookRow)>, MetaError> {
        let now = self.now();
        let due = "(status = 'pending' AND next_attempt_at <= $2 AND (lease_expires IS NULL OR lease_expires < $2))";
        let skip = if skip_orgs.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = (0..skip_orgs.len())
                .map(|i| format!("${}", i + 3))
                .collect();
            format!(" AND org_id NOT IN ({})", list.join(", "))
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET lease_expires = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id = (SELECT id FROM webhook_deliveries WHERE {due}{skip} ORDER BY next_attempt_at ASC LIMIT 1{lock}) \
             AND {due} RETURNING {DELIVERY_COLUMNS}",
            lock = self.skip_locked()
        );
        let mut q = sqlx::query(&sql).bind(lease_until).bind(now);
        for org in skip_orgs {
            q = q.bind(org.to_string());
        }
        let r = q.fetch_optional(&self.pool).await.map_err(translate)?;
        let Some(r) = r else { return Ok(None) };
        let d = delivery_row(&r)?;
        let hook = self.webhook(d.org_id, d.webhook_id).await?;
        if hook.deleted_at.is_some() {
            // Deleted since the event: nothing more is sent to it.
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'failed', lease_expires = NULL, updated_at = $2 WHERE id = $1",
            )
            .bind(d.id.to_string())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(translate)?;
            return Ok(None);
        }
        Ok(Some((d, hook)))
    }

    /// Records one attempt and the delivery's next state: delivered, retry
    /// at `retry_at`, or (`retry_at` = `None` after a failure) failed.
    /// Fenced by the attempt count of the claim: a dispatcher whose lease
    /// expired (another claimed the delivery since) changes nothing and
    /// gets `false`.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn record_attempt(
        &self,
        d: &DeliveryRow,
        a: &AttemptRow,
        delivered: bool,
        retry_at: Option<i64>,
    ) -> Result<bool, MetaError> {
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(translate)?;
        let status = match (delivered, retry_at) {
            (true, _) => DeliveryStatus::Delivered,
            (false, Some(_)) => DeliveryStatus::Pending,
            (false, None) => DeliveryStatus::Failed,
        };
        let owned = sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, next_attempt_at = COALESCE($3, next_attempt_at), \
             lease_expires = NULL, updated_at = $4 WHERE id = $1 AND attempts = $5 AND status = 'pending'",
        )
        .bind(d.id.to_string())
        .bind(status.as_str())
        .bind(retry_at)
        .bind(now)
        .bind(d.attempts)
        .execute(&mut *tx)
        .await
        .map_err(translate)?
        .rows_affected()
            == 1;
        sqlx::query(&format!(
            "INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(a.id.to_string())
        .bind(a.delivery_id.to_string())
        .bind(a.attempt)
        .bind(a.status_code)
        .bind(a.error.clone())
        .bind(a.duration_ms)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(owned)
    }

    /// Deliveries of one webhook, newest first when `w.descending`.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn deliveries(
        &self,
        webhook: Uuid,
        w: Window,
    ) -> Result<(usize, Vec<DeliveryRow>), MetaError> {
        let mut f = Where::default();
        f.eq("webhook_id", Some(webhook));
        self.page(
            "webhook_deliveries",
            DELIVERY_COLUMNS,
            &f,
            Some(w),
            delivery_row,
        )
        .await
    }

    /// Every attempt of a delivery, in order.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn attempts(&self, delivery: Uuid) -> Result<Vec<AttemptRow>, MetaError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt ASC"
        ))
        .bind(delivery.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?;
        rows.iter().map(attempt_row).collect()
    }

    /// The attempts of each of `deliveries`, in attempt order, in one
    /// query per 500 deliveries.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn attempts_among(
        &self,
        deliveries: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<AttemptRow>>, MetaError> {
        let mut out: std::collections::HashMap<Uuid, Vec<AttemptRow>> =
            std::collections::HashMap::new();
        for chunk in deliveries.chunks(500) {
            let sql = format!(
                "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id IN ({}) \
                 ORDER BY delivery_id, attempt ASC",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await.map_err(translate)? {
                let a = attempt_row(&r)?;
                out.entry(a.delivery_id).or_default().push(a);
            }
        }
        Ok(out)
    }
}
