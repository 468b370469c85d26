//! Sign-in with OpenID Connect providers (see [`crate::oauth`]): starting it,
//! finishing it, and the account linking rules.

use serde_json::json;
use uuid::Uuid;

use super::{OAuth, secs_to_ms};
use crate::{
    TokenPair,
    audit::{AuditEvent, ClientInfo},
    error::{AuthError, FieldErrors, Result},
    identity::{Email, Profile, User},
    oauth::{
        AccountOrigin, Failure, Identity, LinkTarget, OAuthCallback, OAuthDone, OAuthLinked, OAuthLogin, OAuthStart,
        PendingLogin, Provider, SignInAnswer, StateCookie, redirect_with,
    },
    ratelimit::Action,
    recovery,
    secret::Secret,
    store::{Inserted, OneTimePurpose, Transaction},
    tokens::{AccessClaims, AuthMethod, OpaqueToken},
};

/// A provider's `error` parameter is kept in the audit trail up to this length.
const MAX_PROVIDER_ERROR_LEN: usize = 64;
/// The code in `success_redirect` is refused after this long: the app
/// exchanges it as soon as the browser lands.
pub const EXCHANGE_CODE_TTL_SECS: i64 = 60;
/// The app's `app_state` is at most this long (URL-safe characters).
const MAX_APP_STATE_LEN: usize = 128;

