//! Refresh-token families (one per login session) and their rotation.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, Transaction, sql::Statement, statement, time};
use crate::{error::Result, identity::AccountFlags, tokens::OpaqueToken};

/// A login session to create, with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewFamily {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The tenant the first token chain is scoped to (a login with `tenant_id`).
    pub tenant_id: Option<Uuid>,
    pub now: i64,
    /// Fixed at login; rotation never moves it.
    pub absolute_expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// How the user signed in ([`crate::tokens::AuthMethod`] values separated
    /// by spaces); the session's `auth_time` is `now`.
    pub amr: String,
}

/// A stored login session. It holds one refresh-token chain per scope (the
/// login's own and one per tenant asked for); ending it ends them all.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Family {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: i64,
    pub last_used_at: i64,
    pub absolute_expires_at: i64,
    pub revoked_at: Option<i64>,
    /// How the user signed in: RFC 8176 values separated by spaces (`pwd`,
    /// `pwd otp mfa`), empty for a session from before they were stored.
    pub amr: String,
    /// When (Unix milliseconds) the user signed in, or last proved a second factor.
    pub auth_time: i64,
}

impl Family {
    /// Not revoked, used within `idle_ms`, and before its absolute expiry.
    pub fn is_live(&self, now: i64, idle_ms: i64) -> bool {
        self.revoked_at.is_none() && now < self.last_used_at + idle_ms && now < self.absolute_expires_at
    }
}

/// A live session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Session {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub current: bool,
}

/// A session with what rotation needs to know about its user and tenant.
#[derive(sqlx::FromRow)]
pub(crate) struct LiveSession {
    #[sqlx(flatten)]
    pub family: Family,
    #[sqlx(flatten)]
    pub account: AccountFlags,
    /// The membership's role, for a tenant-scoped chain; none once it is gone.
    pub role: Option<String>,
    /// Whether the chain's tenant requires a second factor of its members' sessions.
    pub tenant_requires_mfa: bool,
}

/// A refresh token as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct StoredToken {
    pub family_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub consumed_at: Option<i64>,
    pub successor_salt: Option<Vec<u8>>,
}

impl Transaction {
    pub(crate) async fn insert_family(&mut self, family: &NewFamily) -> Result<()> {
        statement(
            "INSERT INTO refresh_families (id, user_id, created_at, last_used_at, absolute_expires_at, ip, \
             user_agent, amr, auth_time) VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $3)",
        )
        .bind(family.id)
        .bind(family.user_id)
        .bind(family.now)
        .bind(family.absolute_expires_at)
        .bind(family.ip.as_deref())
        .bind(family.user_agent.as_deref())
        .bind(family.amr.as_str())
        .execute(self)
        .await?;
        Ok(())
    }

