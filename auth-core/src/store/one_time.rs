//! One-time tokens for email verification, password reset and the exchange
//! of an OpenID Connect sign-in for tokens.

use uuid::Uuid;

use super::{Store, in_transaction, on_pool};
use crate::{error::Result, tokens::OpaqueToken};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneTimePurpose {
    EmailVerification,
    PasswordReset,
    /// The code in `success_redirect`, traded once for a session.
    OAuthExchange,
}

impl OneTimePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailVerification => "verify_email",
            Self::PasswordReset => "reset_password",
            Self::OAuthExchange => "oauth_exchange",
        }
    }
}

/// Binds: token hash, purpose, user, created_at, expires_at.
const INSERT_ONE_TIME: &str = "INSERT INTO one_time_tokens (token_hash, purpose, user_id, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5)";

impl Store {
    /// Stores a new token for `user_id`, replacing any unused one of the same
    /// purpose, so only the latest emailed link works.
    pub async fn issue_one_time(
        &self,
        token: &OpaqueToken,
        purpose: OneTimePurpose,
        user_id: Uuid,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        in_transaction!(self, tx => {
            sqlx::query("DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
                .bind(user_id)
                .bind(purpose.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_ONE_TIME)
                .bind(token.hash())
                .bind(purpose.as_str())
                .bind(user_id)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

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
        on_pool!(self, pool => {
            sqlx::query(INSERT_ONE_TIME)
                .bind(token.hash())
                .bind(purpose.as_str())
                .bind(user_id)
                .bind(now)
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Consumes an unused, unexpired token: its user, or `None`.
    pub async fn consume_one_time(
        &self,
        token: &OpaqueToken,
        purpose: OneTimePurpose,
        now: i64,
    ) -> Result<Option<Uuid>> {
        let row: Option<(Uuid,)> = on_pool!(self, pool => {
            sqlx::query_as(CONSUME_ONE_TIME)
                .bind(now)
                .bind(token.hash())
                .bind(purpose.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(user_id,)| user_id))
    }

    /// The user an unused, unexpired token belongs to, without consuming it.
    pub async fn one_time_owner(&self, token: &OpaqueToken, purpose: OneTimePurpose, now: i64) -> Result<Option<Uuid>> {
        let row: Option<(Uuid,)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT user_id FROM one_time_tokens \
                 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
            )
            .bind(token.hash())
            .bind(purpose.as_str())
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(user_id,)| user_id))
    }

    /// Consumes a verification token and marks its user's email verified, in
    /// one transaction. `None` if the token is unknown, expired or used.
    pub async fn verify_email(&self, token: &OpaqueToken, now: i64) -> Result<Option<Uuid>> {
        in_transaction!(self, tx => {
            let consumed: Option<(Uuid,)> = sqlx::query_as(CONSUME_ONE_TIME)
                .bind(now)
                .bind(token.hash())
                .bind(OneTimePurpose::EmailVerification.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let Some((user_id,)) = consumed else { return Ok(None) };
            sqlx::query("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) WHERE id = $2")
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            Ok(Some(user_id))
        })
    }
}

/// Marks an unused, unexpired token used and returns its user. Being one
/// conditional `UPDATE`, two concurrent uses cannot both succeed.
/// Binds: now, token hash, purpose.
pub(super) const CONSUME_ONE_TIME: &str = "UPDATE one_time_tokens SET used_at = $1 \
     WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 RETURNING user_id";
