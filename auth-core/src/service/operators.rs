//! What the platform's operators do, from the CLI or an admin tool: create
//! superusers, deactivate accounts, manage memberships, read the audit trail.
//! The same rules and the same audit trail as the HTTP operations; the actor
//! is the operator, recorded as such.

use serde_json::json;
use uuid::Uuid;

use super::{Operators, tenants::Actor};
use crate::{
    audit::{AuditEvent, ClientInfo},
    error::{AuthError, Result},
    identity::{Email, Profile, User},
    tenancy::Invitation,
};

impl Operators<'_> {
    /// Creates an active, verified staff superuser (for operators' CLIs).
    pub async fn create_superuser(&self, email: &str, password: &str, full_name: &str) -> Result<User> {
        let email = Email::parse("email", email).map_err(AuthError::Validation)?;
        let profile = Profile::new(full_name, None).map_err(AuthError::Validation)?;
        self.inner
            .passwords
            .check_policy("password", password, &[email.as_str(), email.local_part(), full_name])
            .into_result()?;
        let password_hash = self.inner.passwords.hash(password).await?;
        let now = self.now();
        let user = User {
            id: Uuid::now_v7(),
            email,
            is_active: true,
            is_staff: true,
            is_superuser: true,
            email_verified_at: Some(now),
            date_joined: now,
            last_login: None,
        };
        self.accounts().insert_account(&user, &password_hash, &profile).await?;
        self.audit(AuditEvent::SuperuserCreated, Some(user.id), &ClientInfo::default(), json!({})).await;
        Ok(user)
    }

    /// Deactivates or reactivates a user; deactivation ends every session at once.
    pub async fn set_user_active(&self, user_id: Uuid, active: bool, client: &ClientInfo) -> Result<()> {
        let mut tx = self.inner.store.begin().await?;
        tx.set_active(user_id, active).await?;
        let revoked = if active {
            Vec::new()
        } else {
            tx.revoke_user_families(user_id, None, "deactivated", self.inner.clock.now_ms()).await?
        };
        tx.commit().await?;
        self.revoked(revoked);
        let event = if active { AuditEvent::UserActivated } else { AuditEvent::UserDeactivated };
        self.audit(event, Some(user_id), client, json!({})).await;
        Ok(())
    }

    /// Deletes sessions and one-time tokens that ended over a day ago, and
    /// audit events older than `audit.retention_days`. Every instance runs it
    /// hourly; returns the number of sessions deleted.
    pub async fn prune(&self) -> Result<u64> {
        self.inner.prune().await
    }

    /// The most recent audit events of `user_id` (or everyone), newest first.
    pub async fn audit_trail(&self, user_id: Option<Uuid>, limit: i64) -> Result<Vec<crate::store::AuditRecord>> {
        self.inner.store.audit_events(user_id, limit).await
    }

    /// The account of `email`, if there is one.
    pub async fn find_user(&self, email: &str) -> Result<Option<User>> {
        let email = Email::parse("email", email).map_err(AuthError::Validation)?;
        Ok(self.inner.store.user_by_email(&email).await?.map(|(user, _)| user))
    }

    /// Invites `email` to a tenant with `role`, as an operator: an
    /// invitation is the only way into a tenant, for operators too. Under the
    /// membership rules (a known role, not a member or invited yet), mailed
    /// like any invitation and audited with the operator as its actor.
    pub async fn invite(&self, tenant_id: Uuid, email: &str, role: &str) -> Result<Invitation> {
        self.tenants().send_invitation(Actor::Operator, tenant_id, email, role, &ClientInfo::default()).await
    }
}
