//! Sign-in with OpenID Connect providers (see [`crate::oauth`]): starting it,
//! finishing it, and the account linking rules.

use serde_json::json;
use uuid::Uuid;

use super::Auth;
use crate::{
    audit::{AuditEvent, ClientInfo},
    error::{AuthError, Result},
    identity::{Email, Profile, User},
    oauth::{
        AccountOrigin, Failure, Identity, OAuthCallback, OAuthLogin, OAuthStart, Provider, StateCookie,
        redirect_with_tokens,
    },
    recovery,
    store::{LinkOutcome, LinkRefusal, VerifiedIdentity},
};

/// A provider's `error` parameter is kept in the audit trail up to this length.
const MAX_PROVIDER_ERROR_LEN: usize = 64;

impl Auth {
    /// The names of the configured providers.
    pub fn oauth_providers(&self) -> Vec<&str> {
        self.inner.oauth.names().collect()
    }

    fn oauth_provider(&self, name: &str) -> Result<&Provider> {
        self.inner.oauth.get(name).ok_or(AuthError::NotFound)
    }

    /// Starts a sign-in with `provider`: the URL to redirect the browser to
    /// (code flow with `state`, `nonce` and PKCE S256) and the cookie that
    /// binds it to this browser. `login_hint` is passed on to the provider.
    /// An unknown provider is [`AuthError::NotFound`]; an unreachable one
    /// (discovery failed) [`AuthError::Unavailable`].
    pub async fn oauth_authorize(&self, provider: &str, login_hint: Option<&str>) -> Result<OAuthStart> {
        let provider = self.oauth_provider(provider)?;
        let (location, sealed) = provider.start(login_hint, self.inner.clock.now_ms()).await.map_err(|f| f.error())?;
        let cookie = StateCookie::new(provider, sealed, crate::oauth::STATE_TTL_SECS);
        Ok(OAuthStart { location, cookie })
    }

    /// The cookie that removes a pending sign-in with `provider`: the web
    /// layer sets it on every callback answer, so a state is used once.
    pub fn oauth_clear_cookie(&self, provider: &str) -> Option<StateCookie> {
        let provider = self.inner.oauth.get(provider)?;
        Some(StateCookie::new(provider, String::new(), 0))
    }

    /// Finishes a sign-in: checks the state against `state_cookie`, exchanges
    /// the code, validates the id_token, finds or links or creates the
    /// account, and starts a session exactly as a password login does.
    ///
    /// A bad or missing state, a refused code, an invalid id_token:
    /// [`AuthError::OAuthFailed`] (400). An unverified provider email (with or
    /// without a local account of that address): [`AuthError::EmailNotVerified`]
    /// (403), and nothing is linked. An email outside `allowed_email_domains`:
    /// [`AuthError::EmailDomainNotAllowed`] (403). Each refusal is audited.
    pub async fn oauth_callback(
        &self,
        provider: &str,
        callback: &OAuthCallback<'_>,
        state_cookie: Option<&str>,
        client: &ClientInfo,
    ) -> Result<OAuthLogin> {
        let provider = self.oauth_provider(provider)?;
        let identity = match self.oauth_identity(provider, callback, state_cookie).await {
            Ok(identity) => identity,
            Err(failure) => {
                let detail = json!({ "detail": failure.detail });
                self.oauth_refused(provider, None, failure.reason, detail, client).await;
                return Err(failure.error());
            }
        };
        for _ in 0..3 {
            if let Some(login) = self.oauth_sign_in(provider, &identity, client).await? {
                return Ok(login);
            }
        }
        // Three races in a row with concurrent sign-ins: let the client retry.
        Err(AuthError::Unavailable)
    }

    /// The identity a valid callback proves.
    async fn oauth_identity(
        &self,
        provider: &Provider,
        callback: &OAuthCallback<'_>,
        state_cookie: Option<&str>,
    ) -> Result<Identity, Failure> {
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
        provider.finish(code, &pending, self.now(), leeway).await
    }

