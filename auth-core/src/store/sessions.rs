//! Refresh-token families (one per login session) and their rotation.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, in_transaction, on_pool, time, users::REVOKE_USER_FAMILIES};
use crate::{error::Result, identity::AccountFlags, tokens::OpaqueToken, tokens::random_bytes};

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

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum RotateOutcome {
    /// The token was consumed and `successor` replaces it. For a tenant-scoped
    /// chain `tenant` holds the tenant and the membership's current role;
    /// `account` is read in the same query as the session, for the new access token.
    Rotated { family: Family, account: AccountFlags, successor: OpaqueToken, tenant: Option<(Uuid, String)> },
    /// Unknown token, or a session that is revoked, expired or whose user is inactive.
    Invalid,
    /// An already-consumed token was presented: the whole family is now revoked.
    Reused { family_id: Uuid, user_id: Uuid },
    /// The chain's tenant membership is gone: that chain has ended, and the
    /// family too (`family_revoked`) when it had no other live chain.
    MembershipEnded { family_id: Uuid, user_id: Uuid, family_revoked: bool },
}

/// A session with what rotation needs to know about its user and tenant.
#[derive(sqlx::FromRow)]
struct LiveSession {
    #[sqlx(flatten)]
    family: Family,
    #[sqlx(flatten)]
    account: AccountFlags,
    /// The membership's role, for a tenant-scoped chain; none once it is gone.
    role: Option<String>,
}

/// A refresh token as stored, when it was not the one consumed.
#[derive(sqlx::FromRow)]
struct PresentedToken {
    family_id: Uuid,
    tenant_id: Option<Uuid>,
    consumed_at: Option<i64>,
    successor_salt: Option<Vec<u8>>,
}

/// Revokes family `$2` at `$1` with reason `$3` unless it is revoked already;
/// returns its user.
const REVOKE_FAMILY: &str = "UPDATE refresh_families SET revoked_at = $1, revoke_reason = $3 \
     WHERE id = $2 AND revoked_at IS NULL RETURNING user_id";

/// Inserts a refresh token: hash, family, tenant scope, created_at.
const INSERT_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, family_id, tenant_id, created_at) VALUES ($1, $2, $3, $4)";

/// `SELECT` of every [`Family`] column, followed by the given clause.
macro_rules! select_family {
    ($clause:literal) => {
        concat!(
            "SELECT id, user_id, created_at, last_used_at, absolute_expires_at, revoked_at ",
            "FROM refresh_families ",
            $clause
        )
    };
}

impl Store {
    /// Creates a login session with its first token and ends the user's
    /// oldest live sessions beyond `max_live` (this one included), in one
    /// transaction; returns the ids of the sessions it ended.
    pub async fn create_family(
        &self,
        family: &NewFamily,
        first_token: &OpaqueToken,
        max_live: u32,
        idle_ms: i64,
    ) -> Result<Vec<Uuid>> {
        in_transaction!(self, tx => {
            sqlx::query(
                "INSERT INTO refresh_families (id, user_id, created_at, last_used_at, absolute_expires_at, ip, \
                 user_agent) VALUES ($1, $2, $3, $3, $4, $5, $6)",
            )
            .bind(family.id)
            .bind(family.user_id)
            .bind(family.now)
            .bind(family.absolute_expires_at)
            .bind(family.ip.as_deref())
            .bind(family.user_agent.as_deref())
            .execute(&mut *tx)
            .await?;
            sqlx::query(INSERT_TOKEN)
                .bind(first_token.hash())
                .bind(family.id)
                .bind(family.tenant_id)
                .bind(family.now)
                .execute(&mut *tx)
                .await?;
            let ended: Vec<(Uuid,)> = sqlx::query_as(
                "UPDATE refresh_families SET revoked_at = $1, revoke_reason = 'session_limit' \
                 WHERE user_id = $2 AND revoked_at IS NULL AND last_used_at > $3 AND absolute_expires_at > $1 \
                 AND id NOT IN ( \
                     SELECT id FROM refresh_families WHERE user_id = $2 AND revoked_at IS NULL \
                     AND last_used_at > $3 AND absolute_expires_at > $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $4) \
                 RETURNING id",
            )
            .bind(family.now)
            .bind(family.user_id)
            .bind(family.now - idle_ms)
            .bind(i64::from(max_live))
            .fetch_all(&mut *tx)
            .await?;
            Ok(ended.into_iter().map(|(id,)| id).collect())
        })
    }

