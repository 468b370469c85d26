//! Registration, login, the account, and recovery by email.

use serde_json::json;
use uuid::Uuid;

use super::{Account, Auth, secs_to_ms};
use crate::{
    audit::{AuditEvent, ClientInfo},
    config::MAX_PASSWORD_BYTES,
    error::{AuthError, FieldErrors, Result},
    identity::{Email, Profile, ProfileUpdate, Registration, User},
    password::Verification,
    ratelimit::{Action, UserAction},
    recovery,
    store::OneTimePurpose,
    tokens::{AccessClaims, OpaqueToken},
};

impl Auth {
    // ----- registration ------------------------------------------------------

    /// Registers a user and their profile in one transaction and emails a
    /// verification link. Every invalid field is reported at once.
    pub async fn register(&self, registration: &Registration, client: &ClientInfo) -> Result<(User, Profile)> {
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
        self.inner.store.insert_user(&user, Some(&password_hash), &profile).await?;
        self.audit(AuditEvent::Registered, Some(user.id), client, json!({})).await;
        self.send_verification(&user, client).await?;
        Ok((user, profile))
    }

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
        self.inner.store.insert_user(&user, Some(&password_hash), &profile).await?;
        self.audit(AuditEvent::SuperuserCreated, Some(user.id), &ClientInfo::default(), json!({})).await;
        Ok(user)
    }

    // ----- the account ----------------------------------------------------

    pub async fn account(&self, user_id: Uuid) -> Result<Account> {
        let store = &self.inner.store;
        let user = store.user(user_id).await?.ok_or(AuthError::InvalidToken)?;
        let profile = store.profile(user_id).await?.ok_or(AuthError::NotFound)?;
        let memberships = store.tenants_of(user_id).await?;
        Ok(Account { user, profile, memberships })
    }

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
    pub async fn change_password(
        &self,
        caller: &AccessClaims,
        current_password: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        self.user_quota(UserAction::PasswordChange, caller.sub, client).await?;
        let (user, hash) = self.inner.store.user_with_password(caller.sub).await?.ok_or(AuthError::InvalidToken)?;
        self.check_login_lock(&user.email, client).await?;
        if current_password.len() > MAX_PASSWORD_BYTES
            || self.inner.passwords.verify(current_password, hash.as_deref()).await? == Verification::Invalid
        {
            let detail = json!({ "reason": "password_change" });
            self.audit(AuditEvent::LoginFailed, Some(user.id), client, detail).await;
            self.login_failed(&user.email, client).await?;
            return Err(AuthError::WrongPassword);
        }
        self.login_succeeded(&user.email, client).await;
        self.check_new_password(&user, new_password).await?;
        let new_hash = self.inner.passwords.hash(new_password).await?;
        let now = self.inner.clock.now_ms();
        let revoked =
            self.inner.store.set_password(user.id, &new_hash, now, Some(caller.sid), "password_change").await?;
        self.revoked(revoked);
        self.audit(AuditEvent::PasswordChanged, Some(user.id), client, json!({})).await;
        Ok(())
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

    /// Deactivates or reactivates a user; deactivation ends every session at once.
    pub async fn set_user_active(&self, user_id: Uuid, active: bool, client: &ClientInfo) -> Result<()> {
        let revoked = self.inner.store.set_active(user_id, active, self.inner.clock.now_ms()).await?;
        self.revoked(revoked);
        let event = if active { AuditEvent::UserActivated } else { AuditEvent::UserDeactivated };
        self.audit(event, Some(user_id), client, json!({})).await;
        Ok(())
    }

    // ----- recovery -------------------------------------------------------

    async fn send_verification(&self, user: &User, client: &ClientInfo) -> Result<()> {
        let token = OpaqueToken::generate();
        let now = self.inner.clock.now_ms();
        let expires = now + secs_to_ms(self.inner.config.tokens.verification_ttl_secs);
        let store = &self.inner.store;
        store.issue_one_time(&token, OneTimePurpose::EmailVerification, user.id, now, expires).await?;
        self.send(&recovery::verification_email(&self.inner.config, &user.email, &token)).await;
        self.audit(AuditEvent::VerificationSent, Some(user.id), client, json!({})).await;
        Ok(())
    }

    /// Consumes an emailed verification token and marks the email verified.
    pub async fn verify_email(&self, token: &str, client: &ClientInfo) -> Result<()> {
        let token = OpaqueToken::parse(token).ok_or(AuthError::InvalidOneTimeToken)?;
        let user_id = self
            .inner
            .store
            .verify_email(&token, self.inner.clock.now_ms())
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)?;
        self.audit(AuditEvent::EmailVerified, Some(user_id), client, json!({})).await;
        Ok(())
    }

    /// Emails a new verification link if `email` belongs to an active,
    /// unverified account, at most `rate_limits.verification_resend_per_account`
    /// times per window. Answers the same, at once, in every case.
    pub async fn resend_verification(&self, email: &str, client: &ClientInfo) -> Result<()> {
        self.detach_email_link(Action::VerificationResend, email, client, |this, user, client| async move {
            if !user.email_verified() {
                this.send_verification(&user, &client).await?;
            }
            Ok(())
        })
    }

    /// Emails a password-reset link if `email` belongs to an active account,
    /// at most `rate_limits.password_reset_per_account` times per window.
    /// Answers the same, at once, in every case.
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) -> Result<()> {
        self.detach_email_link(Action::PasswordReset, email, client, |this, user, client| async move {
            let token = OpaqueToken::generate();
            let now = this.inner.clock.now_ms();
            let expires = now + secs_to_ms(this.inner.config.tokens.reset_ttl_secs);
            this.inner.store.issue_one_time(&token, OneTimePurpose::PasswordReset, user.id, now, expires).await?;
            this.send(&recovery::reset_email(&this.inner.config, &user.email, &token)).await;
            this.audit(AuditEvent::PasswordResetRequested, Some(user.id), &client, json!({})).await;
            Ok(())
        })
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
        let this = self.clone();
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
    pub async fn confirm_password_reset(&self, token: &str, new_password: &str, client: &ClientInfo) -> Result<()> {
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
        let (user_id, revoked) = store
            .reset_password(&token, &hash, self.inner.clock.now_ms())
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)?;
        self.revoked(revoked);
        self.audit(AuditEvent::PasswordReset, Some(user_id), client, json!({})).await;
        Ok(())
    }
}
