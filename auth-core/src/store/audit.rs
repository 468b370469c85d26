//! The audit trail table.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, Transaction, millis, statement, time};
use crate::{audit::SECURITY_EVENTS, error::Result};

/// The columns of an [`AuditRecord`], in the order of [`Row`].
macro_rules! columns {
    () => {
        "id, at, event, user_id, ip, user_agent, detail"
    };
}

type Row = (Uuid, i64, String, Option<Uuid>, Option<String>, Option<String>, String);

fn record((id, at, event, user_id, ip, user_agent, detail): Row) -> AuditRecord {
    AuditRecord {
        id,
        at: time(at),
        event,
        user_id,
        ip,
        user_agent,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    }
}

/// One stored security event. `detail` holds ids and reasons, never secrets.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub event: String,
    pub user_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl Store {
    pub async fn insert_audit(&self, record: &AuditRecord) -> Result<()> {
        let detail = record.detail.to_string();
        insert_audit(record, &detail).execute(self).await?;
        Ok(())
    }

    /// The newest `limit` events, of one user or of everyone, newest first.
    pub async fn audit_events(&self, user_id: Option<Uuid>, limit: i64) -> Result<Vec<AuditRecord>> {
        self.search_audit(user_id, None, None, limit).await
    }

    /// The newest `limit` events that match every filter given: of `user_id`,
    /// named `event`, at or after `since` (Unix milliseconds); newest first.
    pub async fn search_audit(
        &self,
        user_id: Option<Uuid>,
        event: Option<&str>,
        since: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        let rows: Vec<Row> = statement(concat!(
            "SELECT ",
            columns!(),
            " FROM audit_events WHERE ($1 OR user_id = $2) AND ($3 OR event = $4) AND at >= $5 \
             ORDER BY at DESC, id DESC LIMIT $6"
        ))
        .bind(user_id.is_none())
        .bind(user_id.unwrap_or(Uuid::nil()))
        .bind(event.is_none())
        .bind(event.unwrap_or_default())
        .bind(since.unwrap_or(i64::MIN))
        .bind(limit)
        .fetch_all(self)
        .await?;
        Ok(rows.into_iter().map(record).collect())
    }

    /// The newest `limit` events of `user_id` that are among
    /// [`SECURITY_EVENTS`], newest first.
    pub async fn security_events(&self, user_id: Uuid, limit: i64) -> Result<Vec<AuditRecord>> {
        // One placeholder per event, written once: the list is a constant.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            let events: Vec<String> = (0..SECURITY_EVENTS.len()).map(|i| format!("${}", i + 3)).collect();
            format!(
                "SELECT {} FROM audit_events WHERE user_id = $1 AND event IN ({}) ORDER BY at DESC, id DESC LIMIT $2",
                columns!(),
                events.join(", ")
            )
        });
        let query = statement(SQL.as_str()).bind(user_id).bind(limit);
        let query = SECURITY_EVENTS.iter().fold(query, |query, event| query.bind(event.as_str()));
        let rows: Vec<Row> = query.fetch_all(self).await?;
        Ok(rows.into_iter().map(record).collect())
    }
}

impl Transaction {
    /// Keeps the events of a deleted account without its email or IP: the
    /// account's own events lose their IP, user agent and every `email` of
    /// their detail (an address it had before a change included), and its
    /// address (as JSON writes it) is replaced wherever another detail holds it.
    pub(crate) async fn anonymise_audit(&mut self, user_id: Uuid, email: &str) -> Result<()> {
        statement("UPDATE audit_events SET ip = NULL, user_agent = NULL WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *self)
            .await?;
        let quoted = serde_json::Value::from(email).to_string();
        let pattern = format!("%{quoted}%");
        statement("UPDATE audit_events SET detail = REPLACE(detail, $1, '\"(deleted)\"') WHERE detail LIKE $2")
            .bind(quoted.as_str())
            .bind(pattern.as_str())
            .execute(&mut *self)
            .await?;
        let with_email: Vec<(Uuid, String)> =
            statement("SELECT id, detail FROM audit_events WHERE user_id = $1 AND detail LIKE '%\"email\"%'")
                .bind(user_id)
                .fetch_all(&mut *self)
                .await?;
        for (id, detail) in with_email {
            let Ok(mut detail) = serde_json::from_str::<serde_json::Value>(&detail) else { continue };
            remove_emails(&mut detail);
            let detail = detail.to_string();
            statement("UPDATE audit_events SET detail = $1 WHERE id = $2")
                .bind(detail.as_str())
                .bind(id)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }

    /// Deletes the events recorded before `before`.
    pub(crate) async fn delete_audit_before(&mut self, before: i64) -> Result<()> {
        statement("DELETE FROM audit_events WHERE at < $1").bind(before).execute(self).await?;
        Ok(())
    }
}

/// Removes every `email` field of a detail, at any depth.
fn remove_emails(detail: &mut serde_json::Value) {
    match detail {
        serde_json::Value::Object(fields) => {
            fields.remove("email");
            fields.values_mut().for_each(remove_emails);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(remove_emails),
        _ => {}
    }
}

/// The statement that stores `record` (with its `detail` as JSON text).
pub(super) fn insert_audit<'a>(record: &'a AuditRecord, detail: &'a str) -> super::sql::Statement<'a> {
    statement(
        "INSERT INTO audit_events (id, at, event, user_id, ip, user_agent, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(record.id)
    .bind(millis(record.at))
    .bind(record.event.as_str())
    .bind(record.user_id)
    .bind(record.ip.as_deref())
    .bind(record.user_agent.as_deref())
    .bind(detail)
}