    /// Stores a refresh token (by its hash) of `family_id`, scoped to `tenant_id`.
    pub(crate) async fn insert_refresh_token(
        &mut self,
        hash: Vec<u8>,
        family_id: Uuid,
        tenant_id: Option<Uuid>,
        now: i64,
    ) -> Result<()> {
        statement("INSERT INTO refresh_tokens (token_hash, family_id, tenant_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(family_id)
            .bind(tenant_id)
            .bind(now)
            .execute(self)
            .await?;
        Ok(())
    }

    /// Revokes the oldest live sessions of `user_id` beyond the newest
    /// `max_live`, in one statement; returns their ids.
    pub(crate) async fn revoke_sessions_beyond(
        &mut self,
        user_id: Uuid,
        max_live: u32,
        now: i64,
        idle_ms: i64,
    ) -> Result<Vec<Uuid>> {
        let ended: Vec<(Uuid,)> = statement(
            "UPDATE refresh_families SET revoked_at = $1, revoke_reason = 'session_limit' \
             WHERE user_id = $2 AND revoked_at IS NULL AND last_used_at > $3 AND absolute_expires_at > $1 \
             AND id NOT IN ( \
                 SELECT id FROM refresh_families WHERE user_id = $2 AND revoked_at IS NULL \
                 AND last_used_at > $3 AND absolute_expires_at > $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $4) \
             RETURNING id",
        )
        .bind(now)
        .bind(user_id)
        .bind(now - idle_ms)
        .bind(i64::from(max_live))
        .fetch_all(self)
        .await?;
        Ok(ended.into_iter().map(|(id,)| id).collect())
    }

    /// Marks the live family `family_id` of `user_id` used; `None` when it is
    /// not live. Being a conditional `UPDATE`, it takes the family's row lock,
    /// so a concurrent revocation cannot be missed.
    pub(crate) async fn touch_family_of(
        &mut self,
        family_id: Uuid,
        user_id: Uuid,
        now: i64,
        idle_ms: i64,
    ) -> Result<Option<Family>> {
        Ok(statement(
            "UPDATE refresh_families SET last_used_at = $1 \
             WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL AND last_used_at > $4 \
             AND absolute_expires_at > $1 \
             RETURNING id, user_id, created_at, last_used_at, absolute_expires_at, revoked_at, amr, auth_time",
        )
        .bind(now)
        .bind(family_id)
        .bind(user_id)
        .bind(now - idle_ms)
        .fetch_optional(self)
        .await?)
    }

    /// Records how the user of family `family_id` is now signed in: its
    /// `amr` values and `auth_time` (see [`Family`]).
    #[cfg_attr(not(feature = "testing"), allow(dead_code, reason = "the second factors of issue #12 will call it"))]
    pub(crate) async fn set_sign_in(&mut self, family_id: Uuid, amr: &str, auth_time: i64) -> Result<()> {
        statement("UPDATE refresh_families SET amr = $1, auth_time = $2 WHERE id = $3")
            .bind(amr)
            .bind(auth_time)
            .bind(family_id)
            .execute(self)
            .await?;
        Ok(())
    }

    /// Marks the live family `family_id` used; false when it is not live.
    /// The conditional `UPDATE` takes the family's row lock: a revocation
    /// committed meanwhile is seen here, never overwritten.
    pub(crate) async fn touch_family(&mut self, family_id: Uuid, now: i64, idle_ms: i64) -> Result<bool> {
        let touched = statement(
            "UPDATE refresh_families SET last_used_at = $1 \
             WHERE id = $2 AND revoked_at IS NULL AND last_used_at > $3 AND absolute_expires_at > $1",
        )
        .bind(now)
        .bind(family_id)
        .bind(now - idle_ms)
        .execute(self)
        .await?;
        Ok(touched == 1)
    }

    /// Consumes the unconsumed refresh token `hash`, recording the salt of
    /// its successor; its family and tenant scope, or `None` when it is
    /// unknown or consumed already. Of concurrent consumers exactly one
    /// updates the row (PostgreSQL's row lock; SQLite's `BEGIN IMMEDIATE`).
    pub(crate) async fn consume_refresh_token(
        &mut self,
        hash: &[u8],
        salt: &[u8],
        now: i64,
    ) -> Result<Option<(Uuid, Option<Uuid>)>> {
        Ok(statement(
            "UPDATE refresh_tokens SET consumed_at = $1, successor_salt = $2 \
             WHERE token_hash = $3 AND consumed_at IS NULL RETURNING family_id, tenant_id",
        )
        .bind(now)
        .bind(salt)
        .bind(hash)
        .fetch_optional(self)
        .await?)
    }

    pub(crate) async fn refresh_token(&mut self, hash: &[u8]) -> Result<Option<StoredToken>> {
        Ok(statement(
            "SELECT family_id, tenant_id, consumed_at, successor_salt FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(self)
        .await?)
    }

    /// Whether the refresh token `hash` exists and is not consumed.
    pub(crate) async fn refresh_token_unused(&mut self, hash: Vec<u8>) -> Result<bool> {
        let unused: Option<(i64,)> =
            statement("SELECT created_at FROM refresh_tokens WHERE token_hash = $1 AND consumed_at IS NULL")
                .bind(hash)
                .fetch_optional(self)
                .await?;
        Ok(unused.is_some())
    }

    /// Revokes family `family_id` with `reason` unless it is revoked already;
    /// its user, or `None` when it was revoked before.
    pub(crate) async fn revoke_family_once(&mut self, family_id: Uuid, reason: &str, now: i64) -> Result<Option<Uuid>> {
        let revoked: Option<(Uuid,)> = statement(
            "UPDATE refresh_families SET revoked_at = $1, revoke_reason = $3 \
             WHERE id = $2 AND revoked_at IS NULL RETURNING user_id",
        )
        .bind(now)
        .bind(family_id)
        .bind(reason)
        .fetch_optional(self)
        .await?;
        Ok(revoked.map(|(user_id,)| user_id))
    }

    pub(crate) async fn family_owner(&mut self, family_id: Uuid) -> Result<Uuid> {
        let (user_id,): (Uuid,) =
            statement("SELECT user_id FROM refresh_families WHERE id = $1").bind(family_id).fetch_one(self).await?;
        Ok(user_id)
    }

    /// The session `family_id` if its user is active, with the user's flags
    /// and the role of the membership in `tenant_id`: one query, since each
    /// round trip is a good share of a refresh's cost (BENCHMARKS.md).
    pub(crate) async fn live_session(
        &mut self,
        family_id: Uuid,
        tenant_id: Option<Uuid>,
    ) -> Result<Option<LiveSession>> {
        Ok(statement(
            "SELECT f.id, f.user_id, f.created_at, f.last_used_at, f.absolute_expires_at, f.revoked_at, \
             f.amr, f.auth_time, u.is_staff AS staff, u.is_superuser AS superuser, \
             u.email_verified_at IS NOT NULL AS email_verified, m.role, \
             COALESCE(t.require_mfa, FALSE) AS tenant_requires_mfa \
             FROM refresh_families f JOIN users u ON u.id = f.user_id AND u.is_active \
             LEFT JOIN memberships m ON m.user_id = f.user_id AND m.tenant_id = $2 \
             LEFT JOIN tenants t ON t.id = $2 \
             WHERE f.id = $1",
        )
        .bind(family_id)
        .bind(tenant_id)
        .fetch_optional(self)
        .await?)
    }

    /// Ends the chain of the consumed token `hash`: it keeps no successor.
    pub(crate) async fn end_token_chain(&mut self, hash: &[u8]) -> Result<()> {
        statement("UPDATE refresh_tokens SET successor_salt = NULL WHERE token_hash = $1")
            .bind(hash)
            .execute(self)
            .await?;
        Ok(())
    }

    /// Revokes family `family_id` (reason `membership_ended`) when none of its
    /// tokens is unconsumed; whether it did.
    pub(crate) async fn revoke_family_without_chains(&mut self, family_id: Uuid, now: i64) -> Result<bool> {
        let revoked = statement(
            "UPDATE refresh_families SET revoked_at = $1, revoke_reason = 'membership_ended' \
             WHERE id = $2 AND NOT EXISTS \
             (SELECT 1 FROM refresh_tokens WHERE family_id = $2 AND consumed_at IS NULL)",
        )
        .bind(now)
        .bind(family_id)
        .execute(self)
        .await?;
        Ok(revoked == 1)
    }

    /// Keeps the ids of `user_id`'s sessions revoked at or after `since` in
    /// `deleted_sessions`, before the account's rows are deleted, so that the
    /// revocation poll of every instance still sees them.
    pub(crate) async fn keep_revoked_sessions(&mut self, user_id: Uuid, since: i64) -> Result<()> {
        statement(
            "INSERT INTO deleted_sessions (id, revoked_at) \
             SELECT id, revoked_at FROM refresh_families WHERE user_id = $1 AND revoked_at >= $2",
        )
        .bind(user_id)
        .bind(since)
        .execute(self)
        .await?;
        Ok(())
    }

    /// Deletes the kept sessions of deleted accounts revoked before `cutoff`.
    pub(crate) async fn delete_old_deleted_sessions(&mut self, cutoff: i64) -> Result<()> {
        statement("DELETE FROM deleted_sessions WHERE revoked_at < $1").bind(cutoff).execute(self).await?;
        Ok(())
    }

    /// Deletes sessions (with their tokens) that ended before `cutoff`:
    /// revoked, idle or past their absolute lifetime. Returns how many.
    pub(crate) async fn delete_ended_families(&mut self, cutoff: i64, idle_ms: i64) -> Result<u64> {
        Ok(statement(
            "DELETE FROM refresh_families WHERE revoked_at < $1 OR last_used_at < $2 OR absolute_expires_at < $1",
        )
        .bind(cutoff)
        .bind(cutoff - idle_ms)
        .execute(self)
        .await?)
    }

    pub(crate) async fn revoke_user_families(
        &mut self,
        user_id: Uuid,
        keep: Option<Uuid>,
        reason: &str,
        now: i64,
    ) -> Result<Vec<Uuid>> {
        let revoked: Vec<(Uuid,)> = revoke_user_families(user_id, keep, reason, now).fetch_all(self).await?;
        Ok(revoked.into_iter().map(|(id,)| id).collect())
    }
}

/// Revokes every live family of `user_id` except `keep`, returning their ids.
fn revoke_user_families<'a>(user_id: Uuid, keep: Option<Uuid>, reason: &'a str, now: i64) -> Statement<'a> {
    statement(
        "UPDATE refresh_families SET revoked_at = $1, revoke_reason = $2 \
         WHERE user_id = $3 AND revoked_at IS NULL AND id <> $4 RETURNING id",
    )
    .bind(now)
    .bind(reason)
    .bind(user_id)
    .bind(keep.unwrap_or(Uuid::nil()))
}

