//! What the platform's operators do, from the CLI or the staff's HTTP API
//! (`/admin/...`): create superusers, find users, deactivate and reactivate
//! accounts, end a user's sessions, grant and take the staff flag, manage
//! memberships, read the audit trail. The same rules and the same audit trail
//! whoever acts; every change is audited with its actor ([`Operator`]).
//! Reads (finding users, the audit trail) change nothing and are not audited.

use serde_json::json;
use uuid::Uuid;

use super::{Operators, tenants::Actor};
use crate::{
    audit::{AuditEvent, ClientInfo},
    contract::{AuditQuery, MAX_AUDIT_LIMIT, StaffUserView, USERS_PAGE_SIZE, UserPage, UserSearch, UserSummary},
    error::{AuthError, Result},
    identity::{Email, Profile, User},
    store::{AuditRecord, millis},
    tenancy::Invitation,
};

/// The audit `actor` of a change made from the operators' CLI.
pub(super) const CLI_ACTOR: &str = "cli";

/// Who among the operators acts: a staff member (through the HTTP API), or
/// whoever runs the CLI, who holds the database and its settings and so may
/// make every change. Recorded as `actor` in the detail of each event an
/// operator causes: the staff member's id, or `"cli"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Staff(Uuid),
    Cli,
}

impl Operator {
    pub(super) fn audit_value(self) -> serde_json::Value {
        match self {
            Self::Staff(id) => json!(id),
            Self::Cli => json!(CLI_ACTOR),
        }
    }

    /// Whether an audit event's `detail` names an operator as its actor.
    pub(crate) fn acted_in(detail: &serde_json::Value) -> bool {
        match detail.get("actor").and_then(serde_json::Value::as_str) {
            Some(CLI_ACTOR) => true,
            Some(actor) => actor.parse::<Uuid>().is_ok(),
            None => false,
        }
    }
}

/// A change an operator makes to an account.
#[derive(Debug, Clone, Copy)]
enum Change {
    Active(bool),
    EndSessions,
    Staff(bool),
}

impl Change {
    fn event(self) -> AuditEvent {
        match self {
            Self::Active(true) => AuditEvent::UserActivated,
            Self::Active(false) => AuditEvent::UserDeactivated,
            Self::EndSessions => AuditEvent::LoggedOutEverywhere,
            Self::Staff(true) => AuditEvent::StaffGranted,
            Self::Staff(false) => AuditEvent::StaffRevoked,
        }
    }

