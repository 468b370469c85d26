//! Passkeys and the server-side state of WebAuthn ceremonies.

use uuid::Uuid;

use super::{Inserted, Store, Transaction, inserted, statement};
use crate::error::Result;

/// A passkey as stored: `credential` is webauthn-rs's serialised credential
/// (public key, counter, flags; nothing secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredPasskey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub credential: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A ceremony in progress: the user it is for, its serialised state.
#[derive(Debug, Clone)]
pub struct StoredChallenge {
    pub user_id: Option<Uuid>,
    pub state: String,
}

macro_rules! select_passkeys {
    ($where:literal) => {
        concat!("SELECT id, user_id, credential, name, created_at, last_used_at FROM passkeys WHERE ", $where)
    };
}

impl Store {
    /// The passkeys of `user_id`, oldest first.
    pub async fn passkeys(&self, user_id: Uuid) -> Result<Vec<StoredPasskey>> {
        Ok(statement(select_passkeys!("user_id = $1 ORDER BY created_at, id")).bind(user_id).fetch_all(self).await?)
    }

    pub async fn passkey_by_credential_id(&self, credential_id: &[u8]) -> Result<Option<StoredPasskey>> {
        Ok(statement(select_passkeys!("credential_id = $1")).bind(credential_id).fetch_optional(self).await?)
    }

    pub(crate) async fn insert_challenge(
        &self,
        id: Uuid,
        kind: &str,
        user_id: Option<Uuid>,
        state: &str,
        expires_at: i64,
    ) -> Result<()> {
        statement("INSERT INTO webauthn_challenges (id, kind, user_id, state, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(kind)
            .bind(user_id)
            .bind(state)
            .bind(expires_at)
            .execute(self)
            .await?;
        Ok(())
    }

    /// Deletes challenge `id` and returns it if it was of `kind` and open at
    /// `now`: one statement, so a challenge is consumed once however many
    /// requests present it (an expired one is deleted too).
    pub(crate) async fn take_challenge(&self, id: Uuid, kind: &str, now: i64) -> Result<Option<StoredChallenge>> {
        let row: Option<(String, Option<Uuid>, String, i64)> =
            statement("DELETE FROM webauthn_challenges WHERE id = $1 RETURNING kind, user_id, state, expires_at")
                .bind(id)
                .fetch_optional(self)
                .await?;
        Ok(row
            .filter(|(k, _, _, expires_at)| k == kind && *expires_at > now)
            .map(|(_, user_id, state, _)| StoredChallenge { user_id, state }))
    }

    /// Deletes the open challenge of `kind` that `user_id` started (one at a
    /// time: starting again replaces it) and returns it if still open at `now`.
    pub(crate) async fn take_user_challenge(
        &self,
        user_id: Uuid,
        kind: &str,
        now: i64,
    ) -> Result<Option<StoredChallenge>> {
        let row: Option<(String, Option<Uuid>, String, i64)> = statement(
            "DELETE FROM webauthn_challenges WHERE user_id = $1 AND kind = $2 RETURNING kind, user_id, state, expires_at",
        )
        .bind(user_id)
        .bind(kind)
        .fetch_optional(self)
        .await?;
        Ok(row
            .filter(|(_, _, _, expires_at)| *expires_at > now)
            .map(|(_, user_id, state, _)| StoredChallenge { user_id, state }))
    }

    /// Stores the credential as a sign-in left it (its counter) and when it was used.
    pub(crate) async fn passkey_used(&self, id: Uuid, credential: &str, now: i64) -> Result<()> {
        statement("UPDATE passkeys SET credential = $2, last_used_at = $3 WHERE id = $1")
            .bind(id)
            .bind(credential)
            .bind(now)
            .execute(self)
            .await?;
        Ok(())
    }
}

impl Transaction {
    /// Deletes challenges that expired before `before`.
    pub(crate) async fn delete_old_challenges(&mut self, before: i64) -> Result<()> {
        statement("DELETE FROM webauthn_challenges WHERE expires_at < $1").bind(before).execute(self).await?;
        Ok(())
    }

    /// [`Inserted::Duplicate`] when the credential id is registered already.
    pub(crate) async fn insert_passkey(&mut self, passkey: &StoredPasskey, credential_id: &[u8]) -> Result<Inserted> {
        inserted(
            statement(
                "INSERT INTO passkeys (id, user_id, credential_id, credential, name, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(passkey.id)
            .bind(passkey.user_id)
            .bind(credential_id)
            .bind(passkey.credential.as_str())
            .bind(passkey.name.as_str())
            .bind(passkey.created_at)
            .execute(self)
            .await,
        )
    }

    /// Deletes passkey `id` of `user_id`; whether there was one.
    pub(crate) async fn delete_passkey(&mut self, user_id: Uuid, id: Uuid) -> Result<bool> {
        Ok(statement("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(self)
            .await?
            == 1)
    }

    pub(crate) async fn count_passkeys(&mut self, user_id: Uuid) -> Result<i64> {
        let (count,): (i64,) =
            statement("SELECT COUNT(*) FROM passkeys WHERE user_id = $1").bind(user_id).fetch_one(self).await?;
        Ok(count)
    }
}
