//! Users and profiles.

use uuid::Uuid;

use super::{Store, in_transaction, is_unique_violation, on_pool, time};
use crate::{
    error::{AuthError, Result},
    identity::{Email, Profile, User},
    store::one_time::{CONSUME_ONE_TIME, OneTimePurpose},
    tokens::OpaqueToken,
};

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    password_hash: Option<String>,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
    email_verified_at: Option<i64>,
    date_joined: i64,
    last_login: Option<i64>,
}

impl UserRow {
    fn split(self) -> (User, Option<String>) {
        let user = User {
            id: self.id,
            email: Email::from_store(self.email),
            is_active: self.is_active,
            is_staff: self.is_staff,
            is_superuser: self.is_superuser,
            email_verified_at: self.email_verified_at.map(time),
            date_joined: time(self.date_joined),
            last_login: self.last_login.map(time),
        };
        (user, self.password_hash)
    }
}

/// `SELECT` of every user column, followed by the given clause.
macro_rules! select_user {
    ($clause:literal) => {
        concat!(
            "SELECT id, email, password_hash, is_active, is_staff, is_superuser, ",
            "email_verified_at, date_joined, last_login FROM users ",
            $clause
        )
    };
}

/// Revokes the live families of user `$3` except family `$4` (nil for none),
/// returning their ids. Binds: revoked_at, reason, user_id, kept family.
pub(super) const REVOKE_USER_FAMILIES: &str = "UPDATE refresh_families SET revoked_at = $1, revoke_reason = $2 \
     WHERE user_id = $3 AND revoked_at IS NULL AND id <> $4 RETURNING id";

/// The statements of a password change, run in transaction `$tx`: new hash,
/// unused reset tokens deleted, sessions except `$keep` revoked. Evaluates to
/// `Result<Vec<Uuid>>`, the revoked session ids.
macro_rules! replace_password {
    ($tx:ident, $user_id:expr, $hash:expr, $now:expr, $keep:expr, $reason:expr) => {
        async {
            sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
                .bind($hash)
                .bind($now)
                .bind($user_id)
                .execute(&mut *$tx)
                .await?;
            sqlx::query("DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
                .bind($user_id)
                .bind(OneTimePurpose::PasswordReset.as_str())
                .execute(&mut *$tx)
                .await?;
            let revoked: Vec<(Uuid,)> = sqlx::query_as(REVOKE_USER_FAMILIES)
                .bind($now)
                .bind($reason)
                .bind($user_id)
                .bind($keep.unwrap_or(Uuid::nil()))
                .fetch_all(&mut *$tx)
                .await?;
            Ok::<Vec<Uuid>, AuthError>(revoked.into_iter().map(|(id,)| id).collect())
        }
        .await
    };
}

impl Store {
    /// Inserts a user and their profile in one transaction; a taken email is
    /// [`AuthError::EmailTaken`] and leaves nothing behind.
    pub async fn insert_user(&self, user: &User, password_hash: Option<&str>, profile: &Profile) -> Result<()> {
        in_transaction!(self, tx => {
            let inserted = sqlx::query(
                "INSERT INTO users (id, email, password_hash, is_active, is_staff, is_superuser, \
                 email_verified_at, date_joined, last_login, password_changed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $8)",
            )
            .bind(user.id)
            .bind(user.email.as_str())
            .bind(password_hash)
            .bind(user.is_active)
            .bind(user.is_staff)
            .bind(user.is_superuser)
            .bind(user.email_verified_at.map(super::millis))
            .bind(super::millis(user.date_joined))
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(error) if is_unique_violation(&error) => return Err(AuthError::EmailTaken),
                other => other?,
            };
            sqlx::query("INSERT INTO profiles (user_id, full_name, phone) VALUES ($1, $2, $3)")
                .bind(user.id)
                .bind(&profile.full_name)
                .bind(profile.phone.as_deref())
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    /// The user with this (normalised) email and their password hash.
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<(User, Option<String>)>> {
        let row: Option<UserRow> = on_pool!(self, pool => {
            sqlx::query_as(select_user!("WHERE email = $1")).bind(email.as_str()).fetch_optional(pool).await?
        });
        Ok(row.map(UserRow::split))
    }

    /// The user with this id and their password hash.
    pub async fn user_with_password(&self, id: Uuid) -> Result<Option<(User, Option<String>)>> {
        let row: Option<UserRow> = on_pool!(self, pool => {
            sqlx::query_as(select_user!("WHERE id = $1")).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(UserRow::split))
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>> {
        Ok(self.user_with_password(id).await?.map(|(user, _)| user))
    }

    pub async fn profile(&self, user_id: Uuid) -> Result<Option<Profile>> {
        let row: Option<(String, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT full_name, phone FROM profiles WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(full_name, phone)| Profile { full_name, phone }))
    }

    pub async fn update_profile(&self, user_id: Uuid, profile: &Profile) -> Result<()> {
        let updated = on_pool!(self, pool => {
            sqlx::query("UPDATE profiles SET full_name = $1, phone = $2 WHERE user_id = $3")
                .bind(&profile.full_name)
                .bind(profile.phone.as_deref())
                .bind(user_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 1 { Ok(()) } else { Err(AuthError::NotFound) }
    }

    /// Stamps `last_login` and, when the hash parameters changed, stores the new hash.
    pub async fn record_login(&self, user_id: Uuid, now: i64, rehashed: Option<&str>) -> Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE users SET last_login = $1, password_hash = COALESCE($2, password_hash) WHERE id = $3",
            )
            .bind(now)
            .bind(rehashed)
            .bind(user_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Replaces the password hash, kills every unused reset token of the user
    /// and revokes their sessions except `keep_family`, in one transaction.
    /// Returns the revoked session ids.
    pub async fn set_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        now: i64,
        keep_family: Option<Uuid>,
        reason: &str,
    ) -> Result<Vec<Uuid>> {
        in_transaction!(self, tx => replace_password!(tx, user_id, password_hash, now, keep_family, reason))
    }

    /// Consumes a password-reset token and sets the new password with the
    /// effects of [`Self::set_password`] (every session revoked), in one
    /// transaction. `None` if the token is unknown, expired or already used.
    pub async fn reset_password(
        &self,
        token: &OpaqueToken,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<(Uuid, Vec<Uuid>)>> {
        in_transaction!(self, tx => {
            let consumed: Option<(Uuid,)> = sqlx::query_as(CONSUME_ONE_TIME)
                .bind(now)
                .bind(token.hash())
                .bind(OneTimePurpose::PasswordReset.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let Some((user_id,)) = consumed else { return Ok(None) };
            let revoked = replace_password!(tx, user_id, password_hash, now, None, "password_reset")?;
            Ok(Some((user_id, revoked)))
        })
    }

    /// Activates or deactivates a user; deactivation revokes every session in
    /// the same transaction. Returns the revoked session ids.
    pub async fn set_active(&self, user_id: Uuid, active: bool, now: i64) -> Result<Vec<Uuid>> {
        in_transaction!(self, tx => {
            let updated = sqlx::query("UPDATE users SET is_active = $1 WHERE id = $2")
                .bind(active)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated != 1 {
                return Err(AuthError::NotFound);
            }
            if active {
                return Ok(Vec::new());
            }
            let revoked: Vec<(Uuid,)> = sqlx::query_as(REVOKE_USER_FAMILIES)
                .bind(now)
                .bind("deactivated")
                .bind(user_id)
                .bind(Uuid::nil())
                .fetch_all(&mut *tx)
                .await?;
            Ok(revoked.into_iter().map(|(id,)| id).collect())
        })
    }
}