    /// Why the sessions it ends ended (`revoke_reason`).
    fn revoke_reason(self) -> &'static str {
        match self {
            Self::Active(_) => "deactivated",
            Self::EndSessions => "operator_logout_all",
            Self::Staff(_) => "staff_revoked",
        }
    }

    /// Made to one's own account, it would leave no one to undo it.
    fn locks_out(self) -> bool {
        matches!(self, Self::Active(false) | Self::Staff(false))
    }
}

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
        let detail = json!({ "actor": Operator::Cli.audit_value() });
        self.audit(AuditEvent::SuperuserCreated, Some(user.id), &ClientInfo::default(), detail).await;
        Ok(user)
    }

    /// A page of the users whose address contains `search.email`, ordered by
    /// email. A read: not audited.
    pub async fn find_users(&self, search: &UserSearch) -> Result<UserPage> {
        let size = usize::try_from(USERS_PAGE_SIZE).unwrap_or(usize::MAX);
        let offset = i64::from(search.page.saturating_sub(1)) * i64::from(USERS_PAGE_SIZE);
        // One more than a page tells whether there is a next one.
        let mut users = self.inner.store.users_matching(&search.email, i64::from(USERS_PAGE_SIZE) + 1, offset).await?;
        let has_more = users.len() > size;
        users.truncate(size);
        let users = users.iter().map(UserSummary::from).collect();
        Ok(UserPage { users, page: search.page, page_size: USERS_PAGE_SIZE, has_more })
    }

    /// The account of `user_id` as staff see it; [`AuthError::NotFound`] if
    /// there is none. A read: not audited.
    pub async fn user(&self, user_id: Uuid) -> Result<StaffUserView> {
        let user = self.inner.store.user(user_id).await?.ok_or(AuthError::NotFound)?;
        let memberships = self.inner.store.tenants_of(user_id).await?;
        Ok(StaffUserView { user: UserSummary::from(&user), memberships })
    }

    /// Deactivates (`active == false`) or reactivates an account, for `by`.
    /// Deactivation ends every session at once, access tokens included (on
    /// other instances within `tokens.revocation_poll_secs`), and its login
    /// then answers [`AuthError::AccountDisabled`]. Nobody deactivates their
    /// own account ([`AuthError::OwnAccount`]); only a superuser or the CLI
    /// changes a superuser's ([`AuthError::Forbidden`]). Audited as
    /// `user_deactivated` or `user_activated`.
    pub async fn set_user_active(
        &self,
        by: Operator,
        user_id: Uuid,
        active: bool,
        client: &ClientInfo,
    ) -> Result<StaffUserView> {
        self.change(by, user_id, Change::Active(active), client).await?;
        self.user(user_id).await
    }

    /// Ends every session of `user_id` at once, access tokens included, for
    /// `by` (a superuser's: only a superuser or the CLI). Audited as
    /// `logged_out_everywhere` with the actor.
    pub async fn end_sessions(&self, by: Operator, user_id: Uuid, client: &ClientInfo) -> Result<()> {
        self.change(by, user_id, Change::EndSessions, client).await
    }

    /// Grants or takes the staff flag, for `by`, who must be a superuser (or
    /// the CLI), and cannot take their own. Taking it ends the account's
    /// sessions at once, so that no token still says `staff`; a grant shows
    /// in the account's next token (a refresh or a sign-in). Audited as
    /// `staff_granted` or `staff_revoked`.
    pub async fn set_staff(
        &self,
        by: Operator,
        user_id: Uuid,
        is_staff: bool,
        client: &ClientInfo,
    ) -> Result<StaffUserView> {
        self.change(by, user_id, Change::Staff(is_staff), client).await?;
        self.user(user_id).await
    }

    /// Makes `change` to the account of `user_id` in one transaction, ends its
    /// sessions where the change says so, and audits it with `by` as `actor`.
    ///
    /// Who may: the CLI, every change; a staff member, none to their own
    /// account that would lock them out ([`AuthError::OwnAccount`]:
    /// deactivating it, taking their staff flag), and, unless a superuser,
    /// neither a change of the staff flag nor any change to a superuser's
    /// account ([`AuthError::Forbidden`]). The staff member's flags are read
    /// from the store, not from a token. A refusal is audited as a denial.
    async fn change(&self, by: Operator, user_id: Uuid, change: Change, client: &ClientInfo) -> Result<()> {
        let event = change.event();
        if let Err(error) = self.check(by, user_id, change).await {
            if let (Operator::Staff(actor), AuthError::Forbidden | AuthError::OwnAccount) = (by, &error) {
                let detail = json!({ "user_id": user_id, "code": error.code() });
                self.record_denied(Some(actor), client, event.as_str(), detail);
            }
            return Err(error);
        }
        let now = self.inner.clock.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let ends_sessions = match change {
            Change::Active(active) => {
                tx.set_active(user_id, active).await?;
                !active
            }
            Change::EndSessions => true,
            Change::Staff(is_staff) => tx.set_staff(user_id, is_staff).await? && !is_staff,
        };
        let revoked = if ends_sessions {
            tx.revoke_user_families(user_id, None, change.revoke_reason(), now).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        let detail = json!({ "actor": by.audit_value(), "sessions": revoked.len() });
        self.revoked(revoked);
        self.audit(event, Some(user_id), client, detail).await;
        Ok(())
    }

    /// Whether `by` may make `change` to the account of `user_id` (see
    /// [`Operators::change`]); [`AuthError::NotFound`] for no such account.
    async fn check(&self, by: Operator, user_id: Uuid, change: Change) -> Result<()> {
        let store = &self.inner.store;
        let target = store.user(user_id).await?.ok_or(AuthError::NotFound)?;
        let Operator::Staff(actor) = by else { return Ok(()) };
        let actor = store.user(actor).await?.filter(|a| a.is_active && (a.is_staff || a.is_superuser));
        let actor = actor.ok_or(AuthError::Forbidden)?;
        if actor.id == target.id && change.locks_out() {
            return Err(AuthError::OwnAccount);
        }
        let needs_superuser = matches!(change, Change::Staff(_)) || target.is_superuser;
        if needs_superuser && !actor.is_superuser {
            return Err(AuthError::Forbidden);
        }
        Ok(())
    }

    /// Deletes sessions and one-time tokens that ended over a day ago, and
    /// audit events older than `audit.retention_days`. Every instance runs it
    /// hourly; returns the number of sessions deleted.
    pub async fn prune(&self) -> Result<u64> {
        self.inner.prune().await
    }

    /// The most recent audit events of `user_id` (or everyone), newest first.
    pub async fn audit_trail(&self, user_id: Option<Uuid>, limit: i64) -> Result<Vec<AuditRecord>> {
        self.inner.store.audit_events(user_id, limit).await
    }

    /// The audit events that match `query`, newest first (at most
    /// [`MAX_AUDIT_LIMIT`]). A read: not audited.
    pub async fn search_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let limit = i64::from(query.limit.min(MAX_AUDIT_LIMIT));
        let since = query.since.map(millis);
        self.inner.store.search_audit(query.user_id, query.event.as_deref(), since, limit).await
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
        self.tenants().send_invitation(Actor::Cli, tenant_id, email, role, &ClientInfo::default()).await
    }
}
