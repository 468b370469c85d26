//! [`Auth`]: the platform's operations, one method per use case. Web layers
//! call these and translate [`AuthError`] to HTTP.

mod accounts;
mod oauth;
mod sessions;
mod tenants;

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
    config::{AuthConfig, ConfigError},
    error::{AuthError, Result},
    identity::{AccountFlags, Email, Profile, User},
    mail::{self, Mailer},
    password::PasswordHasher,
    ratelimit::{self, Action, Decision, MemoryRateLimiter, Quota, RateLimiter, RedisRateLimiter},
    store::{Family, NewFamily, Store},
    tenancy::{RoleSet, Roles, TenantMembership},
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
        let oauth = crate::oauth::Providers::from_settings(&config.oauth)?;
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
            oauth,
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
    oauth: crate::oauth::Providers,
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
    /// endpoint. [`AuthError::RateLimited`] past the quota; clients whose IP
    /// is unknown share one quota. Disabled limits never limit.
    pub async fn rate_limit(&self, action: Action, client: &ClientInfo) -> Result<()> {
        let limits = &self.inner.config.rate_limits;
        if !limits.enabled {
            return Ok(());
        }
        let key = ratelimit::ip_key(action, client.ip);
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

    fn mint(&self, account: AccountFlags, session: &Family, role: Option<String>) -> Result<String> {
        let grant = AccessGrant {
            user_id: session.user_id,
            session_id: session.id,
            tenant: session.tenant_id.zip(role),
            account,
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
        let access = self.mint(user.flags(), &session, tenant.map(|(_, role)| role))?;
        Ok(self.pair(access, &refresh))
    }

    fn revoked(&self, sessions: Vec<Uuid>) {
        self.inner.revocations.revoke(sessions, self.inner.clock.now_ms());
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