impl OAuth<'_> {
    /// The names of the configured providers.
    pub fn providers(&self) -> Vec<&str> {
        self.inner.oauth.names().collect()
    }

    fn oauth_provider(&self, name: &str) -> Result<&Provider> {
        self.inner.oauth.get(name).ok_or(AuthError::NotFound)
    }

    /// Starts a sign-in with `provider`: the URL to redirect the browser to
    /// (code flow with `state`, `nonce` and PKCE S256) and the cookie that
    /// binds it to this browser. `login_hint` is passed on to the provider;
    /// `app_state` (the app's own random value, 1 to 128 URL-safe characters)
    /// comes back in the `success_redirect` fragment, for the app to check
    /// that it started this sign-in (login CSRF). An unknown provider is
    /// [`AuthError::NotFound`]; an unreachable one (discovery failed)
    /// [`AuthError::Unavailable`].
    #[tracing::instrument(name = "auth.oauth.authorize", skip_all, fields(provider))]
    pub async fn authorize(
        &self,
        provider: &str,
        login_hint: Option<&str>,
        app_state: Option<&str>,
    ) -> Result<OAuthStart> {
        let provider = self.oauth_provider(provider)?;
        let app_state = app_state.map(checked_app_state).transpose()?;
        self.oauth_start(provider, login_hint, None, app_state).await
    }

    /// Starts a deliberate link of `provider` to the caller's account: as
    /// [`OAuth::authorize`], with the caller's user and session sealed
    /// into the cookie. The callback then links the identity to that user
    /// (while that session lives) and signs nobody in. A caller who already
    /// has a link for this provider is [`AuthError::AlreadyLinked`].
    #[tracing::instrument(name = "auth.oauth.link_start", skip_all, fields(user_id = %caller.sub, provider))]
    pub async fn link_start(&self, provider: &str, caller: &AccessClaims) -> Result<OAuthStart> {
        let provider = self.oauth_provider(provider)?;
        let links = self.inner.store.identity_links(caller.sub).await?;
        if links.iter().any(|link| link.issuer == provider.issuer()) {
            return Err(AuthError::AlreadyLinked);
        }
        let target = LinkTarget { user_id: caller.sub, session_id: caller.sid };
        self.oauth_start(provider, None, Some(target), None).await
    }

    async fn oauth_start(
        &self,
        provider: &Provider,
        login_hint: Option<&str>,
        link: Option<LinkTarget>,
        app_state: Option<String>,
    ) -> Result<OAuthStart> {
        let now = self.inner.clock.now_ms();
        let (location, sealed) = provider.start(login_hint, link, app_state, now).await.map_err(|f| f.error())?;
        let cookie = StateCookie::new(provider, sealed, crate::oauth::STATE_TTL_SECS);
        Ok(OAuthStart { location, cookie })
    }

    /// The cookie that removes a pending sign-in with `provider`: the web
    /// layer sets it on every callback answer, so a state is used once.
    pub fn clear_cookie(&self, provider: &str) -> Option<StateCookie> {
        let provider = self.inner.oauth.get(provider)?;
        Some(StateCookie::new(provider, Secret::default(), 0))
    }

    /// Finishes a sign-in: checks the state against `state_cookie`, exchanges
    /// the code, validates the id_token, finds or links or creates the
    /// account, and starts a session exactly as a password login does (or,
    /// with `success_redirect`, issues the one-time code that starts it).
    /// For a flow started by [`OAuth::link_start`], links the identity
    /// to the user sealed in the cookie instead.
    ///
    /// A bad or missing state, a refused code, an invalid id_token:
    /// [`AuthError::OAuthFailed`] (400). An unverified provider email (with or
    /// without a local account of that address): [`AuthError::EmailNotVerified`]
    /// (403), and nothing is linked. An email outside `allowed_email_domains`:
    /// [`AuthError::EmailDomainNotAllowed`] (403). A verified email of an
    /// existing account from a provider without `trust_email`:
    /// [`AuthError::AccountExists`] (403). Each refusal is audited.
    #[tracing::instrument(name = "auth.oauth.callback", skip_all, fields(provider))]
    pub async fn callback(
        &self,
        provider: &str,
        callback: &OAuthCallback<'_>,
        state_cookie: Option<&str>,
        client: &ClientInfo,
    ) -> Result<OAuthDone> {
        self.rate_limit(Action::Login, client).await?;
        let provider = self.oauth_provider(provider)?;
        let (identity, pending) = match self.oauth_identity(provider, callback, state_cookie).await {
            Ok(found) => found,
            Err(failure) => {
                let detail = json!({ "detail": failure.detail });
                self.oauth_refused(provider, None, failure.reason, detail, client).await;
                return Err(failure.error());
            }
        };
        if let Some(target) = pending.link {
            return self.oauth_link_deliberately(provider, &identity, target, client).await.map(OAuthDone::Linked);
        }
        for _ in 0..3 {
            if let Some(login) = self.oauth_sign_in(provider, &identity, pending.app_state.as_deref(), client).await? {
                return Ok(OAuthDone::SignedIn(login));
            }
        }
        // Three races in a row with concurrent sign-ins: let the client retry.
        Err(AuthError::Unavailable)
    }

    /// Trades the one-time code of a `success_redirect` for a session: the
    /// platform's tokens, as after a password login. An unknown, used or
    /// expired code is [`AuthError::InvalidOneTimeToken`] (400); the session
    /// is created here, so a code that is never exchanged leaves none.
    #[tracing::instrument(name = "auth.oauth.exchange", skip_all)]
    pub async fn exchange(&self, code: &str, client: &ClientInfo) -> Result<TokenPair> {
        self.rate_limit(Action::Login, client).await?;
        let code = OpaqueToken::parse(code).ok_or(AuthError::InvalidOneTimeToken)?;
        let store = &self.inner.store;
        let now = self.inner.clock.now_ms();
        let user_id = store
            .consume_one_time(&code, OneTimePurpose::OAuthExchange, now)
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)?;
        let user = store.user(user_id).await?.ok_or(AuthError::InvalidOneTimeToken)?;
        if !user.is_active {
            return Err(AuthError::AccountDisabled);
        }
        self.oauth_session(&user, json!({ "method": "oauth", "via": "exchange_code" }), client).await
    }

    /// The identity a valid callback proves, and the pending flow it finishes.
    async fn oauth_identity(
        &self,
        provider: &Provider,
        callback: &OAuthCallback<'_>,
        state_cookie: Option<&str>,
    ) -> Result<(Identity, PendingLogin), Failure> {
        let cookie = state_cookie.filter(|c| !c.is_empty()).ok_or_else(|| Failure::invalid("missing_state_cookie"))?;
        let pending = provider.open_state(cookie).ok_or_else(|| Failure::invalid("invalid_state_cookie"))?;
        if pending.expires_at <= self.inner.clock.now_ms() {
            return Err(Failure::invalid("state_expired"));
        }
        if !callback.state.is_some_and(|state| pending.state_matches(state)) {
            return Err(Failure::invalid("state_mismatch"));
        }
        if let Some(error) = callback.error {
            let error: String =
                error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(MAX_PROVIDER_ERROR_LEN).collect();
            return Err(Failure::detailed("provider_error", error));
        }
        // RFC 9207: a provider that names itself must be the one we sent the browser to.
        if callback.iss.is_some_and(|iss| iss != provider.issuer()) {
            return Err(Failure::invalid("redirect_issuer_mismatch"));
        }
        let code = callback.code.ok_or_else(|| Failure::invalid("missing_code"))?;
        let leeway = chrono::Duration::seconds(i64::try_from(self.inner.config.tokens.leeway_secs).unwrap_or(0));
        let identity = provider.finish(code, &pending, self.now(), leeway).await?;
        Ok((identity, pending))
    }

    /// Finds, links or creates the account of `identity` and starts a
    /// session (or issues the code of `success_redirect`); `None` when a
    /// concurrent sign-in won a race (try again).
    async fn oauth_sign_in(
        &self,
        provider: &Provider,
        identity: &Identity,
        app_state: Option<&str>,
        client: &ClientInfo,
    ) -> Result<Option<OAuthLogin>> {
        let store = &self.inner.store;
        let (user_id, origin) = match store.identity_link(&identity.issuer, &identity.subject).await? {
            Some(user_id) => (user_id, AccountOrigin::Linked),
            None => match self.oauth_link(provider, identity, client).await? {
                Some(found) => found,
                None => return Ok(None),
            },
        };
        let Some(user) = store.user(user_id).await? else { return Ok(None) };
        if !user.is_active {
            self.oauth_refused(provider, Some(user.id), "inactive", json!({}), client).await;
            return Err(AuthError::AccountDisabled);
        }
        let answer = match provider.settings().success_redirect.as_deref() {
            Some(target) => {
                SignInAnswer::Redirect(Secret::new(self.oauth_exchange_code(&user, target, app_state).await?))
            }
            None => {
                let detail = json!({ "method": "oauth", "provider": provider.name(), "origin": origin });
                SignInAnswer::Tokens(self.oauth_session(&user, detail, client).await?)
            }
        };
        Ok(Some(OAuthLogin { user_id: user.id, origin, answer }))
    }

    /// Starts a session for a provider sign-in, audited with `detail`; for
    /// an account with a second factor, the provider was the first step
    /// ([`AuthError::SecondFactorRequired`], finished at `POST /login/mfa`).
    async fn oauth_session(&self, user: &User, detail: serde_json::Value, client: &ClientInfo) -> Result<TokenPair> {
        let now = self.inner.clock.now_ms();
        self.inner.store.record_login(user.id, now, None).await?;
        let factors = self.inner.store.factors(user.id).await?;
        if factors.any() {
            let sessions = self.sessions();
            return Err(sessions.await_second_factor(user, None, AuthMethod::Federated, &factors, client).await?);
        }
        let tokens = self.start_session(user, None, &[AuthMethod::Federated], client).await?;
        self.audit(AuditEvent::LoginSucceeded, Some(user.id), client, detail).await;
        Ok(tokens)
    }

    /// `target` with a fresh one-time code for `user` (and the app's state)
    /// in its fragment; only the code's hash is stored.
    async fn oauth_exchange_code(&self, user: &User, target: &str, app_state: Option<&str>) -> Result<String> {
        let code = OpaqueToken::generate();
        let now = self.inner.clock.now_ms();
        let expires = now + EXCHANGE_CODE_TTL_SECS * 1000;
        self.inner.store.add_one_time(&code, OneTimePurpose::OAuthExchange, user.id, now, expires).await?;
        let mut fields = vec![("code", code.as_str())];
        fields.extend(app_state.map(|state| ("app_state", state)));
        Ok(redirect_with(target, &fields))
    }

    /// The linking rules for an identity without a link. `None`: raced.
    async fn oauth_link(
        &self,
        provider: &Provider,
        identity: &Identity,
        client: &ClientInfo,
    ) -> Result<Option<(Uuid, AccountOrigin)>> {
        let Some(email) = identity.email.as_deref().and_then(|email| Email::parse("email", email).ok()) else {
            self.oauth_refused(provider, None, "no_usable_email", json!({}), client).await;
            return Err(AuthError::EmailNotVerified);
        };
        if !provider.settings().allows_domain(domain_of(&email)) {
            self.oauth_refused(provider, None, "email_domain_not_allowed", json!({ "email": email }), client).await;
            return Err(AuthError::EmailDomainNotAllowed);
        }
        let store = &self.inner.store;
        if !identity.email_verified {
            // Never linked, never created: an unverified address proves nothing.
            let existing = store.user_by_email(&email).await?.map(|(user, _)| user.id);
            let reason = if existing.is_some() { "unverified_email_collision" } else { "unverified_email" };
            self.oauth_refused(provider, existing, reason, json!({ "email": email }), client).await;
            return Err(AuthError::EmailNotVerified);
        }
        let now = self.now();
        let new_user = User {
            id: Uuid::now_v7(),
            email: email.clone(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            email_verified_at: Some(now),
            date_joined: now,
            last_login: None,
        };
        let profile = profile_of(identity, &email);
        let verified = VerifiedIdentity {
            issuer: &identity.issuer,
            subject: &identity.subject,
            email: &email,
            now: now.timestamp_millis(),
        };
        let trusted = provider.settings().trusts_email();
        let mut tx = store.begin().await?;
        let (user_id, outcome) = link_identity(&mut tx, &verified, trusted, &new_user, &profile).await?;
        // After a lost race the transaction is rolled back (dropped): on
        // PostgreSQL it is aborted anyway.
        if outcome != LinkOutcome::Raced {
            tx.commit().await?;
        }
        let origin = match outcome {
            LinkOutcome::Raced => return Ok(None),
            LinkOutcome::Created => {
                let detail = json!({ "method": "oauth", "provider": provider.name() });
                self.audit(AuditEvent::Registered, Some(user_id), client, detail).await;
                AccountOrigin::Created
            }
            LinkOutcome::Linked { password_wiped, revoked } => {
                self.revoked(revoked);
                let detail = json!({
                    "provider": provider.name(),
                    "issuer": identity.issuer,
                    "subject": identity.subject,
                    "email": email,
                    "password_wiped": password_wiped,
                });
                self.audit(AuditEvent::IdentityLinked, Some(user_id), client, detail).await;
                self.send(&link_notice(provider.name(), &email, password_wiped)).await;
                AccountOrigin::NewlyLinked
            }
            LinkOutcome::Refused(refusal) => {
                let (reason, error) = match refusal {
                    LinkRefusal::Inactive => ("inactive", AuthError::AccountDisabled),
                    LinkRefusal::Privileged => ("privileged_account_not_linked", AuthError::Forbidden),
                    LinkRefusal::OtherIdentity => ("linked_to_another_identity", AuthError::Forbidden),
                    LinkRefusal::AccountExists => ("account_exists_untrusted_provider", AuthError::AccountExists),
                };
                self.oauth_refused(provider, Some(user_id), reason, json!({ "email": email }), client).await;
                return Err(error);
            }
        };
        Ok(Some((user_id, origin)))
    }

    /// A signed-in user's deliberate link of `identity` (see
    /// [`OAuth::link_start`]): refused once the session that asked has
    /// ended, for a deactivated account, an email outside a non-empty
    /// `allowed_email_domains`, or an identity or provider slot already taken.
    async fn oauth_link_deliberately(
        &self,
        provider: &Provider,
        identity: &Identity,
        target: LinkTarget,
        client: &ClientInfo,
    ) -> Result<OAuthLinked> {
        let store = &self.inner.store;
        let user_id = target.user_id;
        let now = self.inner.clock.now_ms();
        let idle = secs_to_ms(self.inner.config.tokens.refresh_idle_ttl_secs);
        let session = store.family(target.session_id).await?;
        if !session.is_some_and(|s| s.user_id == user_id && s.is_live(now, idle)) {
            self.oauth_refused(provider, Some(user_id), "link_session_ended", json!({}), client).await;
            return Err(AuthError::OAuthFailed);
        }
        let Some(user) = store.user(user_id).await?.filter(|user| user.is_active) else {
            self.oauth_refused(provider, Some(user_id), "inactive", json!({}), client).await;
            return Err(AuthError::AccountDisabled);
        };
        // The address matters only where the provider's accounts are restricted to some domains.
        let email = identity.email.as_deref().filter(|_| identity.email_verified);
        let email = email.and_then(|email| Email::parse("email", email).ok());
        let settings = provider.settings();
        if !settings.allowed_email_domains.is_empty()
            && !email.as_ref().is_some_and(|email| settings.allows_domain(domain_of(email)))
        {
            self.oauth_refused(provider, Some(user_id), "email_domain_not_allowed", json!({ "email": email }), client)
                .await;
            return Err(AuthError::EmailDomainNotAllowed);
        }
        let email_text = email.as_ref().map_or("", Email::as_str);
        let detail = json!({ "issuer": identity.issuer, "subject": identity.subject, "email": email });
        let mut tx = store.begin().await?;
        let linked = link_to_user(&mut tx, &identity.issuer, &identity.subject, email_text, user_id, now).await?;
        if linked != DeliberateLink::Raced {
            tx.commit().await?;
        }
        let reason = match linked {
            DeliberateLink::Linked => {
                let mut detail = detail.clone();
                detail["provider"] = json!(provider.name());
                detail["deliberate"] = json!(true);
                self.audit(AuditEvent::IdentityLinked, Some(user_id), client, detail).await;
                self.send(&deliberate_link_notice(provider.name(), &user.email)).await;
                None
            }
            DeliberateLink::AlreadyLinked => None,
            DeliberateLink::LinkedElsewhere => Some("identity_linked_to_another_user"),
            DeliberateLink::OtherIdentity => Some("linked_to_another_identity"),
            DeliberateLink::Raced => Some("link_raced"),
        };
        if let Some(reason) = reason {
            self.oauth_refused(provider, Some(user_id), reason, detail, client).await;
            return Err(AuthError::AlreadyLinked);
        }
        let redirect =
            settings.success_redirect.as_deref().map(|target| redirect_with(target, &[("linked", provider.name())]));
        Ok(OAuthLinked { user_id, provider: provider.name().to_owned(), redirect })
    }

    async fn oauth_refused(
        &self,
        provider: &Provider,
        user: Option<Uuid>,
        reason: &str,
        mut detail: serde_json::Value,
        client: &ClientInfo,
    ) {
        detail["provider"] = json!(provider.name());
        detail["reason"] = json!(reason);
        self.audit(AuditEvent::OAuthFailed, user, client, detail).await;
    }
}