    /// Starts a token chain scoped to `tenant_id` in the live family
    /// `family_id` of `user_id`; `None` when that family is not live.
    pub async fn add_tenant_chain(
        &self,
        family_id: Uuid,
        user_id: Uuid,
        tenant_id: Uuid,
        token: &OpaqueToken,
        now: i64,
        idle_ms: i64,
    ) -> Result<Option<Family>> {
        in_transaction!(self, tx => {
            // The conditional UPDATE checks liveness and takes the family's row
            // lock, so a concurrent revocation cannot be missed.
            let family: Option<Family> = sqlx::query_as(
                "UPDATE refresh_families SET last_used_at = $1 \
                 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL AND last_used_at > $4 \
                 AND absolute_expires_at > $1 \
                 RETURNING id, user_id, created_at, last_used_at, absolute_expires_at, revoked_at",
            )
            .bind(now)
            .bind(family_id)
            .bind(user_id)
            .bind(now - idle_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if family.is_some() {
                sqlx::query(INSERT_TOKEN)
                    .bind(token.hash())
                    .bind(family_id)
                    .bind(tenant_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(family)
        })
    }

    /// Consumes `presented` and issues its successor, in one transaction.
    ///
    /// The consuming `UPDATE … WHERE consumed_at IS NULL` is the first
    /// statement, so of several concurrent rotations of one token exactly one
    /// updates the row (PostgreSQL's row lock; SQLite's `BEGIN IMMEDIATE`). The
    /// others find it consumed, which is reuse: within `grace_ms` of the
    /// rotation, and while the successor is unused, they get the same
    /// successor back (one chain, never two); otherwise the family is revoked.
    pub async fn rotate_refresh(
        &self,
        presented: &OpaqueToken,
        now: i64,
        idle_ms: i64,
        grace_ms: i64,
    ) -> Result<RotateOutcome> {
        let presented_hash = presented.hash();
        let salt = random_bytes();
        in_transaction!(self, tx => {
            let consumed: Option<(Uuid, Option<Uuid>)> = sqlx::query_as(
                "UPDATE refresh_tokens SET consumed_at = $1, successor_salt = $2 \
                 WHERE token_hash = $3 AND consumed_at IS NULL RETURNING family_id, tenant_id",
            )
            .bind(now)
            .bind(&salt[..])
            .bind(&presented_hash)
            .fetch_optional(&mut *tx)
            .await?;

            let (family_id, tenant_id, successor, first_use) = match consumed {
                Some((family_id, tenant_id)) => (family_id, tenant_id, presented.successor(&salt), true),
                None => {
                    let previous: Option<PresentedToken> = sqlx::query_as(
                        "SELECT family_id, tenant_id, consumed_at, successor_salt FROM refresh_tokens \
                         WHERE token_hash = $1",
                    )
                    .bind(&presented_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
                    // No salt: a chain that ended (its membership did), not a rotated token.
                    let Some(PresentedToken { family_id, tenant_id, consumed_at: Some(consumed_at), successor_salt: Some(old_salt) }) =
                        previous
                    else {
                        return Ok(RotateOutcome::Invalid);
                    };
                    let successor = presented.successor(&old_salt);
                    // Without a grace window every second presentation is reuse, even one
                    // that read the clock before the winner committed (now <= consumed_at).
                    let within_grace = grace_ms > 0 && now - consumed_at <= grace_ms;
                    // Within it, only while the successor is unused: once the successor
                    // was presented, the old token is a stolen copy.
                    let successor_unused = within_grace && {
                        let unused: Option<(i64,)> = sqlx::query_as(
                            "SELECT created_at FROM refresh_tokens WHERE token_hash = $1 AND consumed_at IS NULL",
                        )
                        .bind(successor.hash())
                        .fetch_optional(&mut *tx)
                        .await?;
                        unused.is_some()
                    };
                    if !successor_unused {
                        let revoked: Option<(Uuid,)> = sqlx::query_as(REVOKE_FAMILY)
                            .bind(now)
                            .bind(family_id)
                            .bind("reuse")
                            .fetch_optional(&mut *tx)
                            .await?;
                        // Already revoked (by an earlier reuse, say): still reuse.
                        let user_id = match revoked {
                            Some((user_id,)) => user_id,
                            None => {
                                sqlx::query_as::<_, (Uuid,)>("SELECT user_id FROM refresh_families WHERE id = $1")
                                    .bind(family_id)
                                    .fetch_one(&mut *tx)
                                    .await?
                                    .0
                            }
                        };
                        return Ok(RotateOutcome::Reused { family_id, user_id });
                    }
                    (family_id, tenant_id, successor, false)
                }
            };

            // Liveness is checked by the UPDATE that takes the family's row lock:
            // a revocation committed meanwhile (logout, reuse elsewhere) is seen
            // here, never overwritten by a read made before it.
            let touched = sqlx::query(
                "UPDATE refresh_families SET last_used_at = $1 \
                 WHERE id = $2 AND revoked_at IS NULL AND last_used_at > $3 AND absolute_expires_at > $1",
            )
            .bind(now)
            .bind(family_id)
            .bind(now - idle_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if touched != 1 {
                return Ok(RotateOutcome::Invalid);
            }

            // One query for the session, its active user and, for a tenant-scoped
            // chain, the membership: each round trip is a good share of a
            // refresh's cost (BENCHMARKS.md).
            let live: Option<LiveSession> = sqlx::query_as(
                "SELECT f.id, f.user_id, f.created_at, f.last_used_at, f.absolute_expires_at, f.revoked_at, \
                 u.is_staff AS staff, u.is_superuser AS superuser, \
                 u.email_verified_at IS NOT NULL AS email_verified, m.role \
                 FROM refresh_families f JOIN users u ON u.id = f.user_id AND u.is_active \
                 LEFT JOIN memberships m ON m.user_id = f.user_id AND m.tenant_id = $2 \
                 WHERE f.id = $1",
            )
            .bind(family_id)
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(LiveSession { family, account, role }) = live else { return Ok(RotateOutcome::Invalid) };
            let tenant = match (tenant_id, role) {
                (None, _) => None,
                (Some(tenant_id), Some(role)) => Some((tenant_id, role)),
                (Some(_), None) => {
                    // End this chain (consumed, no successor) and the family with it
                    // when it has no other live chain.
                    sqlx::query("UPDATE refresh_tokens SET successor_salt = NULL WHERE token_hash = $1")
                        .bind(&presented_hash)
                        .execute(&mut *tx)
                        .await?;
                    let revoked = sqlx::query(
                        "UPDATE refresh_families SET revoked_at = $1, revoke_reason = 'membership_ended' \
                         WHERE id = $2 AND NOT EXISTS \
                         (SELECT 1 FROM refresh_tokens WHERE family_id = $2 AND consumed_at IS NULL)",
                    )
                    .bind(now)
                    .bind(family.id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    return Ok(RotateOutcome::MembershipEnded {
                        family_id: family.id,
                        user_id: family.user_id,
                        family_revoked: revoked == 1,
                    });
                }
            };

            if first_use {
                sqlx::query(INSERT_TOKEN)
                    .bind(successor.hash())
                    .bind(family.id)
                    .bind(tenant_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(RotateOutcome::Rotated { family, account, successor, tenant })
        })
    }

    pub async fn family(&self, id: Uuid) -> Result<Option<Family>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(select_family!("WHERE id = $1")).bind(id).fetch_optional(pool).await?
        }))
    }

    /// The family a refresh token belongs to, consumed or not.
    pub async fn family_of_token(&self, token: &OpaqueToken) -> Result<Option<Family>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(select_family!("WHERE id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)"))
                .bind(token.hash()).fetch_optional(pool).await?
        }))
    }

