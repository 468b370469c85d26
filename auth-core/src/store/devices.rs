//! The devices users have signed in from, by keyed fingerprint (see
//! `crate::detection`).

use uuid::Uuid;

use super::{Transaction, statement};
use crate::error::Result;

/// What a sign-in's device was to its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The user's first device: a first sign-in, no notice.
    First,
    /// Seen within the window.
    Known,
    /// Not seen within the window, and the user has signed in before.
    New,
}

impl Transaction {
    /// Records that `user_id` signed in from `fingerprint` at `now`, and says
    /// whether that device was seen since `window_start`. Devices last seen
    /// before it are forgotten.
    pub(crate) async fn see_device(
        &mut self,
        user_id: Uuid,
        fingerprint: &[u8],
        now: i64,
        window_start: i64,
    ) -> Result<Seen> {
        let seen: Option<(i64,)> =
            statement("SELECT last_seen_at FROM known_devices WHERE user_id = $1 AND fingerprint = $2")
                .bind(user_id)
                .bind(fingerprint)
                .fetch_optional(&mut *self)
                .await?;
        let seen = match seen {
            Some((last,)) if last >= window_start => Seen::Known,
            Some(_) => Seen::New,
            None => {
                let (any,): (i64,) = statement("SELECT COUNT(*) FROM known_devices WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_one(&mut *self)
                    .await?;
                if any > 0 { Seen::New } else { Seen::First }
            }
        };
        statement(
            "INSERT INTO known_devices (user_id, fingerprint, last_seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, fingerprint) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        )
        .bind(user_id)
        .bind(fingerprint)
        .bind(now)
        .execute(&mut *self)
        .await?;
        statement("DELETE FROM known_devices WHERE user_id = $1 AND last_seen_at < $2")
            .bind(user_id)
            .bind(window_start)
            .execute(&mut *self)
            .await?;
        Ok(seen)
    }
}
