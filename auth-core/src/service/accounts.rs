//! Registration, login, the account, and recovery by email.

use serde_json::json;
use uuid::Uuid;

use super::{Account, Accounts, Auth, secs_to_ms};
use crate::{
    audit::{AuditEvent, ClientInfo},
    config::MAX_PASSWORD_BYTES,
    contract::AccountExport,
    error::{AuthError, FieldErrors, Result},
    identity::{Email, Profile, ProfileUpdate, Registration, User},
    password::Verification,
    ratelimit::{Action, UserAction},
    recovery,
    store::{Inserted, OneTimePurpose, Transaction},
    tokens::{AccessClaims, OpaqueToken},
};

impl Accounts<'_> {
    // ----- registration ------------------------------------------------------

    /// Registers a user and their profile in one transaction and emails a
    /// verification link. Every invalid field is reported at once.
    #[tracing::instrument(name = "auth.accounts.register", skip_all)]
    pub async fn register(&self, registration: &Registration, client: &ClientInfo) -> Result<(User, Profile)> {
        self.rate_limit(Action::Register, client).await?;
        let mut errors = FieldErrors::new();
        let email = Email::parse("email", &registration.email).map_err(|e| errors.merge(e)).ok();
        let profile =
            Profile::new(&registration.full_name, registration.phone.as_deref()).map_err(|e| errors.merge(e)).ok();
        let mut context = vec![registration.full_name.as_str()];
        if let Some(email) = &email {
            context.extend([email.as_str(), email.local_part()]);
        }
        errors.merge(self.inner.passwords.check_policy("password", registration.password.expose(), &context));
        let (Some(email), Some(profile), true) = (email, profile, errors.is_empty()) else {
            return Err(AuthError::Validation(errors));
        };

        let password_hash = self.inner.passwords.hash(registration.password.expose()).await?;
        let user = User {
            id: Uuid::now_v7(),
            email,
            is_active: true,
            is_staff: false,
            is_superuser: false,
            email_verified_at: None,
            date_joined: self.now(),
            last_login: None,
        };
        self.insert_account(&user, &password_hash, &profile).await?;
        self.audit(AuditEvent::Registered, Some(user.id), client, json!({})).await;
        self.send_verification(&user, client).await?;
        Ok((user, profile))
    }

    /// Inserts a user and their profile in one transaction; a taken email is
    /// [`AuthError::EmailTaken`] and leaves nothing behind.
    pub(super) async fn insert_account(&self, user: &User, password_hash: &str, profile: &Profile) -> Result<()> {
        let mut tx = self.inner.store.begin().await?;
        if tx.insert_user(user, Some(password_hash)).await? == Inserted::Duplicate {
            return Err(AuthError::EmailTaken);
        }
        tx.insert_profile(user.id, profile).await?;
        tx.commit().await
    }

    // ----- the account ----------------------------------------------------

    pub async fn account(&self, user_id: Uuid) -> Result<Account> {
        let store = &self.inner.store;
        let user = store.user(user_id).await?.ok_or(AuthError::InvalidToken)?;
        let profile = store.profile(user_id).await?.ok_or(AuthError::NotFound)?;
        let memberships = store.tenants_of(user_id).await?;
        Ok(Account { user, profile, memberships })
    }

    /// Everything held about the caller, for `GET /me/export`: the account
    /// with profile and memberships, sessions, identity links, second factors
    /// and the caller's own audit events; nothing secret, no hash.
    pub async fn export(&self, caller: &AccessClaims) -> Result<AccountExport> {
        let account = self.account(caller.sub).await?.into();
        let sessions = self.sessions().list(caller).await?;
        let identity_links = self.inner.store.identity_links(caller.sub).await?;
        let audit_events = self.inner.store.audit_events(Some(caller.sub), i64::MAX).await?;
        let mfa_methods = self.inner.store.factors(caller.sub).await?.methods();
        let passkeys = self.passkeys().list_stored(caller.sub).await?;
        Ok(AccountExport { account, sessions, identity_links, mfa_methods, passkeys, audit_events })
    }

    #[tracing::instrument(name = "auth.accounts.update_profile", skip_all, fields(user_id = %user_id))]
    pub async fn update_profile(&self, user_id: Uuid, update: &ProfileUpdate, client: &ClientInfo) -> Result<Profile> {
        self.user_quota(UserAction::ProfileUpdate, user_id, client).await?;
        let current = self.inner.store.profile(user_id).await?.ok_or(AuthError::NotFound)?;
        let profile = current.apply(update).map_err(AuthError::Validation)?;
        self.inner.store.update_profile(user_id, &profile).await?;
        Ok(profile)
    }

    /// Changes the caller's password and revokes every other session.
    ///
    /// A guess at the current password is a login attempt: within the
    /// per-user `rate_limits.password_change` quota, refused while the login
    /// back-off locks the client's address out of the account (before any
    /// hashing), and a wrong one counts as a failed login of the account.
    #[tracing::instrument(name = "auth.accounts.change_password", skip_all, fields(user_id = %caller.sub))]
    pub async fn change_password(
        &self,
        caller: &AccessClaims,
        current_password: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        self.user_quota(UserAction::PasswordChange, caller.sub, client).await?;
        let user = match self.reauthenticate(caller.sub, current_password, client, "password_change").await {
            Err(AuthError::ReauthenticationFailed) => return Err(AuthError::WrongPassword),
            other => other?,
        };
        self.check_new_password(&user, new_password).await?;
        let new_hash = self.inner.passwords.hash(new_password).await?;
        let now = self.inner.clock.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let revoked = replace_password(&mut tx, user.id, &new_hash, now, Some(caller.sid), "password_change").await?;
        tx.commit().await?;
        self.revoked(revoked);
        self.audit(AuditEvent::PasswordChanged, Some(user.id), client, json!({})).await;
        Ok(())
    }

    /// Checks a password re-entered to confirm a change. It is a login
    /// attempt: refused while the login back-off locks the client's address
    /// out of the account (before any hashing), and a wrong one counts as a
    /// failed login of the account, audited with `reason`
    /// ([`AuthError::ReauthenticationFailed`]).
    pub(super) async fn reauthenticate(
        &self,
        user_id: Uuid,
        password: &str,
        client: &ClientInfo,
        reason: &str,
    ) -> Result<User> {
        let (user, hash) = self.inner.store.user_with_password(user_id).await?.ok_or(AuthError::InvalidToken)?;
        self.check_login_lock(&user.email, client).await?;
        if password.len() > MAX_PASSWORD_BYTES
            || self.inner.passwords.verify(password, hash.as_deref()).await? == Verification::Invalid
        {
            self.audit(AuditEvent::LoginFailed, Some(user.id), client, json!({ "reason": reason })).await;
            self.login_failed(&user.email, client).await?;
            return Err(AuthError::ReauthenticationFailed);
        }
        self.login_succeeded(&user.email, client).await;
        Ok(user)
    }

    async fn check_new_password(&self, user: &User, password: &str) -> Result<()> {
        let email = &user.email;
        let mut context = vec![email.as_str(), email.local_part()];
        let profile = self.inner.store.profile(user.id).await?;
        if let Some(profile) = &profile {
            context.push(&profile.full_name);
        }
        self.inner.passwords.check_policy("new_password", password, &context).into_result()
    }

    // ----- recovery -------------------------------------------------------

    async fn send_verification(&self, user: &User, client: &ClientInfo) -> Result<()> {
        let token = OpaqueToken::generate();
        let now = self.inner.clock.now_ms();
        let expires = now + secs_to_ms(self.inner.config.tokens.verification_ttl_secs);
        self.issue_one_time(&token, OneTimePurpose::EmailVerification, user.id, now, expires).await?;
        self.send(&recovery::verification_email(&self.inner.config, &user.email, &token)).await;
        self.audit(AuditEvent::VerificationSent, Some(user.id), client, json!({})).await;
        Ok(())
    }

    /// Consumes an emailed verification token and marks the email verified.
    #[tracing::instrument(name = "auth.accounts.verify_email", skip_all)]
    pub async fn verify_email(&self, token: &str, client: &ClientInfo) -> Result<()> {
        self.rate_limit(Action::VerificationResend, client).await?;
        let token = OpaqueToken::parse(token).ok_or(AuthError::InvalidOneTimeToken)?;
        let now = self.inner.clock.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let user_id = tx
            .consume_one_time(&token, OneTimePurpose::EmailVerification, now)
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)?;
        tx.mark_email_verified(user_id, now).await?;
        tx.commit().await?;
        self.audit(AuditEvent::EmailVerified, Some(user_id), client, json!({})).await;
        Ok(())
    }

    /// Emails a new verification link if `email` belongs to an active,
    /// unverified account, at most `rate_limits.verification_resend_per_account`
    /// times per window. Answers the same, at once, in every case.
    #[tracing::instrument(name = "auth.accounts.resend_verification", skip_all)]
    pub async fn resend_verification(&self, email: &str, client: &ClientInfo) -> Result<()> {
        self.rate_limit(Action::VerificationResend, client).await?;
        self.detach_email_link(Action::VerificationResend, email, client, |this, user, client| async move {
            if !user.email_verified() {
                this.accounts().send_verification(&user, &client).await?;
            }
            Ok(())
        })
    }

    /// Emails a password-reset link if `email` belongs to an active account,
    /// at most `rate_limits.password_reset_per_account` times per window.
    /// Answers the same, at once, in every case.
    #[tracing::instrument(name = "auth.accounts.request_password_reset", skip_all)]
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) -> Result<()> {
        self.rate_limit(Action::PasswordReset, client).await?;
        self.detach_email_link(Action::PasswordReset, email, client, |this, user, client| async move {
            let token = this.accounts().issue_reset_token(user.id).await?;
            this.send(&recovery::reset_email(&this.inner.config, &user.email, &token)).await;
            this.audit(AuditEvent::PasswordResetRequested, Some(user.id), &client, json!({})).await;
            Ok(())
        })
    }

    /// A new password-reset token of `user_id`, valid `reset_ttl_secs` (the
    /// emailed reset link, and the link of a new-device notice).
    pub(crate) async fn issue_reset_token(&self, user_id: Uuid) -> Result<OpaqueToken> {
        let token = OpaqueToken::generate();
        let now = self.inner.clock.now_ms();
        let expires = now + secs_to_ms(self.inner.config.tokens.reset_ttl_secs);
        self.issue_one_time(&token, OneTimePurpose::PasswordReset, user_id, now, expires).await?;
        Ok(token)
    }

    /// Stores a new one-time token for `user_id`, replacing any unused one of
    /// the same purpose in the same transaction, so only the latest emailed link works.
    pub(crate) async fn issue_one_time(
        &self,
        token: &OpaqueToken,
        purpose: OneTimePurpose,
        user_id: Uuid,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        let mut tx = self.inner.store.begin().await?;
        tx.delete_unused_one_time(user_id, purpose).await?;
        tx.insert_one_time(token, purpose, user_id, now, expires_at).await?;
        tx.commit().await
    }

    /// What every "email me a link" request shares: the caller is answered at
    /// once, the same whether or not the account exists; afterwards, within
    /// the per-account quota of `action`, `send` runs for the active account
    /// of `email`, if there is one.
    fn detach_email_link<F, Fut>(&self, action: Action, email: &str, client: &ClientInfo, send: F) -> Result<()>
    where
        F: FnOnce(Auth, User, ClientInfo) -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let email = Email::parse("email", email).map_err(AuthError::Validation)?;
        let this = Auth::clone(self);
        let client = client.clone();
        self.detach(async move {
            if !this.account_quota_allows(action, &email, &client).await? {
                return Ok(());
            }
            match this.inner.store.user_by_email(&email).await? {
                Some((user, _)) if user.is_active => send(this, user, client).await,
                _ => Ok(()),
            }
        });
        Ok(())
    }

    /// Sets a new password with an emailed reset token and revokes every session.
    #[tracing::instrument(name = "auth.accounts.confirm_password_reset", skip_all)]
    pub async fn confirm_password_reset(&self, token: &str, new_password: &str, client: &ClientInfo) -> Result<()> {
        self.rate_limit(Action::ResetConfirm, client).await?;
        let token = OpaqueToken::parse(token).ok_or(AuthError::InvalidOneTimeToken)?;
        let store = &self.inner.store;
        let owner = store
            .one_time_owner(&token, OneTimePurpose::PasswordReset, self.inner.clock.now_ms())
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)?;
        let user = store.user(owner).await?.ok_or(AuthError::InvalidOneTimeToken)?;
        self.check_new_password(&user, new_password).await?;
        let hash = self.inner.passwords.hash(new_password).await?;
        // Consumed now, in the same transaction as the password change: a
        // concurrent use or an interleaved password change makes this fail.
        let now = self.inner.clock.now_ms();
        let mut tx = store.begin().await?;
        let user_id = tx
            .consume_one_time(&token, OneTimePurpose::PasswordReset, now)
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)?;
        let revoked = replace_password(&mut tx, user_id, &hash, now, None, "password_reset").await?;
        tx.commit().await?;
        self.revoked(revoked);
        self.audit(AuditEvent::PasswordReset, Some(user_id), client, json!({})).await;
        Ok(())
    }
}

/// A password change, in transaction `tx`: the new hash, every unused reset
/// and email-change token of the user deleted (a link mailed before no longer
/// works: a change asked for with the old password dies with it), and the
/// user's sessions except `keep` revoked. Returns the revoked session ids.
async fn replace_password(
    tx: &mut Transaction,
    user_id: Uuid,
    password_hash: &str,
    now: i64,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<Vec<Uuid>> {
    tx.set_password_hash(user_id, password_hash, now).await?;
    tx.delete_unused_one_time(user_id, OneTimePurpose::PasswordReset).await?;
    tx.delete_unused_one_time(user_id, OneTimePurpose::EmailChange).await?;
    // A login waiting for its second factor passed the old password.
    tx.end_mfa_logins(user_id, now).await?;
    tx.revoke_user_families(user_id, keep, reason, now).await
}
