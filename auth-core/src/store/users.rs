//! Users and profiles.

use uuid::Uuid;

use super::{Inserted, Store, Transaction, inserted, millis, statement, time};
use crate::{
    error::{AuthError, Result},
    identity::{Email, Profile, User},
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

/// The user with email `$1`, every column.
const USER_BY_EMAIL: &str = "SELECT id, email, password_hash, is_active, is_staff, is_superuser, \
     email_verified_at, date_joined, last_login FROM users WHERE email = $1";

/// The user with id `$1`, every column.
const USER_BY_ID: &str = "SELECT id, email, password_hash, is_active, is_staff, is_superuser, \
     email_verified_at, date_joined, last_login FROM users WHERE id = $1";

impl Transaction {
    /// Inserts a user; [`Inserted::Duplicate`] when the email is taken.
    pub(crate) async fn insert_user(&mut self, user: &User, password_hash: Option<&str>) -> Result<Inserted> {
        inserted(
            statement(
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
            .bind(user.email_verified_at.map(millis))
            .bind(millis(user.date_joined))
            .execute(self)
            .await,
        )
    }

    pub(crate) async fn insert_profile(&mut self, user_id: Uuid, profile: &Profile) -> Result<()> {
        statement("INSERT INTO profiles (user_id, full_name, phone) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(profile.full_name.as_str())
            .bind(profile.phone.as_deref())
            .execute(self)
            .await?;
        Ok(())
    }

    pub(crate) async fn set_password_hash(&mut self, user_id: Uuid, password_hash: &str, now: i64) -> Result<()> {
        statement("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(user_id)
            .execute(self)
            .await?;
        Ok(())
    }

    /// Removes the password of `user_id` and marks the email verified, only
    /// if it was unverified; whether it did.
    pub(crate) async fn wipe_unverified_password(&mut self, user_id: Uuid, now: i64) -> Result<bool> {
        let wiped = statement(
            "UPDATE users SET password_hash = NULL, password_changed_at = $1, email_verified_at = $1 \
             WHERE id = $2 AND email_verified_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(self)
        .await?;
        Ok(wiped == 1)
    }

    pub(crate) async fn mark_email_verified(&mut self, user_id: Uuid, now: i64) -> Result<()> {
        statement("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) WHERE id = $2")
            .bind(now)
            .bind(user_id)
            .execute(self)
            .await?;
        Ok(())
    }

    /// Gives `user_id` the address `email`, verified now; [`Inserted::Duplicate`]
    /// when another account has it.
    pub(crate) async fn set_email(&mut self, user_id: Uuid, email: &str, now: i64) -> Result<Inserted> {
        let updated = statement("UPDATE users SET email = $1, email_verified_at = $2 WHERE id = $3")
            .bind(email)
            .bind(now)
            .bind(user_id)
            .execute(self)
            .await;
        inserted(updated)
    }

    /// Deletes the user; their profile, memberships, sessions, one-time
    /// tokens and identity links go with them (`ON DELETE CASCADE`).
    pub(crate) async fn delete_user(&mut self, user_id: Uuid) -> Result<()> {
        statement("DELETE FROM users WHERE id = $1").bind(user_id).execute(self).await?;
        Ok(())
    }

    /// Activates or deactivates a user; [`AuthError::NotFound`] if there is none.
    pub(crate) async fn set_active(&mut self, user_id: Uuid, active: bool) -> Result<()> {
        let updated =
            statement("UPDATE users SET is_active = $1 WHERE id = $2").bind(active).bind(user_id).execute(self).await?;
        if updated == 1 { Ok(()) } else { Err(AuthError::NotFound) }
    }

    /// Sets `is_staff`; whether that changed it (false for no such user too).
    pub(crate) async fn set_staff(&mut self, user_id: Uuid, is_staff: bool) -> Result<bool> {
        let updated = statement("UPDATE users SET is_staff = $1 WHERE id = $2 AND is_staff <> $1")
            .bind(is_staff)
            .bind(user_id)
            .execute(self)
            .await?;
        Ok(updated == 1)
    }
}

impl Store {
    /// The user with this (normalised) email and their password hash.
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<(User, Option<String>)>> {
        let row: Option<UserRow> = statement(USER_BY_EMAIL).bind(email.as_str()).fetch_optional(self).await?;
        Ok(row.map(UserRow::split))
    }

    /// The user with this id and their password hash.
    pub async fn user_with_password(&self, id: Uuid) -> Result<Option<(User, Option<String>)>> {
        let row: Option<UserRow> = statement(USER_BY_ID).bind(id).fetch_optional(self).await?;
        Ok(row.map(UserRow::split))
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>> {
        Ok(self.user_with_password(id).await?.map(|(user, _)| user))
    }

    pub async fn profile(&self, user_id: Uuid) -> Result<Option<Profile>> {
        let row: Option<(String, Option<String>)> =
            statement("SELECT full_name, phone FROM profiles WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(self)
                .await?;
        Ok(row.map(|(full_name, phone)| Profile { full_name, phone }))
    }

    pub async fn update_profile(&self, user_id: Uuid, profile: &Profile) -> Result<()> {
        let updated = statement("UPDATE profiles SET full_name = $1, phone = $2 WHERE user_id = $3")
            .bind(profile.full_name.as_str())
            .bind(profile.phone.as_deref())
            .bind(user_id)
            .execute(self)
            .await?;
        if updated == 1 { Ok(()) } else { Err(AuthError::NotFound) }
    }

    /// Stamps `last_login` and, when the hash parameters changed, stores the new hash.
    pub async fn record_login(&self, user_id: Uuid, now: i64, rehashed: Option<&str>) -> Result<()> {
        statement("UPDATE users SET last_login = $1, password_hash = COALESCE($2, password_hash) WHERE id = $3")
            .bind(now)
            .bind(rehashed)
            .bind(user_id)
            .execute(self)
            .await?;
        Ok(())
    }

    /// Users whose email contains `fragment` (matched as it is: emails are
    /// stored lower-cased), ordered by email, `limit` of them from `offset`.
    pub async fn users_matching(&self, fragment: &str, limit: i64, offset: i64) -> Result<Vec<User>> {
        let pattern = format!("%{}%", escape_like(fragment));
        let rows: Vec<UserRow> = statement(
            "SELECT id, email, password_hash, is_active, is_staff, is_superuser, email_verified_at, date_joined, \
             last_login FROM users WHERE email LIKE $1 ESCAPE '\\' ORDER BY email LIMIT $2 OFFSET $3",
        )
        .bind(pattern.as_str())
        .bind(limit)
        .bind(offset)
        .fetch_all(self)
        .await?;
        Ok(rows.into_iter().map(|row| row.split().0).collect())
    }
}

/// `text` with the wildcards of `LIKE` (and the escape character) escaped by `\`.
fn escape_like(text: &str) -> String {
    text.chars().fold(String::with_capacity(text.len()), |mut escaped, c| {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
        escaped
    })
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_are_matched_as_themselves() {
        assert_eq!(escape_like(r"a_b%c\d"), r"a\_b\%c\\d");
        assert_eq!(escape_like("ada@example.com"), "ada@example.com");
    }
}