/// The app's `app_state`, if it is 1 to 128 URL-safe characters.
fn checked_app_state(value: &str) -> Result<String> {
    let url_safe = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if (1..=MAX_APP_STATE_LEN).contains(&value.len()) && value.bytes().all(url_safe) {
        Ok(value.to_owned())
    } else {
        Err(FieldErrors::single("app_state", "must be 1 to 128 characters among A-Z a-z 0-9 - . _ ~"))
    }
}

fn domain_of(email: &Email) -> &str {
    email.as_str().rsplit_once('@').map_or("", |(_, domain)| domain)
}

/// The provider's `name` when it is a valid full name, else the email's local part.
fn profile_of(identity: &Identity, email: &Email) -> Profile {
    identity
        .name
        .as_deref()
        .and_then(|name| Profile::new(name, None).ok())
        .or_else(|| Profile::new(email.local_part(), None).ok())
        .unwrap_or_else(|| Profile { full_name: "User".into(), phone: None })
}

fn link_notice(provider: &str, email: &Email, password_wiped: bool) -> crate::mail::Email {
    let text = if password_wiped {
        format!(
            "You signed in with {provider}, which confirmed that {email} is yours. This address had never been \
             verified on this account, so someone else may have registered it: its password has been removed \
             and every session of it ended. Sign in with {provider}, or set a new password through \
             \"forgot password\"."
        )
    } else {
        format!("Your account {email} can now sign in with {provider}; the sign-in was linked to it.")
    };
    recovery::security_notice(email, &text)
}

