//! Tenants and their members.

use serde_json::json;
use uuid::Uuid;

use super::{TenantView, Tenants, TokenPair, secs_to_ms};
use crate::{
    audit::{AuditEvent, ClientInfo},
    contract::TenantSettings,
    error::{AuthError, Result},
    ratelimit::UserAction,
    store::{Inserted, Transaction, millis},
    tenancy::{Member, RoleSet, Tenant, check_leaving, check_membership_change, validate_tenant_name},
    tokens::{AccessClaims, OpaqueToken, amr},
};

/// A change to a tenant's members, made by an [`Actor`].
#[derive(Debug, Clone, Copy)]
enum MembershipChange<'a> {
    Remove { user_id: Uuid },
    SetRole { user_id: Uuid, role: &'a str },
}

impl MembershipChange<'_> {
    /// A member removing themself: leaving, which needs no permission.
    fn is_leaving(self, actor: Actor) -> bool {
        matches!((self, actor), (Self::Remove { user_id }, Actor::Member(id)) if user_id == id)
    }
}

/// Who changes a membership or invites: a member of the tenant (under their
/// role there), or whoever runs the operators' CLI, who acts with the
/// tenant's highest role and no quota (recorded as `"cli"`, as every CLI
/// change is); the membership rules (known roles, the last owner) hold for both.
#[derive(Debug, Clone, Copy)]
pub(super) enum Actor {
    Member(Uuid),
    Cli,
}

impl Actor {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Member(_) => "member",
            Self::Cli => super::operators::CLI_ACTOR,
        }
    }

    /// The actor an invitation's `invited_by` names (none: the CLI).
    pub(super) fn of_inviter(invited_by: Option<Uuid>) -> Self {
        invited_by.map_or(Self::Cli, Self::Member)
    }

    /// The user id an invitation records as its inviter (none for the CLI).
    pub(super) fn user_id(self) -> Option<Uuid> {
        match self {
            Self::Member(user_id) => Some(user_id),
            Self::Cli => None,
        }
    }

    /// The actor's id (none for an operator), after taking one of their
    /// member-change quota.
    pub(super) async fn take_quota(self, tenants: &Tenants<'_>, client: &ClientInfo) -> Result<Option<Uuid>> {
        if let Self::Member(user_id) = self {
            tenants.user_quota(UserAction::MemberChange, user_id, client).await?;
        }
        Ok(self.user_id())
    }

    /// The actor's role in the tenant, read in `tx` (not from a token).
    pub(super) async fn role_in(self, tx: &mut Transaction, tenant_id: Uuid, roles: &RoleSet) -> Result<String> {
        match self {
            Self::Member(user_id) => tx.role_in(user_id, tenant_id).await?.ok_or(AuthError::NotAMember),
            Self::Cli => Ok(roles.highest().to_owned()),
        }
    }
}