    /// Finds, links or creates the account of `identity` and starts a
    /// session; `None` when a concurrent sign-in won a race (try again).
    async fn oauth_sign_in(
        &self,
        provider: &Provider,
        identity: &Identity,
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
        let now = self.inner.clock.now_ms();
        store.record_login(user.id, now, None).await?;
        let tokens = self.start_session(&user, None, client).await?;
        let detail = json!({ "method": "oauth", "provider": provider.name(), "origin": origin });
        self.audit(AuditEvent::LoginSucceeded, Some(user.id), client, detail).await;
        let redirect =
            provider.settings().success_redirect.as_deref().map(|target| redirect_with_tokens(target, &tokens));
        Ok(Some(OAuthLogin { tokens, user_id: user.id, origin, redirect }))
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
        let domain = email.as_str().rsplit_once('@').map_or("", |(_, domain)| domain);
        if !provider.settings().allows_domain(domain) {
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
        let (user_id, outcome) = store.link_identity(&verified, &new_user, &profile).await?;
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
                };
                self.oauth_refused(provider, Some(user_id), reason, json!({ "email": email }), client).await;
                return Err(error);
            }
        };
        Ok(Some((user_id, origin)))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        AuthConfig, Clock,
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

    async fn harness(allowed_domains: &[&str]) -> Harness {
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
            let provider = self.auth.oauth_provider("idp").unwrap();
            for _ in 0..3 {
                if let Some(login) = self.auth.oauth_sign_in(provider, identity, &client()).await? {
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
            self.auth.register(&registration, &client()).await.unwrap().0.id
        }

        async fn events(&self) -> Vec<(String, serde_json::Value)> {
            let trail = self.auth.audit_trail(None, 100).await.unwrap();
            trail.into_iter().map(|record| (record.event, record.detail)).collect()
        }
    }

    #[tokio::test]
    async fn oauth_first_sign_in_creates_a_verified_user_without_privileges() {
        let h = harness(&[]).await;
        let login = h.sign_in(&identity("sub-1", "Ada@Example.com", true)).await.unwrap();
        assert_eq!(login.origin, AccountOrigin::Created);
        let account = h.auth.account(login.user_id).await.unwrap();
        assert!(account.user.email_verified() && account.user.is_active);
        assert!(!account.user.is_staff && !account.user.is_superuser && account.memberships.is_empty());
        assert_eq!(account.user.email.as_str(), "ada@example.com");
        assert_eq!(account.profile.full_name, "Ada Lovelace");
        let claims = h.auth.verify_access(&login.tokens.access).unwrap();
        assert_eq!(claims.sub, login.user_id);
        assert!(claims.tenant_id.is_none() && !claims.staff && !claims.superuser);
        // A password login is impossible: the account has no password.
        let refused = h.auth.login("ada@example.com", PASSWORD, None, &client()).await.unwrap_err();
        assert!(matches!(refused, AuthError::InvalidCredentials));
        let again = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap();
        assert_eq!((again.user_id, again.origin), (login.user_id, AccountOrigin::Linked));
        let links = h.auth.store().identity_links(login.user_id).await.unwrap();
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
        assert!(h.auth.store().identity_links(local).await.unwrap().is_empty());
        assert!(
            h.events()
                .await
                .iter()
                .any(|(event, detail)| event == "oauth_failed" && detail["reason"] == "unverified_email_collision")
        );
        // Without a local account, an unverified email creates nothing either.
        let refused = h.sign_in(&identity("sub-2", "new@example.com", false)).await.unwrap_err();
        assert!(matches!(refused, AuthError::EmailNotVerified));
        assert!(h.auth.store().user_by_email(&Email::parse("e", "new@example.com").unwrap()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oauth_verified_email_links_an_unverified_account_and_wipes_its_password() {
        let h = harness(&[]).await;
        let local = h.register("ada@example.com").await;
        let login = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap();
        assert_eq!((login.user_id, login.origin), (local, AccountOrigin::NewlyLinked));
        let refused = h.auth.login("ada@example.com", PASSWORD, None, &client()).await.unwrap_err();
        assert!(matches!(refused, AuthError::InvalidCredentials), "{refused:?}");
        assert!(h.auth.account(local).await.unwrap().user.email_verified());
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
        let store = h.auth.store();
        let now = h.auth.inner.clock.now_ms();
        store
            .issue_one_time(&token, crate::store::OneTimePurpose::EmailVerification, local, now, now + 60_000)
            .await
            .unwrap();
        h.auth.verify_email(token.as_str(), &client()).await.unwrap();
        let login = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap();
        assert_eq!(login.origin, AccountOrigin::NewlyLinked);
        h.auth.login("ada@example.com", PASSWORD, None, &client()).await.unwrap();
        assert!(h.mail.last_to("ada@example.com").unwrap().text.contains("can now sign in with idp"));
    }

    #[tokio::test]
    async fn oauth_never_links_staff_accounts_and_respects_allowed_domains() {
        let h = harness(&["example.com"]).await;
        h.auth.create_superuser("root@example.com", PASSWORD, "Root").await.unwrap();
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
        h.auth.set_user_active(login.user_id, false, &client()).await.unwrap();
        let refused = h.sign_in(&identity("sub-1", "ada@example.com", true)).await.unwrap_err();
        assert!(matches!(refused, AuthError::AccountDisabled));
    }

    #[tokio::test]
    async fn oauth_callback_refuses_missing_and_forged_state_before_any_request() {
        let h = harness(&[]).await;
        let callback = OAuthCallback { code: Some("code"), state: Some("state"), ..OAuthCallback::default() };
        for cookie in [None, Some(""), Some("forged")] {
            let error = h.auth.oauth_callback("idp", &callback, cookie, &client()).await.unwrap_err();
            assert!(matches!(error, AuthError::OAuthFailed), "{error:?}");
        }
        let unknown = h.auth.oauth_callback("nope", &callback, None, &client()).await.unwrap_err();
        assert!(matches!(unknown, AuthError::NotFound));
        let reasons: Vec<_> = h.events().await.into_iter().map(|(_, detail)| detail["reason"].clone()).collect();
        assert!(reasons.contains(&json!("missing_state_cookie")) && reasons.contains(&json!("invalid_state_cookie")));
        let cleared = h.auth.oauth_clear_cookie("idp").unwrap();
        assert_eq!(
            (cleared.path.as_str(), cleared.max_age_secs, cleared.secure),
            ("/api/auth/oauth/idp/callback", 0, true)
        );
    }
}
