//! A user's own recent security events (`GET /me/activity`), from the audit
//! trail: the kinds listed in [`SECURITY_EVENTS`](crate::audit::SECURITY_EVENTS).

use uuid::Uuid;

use super::Accounts;
use crate::{contract::ActivityEvent, error::Result};

/// How many events `GET /me/activity` shows, the newest.
const ACTIVITY_LIMIT: i64 = 50;

impl Accounts<'_> {
    /// The newest security events of `user_id` (at most 50), newest first:
    /// its sign-ins with their address and device, refused sign-ins, ended
    /// sessions, password and email changes, and what operators did to it
    /// (without the operator's address or device). Nothing of another
    /// account, and no event's detail (ids and reasons meant for operators).
    pub async fn activity(&self, user_id: Uuid) -> Result<Vec<ActivityEvent>> {
        let events = self.inner.store.security_events(user_id, ACTIVITY_LIMIT).await?;
        Ok(events.into_iter().map(ActivityEvent::from).collect())
    }
}
