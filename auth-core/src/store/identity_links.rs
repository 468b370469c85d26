//! Identity links: an account at an OpenID Connect provider, named by the
//! provider's (issuer, subject), linked to one local user.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, in_transaction, is_unique_violation, on_pool, time, users::REVOKE_USER_FAMILIES};
use crate::{
    error::{AuthError, Result},
    identity::{Email, Profile, User},
};

/// One stored link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IdentityLink {
    pub issuer: String,
    pub subject: String,
    pub user_id: Uuid,
    /// The provider-verified email address when the link was made; empty for
    /// a deliberate link whose provider vouched for no address.
    pub email: String,
    pub created_at: DateTime<Utc>,
}

/// A provider identity with a provider-verified email, to link or create.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedIdentity<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: &'a Email,
    /// Unix milliseconds.
    pub now: i64,
}

/// What [`Store::link_identity`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// No account had the email: this new user was created, verified, and linked.
    Created,
    /// The account with the email is now linked. If it had never verified
    /// its email, its password was wiped, its unused one-time tokens deleted
    /// and these sessions revoked: someone else may have registered it.
    Linked { password_wiped: bool, revoked: Vec<Uuid> },
    /// Nothing was written.
    Refused(LinkRefusal),
    /// A concurrent sign-in or registration took the email or identity
    /// first; nothing was written; look the identity up again.
    Raced,
}

/// Why an existing account was not linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    Inactive,
    /// Staff and superusers are never linked by email: an identity provider's
    /// word must not hand over a privileged account.
    Privileged,
    /// The account is already linked to another subject at this issuer.
    OtherIdentity,
    /// The provider is not trusted for email: only the signed-in owner may
    /// link it to the account (a deliberate link).
    AccountExists,
}

/// What [`Store::link_to_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliberateLink {
    Linked,
    /// This identity was already linked to this user: nothing changed.
    AlreadyLinked,
    /// This identity is linked to another user.
    LinkedElsewhere,
    /// The user already has another identity at this issuer.
    OtherIdentity,
}