    /// Revokes one live family of `user_id`; `false` if there is none with that id.
    pub async fn revoke_family(&self, id: Uuid, user_id: Uuid, reason: &str, now: i64) -> Result<bool> {
        let revoked = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1, revoke_reason = $2 \
                 WHERE id = $3 AND user_id = $4 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(reason)
            .bind(id)
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
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
        let revoked: Vec<(Uuid,)> = on_pool!(self, pool => {
            sqlx::query_as(REVOKE_USER_FAMILIES)
                .bind(now)
                .bind(reason)
                .bind(user_id)
                .bind(keep.unwrap_or(Uuid::nil()))
                .fetch_all(pool)
                .await?
        });
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
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, created_at, last_used_at, ip, user_agent FROM refresh_families \
                 WHERE user_id = $1 AND revoked_at IS NULL AND last_used_at > $2 AND absolute_expires_at > $3 \
                 ORDER BY last_used_at DESC",
            )
            .bind(user_id)
            .bind(now - idle_ms)
            .bind(now)
            .fetch_all(pool)
            .await?
        });
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

    /// Families revoked at or after `since`, with when: the revocation list's
    /// poll, which passes its cursor (a range scan of `refresh_families_by_revocation`).
    pub async fn revoked_since(&self, since: i64) -> Result<Vec<(Uuid, i64)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT id, revoked_at FROM refresh_families WHERE revoked_at >= $1")
                .bind(since)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Deletes sessions that ended (revoked, idle or past their absolute
    /// lifetime) before `cutoff`, with their tokens, spent one-time tokens,
    /// and audit events older than `audit_before`, in one transaction.
    /// Returns the number of sessions deleted.
    pub async fn prune(&self, cutoff: i64, idle_ms: i64, audit_before: i64) -> Result<u64> {
        in_transaction!(self, tx => {
            let families = sqlx::query(
                "DELETE FROM refresh_families WHERE revoked_at < $1 OR last_used_at < $2 OR absolute_expires_at < $1",
            )
            .bind(cutoff)
            .bind(cutoff - idle_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM one_time_tokens WHERE expires_at < $1 OR used_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM audit_events WHERE at < $1").bind(audit_before).execute(&mut *tx).await?;
            Ok(families)
        })
    }
}
