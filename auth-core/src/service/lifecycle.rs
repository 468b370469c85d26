//! Changing the account's email address, and deleting the account.

use super::{Accounts, Auth, PRUNE_RETENTION_MS, SecondFactor, secs_to_ms};
use crate::{
    audit::{AuditEvent, ClientInfo},
    error::{AuthError, FieldErrors, Result},
    identity::Email,
    ratelimit::{Action, UserAction},
    recovery,
    store::Inserted,
    tokens::{AccessClaims, OpaqueToken},
};
use serde_json::json;

impl Accounts<'_> {
    // ----- email change -----------------------------------------------------

    /// Starts moving the caller's account to `new_email`, confirmed with the
    /// password. Afterwards (the answer is the same either way): a one-time
    /// link goes to the new address, or, when that address has an account, a
    /// notice saying so; and a notice to the current address. Until the link
    /// is used the account keeps its address, which can still reset the
    /// password. A newer request replaces an older one.
    #[tracing::instrument(name = "auth.accounts.request_email_change", skip_all, fields(user_id = %caller.sub))]
    pub async fn request_email_change(
        &self,
        caller: &AccessClaims,
        new_email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        self.user_quota(UserAction::EmailChange, caller.sub, client).await?;
        let new_email = Email::parse("new_email", new_email).map_err(AuthError::Validation)?;
        let user = self.reauthenticate(caller.sub, password, client, "email_change").await?;
        if new_email == user.email {
            return Err(FieldErrors::single("new_email", "this is already the account's address"));
        }
        self.audit(AuditEvent::EmailChangeRequested, Some(user.id), client, json!({})).await;
        let this = Auth::clone(self);
        let session = caller.sid;
        self.detach(async move {
            let config = &this.inner.config;
            if this.inner.store.user_by_email(&new_email).await?.is_some() {
                this.send(&recovery::email_taken_notice(&new_email)).await;
            } else {
                let token = OpaqueToken::generate();
                let now = this.inner.clock.now_ms();
                let expires = now + secs_to_ms(config.tokens.verification_ttl_secs);
                let mut tx = this.inner.store.begin().await?;
                tx.delete_unused_one_time(user.id, crate::store::OneTimePurpose::EmailChange).await?;
                tx.insert_email_change(&token, user.id, &new_email, session, now, expires).await?;
                tx.commit().await?;
                this.send(&recovery::email_change_email(config, &new_email, &token)).await;
            }
            let notice = format!(
                "Someone asked to change the email address of your account to {}. Nothing changes until the \
                 link sent to that address is opened; until then you can still reset your password from here.",
                masked(&new_email)
            );
            this.send(&recovery::security_notice(&user.email, &notice)).await;
            Ok(())
        });
        Ok(())
    }

    /// Confirms an email change with the token mailed to the new address: the
    /// account takes it (verified), every other one-time link of the account
    /// dies (a reset link mailed to the old address included), every session
    /// but the one that asked is revoked, and the old address gets a notice.
    /// Returns the new address; [`AuthError::EmailTaken`] if another account
    /// took it meanwhile.
    #[tracing::instrument(name = "auth.accounts.confirm_email_change", skip_all)]
    pub async fn confirm_email_change(&self, token: &str, client: &ClientInfo) -> Result<Email> {
        self.rate_limit(Action::VerificationResend, client).await?;
        let token = OpaqueToken::parse(token).ok_or(AuthError::InvalidOneTimeToken)?;
        let now = self.inner.clock.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let (user_id, new_email, asking_session) =
            tx.consume_email_change(&token, now).await?.ok_or(AuthError::InvalidOneTimeToken)?;
        let old_email = tx.email_of(user_id).await?;
        if tx.set_email(user_id, &new_email, now).await? == Inserted::Duplicate {
            return Err(AuthError::EmailTaken);
        }
        tx.delete_all_unused_one_time(user_id).await?;
        let revoked = tx.revoke_user_families(user_id, asking_session, "email_changed", now).await?;
        tx.commit().await?;
        self.revoked(revoked);
        self.audit(AuditEvent::EmailChanged, Some(user_id), client, json!({})).await;
        let new_email = stored_email(&new_email)?;
        if let Ok(old_email) = stored_email(&old_email) {
            let notice = format!(
                "The email address of your account was changed to {}, and your other sessions were signed out.",
                masked(&new_email)
            );
            self.send(&recovery::security_notice(&old_email, &notice)).await;
        }
        Ok(new_email)
    }

    // ----- deletion ---------------------------------------------------------

    /// Deletes the caller's account, confirmed with the password, in one
    /// transaction: the user with profile, memberships, identity links,
    /// one-time tokens and sessions, and the tenants it was the only member
    /// of. Refused ([`AuthError::SoleOwner`]) while it is the only owner of a
    /// tenant that has other members. Its audit events stay, without email
    /// or IP. Every session ends at once here and within one revocation poll
    /// on every other instance (the sessions are kept in `deleted_sessions`
    /// for the poll).
    #[tracing::instrument(name = "auth.accounts.delete_account", skip_all, fields(user_id = %caller.sub))]
    pub async fn delete_account(
        &self,
        caller: &AccessClaims,
        password: &str,
        code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        self.user_quota(UserAction::PasswordChange, caller.sub, client).await?;
        let user = self.reauthenticate(caller.sub, password, client, "account_deletion").await?;
        let second_factor = match (self.inner.store.factors(user.id).await?.any(), code) {
            (false, _) => None,
            (true, Some(code)) => Some(SecondFactor::from_code(code)),
            // A session that has just proved a factor (a passkey-only account has no code).
            (true, None) if self.passkeys().fresh_second_factor(caller) => None,
            (true, None) => return Err(FieldErrors::single("code", "required: the account has a second factor")),
        };
        let now = self.inner.clock.now_ms();
        let roles = &self.inner.roles;
        let mut tx = self.inner.store.begin().await?;
        if let Some(factor) = second_factor {
            tx = self.mfa().spend(tx, &user, factor, now, client).await?.0;
        }
        // Locked in id order (as every member change locks its tenant), so no
        // other owner can leave meanwhile.
        let tenants = tx.tenant_ids_of(user.id).await?;
        let mut alone_in = Vec::new();
        for &tenant_id in &tenants {
            tx.lock_tenant(tenant_id, now).await?;
            let members = tx.count_members(tenant_id).await?;
            if members == 1 {
                alone_in.push(tenant_id);
            } else if tx.role_in(user.id, tenant_id).await?.as_deref() == Some(roles.highest())
                && tx.count_role(tenant_id, roles.highest()).await? == 1
            {
                return Err(AuthError::SoleOwner);
            }
        }
        let revoked = tx.revoke_user_families(user.id, None, "account_deleted", now).await?;
        tx.keep_revoked_sessions(user.id, now - PRUNE_RETENTION_MS).await?;
        for tenant_id in alone_in {
            tx.delete_tenant(tenant_id).await?;
        }
        tx.anonymise_audit(user.id, user.email.as_str()).await?;
        tx.delete_user(user.id).await?;
        tx.commit().await?;
        self.revoked(revoked);
        // Recorded after the anonymisation, so it holds neither either.
        self.audit(AuditEvent::AccountDeleted, Some(user.id), &ClientInfo::default(), json!({})).await;
        Ok(())
    }
}

/// `a***@example.com`: enough for the owner to recognise an address in a
/// notice, not enough to learn it from a stolen mailbox.
fn masked(email: &Email) -> String {
    let (local, domain) = email.as_str().rsplit_once('@').unwrap_or((email.as_str(), ""));
    let first: String = local.chars().take(1).collect();
    format!("{first}***@{domain}")
}

/// An address as the store holds it (normalised when it was written).
fn stored_email(email: &str) -> Result<Email> {
    Email::parse("email", email).map_err(|_| AuthError::internal("a stored email address does not parse"))
}
