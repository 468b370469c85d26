//! [`Auth`]: the platform's operations, one method per use case. Web layers
//! call these and translate [`AuthError`] to HTTP.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::{
    audit::{AuditEvent, AuditLog, ClientInfo},
    clock::Clock,
    config::{AuthConfig, ConfigError, MAX_PASSWORD_BYTES},
    error::{AuthError, FieldErrors, Result},
    identity::{Email, Profile, ProfileUpdate, Registration, User},
    mail::{self, Mailer},
    password::{PasswordHasher, Verification},
    ratelimit::{self, Action, Decision, MemoryRateLimiter, Quota, RateLimiter, RedisRateLimiter},
    recovery,
    store::{Family, MembershipChange, NewFamily, OneTimePurpose, RotateOutcome, Session, Store},
    tenancy::{Member, RoleSet, Roles, Tenant, TenantMembership, validate_tenant_name},
    tokens::{AccessClaims, AccessGrant, AccessTokens, KeySet, OpaqueToken, RevocationList},
};

/// Ended sessions and spent one-time tokens are kept this long before
/// [`Auth::prune`] deletes them: far longer than any access token can outlive
/// its session's revocation, so every instance has seen the revocation.
const PRUNE_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// The answer to a login or refresh, shaped as the contract's body.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// A user with their profile and memberships (`GET /me`).
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    #[serde(flatten)]
    pub user: User,
    pub profile: Profile,
    pub memberships: Vec<TenantMembership>,
}

/// A tenant as its member sees it, with their role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantView {
    pub id: Uuid,
    pub name: String,
    pub role: String,
}

/// Why [`AuthBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the database: {0}")]
    Store(#[from] AuthError),
    /// `rate_limits.redis_url` is set but Redis cannot be reached.
    #[error("cannot reach the rate-limit Redis: {0}")]
    RateLimiter(AuthError),
}

/// Assembles an [`Auth`]; see [`Auth::builder`].
pub struct AuthBuilder {
    config: AuthConfig,
    mailer: Option<Arc<dyn Mailer>>,
    keys: Option<KeySet>,
    roles: RoleSet,
    clock: Clock,
    rate_limiter: Option<Arc<dyn RateLimiter>>,
}

impl AuthBuilder {
    /// Sends mail through `mailer` instead of the configured transport.
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Signs with `keys` instead of `tokens.signing_key` (e.g. generated development keys).
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Uses the application's ordered roles instead of owner > admin > member.
    pub fn roles<R: Roles>(mut self) -> Self {
        self.roles = RoleSet::of::<R>();
        self
    }

    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Counts with `limiter` instead of the one `rate_limits` selects (Redis
    /// when `redis_url` is set, else in process).
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.rate_limiter = Some(limiter);
        self
    }

    /// Validates the configuration, connects to and migrates the database,
    /// loads the keys, starts the hashing threads and the revocation poller.
    pub async fn build(self) -> Result<Auth, BuildError> {
        let config = self.config;
        config.validate()?;
        let keys = match self.keys {
            Some(keys) => keys,
            None => KeySet::from_settings(&config.tokens)?,
        };
        let mailer = match self.mailer {
            Some(mailer) => mailer,
            None => mail::mailer_from_settings(&config.mail)?,
        };
        let limits = &config.rate_limits;
        let limiter: Arc<dyn RateLimiter> = match (self.rate_limiter, &limits.redis_url) {
            (Some(limiter), _) => limiter,
            (None, Some(url)) if limits.enabled => Arc::new(
                RedisRateLimiter::connect(url, limits.redis_key_prefix.as_str())
                    .await
                    .map_err(BuildError::RateLimiter)?,
            ),
            (None, _) => Arc::new(MemoryRateLimiter::new(self.clock.clone())),
        };
        let store = Store::connect(&config.database_url).await?;
        let inner = Arc::new(Inner {
            tokens: AccessTokens::new(keys, &config.issuer, &config.audience, &config.tokens),
            passwords: PasswordHasher::new(&config.password)?,
            revocations: RevocationList::default(),
            audit: AuditLog::new(store.clone()),
            store,
            mailer,
            roles: self.roles,
            clock: self.clock,
            limiter,
            config,
        });
        inner.reload_revocations().await?;
        tokio::spawn(poll_revocations(Arc::downgrade(&inner)));
        Ok(Auth { inner })
    }
}

