//! Invitations: the only way into a tenant besides creating it. A member
//! with `members.manage` (or an operator) invites an address; whoever signs
//! in with that address, verified, accepts. Nothing here tells the inviter
//! whether the address has an account.

use serde_json::json;
use uuid::Uuid;

use super::{Tenants, tenants::Actor};
use crate::{
    audit::{AuditEvent, ClientInfo},
    error::{AuthError, Result},
    identity::Email,
    recovery,
    store::Inserted,
    tenancy::{INVITATION_TTL_SECS, Invitation, MANAGE_MEMBERS, TenantMembership, check_membership_change},
    tokens::OpaqueToken,
};

impl Tenants<'_> {
    /// Invites `email` to join `tenant_id` with `role`, for a member of it.
    #[tracing::instrument(name = "auth.tenants.invite", skip_all, fields(user_id = %actor, tenant_id = %tenant_id))]
    pub async fn invite(
        &self,
        actor: Uuid,
        tenant_id: Uuid,
        email: &str,
        role: &str,
        client: &ClientInfo,
    ) -> Result<Invitation> {
        self.send_invitation(Actor::Member(actor), tenant_id, email, role, client).await
    }

    /// Writes the invitation and mails its one-time link. The rules are those of
    /// granting `role`: `members.manage`, a known role, none above the actor's;
    /// refused for a member already in (409 `already_member`) or an address
    /// with an open invitation (409 `already_invited`).
    pub(super) async fn send_invitation(
        &self,
        actor: Actor,
        tenant_id: Uuid,
        email: &str,
        role: &str,
        client: &ClientInfo,
    ) -> Result<Invitation> {
        let actor_id = actor.take_quota(self, client).await?;
        let email = Email::parse("email", email).map_err(AuthError::Validation)?;
        let token = OpaqueToken::generate();
        let now = self.inner.clock.now_ms();
        let result = self.write_invitation(actor, tenant_id, &email, role, &token, now).await;
        let detail = json!({ "tenant_id": tenant_id, "email": email, "role": role, "actor": actor.as_str() });
        let (invitation, tenant_name) = match result {
            Ok(written) => written,
            Err(error @ (AuthError::InsufficientRole | AuthError::NotAMember)) => {
                self.record_denied(actor_id, client, AuditEvent::InvitationSent.as_str(), detail);
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        let detail =
            json!({ "invitation_id": invitation.id, "tenant_id": tenant_id, "role": role, "actor": actor.as_str() });
        self.audit(AuditEvent::InvitationSent, actor_id, client, detail).await;
        // Sent before answering: the same mail goes whether or not the address
        // has an account (so the timing tells nothing), and a CLI process that
        // exits right after still delivers it.
        self.send(&recovery::invitation_email(&self.inner.config, &email, &tenant_name, role, &token)).await;
        Ok(invitation)
    }

    async fn write_invitation(
        &self,
        actor: Actor,
        tenant_id: Uuid,
        email: &Email,
        role: &str,
        token: &OpaqueToken,
        now: i64,
    ) -> Result<(Invitation, String)> {
        let mut tx = self.inner.store.begin().await?;
        if !tx.lock_tenant(tenant_id, now).await? {
            return Err(AuthError::NotAMember);
        }
        let actor_role = actor.role_in(&mut tx, tenant_id, &self.inner.roles).await?;
        check_membership_change(&self.inner.roles, &actor_role, None, Some(role), 0)?;
        if tx.is_member_by_email(tenant_id, email).await? {
            return Err(AuthError::AlreadyMember);
        }
        tx.close_expired_invitation(tenant_id, email, now).await?;
        let invitation = Invitation {
            id: Uuid::now_v7(),
            tenant_id,
            email: email.as_str().to_owned(),
            role: role.to_owned(),
            invited_by: actor.user_id(),
            expires_at: crate::store::time(now + INVITATION_TTL_SECS * 1000),
        };
        if tx.insert_invitation(&invitation, token, now).await? == Inserted::Duplicate {
            return Err(AuthError::AlreadyInvited);
        }
        let tenant_name = tx.tenant_name(tenant_id).await?;
        tx.commit().await?;
        Ok((invitation, tenant_name))
    }

    /// The open invitations of a tenant, for a member who may manage members.
    pub async fn invitations(&self, caller: Uuid, tenant_id: Uuid) -> Result<Vec<Invitation>> {
        let role = self.inner.store.role_in(caller, tenant_id).await?.ok_or(AuthError::NotAMember)?;
        if !self.inner.roles.has_permission(&role, MANAGE_MEMBERS) {
            return Err(AuthError::InsufficientRole);
        }
        self.inner.store.open_invitations(tenant_id, self.inner.clock.now_ms()).await
    }

    /// Revokes an open invitation: its link stops working. Nobody revokes an
    /// invitation to a role above their own; 404 for an invitation that is
    /// not open (accepted, revoked, expired, or another tenant's).
    #[tracing::instrument(name = "auth.tenants.revoke_invitation", skip_all, fields(user_id = %actor, tenant_id = %tenant_id))]
    pub async fn revoke_invitation(
        &self,
        actor: Uuid,
        tenant_id: Uuid,
        invitation_id: Uuid,
        client: &ClientInfo,
    ) -> Result<()> {
        let actor = Actor::Member(actor);
        let actor_id = actor.take_quota(self, client).await?;
        let now = self.inner.clock.now_ms();
        let mut tx = self.inner.store.begin().await?;
        if !tx.lock_tenant(tenant_id, now).await? {
            return Err(AuthError::NotAMember);
        }
        let actor_role = actor.role_in(&mut tx, tenant_id, &self.inner.roles).await?;
        let invitation = tx.open_invitation(tenant_id, invitation_id, now).await?.ok_or(AuthError::NotFound)?;
        let detail = json!({ "invitation_id": invitation_id, "tenant_id": tenant_id, "role": invitation.role });
        if let Err(error) = check_membership_change(&self.inner.roles, &actor_role, None, Some(&invitation.role), 0) {
            self.record_denied(actor_id, client, AuditEvent::InvitationRevoked.as_str(), detail);
            return Err(error);
        }
        tx.revoke_invitation(invitation_id, now).await?;
        tx.commit().await?;
        self.audit(AuditEvent::InvitationRevoked, actor_id, client, detail).await;
        Ok(())
    }

    /// Accepts an emailed invitation for the caller, whose verified email
    /// must be the invited address; the invitation is consumed in the same
    /// transaction as the membership is written, so concurrent accepts of one
    /// invitation make one membership.
    #[tracing::instrument(name = "auth.tenants.accept_invitation", skip_all, fields(user_id = %caller))]
    pub async fn accept_invitation(&self, caller: Uuid, token: &str, client: &ClientInfo) -> Result<TenantMembership> {
        self.user_quota(crate::ratelimit::UserAction::MemberChange, caller, client).await?;
        let token = OpaqueToken::parse(token).ok_or(AuthError::InvalidOneTimeToken)?;
        let now = self.inner.clock.now_ms();
        let store = &self.inner.store;
        let open = store.invitation_by_token(&token, now).await?.ok_or(AuthError::InvalidOneTimeToken)?;
        let user = store.user(caller).await?.filter(|u| u.is_active).ok_or(AuthError::InvalidToken)?;
        if !user.email_verified() {
            return Err(AuthError::EmailNotVerified);
        }
        if user.email.as_str() != open.email {
            let detail = json!({ "invitation_id": open.id, "tenant_id": open.tenant_id });
            self.record_denied(Some(caller), client, "invitation_accept", detail);
            return Err(AuthError::EmailMismatch);
        }

        let mut tx = store.begin().await?;
        let invitation = tx.consume_invitation(&token, now).await?.ok_or(AuthError::InvalidOneTimeToken)?;
        // An invitation is its inviter's act: it admits only while they may
        // still grant its role (a removed or demoted admin's invitations admit
        // nobody), under the tenant's lock that their membership changes
        // take too. The role set may also have changed since it was written,
        // and the caller's address since it was read.
        tx.lock_tenant(invitation.tenant_id, now).await?;
        let inviter = Actor::of_inviter(invitation.invited_by);
        let may_grant = match inviter.role_in(&mut tx, invitation.tenant_id, &self.inner.roles).await {
            Ok(role) => check_membership_change(&self.inner.roles, &role, None, Some(&invitation.role), 0).is_ok(),
            Err(AuthError::NotAMember) => false,
            Err(error) => return Err(error),
        };
        if !may_grant {
            let detail = json!({ "invitation_id": invitation.id, "tenant_id": invitation.tenant_id, "reason": "inviter_may_no_longer_grant" });
            self.record_denied(Some(caller), client, "invitation_accept", detail);
            return Err(AuthError::InvalidOneTimeToken);
        }
        if tx.email_of(caller).await? != invitation.email {
            return Err(AuthError::EmailMismatch);
        }
        if tx.insert_membership(invitation.tenant_id, caller, &invitation.role, now).await? == Inserted::Duplicate {
            return Err(AuthError::AlreadyMember);
        }
        let tenant_name = tx.tenant_name(invitation.tenant_id).await?;
        tx.commit().await?;
        let detail =
            json!({ "invitation_id": invitation.id, "tenant_id": invitation.tenant_id, "role": invitation.role });
        self.audit(AuditEvent::InvitationAccepted, Some(caller), client, detail).await;
        Ok(TenantMembership { tenant_id: invitation.tenant_id, tenant_name, role: invitation.role })
    }
}