fn deliberate_link_notice(provider: &str, email: &Email) -> crate::mail::Email {
    let text = format!(
        "A {provider} account was linked to your account {email}: it can now sign you in. If you did not do \
         this, change your password, sign out of every session and contact support."
    );
    recovery::security_notice(email, &text)
}

/// A provider identity with a provider-verified email, to link or create.
#[derive(Debug, Clone, Copy)]
struct VerifiedIdentity<'a> {
    issuer: &'a str,
    subject: &'a str,
    email: &'a Email,
    /// Unix milliseconds.
    now: i64,
}

/// What [`link_identity`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkOutcome {
    /// No account had the email: this new user was created, verified, and linked.
    Created,
    /// The account with the email is now linked. If it had never verified
    /// its email, its password was wiped, its unused one-time tokens deleted
    /// and these sessions revoked: someone else may have registered it.
    Linked { password_wiped: bool, revoked: Vec<Uuid> },
    /// Nothing was written.
    Refused(LinkRefusal),
    /// A concurrent sign-in or registration took the email or identity
    /// first; nothing was written; look the identity up again.
    Raced,
}

/// Why an existing account was not linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkRefusal {
    Inactive,
    /// Staff and superusers are never linked by email: an identity provider's
    /// word must not hand over a privileged account.
    Privileged,
    /// The account is already linked to another subject at this issuer.
    OtherIdentity,
    /// The provider is not trusted for email: only the signed-in owner may
    /// link it to the account (a deliberate link).
    AccountExists,
}