/// The platform: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    config: AuthConfig,
    store: Store,
    passwords: PasswordHasher,
    tokens: AccessTokens,
    revocations: RevocationList,
    mailer: Arc<dyn Mailer>,
    audit: AuditLog,
    roles: RoleSet,
    clock: Clock,
    limiter: Arc<dyn RateLimiter>,
}

impl Inner {
    /// How long a revoked session must stay in the revocation list: as long as
    /// an access token minted just before the revocation can be accepted.
    fn revocation_window_ms(&self) -> i64 {
        let t = &self.config.tokens;
        i64::try_from((t.access_ttl_secs + t.leeway_secs) * 1000).unwrap_or(i64::MAX)
    }

    async fn reload_revocations(&self) -> Result<()> {
        let forget_before = self.clock.now_ms() - self.revocation_window_ms();
        let revoked = self.store.revoked_since(forget_before).await?;
        self.revocations.refresh(&revoked, forget_before);
        Ok(())
    }
}

/// Reloads revoked sessions every `revocation_poll_secs` until the last
/// [`Auth`] handle is dropped. A failed reload is logged and retried.
async fn poll_revocations(inner: Weak<Inner>) {
    loop {
        let Some(period) = inner.upgrade().map(|i| Duration::from_secs(i.config.tokens.revocation_poll_secs)) else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        if let Err(error) = inner.reload_revocations().await {
            tracing::warn!(%error, "could not reload revoked sessions; keeping the current list");
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("store", &self.inner.store.backend_name()).finish_non_exhaustive()
    }
}

impl Auth {
    pub fn builder(config: AuthConfig) -> AuthBuilder {
        AuthBuilder {
            config,
            mailer: None,
            keys: None,
            roles: RoleSet::default(),
            clock: Clock::system(),
            rate_limiter: None,
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn roles(&self) -> &RoleSet {
        &self.inner.roles
    }

    pub fn keys(&self) -> &KeySet {
        self.inner.tokens.keys()
    }

    /// The public JWKS document (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.inner.tokens.keys().jwks()
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    async fn audit(&self, event: AuditEvent, user: Option<Uuid>, client: &ClientInfo, detail: serde_json::Value) {
        self.inner.audit.record(event, user, client, detail, self.now()).await;
    }

    /// Sends an email; a failure is logged, not returned: the operation that
    /// wanted it has happened, and the user can ask again.
    async fn send(&self, email: &mail::Email) {
        if let Err(error) = self.inner.mailer.send(email).await {
            tracing::error!(%error, subject = email.subject, "email not sent");
        }
    }

    /// Runs `work` after the caller has been answered, so that the answer and
    /// its timing are the same whether or not an account exists.
    fn detach(&self, work: impl Future<Output = Result<()>> + Send + 'static) {
        tokio::spawn(async move {
            if let Err(error) = work.await {
                tracing::error!(%error, "background account task failed");
            }
        });
    }

    // ----- rate limits ---------------------------------------------------

    /// Counts one request of `client` to `action` against its per-IP quota
    /// (`rate_limits.<action>`); web layers call this before each limited
    /// endpoint. [`AuthError::RateLimited`] past the quota; a client whose IP
    /// is unknown, or disabled limits, are never limited.
    pub async fn rate_limit(&self, action: Action, client: &ClientInfo) -> Result<()> {
        let limits = &self.inner.config.rate_limits;
        let Some(ip) = client.ip.filter(|_| limits.enabled) else { return Ok(()) };
        let key = ratelimit::ip_key(action, ip);
        match self.inner.limiter.hit(&key, limits.per_ip(action)).await? {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after_secs } => {
                let detail = json!({ "action": action.as_str(), "scope": "ip", "retry_after_secs": retry_after_secs });
                self.record_limited(&key, retry_after_secs, client, detail).await;
                Err(AuthError::RateLimited { retry_after_secs })
            }
        }
    }

    /// Counts one mail-sending request for `email` against the per-address
    /// quota of `action`; false when it must not send.
    async fn account_quota_allows(&self, action: Action, email: &Email, client: &ClientInfo) -> Result<bool> {
        let limits = &self.inner.config.rate_limits;
        let Some(quota) = limits.per_account(action).filter(|_| limits.enabled) else { return Ok(true) };
        let key = ratelimit::account_key(action, email.as_str());
        match self.inner.limiter.hit(&key, quota).await? {
            Decision::Allowed => Ok(true),
            Decision::Limited { retry_after_secs } => {
                let detail = json!({ "action": action.as_str(), "scope": "account", "email": email });
                self.record_limited(&key, retry_after_secs, client, detail).await;
                Ok(false)
            }
        }
    }

    /// Audits a refused request once per window or lock of `key` (counted by
    /// the limiter itself, so across instances too), not once per request: a
    /// flood of refused requests must not become a flood of audit rows.
    async fn record_limited(&self, key: &str, retry_after_secs: u64, client: &ClientInfo, detail: serde_json::Value) {
        let once = Quota::new(1, retry_after_secs.max(1));
        match self.inner.limiter.hit(&format!("audited:{key}"), once).await {
            Ok(Decision::Limited { .. }) => {}
            Ok(Decision::Allowed) | Err(_) => self.audit(AuditEvent::RateLimited, None, client, detail).await,
        }
    }

    /// Records a failed login for the back-off of `email`.
    async fn login_failed(&self, email: &Email) -> Result<()> {
        let limits = &self.inner.config.rate_limits;
        if limits.enabled {
            self.inner.limiter.login_failed(email.as_str(), limits).await?;
        }
        Ok(())
    }

    // ----- access tokens -------------------------------------------------

    /// Verifies an access token: signature, claims and session revocation,
    /// all in memory. Every failure is [`AuthError::InvalidToken`].
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims> {
        let claims = self.inner.tokens.verify(token)?;
        if self.inner.revocations.is_revoked(claims.sid) {
            return Err(AuthError::InvalidToken);
        }
        Ok(claims)
    }

    /// Records a denied request (a guard's 401 or 403) in the audit trail.
    pub async fn record_denied(&self, user: Option<Uuid>, client: &ClientInfo, reason: &str, path: &str) {
        self.audit(AuditEvent::AccessDenied, user, client, json!({ "reason": reason, "path": path })).await;
    }

    fn mint(&self, user: &User, session: &Family, role: Option<String>) -> Result<String> {
        let grant = AccessGrant {
            user_id: user.id,
            session_id: session.id,
            tenant: session.tenant_id.zip(role),
            staff: user.is_staff,
            superuser: user.is_superuser,
            email_verified: user.email_verified(),
        };
        Ok(self.inner.tokens.mint(&grant)?.0)
    }

    fn pair(&self, access: String, refresh: &OpaqueToken) -> TokenPair {
        TokenPair {
            access,
            refresh: refresh.as_str().to_owned(),
            token_type: "Bearer",
            expires_in: self.inner.tokens.ttl_secs(),
        }
    }

    /// Starts a login session (a refresh family) and returns its first tokens.
    async fn start_session(
        &self,
        user: &User,
        tenant: Option<(Uuid, String)>,
        absolute_expires_at: i64,
        client: &ClientInfo,
    ) -> Result<TokenPair> {
        let now = self.inner.clock.now_ms();
        let family = NewFamily {
            id: Uuid::now_v7(),
            user_id: user.id,
            tenant_id: tenant.as_ref().map(|(id, _)| *id),
            now,
            absolute_expires_at,
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
        };
        let refresh = OpaqueToken::generate();
        self.inner.store.create_family(&family, &refresh).await?;
        let session = Family {
            id: family.id,
            user_id: user.id,
            tenant_id: family.tenant_id,
            created_at: now,
            last_used_at: now,
            absolute_expires_at,
            revoked_at: None,
        };
        let access = self.mint(user, &session, tenant.map(|(_, role)| role))?;
        Ok(self.pair(access, &refresh))
    }

    fn revoked(&self, sessions: Vec<Uuid>) {
        self.inner.revocations.revoke(sessions, self.inner.clock.now_ms());
    }

    // ----- registration and login ---------------------------------------

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
        errors.merge(self.inner.passwords.check_policy("password", &registration.password, &context));
        let (Some(email), Some(profile), true) = (email, profile, errors.is_empty()) else {
            return Err(AuthError::Validation(errors));
        };

        let password_hash = self.inner.passwords.hash(&registration.password).await?;
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

    /// Checks email and password and starts a session, scoped to `tenant_id`
    /// when given. An unknown email costs the same argon2 work as a wrong
    /// password and gets the same error.
    ///
    /// After `rate_limits.login_failures_per_account` wrong passwords for one
    /// email address (registered or not), it is soft-locked: every attempt
    /// answers [`AuthError::RateLimited`], before any hashing, until a back-off
    /// that doubles with each further failure has passed. A successful login
    /// clears the count.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        tenant_id: Option<Uuid>,
        client: &ClientInfo,
    ) -> Result<TokenPair> {
        let email = Email::parse("email", email).map_err(AuthError::Validation)?;
        let limits = &self.inner.config.rate_limits;
        if limits.enabled
            && let Decision::Limited { retry_after_secs } =
                self.inner.limiter.login_allowed(email.as_str(), limits).await?
        {
            let key = format!("login:{}", email.as_str());
            let detail = json!({ "action": "login", "scope": "account", "email": email });
            self.record_limited(&key, retry_after_secs, client, detail).await;
            return Err(AuthError::RateLimited { retry_after_secs });
        }
        if password.len() > MAX_PASSWORD_BYTES {
            // Refused before hashing whatever the account: reveals nothing.
            self.login_failed(&email).await?;
            return Err(AuthError::InvalidCredentials);
        }
        let found = self.inner.store.user_by_email(&email).await?;
        let stored_hash = found.as_ref().and_then(|(_, hash)| hash.as_deref());
        let verification = self.inner.passwords.verify(password, stored_hash).await?;
        let (user, needs_rehash) = match (found, verification) {
            (Some((user, _)), Verification::Valid { needs_rehash }) => (user, needs_rehash),
            (found, _) => {
                let user_id = found.map(|(user, _)| user.id);
                self.audit(AuditEvent::LoginFailed, user_id, client, json!({ "email": email })).await;
                self.login_failed(&email).await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        if !user.is_active {
            self.audit(AuditEvent::LoginFailed, Some(user.id), client, json!({ "reason": "inactive" })).await;
            return Err(AuthError::AccountDisabled);
        }
        if self.inner.config.require_verified_email && !user.email_verified() {
            self.audit(AuditEvent::LoginFailed, Some(user.id), client, json!({ "reason": "unverified" })).await;
            return Err(AuthError::EmailNotVerified);
        }
        let tenant = match tenant_id {
            None => None,
            Some(tenant_id) => match self.inner.store.role_in(user.id, tenant_id).await? {
                Some(role) => Some((tenant_id, role)),
                None => {
                    self.audit(AuditEvent::AccessDenied, Some(user.id), client, json!({ "tenant_id": tenant_id }))
                        .await;
                    return Err(AuthError::NotAMember);
                }
            },
        };
        let rehashed = if needs_rehash { Some(self.inner.passwords.hash(password).await?) } else { None };
        let now = self.inner.clock.now_ms();
        self.inner.store.record_login(user.id, now, rehashed.as_deref()).await?;
        let absolute = now + secs_to_ms(self.inner.config.tokens.refresh_absolute_ttl_secs);
        let pair = self.start_session(&user, tenant, absolute, client).await?;
        if limits.enabled
            && let Err(error) = self.inner.limiter.login_succeeded(email.as_str()).await
        {
            // The session exists; stale failures expire by themselves.
            tracing::warn!(%error, "could not clear failed logins after a successful login");
        }
        self.audit(AuditEvent::LoginSucceeded, Some(user.id), client, json!({ "tenant_id": tenant_id })).await;
        Ok(pair)
    }

    /// Rotates a refresh token (see [`Store::rotate_refresh`]). Presenting a
    /// consumed token revokes its whole session and is [`AuthError::TokenReused`].
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<TokenPair> {
        let presented = OpaqueToken::parse(refresh_token).ok_or(AuthError::InvalidToken)?;
        let t = &self.inner.config.tokens;
        let now = self.inner.clock.now_ms();
        let outcome = self
            .inner
            .store
            .rotate_refresh(
                &presented,
                now,
                secs_to_ms(t.refresh_idle_ttl_secs),
                secs_to_ms(t.refresh_reuse_grace_secs),
            )
            .await?;
        match outcome {
            RotateOutcome::Rotated { family, successor, role } => {
                let user = self.inner.store.user(family.user_id).await?.ok_or(AuthError::InvalidToken)?;
                let access = self.mint(&user, &family, role)?;
                self.audit(AuditEvent::Refreshed, Some(user.id), client, json!({ "session": family.id })).await;
                Ok(self.pair(access, &successor))
            }
            RotateOutcome::Invalid => Err(AuthError::InvalidToken),
            RotateOutcome::Reused { family_id, user_id } => {
                self.revoked(vec![family_id]);
                self.audit(AuditEvent::RefreshReuseDetected, Some(user_id), client, json!({ "session": family_id }))
                    .await;
                Err(AuthError::TokenReused)
            }
            RotateOutcome::MembershipEnded { family_id, user_id } => {
                self.revoked(vec![family_id]);
                self.audit(
                    AuditEvent::SessionRevoked,
                    Some(user_id),
                    client,
                    json!({ "session": family_id, "reason": "membership_ended" }),
                )
                .await;
                Err(AuthError::InvalidToken)
            }
        }
    }

    // ----- sessions ------------------------------------------------------

    /// Ends the session of `refresh_token`, which must belong to the caller.
    pub async fn logout(&self, caller: &AccessClaims, refresh_token: &str, client: &ClientInfo) -> Result<()> {
        let token = OpaqueToken::parse(refresh_token).ok_or(AuthError::InvalidToken)?;
        let family = self.inner.store.family_of_token(&token).await?.ok_or(AuthError::InvalidToken)?;
        if family.user_id != caller.sub {
            self.audit(AuditEvent::AccessDenied, Some(caller.sub), client, json!({ "reason": "foreign_session" }))
                .await;
            return Err(AuthError::Forbidden);
        }
        let now = self.inner.clock.now_ms();
        self.inner.store.revoke_family(family.id, caller.sub, "logout", now).await?;
        self.revoked(vec![family.id]);
        self.audit(AuditEvent::LoggedOut, Some(caller.sub), client, json!({ "session": family.id })).await;
        Ok(())
    }

    /// Ends every session of the caller, including the current one.
    pub async fn logout_all(&self, caller: &AccessClaims, client: &ClientInfo) -> Result<()> {
        let now = self.inner.clock.now_ms();
        let revoked = self.inner.store.revoke_user_families(caller.sub, None, "logout_all", now).await?;
        let count = revoked.len();
        self.revoked(revoked);
        self.audit(AuditEvent::LoggedOutEverywhere, Some(caller.sub), client, json!({ "sessions": count })).await;
        Ok(())
    }

    /// The caller's live sessions, the one of this token marked `current`.
    pub async fn sessions(&self, caller: &AccessClaims) -> Result<Vec<Session>> {
        let idle = secs_to_ms(self.inner.config.tokens.refresh_idle_ttl_secs);
        let mut sessions = self.inner.store.live_sessions(caller.sub, self.inner.clock.now_ms(), idle).await?;
        for session in &mut sessions {
            session.current = session.id == caller.sid;
        }
        Ok(sessions)
    }

    /// Revokes one of the caller's sessions; another user's id is [`AuthError::NotFound`].
    pub async fn revoke_session(&self, caller: &AccessClaims, session_id: Uuid, client: &ClientInfo) -> Result<()> {
        let now = self.inner.clock.now_ms();
        if !self.inner.store.revoke_family(session_id, caller.sub, "revoked_by_user", now).await? {
            return Err(AuthError::NotFound);
        }
        self.revoked(vec![session_id]);
        self.audit(AuditEvent::SessionRevoked, Some(caller.sub), client, json!({ "session": session_id })).await;
        Ok(())
    }

    // ----- the account ----------------------------------------------------

    pub async fn account(&self, user_id: Uuid) -> Result<Account> {
        let store = &self.inner.store;
        let user = store.user(user_id).await?.ok_or(AuthError::InvalidToken)?;
        let profile = store.profile(user_id).await?.ok_or(AuthError::NotFound)?;
        let memberships = store.tenants_of(user_id).await?;
        Ok(Account { user, profile, memberships })
    }

    pub async fn update_profile(&self, user_id: Uuid, update: &ProfileUpdate) -> Result<Profile> {
        let current = self.inner.store.profile(user_id).await?.ok_or(AuthError::NotFound)?;
        let profile = current.apply(update).map_err(AuthError::Validation)?;
        self.inner.store.update_profile(user_id, &profile).await?;
        Ok(profile)
    }

    /// Changes the caller's password and revokes every other session.
    pub async fn change_password(
        &self,
        caller: &AccessClaims,
        current_password: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let (user, hash) = self.inner.store.user_with_password(caller.sub).await?.ok_or(AuthError::InvalidToken)?;
        if current_password.len() > MAX_PASSWORD_BYTES
            || self.inner.passwords.verify(current_password, hash.as_deref()).await? == Verification::Invalid
        {
            return Err(AuthError::WrongPassword);
        }
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
        let email = Email::parse("email", email).map_err(AuthError::Validation)?;
        let this = self.clone();
        let client = client.clone();
        self.detach(async move {
            if !this.account_quota_allows(Action::VerificationResend, &email, &client).await? {
                return Ok(());
            }
            let found = this.inner.store.user_by_email(&email).await?;
            if let Some((user, _)) = found.filter(|(user, _)| user.is_active && !user.email_verified()) {
                this.send_verification(&user, &client).await?;
            }
            Ok(())
        });
        Ok(())
    }

    /// Emails a password-reset link if `email` belongs to an active account,
    /// at most `rate_limits.password_reset_per_account` times per window.
    /// Answers the same, at once, in every case.
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) -> Result<()> {
        let email = Email::parse("email", email).map_err(AuthError::Validation)?;
        let this = self.clone();
        let client = client.clone();
        self.detach(async move {
            if !this.account_quota_allows(Action::PasswordReset, &email, &client).await? {
                return Ok(());
            }
            let Some((user, _)) = this.inner.store.user_by_email(&email).await? else { return Ok(()) };
            if !user.is_active {
                return Ok(());
            }
            let token = OpaqueToken::generate();
            let now = this.inner.clock.now_ms();
            let expires = now + secs_to_ms(this.inner.config.tokens.reset_ttl_secs);
            this.inner.store.issue_one_time(&token, OneTimePurpose::PasswordReset, user.id, now, expires).await?;
            this.send(&recovery::reset_email(&this.inner.config, &user.email, &token)).await;
            this.audit(AuditEvent::PasswordResetRequested, Some(user.id), &client, json!({})).await;
            Ok(())
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

    // ----- tenants ----------------------------------------------------------

    /// Creates a tenant whose owner (highest role) is the caller.
    pub async fn create_tenant(&self, owner: Uuid, name: &str, client: &ClientInfo) -> Result<TenantView> {
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
                let detail = json!({ "tenant_id": tenant_id, "attempted": event.as_str(), "target": target });
                self.audit(AuditEvent::AccessDenied, Some(actor), client, detail).await;
            }
            Err(_) => {}
        }
        result
    }

    /// New tokens for the caller's session scoped to `tenant_id`, with the
    /// role read from the membership. The new session ends no later than the
    /// caller's.
    pub async fn tenant_token(&self, caller: &AccessClaims, tenant_id: Uuid, client: &ClientInfo) -> Result<TokenPair> {
        let store = &self.inner.store;
        let role = store.role_in(caller.sub, tenant_id).await?;
        let Some(role) = role else {
            self.audit(AuditEvent::AccessDenied, Some(caller.sub), client, json!({ "tenant_id": tenant_id })).await;
            return Err(AuthError::NotAMember);
        };
        let idle = secs_to_ms(self.inner.config.tokens.refresh_idle_ttl_secs);
        let current = store.family(caller.sid).await?.filter(|f| f.is_live(self.inner.clock.now_ms(), idle));
        let current = current.ok_or(AuthError::InvalidToken)?;
        let user = store.user(caller.sub).await?.filter(|u| u.is_active).ok_or(AuthError::InvalidToken)?;
        self.start_session(&user, Some((tenant_id, role)), current.absolute_expires_at, client).await
    }

    // ----- maintenance --------------------------------------------------------

    /// Deletes sessions and one-time tokens that ended over a day ago.
    pub async fn prune(&self) -> Result<u64> {
        let idle = secs_to_ms(self.inner.config.tokens.refresh_idle_ttl_secs);
        self.inner.store.prune(self.inner.clock.now_ms() - PRUNE_RETENTION_MS, idle).await
    }

    /// The most recent audit events of `user_id` (or everyone), newest first.
    pub async fn audit_trail(&self, user_id: Option<Uuid>, limit: i64) -> Result<Vec<crate::store::AuditRecord>> {
        self.inner.store.audit_events(user_id, limit).await
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}