const SELECT_FAMILY_BY_ID: &str = "SELECT id, user_id, created_at, last_used_at, absolute_expires_at, revoked_at, \
     amr, auth_time FROM refresh_families WHERE id = $1";

/// The family of the refresh token `$1`.
const SELECT_FAMILY_BY_TOKEN: &str = "SELECT id, user_id, created_at, last_used_at, absolute_expires_at, revoked_at, \
     amr, auth_time FROM refresh_families WHERE id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)";

impl Store {
    pub async fn family(&self, id: Uuid) -> Result<Option<Family>> {
        Ok(statement(SELECT_FAMILY_BY_ID).bind(id).fetch_optional(self).await?)
    }

    /// The family a refresh token belongs to, consumed or not.
    pub async fn family_of_token(&self, token: &OpaqueToken) -> Result<Option<Family>> {
        Ok(statement(SELECT_FAMILY_BY_TOKEN).bind(token.hash()).fetch_optional(self).await?)
    }

    /// Revokes one live family of `user_id`; `false` if there is none with that id.
    pub async fn revoke_family(&self, id: Uuid, user_id: Uuid, reason: &str, now: i64) -> Result<bool> {
        let revoked = statement(
            "UPDATE refresh_families SET revoked_at = $1, revoke_reason = $2 \
             WHERE id = $3 AND user_id = $4 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id)
        .bind(user_id)
        .execute(self)
        .await?;
        Ok(revoked == 1)
    }

    /// Revokes every live family of `user_id` except `keep`; returns their ids.
    pub async fn revoke_user_families(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        reason: &str,
        now: i64,
    ) -> Result<Vec<Uuid>> {
        let revoked: Vec<(Uuid,)> = revoke_user_families(user_id, keep, reason, now).fetch_all(self).await?;
        Ok(revoked.into_iter().map(|(id,)| id).collect())
    }

    /// The user's live sessions, most recently used first (`current` unset).
    pub async fn live_sessions(&self, user_id: Uuid, now: i64, idle_ms: i64) -> Result<Vec<Session>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: Uuid,
            created_at: i64,
            last_used_at: i64,
            ip: Option<String>,
            user_agent: Option<String>,
        }
        let rows: Vec<Row> = statement(
            "SELECT id, created_at, last_used_at, ip, user_agent FROM refresh_families \
             WHERE user_id = $1 AND revoked_at IS NULL AND last_used_at > $2 AND absolute_expires_at > $3 \
             ORDER BY last_used_at DESC",
        )
        .bind(user_id)
        .bind(now - idle_ms)
        .bind(now)
        .fetch_all(self)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Session {
                id: row.id,
                created_at: time(row.created_at),
                last_used_at: time(row.last_used_at),
                ip: row.ip,
                user_agent: row.user_agent,
                current: false,
            })
            .collect())
    }

    /// Families revoked at or after `since`, with when, those of deleted
    /// accounts included: the revocation list's poll, which passes its cursor
    /// (range scans of `refresh_families_by_revocation` and `deleted_sessions_by_revocation`).
    pub async fn revoked_since(&self, since: i64) -> Result<Vec<(Uuid, i64)>> {
        Ok(statement(
            "SELECT id, revoked_at FROM refresh_families WHERE revoked_at >= $1 \
             UNION ALL SELECT id, revoked_at FROM deleted_sessions WHERE revoked_at >= $1",
        )
        .bind(since)
        .fetch_all(self)
        .await?)
    }
}
