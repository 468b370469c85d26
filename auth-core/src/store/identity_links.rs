//! Identity links: an account at an OpenID Connect provider, named by the
//! provider's (issuer, subject), linked to one local user.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Inserted, Store, Transaction, inserted, sql::Statement, statement, time};
use crate::{error::Result, identity::Email};

/// One stored link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct IdentityLink {
    pub issuer: String,
    pub subject: String,
    pub user_id: Uuid,
    /// The provider-verified email address when the link was made; empty for
    /// a deliberate link whose provider vouched for no address.
    pub email: String,
    pub created_at: DateTime<Utc>,
}

/// An account with an email, as linking by email needs to know it.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountByEmail {
    pub id: Uuid,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
}

impl Transaction {
    pub(crate) async fn account_by_email(&mut self, email: &Email) -> Result<Option<AccountByEmail>> {
        Ok(statement("SELECT id, is_active, is_staff, is_superuser FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(self)
            .await?)
    }

    /// The user linked to (issuer, subject), if any.
    pub(crate) async fn identity_link(&mut self, issuer: &str, subject: &str) -> Result<Option<Uuid>> {
        let row: Option<(Uuid,)> = identity_link(issuer, subject).fetch_optional(self).await?;
        Ok(row.map(|(id,)| id))
    }

    /// The subject `user_id` is linked to at `issuer`, if any.
    pub(crate) async fn subject_at(&mut self, user_id: Uuid, issuer: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = statement("SELECT subject FROM identity_links WHERE user_id = $1 AND issuer = $2")
            .bind(user_id)
            .bind(issuer)
            .fetch_optional(self)
            .await?;
        Ok(row.map(|(subject,)| subject))
    }

    /// Links (issuer, subject) to `user_id`; [`Inserted::Duplicate`] when the
    /// identity, or the user's slot at this issuer, is taken.
    pub(crate) async fn insert_identity_link(
        &mut self,
        issuer: &str,
        subject: &str,
        user_id: Uuid,
        email: &str,
        now: i64,
    ) -> Result<Inserted> {
        inserted(
            statement(
                "INSERT INTO identity_links (issuer, subject, user_id, email, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(issuer)
            .bind(subject)
            .bind(user_id)
            .bind(email)
            .bind(now)
            .execute(self)
            .await,
        )
    }
}

impl Store {
    /// The user linked to (issuer, subject), if any.
    pub async fn identity_link(&self, issuer: &str, subject: &str) -> Result<Option<Uuid>> {
        let row: Option<(Uuid,)> = identity_link(issuer, subject).fetch_optional(self).await?;
        Ok(row.map(|(id,)| id))
    }

    /// Every identity linked to `user_id`, oldest first.
    pub async fn identity_links(&self, user_id: Uuid) -> Result<Vec<IdentityLink>> {
        let rows: Vec<(String, String, Uuid, String, i64)> = statement(
            "SELECT issuer, subject, user_id, email, created_at FROM identity_links \
             WHERE user_id = $1 ORDER BY created_at, issuer",
        )
        .bind(user_id)
        .fetch_all(self)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(issuer, subject, user_id, email, created_at)| IdentityLink {
                issuer,
                subject,
                user_id,
                email,
                created_at: time(created_at),
            })
            .collect())
    }
}

fn identity_link<'a>(issuer: &'a str, subject: &'a str) -> Statement<'a> {
    statement("SELECT user_id FROM identity_links WHERE issuer = $1 AND subject = $2").bind(issuer).bind(subject)
}