impl Tenants<'_> {
    // ----- tenants ----------------------------------------------------------

    /// Creates a tenant whose owner (highest role) is the caller.
    #[tracing::instrument(name = "auth.tenants.create", skip_all, fields(user_id = %owner))]
    pub async fn create(&self, owner: Uuid, name: &str, client: &ClientInfo) -> Result<TenantView> {
        self.user_quota(UserAction::CreateTenant, owner, client).await?;
        let name = validate_tenant_name(name).map_err(AuthError::Validation)?;
        let tenant = Tenant { id: Uuid::now_v7(), name, created_at: self.now() };
        let role = self.inner.roles.highest();
        let mut tx = self.inner.store.begin().await?;
        tx.insert_tenant(&tenant).await?;
        if tx.insert_membership(tenant.id, owner, role, millis(tenant.created_at)).await? == Inserted::Duplicate {
            return Err(AuthError::internal("a new tenant already had a member"));
        }
        tx.commit().await?;
        self.audit(AuditEvent::TenantCreated, Some(owner), client, json!({ "tenant_id": tenant.id })).await;
        Ok(TenantView { id: tenant.id, name: tenant.name, role: role.to_owned() })
    }

    pub async fn list(&self, user_id: Uuid) -> Result<Vec<TenantView>> {
        let memberships = self.inner.store.tenants_of(user_id).await?;
        Ok(memberships.into_iter().map(|m| TenantView { id: m.tenant_id, name: m.tenant_name, role: m.role }).collect())
    }

    /// The members of a tenant the caller belongs to.
    pub async fn members(&self, caller: Uuid, tenant_id: Uuid) -> Result<Vec<Member>> {
        self.inner.store.role_in(caller, tenant_id).await?.ok_or(AuthError::NotAMember)?;
        self.inner.store.members(tenant_id).await
    }

    #[tracing::instrument(name = "auth.tenants.remove_member", skip_all, fields(user_id = %user_id, tenant_id = %tenant_id))]
    pub async fn remove_member(&self, actor: Uuid, tenant_id: Uuid, user_id: Uuid, client: &ClientInfo) -> Result<()> {
        self.change_membership(Actor::Member(actor), tenant_id, MembershipChange::Remove { user_id }, client).await?;
        Ok(())
    }

    #[tracing::instrument(name = "auth.tenants.set_member_role", skip_all, fields(user_id = %user_id, tenant_id = %tenant_id))]
    pub async fn set_member_role(
        &self,
        actor: Uuid,
        tenant_id: Uuid,
        user_id: Uuid,
        role: &str,
        client: &ClientInfo,
    ) -> Result<Member> {
        let change = MembershipChange::SetRole { user_id, role };
        let member = self.change_membership(Actor::Member(actor), tenant_id, change, client).await?;
        member.ok_or_else(|| AuthError::internal("a re-roled member was not returned"))
    }

    /// Applies `change` for `actor` and audits it (a refusal as a denial).
    async fn change_membership(
        &self,
        actor: Actor,
        tenant_id: Uuid,
        change: MembershipChange<'_>,
        client: &ClientInfo,
    ) -> Result<Option<Member>> {
        let actor_id = actor.take_quota(self, client).await?;
        let now = self.inner.clock.now_ms();
        let result = self.apply_membership_change(tenant_id, actor, change, now).await;
        let (event, target) = match change {
            MembershipChange::Remove { user_id } if change.is_leaving(actor) => {
                (AuditEvent::MemberLeft, json!({ "user_id": user_id }))
            }
            MembershipChange::Remove { user_id } => (AuditEvent::MemberRemoved, json!({ "user_id": user_id })),
            MembershipChange::SetRole { user_id, role } => {
                (AuditEvent::MemberRoleChanged, json!({ "user_id": user_id, "role": role }))
            }
        };
        let detail = json!({ "tenant_id": tenant_id, "target": target, "actor": actor.as_str() });
        match &result {
            Ok(_) => self.audit(event, actor_id, client, detail).await,
            Err(AuthError::InsufficientRole | AuthError::NotAMember) => {
                self.record_denied(actor_id, client, event.as_str(), detail);
            }
            Err(_) => {}
        }
        result
    }

    /// Applies `change` on behalf of `actor` under the membership rules
    /// ([`check_membership_change`], or [`check_leaving`] for a member
    /// removing themself), in one transaction, reading the actor's
    /// role from the store, not from a token. The tenant row is locked first,
    /// so concurrent changes of one tenant are serialised and cannot both
    /// remove "the other" last owner. Returns the member as changed (`None`
    /// after a removal).
    async fn apply_membership_change(
        &self,
        tenant_id: Uuid,
        actor: Actor,
        change: MembershipChange<'_>,
        now: i64,
    ) -> Result<Option<Member>> {
        let roles = &self.inner.roles;
        let mut tx = self.inner.store.begin().await?;
        if !tx.lock_tenant(tenant_id, now).await? {
            return Err(AuthError::NotAMember);
        }
        let actor_role = actor.role_in(&mut tx, tenant_id, roles).await?;
        let (target, new_role) = match change {
            MembershipChange::Remove { user_id } => (user_id, None),
            MembershipChange::SetRole { user_id, role } => (user_id, Some(role)),
        };
        let current = tx.role_in(target, tenant_id).await?.ok_or(AuthError::NotFound)?;
        let owners = tx.count_role(tenant_id, roles.highest()).await?;
        if change.is_leaving(actor) {
            check_leaving(roles, &actor_role, owners)?;
        } else {
            check_membership_change(roles, &actor_role, Some(&current), new_role, owners)?;
        }

        match change {
            MembershipChange::SetRole { role, .. } => tx.set_role(tenant_id, target, role).await?,
            MembershipChange::Remove { .. } => {
                tx.delete_membership(tenant_id, target).await?;
                tx.commit().await?;
                return Ok(None);
            }
        }
        let email = tx.email_of(target).await?;
        tx.commit().await?;
        Ok(Some(Member { user_id: target, email, role: new_role.unwrap_or_default().to_owned() }))
    }

    /// New tokens scoped to `tenant_id`, with the role read from the
    /// membership. They belong to the caller's login: a token chain of its
    /// session, which that login's logout, reuse detection, revocation or
    /// expiry ends too (and `sessions` lists once).
    /// Sets whether the tenant requires a second factor of its members: then
    /// a login into it and `POST /token/tenant` need a session with one, and
    /// a session without one gets no further tenant token at refresh. Only
    /// the tenant's highest role (by the membership, not the token) may; and
    /// only from a session with a second factor, so an owner cannot lock
    /// themself out by turning it on.
    #[tracing::instrument(name = "auth.tenants.set_require_mfa", skip_all, fields(user_id = %caller.sub, tenant_id = %tenant_id))]
    pub async fn set_require_mfa(
        &self,
        caller: &AccessClaims,
        tenant_id: Uuid,
        required: bool,
        client: &ClientInfo,
    ) -> Result<TenantSettings> {
        self.user_quota(UserAction::MemberChange, caller.sub, client).await?;
        let store = &self.inner.store;
        let role = store.role_in(caller.sub, tenant_id).await?;
        if role.as_deref() != Some(self.inner.roles.highest()) {
            self.record_denied(Some(caller.sub), client, "tenant_settings", json!({ "tenant_id": tenant_id }));
            return Err(AuthError::InsufficientRole);
        }
        if required && !amr::is_multi_factor(&caller.amr) {
            return Err(AuthError::MfaRequired);
        }
        store.set_tenant_requires_mfa(tenant_id, required, self.inner.clock.now_ms()).await?;
        let detail = json!({ "tenant_id": tenant_id, "require_mfa": required });
        self.audit(AuditEvent::TenantMfaRequirementChanged, Some(caller.sub), client, detail).await;
        Ok(TenantSettings { id: tenant_id, require_mfa: required })
    }

    #[tracing::instrument(name = "auth.tenants.token", skip_all, fields(user_id = %caller.sub, tenant_id = %tenant_id))]
    pub async fn token(&self, caller: &AccessClaims, tenant_id: Uuid, client: &ClientInfo) -> Result<TokenPair> {
        self.user_quota(UserAction::TenantToken, caller.sub, client).await?;
        let store = &self.inner.store;
        let role = store.role_in(caller.sub, tenant_id).await?;
        let Some(role) = role else {
            self.record_denied(Some(caller.sub), client, "tenant_token", json!({ "tenant_id": tenant_id }));
            return Err(AuthError::NotAMember);
        };
        let user = store.user(caller.sub).await?.filter(|u| u.is_active).ok_or(AuthError::InvalidToken)?;
        let requires_mfa = store.tenant_requires_mfa(tenant_id).await?;
        let refresh = OpaqueToken::generate();
        let now = self.inner.clock.now_ms();
        let idle = secs_to_ms(self.inner.config.tokens.refresh_idle_ttl_secs);
        let mut tx = store.begin().await?;
        // The conditional UPDATE checks liveness and takes the family's row
        // lock, so a concurrent revocation cannot be missed.
        let session = tx.touch_family_of(caller.sid, caller.sub, now, idle).await?.ok_or(AuthError::InvalidToken)?;
        // The session's methods, not the token's: a second factor proved since counts.
        if requires_mfa && !amr::is_multi_factor(&amr::claimed(&session.amr)) {
            let detail = json!({ "tenant_id": tenant_id, "reason": "tenant_requires_mfa" });
            self.record_denied(Some(caller.sub), client, "tenant_token", detail);
            return Err(AuthError::MfaRequired);
        }
        tx.insert_refresh_token(refresh.hash(), caller.sid, Some(tenant_id), now).await?;
        // Audited in the same commit: a chain that can outlive the access
        // token that asked for it is never opened unseen.
        let detail = json!({ "tenant_id": tenant_id, "session": caller.sid });
        self.inner
            .audit
            .record_in(&mut tx, AuditEvent::TenantTokenIssued, Some(caller.sub), client, detail, self.now())
            .await?;
        tx.commit().await?;
        let access = self.mint(user.flags(), &session, Some((tenant_id, role)))?;
        Ok(self.pair(access, &refresh, &session))
    }
}
