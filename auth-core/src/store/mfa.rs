//! Second factors: TOTP factors, recovery codes, logins awaiting their second
//! step, and tenants that require a second factor.

use uuid::Uuid;

use super::{Store, Transaction, statement};
use crate::{error::Result, mfa::Factors};

/// A user's TOTP factor as stored: the sealed secret, whether it was
/// confirmed (else an enrolment in progress), and the last accepted step.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TotpFactor {
    pub sealed_secret: Vec<u8>,
    pub confirmed: bool,
    pub last_step: i64,
}

/// A login that passed its first factor and awaits its second.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PendingMfaLogin {
    pub user_id: Uuid,
    pub tenant_id: Option<Uuid>,
    /// How the first step signed in, as `amr` writes it (`pwd`, `fed`).
    pub first_factor: String,
}

impl Store {
    pub async fn totp_factor(&self, user_id: Uuid) -> Result<Option<TotpFactor>> {
        Ok(statement(
            "SELECT sealed_secret, confirmed_at IS NOT NULL AS confirmed, last_step FROM totp_factors \
             WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(self)
        .await?)
    }

    /// Starts (or restarts) an enrolment; false when a confirmed factor exists.
    pub(crate) async fn put_pending_totp(&self, user_id: Uuid, sealed_secret: Vec<u8>, now: i64) -> Result<bool> {
        let written = statement(
            "INSERT INTO totp_factors (user_id, sealed_secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
             created_at = excluded.created_at, last_step = -1 WHERE totp_factors.confirmed_at IS NULL",
        )
        .bind(user_id)
        .bind(sealed_secret)
        .bind(now)
        .execute(self)
        .await?;
        Ok(written == 1)
    }

    /// The second factors of `user_id`, in one query.
    pub async fn factors(&self, user_id: Uuid) -> Result<Factors> {
        let (totp, recovery_codes_left, passkeys): (bool, i64, i64) = statement(
            "SELECT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL), \
             (SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL), \
             (SELECT COUNT(*) FROM passkeys WHERE user_id = $1)",
        )
        .bind(user_id)
        .fetch_one(self)
        .await?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(Factors { totp, recovery_codes_left: count(recovery_codes_left), passkeys: count(passkeys) })
    }

    /// How many users have a TOTP secret sealed (confirmed or not).
    pub async fn sealed_totp_secrets(&self) -> Result<i64> {
        let (count,): (i64,) = statement("SELECT COUNT(*) FROM totp_factors").fetch_one(self).await?;
        Ok(count)
    }

    /// The pending login of `token_hash` if it is still open at `now`.
    pub async fn pending_mfa_login(&self, token_hash: &[u8], now: i64) -> Result<Option<PendingMfaLogin>> {
        Ok(statement(
            "SELECT user_id, tenant_id, first_factor FROM mfa_logins \
             WHERE token_hash = $1 AND ended_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self)
        .await?)
    }

    pub(crate) async fn insert_mfa_login(
        &self,
        token_hash: Vec<u8>,
        login: &PendingMfaLogin,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        statement(
            "INSERT INTO mfa_logins (token_hash, user_id, tenant_id, first_factor, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(login.user_id)
        .bind(login.tenant_id)
        .bind(login.first_factor.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(self)
        .await?;
        Ok(())
    }

    /// Counts a wrong second factor against an open pending login, ending it
    /// at `max_failures`; whether it ended.
    pub(crate) async fn mfa_login_failed(&self, token_hash: &[u8], max_failures: i64, now: i64) -> Result<bool> {
        let row: Option<(i64,)> = statement(
            "UPDATE mfa_logins SET failures = failures + 1, \
             ended_at = CASE WHEN failures + 1 >= $2 THEN $3 ELSE NULL END \
             WHERE token_hash = $1 AND ended_at IS NULL RETURNING failures",
        )
        .bind(token_hash)
        .bind(max_failures)
        .bind(now)
        .fetch_optional(self)
        .await?;
        Ok(row.is_none_or(|(failures,)| failures >= max_failures))
    }

    /// Whether `tenant_id` requires its members' sessions to have a second factor.
    pub async fn tenant_requires_mfa(&self, tenant_id: Uuid) -> Result<bool> {
        let row: Option<(bool,)> =
            statement("SELECT require_mfa FROM tenants WHERE id = $1").bind(tenant_id).fetch_optional(self).await?;
        Ok(row.is_some_and(|(required,)| required))
    }

    pub(crate) async fn set_tenant_requires_mfa(&self, tenant_id: Uuid, required: bool, now: i64) -> Result<()> {
        statement("UPDATE tenants SET require_mfa = $1, updated_at = $2 WHERE id = $3")
            .bind(required)
            .bind(now)
            .bind(tenant_id)
            .execute(self)
            .await?;
        Ok(())
    }
}

impl Transaction {
    /// Ends the open, unexpired pending login of `token_hash` and returns it:
    /// one conditional `UPDATE`, first in its transaction, so a token
    /// finishes one login however many requests present it.
    pub(crate) async fn finish_mfa_login(&mut self, token_hash: &[u8], now: i64) -> Result<Option<PendingMfaLogin>> {
        Ok(statement(
            "UPDATE mfa_logins SET ended_at = $2 WHERE token_hash = $1 AND ended_at IS NULL AND expires_at > $2 \
             RETURNING user_id, tenant_id, first_factor",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self)
        .await?)
    }

    /// Accepts TOTP step `step` for `user_id` if no later or equal step was
    /// accepted; `confirm` makes a pending enrolment the user's factor, and
    /// otherwise only a confirmed factor counts. Whether it was accepted.
    pub(crate) async fn accept_totp_step(&mut self, user_id: Uuid, step: i64, confirm: bool, now: i64) -> Result<bool> {
        let accepted = statement(
            "UPDATE totp_factors SET last_step = $2, confirmed_at = COALESCE(confirmed_at, $3) \
             WHERE user_id = $1 AND last_step < $2 AND (confirmed_at IS NULL) = $4",
        )
        .bind(user_id)
        .bind(step)
        .bind(now)
        .bind(confirm)
        .execute(self)
        .await?;
        Ok(accepted == 1)
    }

    /// Marks the unused recovery code `code_hash` of `user_id` used; whether it was.
    pub(crate) async fn use_recovery_code(&mut self, user_id: Uuid, code_hash: &[u8], now: i64) -> Result<bool> {
        let used = statement(
            "UPDATE recovery_codes SET used_at = $3 WHERE code_hash = $1 AND user_id = $2 AND used_at IS NULL",
        )
        .bind(code_hash)
        .bind(user_id)
        .bind(now)
        .execute(self)
        .await?;
        Ok(used == 1)
    }

    /// Replaces every recovery code of `user_id` with `hashes`.
    pub(crate) async fn replace_recovery_codes(&mut self, user_id: Uuid, hashes: &[Vec<u8>], now: i64) -> Result<()> {
        self.delete_recovery_codes(user_id).await?;
        for hash in hashes {
            statement("INSERT INTO recovery_codes (code_hash, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(hash.as_slice())
                .bind(user_id)
                .bind(now)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn delete_recovery_codes(&mut self, user_id: Uuid) -> Result<()> {
        statement("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(self).await?;
        Ok(())
    }

    /// Deletes the TOTP factor of `user_id`; whether there was one.
    pub(crate) async fn delete_totp(&mut self, user_id: Uuid) -> Result<bool> {
        Ok(statement("DELETE FROM totp_factors WHERE user_id = $1").bind(user_id).execute(self).await? == 1)
    }

    /// Ends the user's pending logins: their password step is no longer current.
    pub(crate) async fn end_mfa_logins(&mut self, user_id: Uuid, now: i64) -> Result<()> {
        statement("UPDATE mfa_logins SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL")
            .bind(user_id)
            .bind(now)
            .execute(self)
            .await?;
        Ok(())
    }

    /// Deletes pending logins that ended or expired before `before`.
    pub(crate) async fn delete_old_mfa_logins(&mut self, before: i64) -> Result<()> {
        statement("DELETE FROM mfa_logins WHERE expires_at < $1 OR ended_at < $1").bind(before).execute(self).await?;
        Ok(())
    }
}
