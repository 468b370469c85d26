//! Tenants and their members.

use serde_json::json;
use uuid::Uuid;

use super::{Auth, TenantView, TokenPair, secs_to_ms};
use crate::{
    audit::{AuditEvent, ClientInfo},
    error::{AuthError, Result},
    identity::Email,
    ratelimit::UserAction,
    store::MembershipChange,
    tenancy::{Member, Tenant, validate_tenant_name},
    tokens::{AccessClaims, OpaqueToken},
};

impl Auth {
    // ----- tenants ----------------------------------------------------------

    /// Creates a tenant whose owner (highest role) is the caller.
    pub async fn create_tenant(&self, owner: Uuid, name: &str, client: &ClientInfo) -> Result<TenantView> {
        self.user_quota(UserAction::CreateTenant, owner, client).await?;
        let name = validate_tenant_name(name).map_err(AuthError::Validation)?;
        let tenant = Tenant { id: Uuid::now_v7(), name, created_at: self.now() };
        let role = self.inner.roles.highest();
        self.inner.store.create_tenant(&tenant, owner, role).await?;
        self.audit(AuditEvent::TenantCreated, Some(owner), client, json!({ "tenant_id": tenant.id })).await;
        Ok(TenantView { id: tenant.id, name: tenant.name, role: role.to_owned() })
    }

    pub async fn tenants(&self, user_id: Uuid) -> Result<Vec<TenantView>> {
        let memberships = self.inner.store.tenants_of(user_id).await?;
        Ok(memberships.into_iter().map(|m| TenantView { id: m.tenant_id, name: m.tenant_name, role: m.role }).collect())
    }

    /// The members of a tenant the caller belongs to.
    pub async fn members(&self, caller: Uuid, tenant_id: Uuid) -> Result<Vec<Member>> {
        self.inner.store.role_in(caller, tenant_id).await?.ok_or(AuthError::NotAMember)?;
        self.inner.store.members(tenant_id).await
    }

    pub async fn add_member(
        &self,
        actor: Uuid,
        tenant_id: Uuid,
        email: &str,
        role: &str,
        client: &ClientInfo,
    ) -> Result<Member> {
        let email = Email::parse("email", email).map_err(AuthError::Validation)?;
        let change = MembershipChange::Add { email: &email, role };
        let member = self.change_membership(actor, tenant_id, change, client).await?;
        member.ok_or_else(|| AuthError::internal("an added member was not returned"))
    }

    pub async fn remove_member(&self, actor: Uuid, tenant_id: Uuid, user_id: Uuid, client: &ClientInfo) -> Result<()> {
        self.change_membership(actor, tenant_id, MembershipChange::Remove { user_id }, client).await?;
        Ok(())
    }

    pub async fn set_member_role(
        &self,
        actor: Uuid,
        tenant_id: Uuid,
        user_id: Uuid,
        role: &str,
        client: &ClientInfo,
    ) -> Result<Member> {
        let change = MembershipChange::SetRole { user_id, role };
        let member = self.change_membership(actor, tenant_id, change, client).await?;
        member.ok_or_else(|| AuthError::internal("a re-roled member was not returned"))
    }

    async fn change_membership(
        &self,
        actor: Uuid,
        tenant_id: Uuid,
        change: MembershipChange<'_>,
        client: &ClientInfo,
    ) -> Result<Option<Member>> {
        self.user_quota(UserAction::MemberChange, actor, client).await?;
        let now = self.inner.clock.now_ms();
        let result = self.inner.store.change_membership(tenant_id, actor, change, &self.inner.roles, now).await;
        let (event, target) = match change {
            MembershipChange::Add { email, role } => (AuditEvent::MemberAdded, json!({ "email": email, "role": role })),
            MembershipChange::Remove { user_id } => (AuditEvent::MemberRemoved, json!({ "user_id": user_id })),
            MembershipChange::SetRole { user_id, role } => {
                (AuditEvent::MemberRoleChanged, json!({ "user_id": user_id, "role": role }))
            }
        };
        match &result {
            Ok(_) => self.audit(event, Some(actor), client, json!({ "tenant_id": tenant_id, "target": target })).await,
            Err(AuthError::InsufficientRole | AuthError::NotAMember) => {
                let detail = json!({ "tenant_id": tenant_id, "target": target });
                self.record_denied(Some(actor), client, event.as_str(), detail);
            }
            Err(_) => {}
        }
        result
    }

    /// New tokens scoped to `tenant_id`, with the role read from the
    /// membership. They belong to the caller's login: a token chain of its
    /// session, which that login's logout, reuse detection, revocation or
    /// expiry ends too (and `sessions` lists once).
    pub async fn tenant_token(&self, caller: &AccessClaims, tenant_id: Uuid, client: &ClientInfo) -> Result<TokenPair> {
        self.user_quota(UserAction::TenantToken, caller.sub, client).await?;
        let store = &self.inner.store;
        let role = store.role_in(caller.sub, tenant_id).await?;
        let Some(role) = role else {
            self.record_denied(Some(caller.sub), client, "tenant_token", json!({ "tenant_id": tenant_id }));
            return Err(AuthError::NotAMember);
        };
        let user = store.user(caller.sub).await?.filter(|u| u.is_active).ok_or(AuthError::InvalidToken)?;
        let refresh = OpaqueToken::generate();
        let now = self.inner.clock.now_ms();
        let idle = secs_to_ms(self.inner.config.tokens.refresh_idle_ttl_secs);
        let session = store.add_tenant_chain(caller.sid, caller.sub, tenant_id, &refresh, now, idle).await?;
        let session = session.ok_or(AuthError::InvalidToken)?;
        let access = self.mint(user.flags(), &session, Some((tenant_id, role)))?;
        Ok(self.pair(access, &refresh))
    }
}