/// What [`link_to_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeliberateLink {
    Linked,
    /// This identity was already linked to this user: nothing changed.
    AlreadyLinked,
    /// This identity is linked to another user.
    LinkedElsewhere,
    /// The user already has another identity at this issuer.
    OtherIdentity,
    /// A concurrent link took the identity or the user's slot at this issuer
    /// first; nothing was written.
    Raced,
}

/// Links `identity` to the account with its email (only when
/// `link_existing`: the provider is trusted for email), or creates
/// `new_user` with `profile` (active, verified, no password) when there is
/// none, in transaction `tx`. Returns the user's id and what happened.
async fn link_identity(
    tx: &mut Transaction,
    identity: &VerifiedIdentity<'_>,
    link_existing: bool,
    new_user: &User,
    profile: &Profile,
) -> Result<(Uuid, LinkOutcome)> {
    let Some(existing) = tx.account_by_email(identity.email).await? else {
        if tx.insert_user(new_user, None).await? == Inserted::Duplicate {
            return Ok((Uuid::nil(), LinkOutcome::Raced));
        }
        tx.insert_profile(new_user.id, profile).await?;
        let link = tx.insert_identity_link(
            identity.issuer,
            identity.subject,
            new_user.id,
            identity.email.as_str(),
            identity.now,
        );
        if link.await? == Inserted::Duplicate {
            return Ok((Uuid::nil(), LinkOutcome::Raced));
        }
        return Ok((new_user.id, LinkOutcome::Created));
    };
    let user_id = existing.id;
    if !link_existing {
        return Ok((user_id, LinkOutcome::Refused(LinkRefusal::AccountExists)));
    }
    if !existing.is_active {
        return Ok((user_id, LinkOutcome::Refused(LinkRefusal::Inactive)));
    }
    if existing.is_staff || existing.is_superuser {
        return Ok((user_id, LinkOutcome::Refused(LinkRefusal::Privileged)));
    }
    if tx.subject_at(user_id, identity.issuer).await?.is_some() {
        return Ok((user_id, LinkOutcome::Refused(LinkRefusal::OtherIdentity)));
    }
    let link =
        tx.insert_identity_link(identity.issuer, identity.subject, user_id, identity.email.as_str(), identity.now);
    if link.await? == Inserted::Duplicate {
        return Ok((Uuid::nil(), LinkOutcome::Raced));
    }
    // Only an account that never proved its email loses its password:
    // whoever set that password may not own the address.
    let wiped = tx.wipe_unverified_password(user_id, identity.now).await?;
    let mut revoked = Vec::new();
    if wiped {
        tx.delete_all_unused_one_time(user_id).await?;
        revoked = tx.revoke_user_families(user_id, None, "identity_linked", identity.now).await?;
    }
    Ok((user_id, LinkOutcome::Linked { password_wiped: wiped, revoked }))
}

