//! One-time tokens for email verification, password reset and the exchange
//! of an OpenID Connect sign-in for tokens.

use uuid::Uuid;

use super::{Store, Transaction, sql::Statement, statement};
use crate::{error::Result, identity::Email, tokens::OpaqueToken};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneTimePurpose {
    EmailVerification,
    PasswordReset,
    /// The code in `success_redirect`, traded once for a session.
    OAuthExchange,
    /// A new address, confirmed by the link mailed to it.
    EmailChange,
}

impl OneTimePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailVerification => "verify_email",
            Self::PasswordReset => "reset_password",
            Self::OAuthExchange => "oauth_exchange",
            Self::EmailChange => "email_change",
        }
    }
}

impl Transaction {
    /// Deletes the unused tokens of `user_id` for `purpose`.
    pub(crate) async fn delete_unused_one_time(&mut self, user_id: Uuid, purpose: OneTimePurpose) -> Result<()> {
        statement("DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
            .bind(user_id)
            .bind(purpose.as_str())
            .execute(self)
            .await?;
        Ok(())
    }

    /// Deletes every unused token of `user_id`, whatever its purpose.
    pub(crate) async fn delete_all_unused_one_time(&mut self, user_id: Uuid) -> Result<()> {
        statement("DELETE FROM one_time_tokens WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .execute(self)
            .await?;
        Ok(())
    }

    pub(crate) async fn insert_one_time(
        &mut self,
        token: &OpaqueToken,
        purpose: OneTimePurpose,
        user_id: Uuid,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        insert_one_time(token, purpose, user_id, now, expires_at).execute(self).await?;
        Ok(())
    }

    /// Consumes an unused, unexpired token: its user, or `None`.
    pub(crate) async fn consume_one_time(
        &mut self,
        token: &OpaqueToken,
        purpose: OneTimePurpose,
        now: i64,
    ) -> Result<Option<Uuid>> {
        let row: Option<(Uuid,)> = consume_one_time(token, purpose, now).fetch_optional(self).await?;
        Ok(row.map(|(user_id,)| user_id))
    }

    /// Stores the link token of an email change to `new_email`, asked for in
    /// `session_id` (the session kept when it is confirmed).
    pub(crate) async fn insert_email_change(
        &mut self,
        token: &OpaqueToken,
        user_id: Uuid,
        new_email: &Email,
        session_id: Uuid,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        statement(
            "INSERT INTO one_time_tokens (token_hash, purpose, user_id, created_at, expires_at, new_email, session_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.hash())
        .bind(OneTimePurpose::EmailChange.as_str())
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .bind(new_email.as_str())
        .bind(session_id)
        .execute(self)
        .await?;
        Ok(())
    }

    /// Consumes an unused, unexpired email-change token: its user, the new
    /// address and the session that asked (one conditional `UPDATE`).
    pub(crate) async fn consume_email_change(
        &mut self,
        token: &OpaqueToken,
        now: i64,
    ) -> Result<Option<(Uuid, String, Option<Uuid>)>> {
        let row: Option<(Uuid, Option<String>, Option<Uuid>)> = statement(
            "UPDATE one_time_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
             RETURNING user_id, new_email, session_id",
        )
        .bind(now)
        .bind(token.hash())
        .bind(OneTimePurpose::EmailChange.as_str())
        .fetch_optional(self)
        .await?;
        Ok(row.and_then(|(user_id, email, session)| Some((user_id, email?, session))))
    }

    /// Deletes tokens that expired or were used before `cutoff`.
    pub(crate) async fn delete_spent_one_time(&mut self, cutoff: i64) -> Result<()> {
        statement("DELETE FROM one_time_tokens WHERE expires_at < $1 OR used_at < $1")
            .bind(cutoff)
            .execute(self)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Stores a new token for `user_id` beside any others of its purpose
    /// (sign-ins on two devices at once each keep their code).
    pub async fn add_one_time(
        &self,
        token: &OpaqueToken,
        purpose: OneTimePurpose,
        user_id: Uuid,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        insert_one_time(token, purpose, user_id, now, expires_at).execute(self).await?;
        Ok(())
    }

    /// Consumes an unused, unexpired token: its user, or `None`.
    pub async fn consume_one_time(
        &self,
        token: &OpaqueToken,
        purpose: OneTimePurpose,
        now: i64,
    ) -> Result<Option<Uuid>> {
        let row: Option<(Uuid,)> = consume_one_time(token, purpose, now).fetch_optional(self).await?;
        Ok(row.map(|(user_id,)| user_id))
    }

    /// The user an unused, unexpired token belongs to, without consuming it.
    pub async fn one_time_owner(&self, token: &OpaqueToken, purpose: OneTimePurpose, now: i64) -> Result<Option<Uuid>> {
        let row: Option<(Uuid,)> = statement(
            "SELECT user_id FROM one_time_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(token.hash())
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(self)
        .await?;
        Ok(row.map(|(user_id,)| user_id))
    }
}

fn insert_one_time(
    token: &OpaqueToken,
    purpose: OneTimePurpose,
    user_id: Uuid,
    now: i64,
    expires_at: i64,
) -> Statement<'static> {
    statement(
        "INSERT INTO one_time_tokens (token_hash, purpose, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token.hash())
    .bind(purpose.as_str())
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
}

/// Marks an unused, unexpired token used and returns its user. Being one
/// conditional `UPDATE`, two concurrent uses cannot both succeed.
fn consume_one_time(token: &OpaqueToken, purpose: OneTimePurpose, now: i64) -> Statement<'static> {
    statement(
        "UPDATE one_time_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
    )
    .bind(now)
    .bind(token.hash())
    .bind(purpose.as_str())
}
