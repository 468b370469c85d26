//! Webhook endpoints and the outbox of their deliveries (see `crate::webhooks`).

use uuid::Uuid;

use super::{AuditRecord, Store, Transaction, millis, statement};
use crate::error::Result;

/// An endpoint as stored; `secret` is sealed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEndpoint {
    pub id: Uuid,
    pub url: String,
    pub events: String,
    pub secret: Vec<u8>,
    pub created_at: i64,
}

/// A delivery as the operators see it, and as a worker sends it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDelivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event: String,
    pub payload: String,
    pub created_at: i64,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// `SQL` with the columns of a [`StoredDelivery`] in place of `*`.
macro_rules! deliveries {
    ($head:literal, $tail:literal) => {
        concat!(
            $head,
            " id, endpoint_id, event, payload, created_at, state, attempts, next_attempt_at, last_status, ",
            "last_error, delivered_at ",
            $tail
        )
    };
}

impl Store {
    pub(crate) async fn insert_endpoint(&self, endpoint: &StoredEndpoint) -> Result<()> {
        statement("INSERT INTO webhook_endpoints (id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(endpoint.id)
            .bind(endpoint.url.as_str())
            .bind(endpoint.events.as_str())
            .bind(endpoint.secret.as_slice())
            .bind(endpoint.created_at)
            .execute(self)
            .await?;
        Ok(())
    }

    pub async fn endpoints(&self) -> Result<Vec<StoredEndpoint>> {
        Ok(statement("SELECT id, url, events, secret, created_at FROM webhook_endpoints ORDER BY created_at, id")
            .fetch_all(self)
            .await?)
    }

    /// Deletes endpoint `id` and its deliveries; whether it existed.
    pub(crate) async fn delete_endpoint(&self, id: Uuid) -> Result<bool> {
        let deleted = statement("DELETE FROM webhook_endpoints WHERE id = $1").bind(id).execute(self).await?;
        Ok(deleted > 0)
    }

    /// The newest `limit` deliveries to endpoint `id`, newest first.
    pub async fn deliveries(&self, endpoint_id: Uuid, limit: i64) -> Result<Vec<StoredDelivery>> {
        let sql = deliveries!(
            "SELECT",
            "FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        Ok(statement(sql).bind(endpoint_id).bind(limit).fetch_all(self).await?)
    }

    /// Claims up to `limit` deliveries due at `now` for `lease_ms`: one
    /// statement each, and its condition is checked again on the row it
    /// updates, so a delivery another worker has just claimed is skipped,
    /// never sent twice at once.
    pub(crate) async fn claim_deliveries(&self, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<StoredDelivery>> {
        let due: Vec<(Uuid,)> = statement(
            "SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
             AND (locked_until IS NULL OR locked_until <= $1) ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self)
        .await?;
        let mut claimed = Vec::new();
        for (id,) in due {
            let sql = deliveries!(
                "UPDATE webhook_deliveries SET locked_until = $2, attempts = attempts + 1 WHERE id = $1 \
                 AND state = 'pending' AND (locked_until IS NULL OR locked_until <= $3) RETURNING",
                ""
            );
            let row: Option<StoredDelivery> =
                statement(sql).bind(id).bind(now + lease_ms).bind(now).fetch_optional(self).await?;
            claimed.extend(row);
        }
        Ok(claimed)
    }

    /// Records an attempt: delivered, or due again at `retry_at` (`None`: failed for good).
    pub(crate) async fn finish_attempt(
        &self,
        id: Uuid,
        now: i64,
        status: Option<u16>,
        error: Option<&str>,
        outcome: Attempt,
    ) -> Result<()> {
        let (state, next, delivered) = match outcome {
            Attempt::Delivered => ("delivered", now, Some(now)),
            Attempt::Retry { at } => ("pending", at, None),
            Attempt::Failed => ("failed", now, None),
        };
        statement(
            "UPDATE webhook_deliveries SET state = $2, next_attempt_at = $3, delivered_at = $4, last_status = $5, \
             last_error = $6, locked_until = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(next)
        .bind(delivered)
        .bind(status.map(i64::from))
        .bind(error)
        .execute(self)
        .await?;
        Ok(())
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    Delivered,
    Retry { at: i64 },
    Failed,
}

impl Transaction {
    /// Forgets deliveries that ended (delivered or failed) before `before`.
    pub(crate) async fn delete_old_deliveries(&mut self, before: i64) -> Result<()> {
        statement("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND next_attempt_at < $1")
            .bind(before)
            .execute(self)
            .await?;
        Ok(())
    }

    /// The audit record and one delivery of `payload` to each of `endpoints`:
    /// the event and its messages commit together or not at all.
    pub(crate) async fn insert_audit_with_deliveries(
        &mut self,
        record: &AuditRecord,
        endpoints: &[Uuid],
        payload: &str,
    ) -> Result<()> {
        let detail = record.detail.to_string();
        super::audit::insert_audit(record, &detail).execute(&mut *self).await?;
        for endpoint in endpoints {
            statement(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event, payload, created_at, state, attempts, \
                 next_attempt_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $5)",
            )
            .bind(Uuid::now_v7())
            .bind(*endpoint)
            .bind(record.event.as_str())
            .bind(payload)
            .bind(millis(record.at))
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }
}