/// Links (issuer, subject) to `user_id`, the signed-in user who asked for
/// it, in transaction `tx`; `email` is what the provider verified (may be empty).
async fn link_to_user(
    tx: &mut Transaction,
    issuer: &str,
    subject: &str,
    email: &str,
    user_id: Uuid,
    now: i64,
) -> Result<DeliberateLink> {
    match tx.identity_link(issuer, subject).await? {
        Some(owner) if owner == user_id => return Ok(DeliberateLink::AlreadyLinked),
        Some(_) => return Ok(DeliberateLink::LinkedElsewhere),
        None => {}
    }
    if tx.subject_at(user_id, issuer).await?.is_some() {
        return Ok(DeliberateLink::OtherIdentity);
    }
    Ok(match tx.insert_identity_link(issuer, subject, user_id, email, now).await? {
        Inserted::New => DeliberateLink::Linked,
        Inserted::Duplicate => DeliberateLink::Raced,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        Auth, AuthConfig, Clock,
        config::{MailTransport, OAuthProvider, Secret},
        identity::Registration,
        mail::MemoryMailer,
    };

    const PASSWORD: &str = "Correct-Horse-Battery-42";

    struct Harness {
        auth: Auth,
        mail: MemoryMailer,
        _dir: tempfile::TempDir,
    }

    /// A provider trusted for email, as the Google preset is.
    async fn harness(allowed_domains: &[&str]) -> Harness {
        harness_with(allowed_domains, true).await
    }

    async fn harness_with(allowed_domains: &[&str], trust_email: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AuthConfig {
            database_url: format!("sqlite://{}", dir.path().join("auth.db").display()),
            ..AuthConfig::default()
        };
        config.password.argon2_memory_kib = 1024;
        config.password.argon2_iterations = 1;
        config.mail.transport = MailTransport::Memory;
        config.oauth.insert(
            "idp".into(),
            OAuthProvider {
                issuer_url: "https://idp.example.com".into(),
                client_id: "client".into(),
                client_secret: Secret::new("secret"),
                redirect_url: "https://app.example.com/api/auth/oauth/idp/callback".into(),
                allowed_email_domains: allowed_domains.iter().map(|d| (*d).to_owned()).collect(),
                trust_email: Some(trust_email),
                ..OAuthProvider::default()
            },
        );
        let keys = crate::tokens::KeySet::from_settings(&crate::config::TokenSettings {
            algorithm: crate::SigningAlgorithm::Hs256,
            signing_key: Some(crate::config::KeySpec {
                kid: "test".into(),
                secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap();
        let mail = MemoryMailer::new(&config.mail.from).unwrap();
        let auth = Auth::builder(config)
            .keys(keys)
            .mailer(Arc::new(mail.clone()))
            .clock(Clock::manual())
            .build()
            .await
            .unwrap();
        Harness { auth, mail, _dir: dir }
    }

    fn identity(subject: &str, email: &str, verified: bool) -> Identity {
        Identity {
            issuer: "https://idp.example.com".into(),
            subject: subject.into(),
            email: Some(email.into()),
            email_verified: verified,
            name: Some("Ada Lovelace".into()),
        }
    }

    fn client() -> ClientInfo {
        ClientInfo::new(Some("203.0.113.9".parse().unwrap()), Some("test"))
    }

    impl Harness {
        async fn sign_in(&self, identity: &Identity) -> Result<OAuthLogin> {
            let oauth = self.auth.oauth();
            let provider = oauth.oauth_provider("idp").unwrap();
            for _ in 0..3 {
                if let Some(login) = oauth.oauth_sign_in(provider, identity, None, &client()).await? {
                    return Ok(login);
                }
            }
            panic!("raced three times");
        }

        async fn register(&self, email: &str) -> Uuid {
            let registration = Registration {
                email: email.into(),
                password: PASSWORD.into(),
                full_name: "Someone".into(),
                phone: None,
            };
            self.auth.accounts().register(&registration, &client()).await.unwrap().0.id
        }

        async fn events(&self) -> Vec<(String, serde_json::Value)> {
            let trail = self.auth.operators().audit_trail(None, 100).await.unwrap();
            trail.into_iter().map(|record| (record.event, record.detail)).collect()
        }
    }

    #[tokio::test]
    async fn oauth_first_sign_in_creates_a_verified_user_without_privileges() {
        let h = harness(&[]).await;
        let login = h.sign_in(&identity("sub-1", "Ada@Example.com", true)).await.unwrap();
        assert_eq!(login.origin, AccountOrigin::Created);
        let account = h.auth.accounts().account(login.user_id).await.unwrap();
        assert!(account.user.email_verified() && account.user.is_active);
        assert!(!account.user.is_staff && !account.user.is_superuser && account.memberships.is_empty());
        assert_eq!(account.user.email.as_str(), "ada@example.com");
        assert_eq!(account.profile.full_name, "Ada Lovelace");
        let SignInAnswer::Tokens(tokens) = &login.answer else { panic!("tokens without success_redirect") };
        let claims = h.auth.verify_access(tokens.access.expose()).unwrap();
        assert_eq!(claims.sub, login.user_id);
        assert!(claims.tenant_id.is_none() && !claims.staff && !claims.superuser);
        // A password login is impossible: the account has no password.
        let refused = h.auth.sessions().login("ada@example.com", PASSWORD, None, &client()).await.unwrap_err();
        assert!(matches!(refused, AuthError::InvalidCredentials));
        let again = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap();
        assert_eq!((again.user_id, again.origin), (login.user_id, AccountOrigin::Linked));
        let links = h.auth.inner.store.identity_links(login.user_id).await.unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!((links[0].subject.as_str(), links[0].email.as_str()), ("sub-1", "ada@example.com"));
    }

    #[tokio::test]
    async fn oauth_links_by_issuer_and_subject_never_by_email_alone() {
        let h = harness(&[]).await;
        let first = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap();
        // The provider's email changed: the link still decides.
        let renamed = h.sign_in(&identity("sub-1", "someone-else@example.com", false)).await.unwrap();
        assert_eq!(renamed.user_id, first.user_id);
        // Another subject claiming the same address is not let in.
        let other = h.sign_in(&identity("sub-2", "ada@example.com", true)).await.unwrap_err();
        assert!(matches!(other, AuthError::Forbidden), "{other:?}");
    }

    #[tokio::test]
    async fn oauth_unverified_email_colliding_with_an_account_is_refused_and_not_linked() {
        let h = harness(&[]).await;
        let local = h.register("ada@example.com").await;
        let refused = h.sign_in(&identity("sub-1", "ada@example.com", false)).await.unwrap_err();
        assert!(matches!(refused, AuthError::EmailNotVerified), "{refused:?}");
        assert!(h.auth.inner.store.identity_links(local).await.unwrap().is_empty());
        assert!(
            h.events()
                .await
                .iter()
                .any(|(event, detail)| event == "oauth_failed" && detail["reason"] == "unverified_email_collision")
        );
        // Without a local account, an unverified email creates nothing either.
        let refused = h.sign_in(&identity("sub-2", "new@example.com", false)).await.unwrap_err();
        assert!(matches!(refused, AuthError::EmailNotVerified));
        assert!(
            h.auth.inner.store.user_by_email(&Email::parse("e", "new@example.com").unwrap()).await.unwrap().is_none()
        );
    }

    #[tokio::test]
    async fn oauth_untrusted_provider_never_links_an_existing_account_by_email() {
        let h = harness_with(&[], false).await;
        let local = h.register("ada@example.com").await;
        let refused = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap_err();
        assert!(matches!(refused, AuthError::AccountExists), "{refused:?}");
        assert!(h.auth.inner.store.identity_links(local).await.unwrap().is_empty());
        assert!(h.auth.accounts().account(local).await.unwrap().user.email_verified_at.is_none(), "nothing changed");
        assert!(
            h.events()
                .await
                .iter()
                .any(|(event, detail)| event == "oauth_failed"
                    && detail["reason"] == "account_exists_untrusted_provider")
        );
        // A new address is still a new account: that takes nothing over.
        let created = h.sign_in(&identity("sub-2", "grace@example.com", true)).await.unwrap();
        assert_eq!(created.origin, AccountOrigin::Created);
    }

    #[tokio::test]
    async fn oauth_verified_email_links_an_unverified_account_and_wipes_its_password() {
        let h = harness(&[]).await;
        let local = h.register("ada@example.com").await;
        let login = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap();
        assert_eq!((login.user_id, login.origin), (local, AccountOrigin::NewlyLinked));
        let refused = h.auth.sessions().login("ada@example.com", PASSWORD, None, &client()).await.unwrap_err();
        assert!(matches!(refused, AuthError::InvalidCredentials), "{refused:?}");
        assert!(h.auth.accounts().account(local).await.unwrap().user.email_verified());
        let notice = h.mail.last_to("ada@example.com").unwrap();
        assert!(notice.subject.contains("Security notice") && notice.text.contains("password has been removed"));
        assert!(h.events().await.iter().any(|(event, detail)| event == "identity_linked"
            && detail["password_wiped"] == true
            && detail["subject"] == "sub-1"));
    }

    #[tokio::test]
    async fn oauth_verified_email_links_a_verified_account_and_keeps_its_password() {
        let h = harness(&[]).await;
        let local = h.register("ada@example.com").await;
        let token = crate::tokens::OpaqueToken::generate();
        let now = h.auth.inner.clock.now_ms();
        h.auth
            .accounts()
            .issue_one_time(&token, crate::store::OneTimePurpose::EmailVerification, local, now, now + 60_000)
            .await
            .unwrap();
        h.auth.accounts().verify_email(token.as_str(), &client()).await.unwrap();
        let login = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap();
        assert_eq!(login.origin, AccountOrigin::NewlyLinked);
        h.auth.sessions().login("ada@example.com", PASSWORD, None, &client()).await.unwrap();
        assert!(h.mail.last_to("ada@example.com").unwrap().text.contains("can now sign in with idp"));
    }

    #[tokio::test]
    async fn oauth_never_links_staff_accounts_and_respects_allowed_domains() {
        let h = harness(&["example.com"]).await;
        h.auth.operators().create_superuser("root@example.com", PASSWORD, "Root").await.unwrap();
        let refused = h.sign_in(&identity("sub-1", "root@example.com", true)).await.unwrap_err();
        assert!(matches!(refused, AuthError::Forbidden), "{refused:?}");
        let refused = h.sign_in(&identity("sub-2", "eve@evil.example.org", true)).await.unwrap_err();
        assert!(matches!(refused, AuthError::EmailDomainNotAllowed), "{refused:?}");
        let mut no_email = identity("sub-3", "x@example.com", true);
        no_email.email = None;
        assert!(matches!(h.sign_in(&no_email).await.unwrap_err(), AuthError::EmailNotVerified));
    }

    #[tokio::test]
    async fn oauth_deactivated_accounts_cannot_sign_in() {
        let h = harness(&[]).await;
        let login = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap();
        h.auth.operators().set_user_active(crate::Operator::Cli, login.user_id, false, &client()).await.unwrap();
        let refused = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap_err();
        assert!(matches!(refused, AuthError::AccountDisabled));
    }

    #[tokio::test]
    async fn oauth_callback_refuses_missing_and_forged_state_before_any_request() {
        let h = harness(&[]).await;
        let callback = OAuthCallback { code: Some("code"), state: Some("state"), ..OAuthCallback::default() };
        for cookie in [None, Some(""), Some("forged")] {
            let error = h.auth.oauth().callback("idp", &callback, cookie, &client()).await.unwrap_err();
            assert!(matches!(error, AuthError::OAuthFailed), "{error:?}");
        }
        let unknown = h.auth.oauth().callback("nope", &callback, None, &client()).await.unwrap_err();
        assert!(matches!(unknown, AuthError::NotFound));
        let reasons: Vec<_> = h.events().await.into_iter().map(|(_, detail)| detail["reason"].clone()).collect();
        assert!(reasons.contains(&json!("missing_state_cookie")) && reasons.contains(&json!("invalid_state_cookie")));
        let cleared = h.auth.oauth().clear_cookie("idp").unwrap();
        assert_eq!(
            (cleared.path.as_str(), cleared.max_age_secs, cleared.secure),
            ("/api/auth/oauth/idp/callback", 0, true)
        );
    }
}
