//! Which login sessions are revoked, held in memory so that verifying an access
//! token needs no database query.
//!
//! Every access token carries `sid`, its session (refresh family). Logout,
//! logout-all, password change or reset and deactivation revoke families in
//! the store; the instance that did it adds them here at once, and every
//! instance reloads the recently revoked families every
//! `tokens.revocation_poll_secs`. So an access token of a revoked session is
//! refused immediately on the revoking instance and within one poll interval
//! (default 2 s, plus the query's time) on every other. Entries are kept only
//! as long as a token minted before the revocation can still be unexpired.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
};

use uuid::Uuid;

#[derive(Debug, Default)]
pub struct RevocationList {
    /// Session id -> when it was revoked (Unix ms).
    revoked: RwLock<HashMap<Uuid, i64>>,
}

impl RevocationList {
    pub fn is_revoked(&self, session_id: Uuid) -> bool {
        self.revoked.read().unwrap_or_else(PoisonError::into_inner).contains_key(&session_id)
    }

    /// Adds sessions revoked at `revoked_at`.
    pub fn revoke(&self, session_ids: impl IntoIterator<Item = Uuid>, revoked_at: i64) {
        let mut revoked = self.revoked.write().unwrap_or_else(PoisonError::into_inner);
        for id in session_ids {
            revoked.entry(id).or_insert(revoked_at);
        }
    }

    /// Merges a reload from the store and forgets entries revoked before
    /// `forget_before`, whose access tokens have all expired.
    pub fn refresh(&self, from_store: &[(Uuid, i64)], forget_before: i64) {
        let mut revoked = self.revoked.write().unwrap_or_else(PoisonError::into_inner);
        revoked.retain(|_, at| *at >= forget_before);
        for (id, at) in from_store {
            revoked.entry(*id).or_insert(*at);
        }
    }

    pub fn len(&self) -> usize {
        self.revoked.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_sessions_are_remembered_until_their_tokens_expire() {
        let list = RevocationList::default();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        list.revoke([a], 1_000);
        list.refresh(&[(b, 5_000)], 0);
        assert!(list.is_revoked(a) && list.is_revoked(b) && !list.is_revoked(c));
        list.refresh(&[], 2_000);
        assert!(!list.is_revoked(a), "entries older than the window are forgotten");
        assert!(list.is_revoked(b));
    }
}