/// Inserts the link of (`$issuer`, `$subject`) to `$user_id` in transaction `$tx`.
macro_rules! insert_link {
    ($tx:ident, $issuer:expr, $subject:expr, $user_id:expr, $email:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO identity_links (issuer, subject, user_id, email, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($issuer)
        .bind($subject)
        .bind($user_id)
        .bind($email)
        .bind($now)
        .execute(&mut *$tx)
        .await
    };
}

impl Store {
    /// The user linked to (issuer, subject), if any.
    pub async fn identity_link(&self, issuer: &str, subject: &str) -> Result<Option<Uuid>> {
        let row: Option<(Uuid,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT user_id FROM identity_links WHERE issuer = $1 AND subject = $2")
                .bind(issuer)
                .bind(subject)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(id,)| id))
    }

    /// Every identity linked to `user_id`, oldest first.
    pub async fn identity_links(&self, user_id: Uuid) -> Result<Vec<IdentityLink>> {
        let rows: Vec<(String, String, Uuid, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT issuer, subject, user_id, email, created_at FROM identity_links \
                 WHERE user_id = $1 ORDER BY created_at, issuer",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?
        });
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

    /// Links `identity` to the account with its email (only when
    /// `link_existing`: the provider is trusted for email), or creates
    /// `new_user` with `profile` (active, verified, no password) when there is
    /// none, in one transaction. Returns the user's id and what happened.
    pub async fn link_identity(
        &self,
        identity: &VerifiedIdentity<'_>,
        link_existing: bool,
        new_user: &User,
        profile: &Profile,
    ) -> Result<(Uuid, LinkOutcome)> {
        // Inside the transaction, `EmailTaken` stands for "a unique constraint
        // was hit": the transaction is rolled back and the race reported.
        let result = in_transaction!(self, tx => {
            let existing: Option<(Uuid, bool, bool, bool)> = sqlx::query_as(
                "SELECT id, is_active, is_staff, is_superuser FROM users WHERE email = $1",
            )
            .bind(identity.email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let raced = |error: sqlx::Error| if is_unique_violation(&error) { AuthError::EmailTaken } else { error.into() };
            let Some((user_id, is_active, is_staff, is_superuser)) = existing else {
                sqlx::query(
                    "INSERT INTO users (id, email, password_hash, is_active, is_staff, is_superuser, \
                     email_verified_at, date_joined, last_login, password_changed_at) \
                     VALUES ($1, $2, NULL, TRUE, FALSE, FALSE, $3, $3, NULL, $3)",
                )
                .bind(new_user.id)
                .bind(identity.email.as_str())
                .bind(identity.now)
                .execute(&mut *tx)
                .await
                .map_err(raced)?;
                sqlx::query("INSERT INTO profiles (user_id, full_name, phone) VALUES ($1, $2, $3)")
                    .bind(new_user.id)
                    .bind(&profile.full_name)
                    .bind(profile.phone.as_deref())
                    .execute(&mut *tx)
                    .await?;
                insert_link!(tx, identity.issuer, identity.subject, new_user.id, identity.email.as_str(), identity.now).map_err(raced)?;
                return Ok((new_user.id, LinkOutcome::Created));
            };
            if !link_existing {
                return Ok((user_id, LinkOutcome::Refused(LinkRefusal::AccountExists)));
            }
            if !is_active {
                return Ok((user_id, LinkOutcome::Refused(LinkRefusal::Inactive)));
            }
            if is_staff || is_superuser {
                return Ok((user_id, LinkOutcome::Refused(LinkRefusal::Privileged)));
            }
            let other: Option<(String,)> =
                sqlx::query_as("SELECT subject FROM identity_links WHERE user_id = $1 AND issuer = $2")
                    .bind(user_id)
                    .bind(identity.issuer)
                    .fetch_optional(&mut *tx)
                    .await?;
            if other.is_some() {
                return Ok((user_id, LinkOutcome::Refused(LinkRefusal::OtherIdentity)));
            }
            insert_link!(tx, identity.issuer, identity.subject, user_id, identity.email.as_str(), identity.now).map_err(raced)?;
            // Only an account that never proved its email loses its password:
            // whoever set that password may not own the address.
            let wiped = sqlx::query(
                "UPDATE users SET password_hash = NULL, password_changed_at = $1, email_verified_at = $1 \
                 WHERE id = $2 AND email_verified_at IS NULL",
            )
            .bind(identity.now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let mut revoked = Vec::new();
            if wiped {
                sqlx::query("DELETE FROM one_time_tokens WHERE user_id = $1 AND used_at IS NULL")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                let rows: Vec<(Uuid,)> = sqlx::query_as(REVOKE_USER_FAMILIES)
                    .bind(identity.now)
                    .bind("identity_linked")
                    .bind(user_id)
                    .bind(Uuid::nil())
                    .fetch_all(&mut *tx)
                    .await?;
                revoked = rows.into_iter().map(|(id,)| id).collect();
            }
            Ok((user_id, LinkOutcome::Linked { password_wiped: wiped, revoked }))
        });
        match result {
            Err(AuthError::EmailTaken) => Ok((Uuid::nil(), LinkOutcome::Raced)),
            other => other,
        }
    }

    /// Links (issuer, subject) to `user_id`, the signed-in user who asked
    /// for it, in one transaction; `email` is what the provider verified
    /// (may be empty). A concurrent link that takes the identity or the
    /// user's slot at this issuer first is [`AuthError::AlreadyLinked`].
    pub async fn link_to_user(
        &self,
        issuer: &str,
        subject: &str,
        email: &str,
        user_id: Uuid,
        now: i64,
    ) -> Result<DeliberateLink> {
        in_transaction!(self, tx => {
            let owner: Option<(Uuid,)> =
                sqlx::query_as("SELECT user_id FROM identity_links WHERE issuer = $1 AND subject = $2")
                    .bind(issuer)
                    .bind(subject)
                    .fetch_optional(&mut *tx)
                    .await?;
            match owner {
                Some((owner,)) if owner == user_id => return Ok(DeliberateLink::AlreadyLinked),
                Some(_) => return Ok(DeliberateLink::LinkedElsewhere),
                None => {}
            }
            let other: Option<(String,)> =
                sqlx::query_as("SELECT subject FROM identity_links WHERE user_id = $1 AND issuer = $2")
                    .bind(user_id)
                    .bind(issuer)
                    .fetch_optional(&mut *tx)
                    .await?;
            if other.is_some() {
                return Ok(DeliberateLink::OtherIdentity);
            }
            insert_link!(tx, issuer, subject, user_id, email, now)
            .map_err(|error| if is_unique_violation(&error) { AuthError::AlreadyLinked } else { error.into() })?;
            Ok(DeliberateLink::Linked)
        })
    }
}
