//! [`Auth`]: the platform's operations, one method per use case. Web layers
//! call these and translate [`AuthError`] to HTTP.

mod accounts;
mod activity;
mod detection;
mod invitations;
mod lifecycle;
mod mfa;
mod oauth;
mod operators;
mod passkeys;
mod sessions;
mod tenants;
#[cfg(feature = "testing")]
pub mod testing;
mod webhooks;

pub use mfa::SecondFactor;
pub use operators::Operator;
pub use sessions::RotateOutcome;

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::{
    audit::{AuditEvent, AuditLog, ClientInfo, Denials},
    clock::Clock,
    config::{AuthConfig, ConfigError},
    detection::{Device, DeviceKey, NEW_DEVICE_WINDOW_MS, Suspects},
    error::{AuthError, Result},
    identity::{AccountFlags, Email, Profile, User},
    mail::{self, Mailer},
    mfa::totp::SecretSealer,
    password::PasswordHasher,
    ratelimit::{
        self, Action, Decision, LockScope, MemoryRateLimiter, Quota, RateLimiter, RedisRateLimiter, UserAction,
    },
    recovery,
    secret::{Secret, exposed},
    store::{Family, NewFamily, Seen, Store},
    tenancy::{RoleSet, Roles, TenantMembership},
    tokens::{AccessClaims, AccessGrant, AccessTokens, AuthMethod, KeySet, OpaqueToken, RevocationList, amr},
    webhooks::WebhookSender,
};

/// Ended sessions and spent one-time tokens are kept this long before
/// [`Operators::prune`] deletes them: far longer than any access token can outlive
/// its session's revocation, so every instance has seen the revocation.
const PRUNE_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// Access and refresh tokens (RFC 6749 §5.1): the answer to a login or
/// refresh, and the contract's body as it is. Its `Debug` hides both tokens;
/// serialising it is handing them to the client.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    #[serde(serialize_with = "exposed::serialize")]
    #[schema(value_type = String)]
    pub access: Secret,
    #[serde(serialize_with = "exposed::serialize")]
    #[schema(value_type = String)]
    pub refresh: Secret,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Seconds the refresh token stays usable if unused (the idle lifetime,
    /// cut at the session's absolute end): the refresh cookie's `Max-Age`.
    #[serde(skip)]
    pub refresh_expires_in: u64,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    /// Users have TOTP secrets sealed under a key this deployment lacks.
    #[error("{0} users have TOTP factors but mfa.encryption_key is not set: configure the key they were sealed with")]
    MfaKeyMissing(i64),
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
        // The platform's at-rest key: TOTP secrets, device fingerprints, webhook secrets.
        let mfa_key = config.mfa.key_bytes();
        let totp_sealer = mfa_key.as_ref().map(|key| SecretSealer::new(key));
        if totp_sealer.is_none() {
            let sealed = store.sealed_totp_secrets().await?;
            if sealed > 0 {
                return Err(BuildError::MfaKeyMissing(sealed));
            }
        }
        let webauthn = relying_party(&config);
        let devices = mfa_key.as_ref().map(|key| DeviceKey::derive(key));
        let webhooks = match &mfa_key {
            Some(key) => Some(Arc::new(
                WebhookSender::new(key, &config.webhooks).map_err(|e| BuildError::Store(AuthError::internal(e)))?,
            )),
            None => None,
        };
        if let Some(webhooks) = &webhooks {
            webhooks.reload(&store).await?;
        }
        let audit = AuditLog::new(store.clone(), webhooks.clone());
        let inner = Arc::new(Inner {
            tokens: AccessTokens::new(keys, &config.issuer, &config.audience, &config.tokens, self.clock.clone()),
            passwords: PasswordHasher::new(&config.password)?,
            revocations: RevocationList::new(
                config.tokens.revocation_max_entries,
                secs_to_ms(config.tokens.leeway_secs),
            ),
            denials: Denials::start(audit.clone(), self.clock.clone()),
            audit,
            store,
            mailer,
            roles: self.roles,
            clock: self.clock,
            limiter,
            oauth,
            totp_sealer,
            webauthn,
            devices,
            suspects: Suspects::new(),
            webhooks,
            config,
        });
        inner.reload_revocations().await?;
        tokio::spawn(poll_revocations(Arc::downgrade(&inner)));
        tokio::spawn(prune_hourly(Arc::downgrade(&inner)));
        if inner.webhooks.is_some() {
            tokio::spawn(deliver_webhooks(Arc::downgrade(&inner)));
        }
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
    denials: Denials,
    roles: RoleSet,
    clock: Clock,
    limiter: Arc<dyn RateLimiter>,
    oauth: crate::oauth::Providers,
    /// `None` without `mfa.encryption_key`: TOTP cannot be enrolled.
    totp_sealer: Option<SecretSealer>,
    /// `None` when the relying party cannot be configured: passkeys are off.
    webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// `None` without `mfa.encryption_key`: no new-device detection.
    devices: Option<DeviceKey>,
    /// Addresses suspected of credential stuffing: a lower login quota.
    suspects: Suspects,
    /// `None` without `mfa.encryption_key`: no webhooks.
    webhooks: Option<Arc<WebhookSender>>,
}

impl Inner {
    /// How long a revoked session must stay in the revocation list: as long as
    /// an access token minted just before the revocation can be accepted.
    fn revocation_window_ms(&self) -> i64 {
        let t = &self.config.tokens;
        i64::try_from((t.access_ttl_secs + t.leeway_secs) * 1000).unwrap_or(i64::MAX)
    }

    async fn prune(&self) -> Result<u64> {
        let now = self.clock.now_ms();
        let idle = secs_to_ms(self.config.tokens.refresh_idle_ttl_secs);
        let audit_before = now - secs_to_ms(u64::from(self.config.audit.retention_days) * 24 * 3600);
        let cutoff = now - PRUNE_RETENTION_MS;
        let mut tx = self.store.begin().await?;
        let families = tx.delete_ended_families(cutoff, idle).await?;
        tx.delete_spent_one_time(cutoff).await?;
        tx.delete_audit_before(audit_before).await?;
        tx.delete_old_deleted_sessions(cutoff).await?;
        tx.delete_old_mfa_logins(cutoff).await?;
        tx.delete_old_challenges(now).await?;
        tx.delete_old_deliveries(cutoff).await?;
        tx.commit().await?;
        Ok(families)
    }

    /// Reads the families revoked since the last poll (the whole window the
    /// first time) and merges them.
    async fn reload_revocations(&self) -> Result<()> {
        let now = self.clock.now_ms();
        let forget_before = now - self.revocation_window_ms();
        let revoked = self.store.revoked_since(self.revocations.poll_since(forget_before)).await?;
        self.revocations.merge_poll(&revoked, now, forget_before);
        metrics::gauge!(crate::metrics::REVOCATION_LIST_SIZE).set(self.revocations.len() as f64);
        metrics::gauge!(crate::metrics::VERIFIED_CACHE_SIZE).set(self.tokens.cached_tokens() as f64);
        metrics::gauge!(crate::metrics::REVOCATION_LAST_POLL).set(now as f64 / 1000.0);
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

/// This instance's webhook worker, until the last [`Auth`] handle is dropped:
/// every `webhooks.poll_ms` it sends the due deliveries; every few seconds
/// it reads the subscriptions again (another instance may have changed them).
async fn deliver_webhooks(inner: Weak<Inner>) {
    let mut reloaded_at = 0;
    loop {
        let Some(period) = inner.upgrade().map(|i| Duration::from_millis(i.config.webhooks.poll_ms)) else { return };
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        let Some(webhooks) = &inner.webhooks else { return };
        let now = inner.clock.now_ms();
        if now - reloaded_at >= crate::webhooks::RELOAD_MS {
            reloaded_at = now;
            if let Err(error) = webhooks.reload(&inner.store).await {
                tracing::warn!(%error, "could not read the webhook endpoints; keeping the current ones");
            }
        }
        if let Err(error) = webhooks.work(&inner.store, || inner.clock.now_ms()).await {
            tracing::warn!(%error, "webhook deliveries failed to run; they stay due");
        }
    }
}

/// Runs [`Operators::prune`] every hour until the last [`Auth`] handle is dropped.
async fn prune_hourly(inner: Weak<Inner>) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if let Err(error) = inner.prune().await {
            tracing::warn!(%error, "could not prune ended sessions and old audit events");
        }
    }
}

/// Defines a view of [`Auth`] for one use case: `auth.<accessor>()` returns it,
/// and it derefs to the `Auth` it views, so its operations share the engine's
/// helpers.
macro_rules! views {
    ($($(#[$doc:meta])* $view:ident => $accessor:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $view<'a>(&'a Auth);

        impl std::ops::Deref for $view<'_> {
            type Target = Auth;

            fn deref(&self) -> &Auth {
                self.0
            }
        }

        impl Auth {
            $(#[$doc])*
            pub fn $accessor(&self) -> $view<'_> {
                $view(self)
            }
        }
    )*};
}

views! {
    /// Registration, the account and its profile, email verification, password change and reset.
    Accounts => accounts,
    /// Sign-in with a password, refresh, sign-out, and a user's sessions.
    Sessions => sessions,
    /// Tenants, their members, and tokens scoped to a tenant.
    Tenants => tenants,
    /// Sign-in with OpenID Connect providers, and linking them to an account.
    OAuth => oauth,
    /// What the platform's operators do (the CLI): superusers, deactivation, memberships, the audit trail.
    Operators => operators,
    /// A signed-in user's second factors: TOTP and recovery codes.
    Mfa => mfa,
    /// Passkeys (WebAuthn): registration, discoverable sign-in, the second step of a login.
    Passkeys => passkeys,
    /// Signed webhooks: the operators' subscriptions and their deliveries.
    Webhooks => webhooks,
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

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.store.backend_name()
    }

    pub fn roles(&self) -> &RoleSet {
        &self.inner.roles
    }

    /// The key set tokens are verified with now.
    pub fn keys(&self) -> Arc<KeySet> {
        self.inner.tokens.keys()
    }

    /// The public JWKS document (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.inner.tokens.keys().jwks()
    }

    /// Now, by the engine's [`Clock`]: what tokens are dated and checked by
    /// (a web layer compares `auth_time` with it).
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    async fn audit(&self, event: AuditEvent, user: Option<Uuid>, client: &ClientInfo, detail: serde_json::Value) {
        self.inner.audit.record(event, user, client, detail, self.now()).await;
    }

    /// Sends an email; a failure is logged, not returned: the operation that
    /// wanted it has happened, and the user can ask again.
    async fn send(&self, email: &mail::Email) {
        let outcome = match self.inner.mailer.send(email).await {
            Ok(()) => "sent",
            Err(error) => {
                tracing::error!(%error, subject = email.subject, "email not sent");
                "failed"
            }
        };
        metrics::counter!(crate::metrics::MAIL, "outcome" => outcome).increment(1);
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
    /// (`rate_limits.<action>`). Each operation calls this first for its own
    /// action, so a web layer never does; it is public for checks of the
    /// quotas themselves. [`AuthError::RateLimited`] past the quota; clients
    /// whose IP is unknown share one quota. Disabled limits never limit.
    pub async fn rate_limit(&self, action: Action, client: &ClientInfo) -> Result<()> {
        let limits = &self.inner.config.rate_limits;
        if !limits.enabled {
            return Ok(());
        }
        let key = ratelimit::ip_key(action, client.ip);
        self.within(&key, limits.per_ip(action), action, client).await?;
        let now = self.inner.clock.now_ms();
        if action == Action::Login && self.inner.suspects.is_suspect(&ratelimit::address_bucket(client.ip), now) {
            let key = format!("{key}:suspected");
            self.within(&key, limits.login_suspected, action, client).await?;
        }
        Ok(())
    }

    /// Counts one request of `action` under `key`: refused past `quota`.
    async fn within(&self, key: &str, quota: Quota, action: Action, client: &ClientInfo) -> Result<()> {
        match self.inner.limiter.hit(key, quota).await? {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after_secs } => {
                let detail = json!({ "action": action.as_str(), "scope": "ip", "retry_after_secs": retry_after_secs });
                self.record_limited(key, retry_after_secs, client, detail).await;
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

    /// Counts one request of `user_id` to `action` against its per-user quota
    /// (`rate_limits.<action>`); the operations behind a bearer token call
    /// this first. [`AuthError::RateLimited`] past the quota.
    async fn user_quota(&self, action: UserAction, user_id: Uuid, client: &ClientInfo) -> Result<()> {
        let limits = &self.inner.config.rate_limits;
        if !limits.enabled {
            return Ok(());
        }
        let key = ratelimit::user_key(action, user_id);
        match self.inner.limiter.hit(&key, limits.per_user(action)).await? {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after_secs } => {
                let detail = json!({ "action": action.as_str(), "scope": "user", "user_id": user_id });
                self.record_limited(&key, retry_after_secs, client, detail).await;
                Err(AuthError::RateLimited { retry_after_secs })
            }
        }
    }

    /// [`AuthError::RateLimited`] while a login back-off locks the client's
    /// address out of the account of `email` (see
    /// [`RateLimiter::login_allowed`]); checked before any password hashing.
    async fn check_login_lock(&self, email: &Email, client: &ClientInfo) -> Result<()> {
        let limits = &self.inner.config.rate_limits;
        if !limits.enabled {
            return Ok(());
        }
        let address = ratelimit::address_bucket(client.ip);
        let Some(lock) = self.inner.limiter.login_allowed(email.as_str(), &address, limits).await? else {
            return Ok(());
        };
        let (key, scope) = match lock.scope {
            LockScope::Address => (format!("login:{email}:{address}"), "account_address"),
            LockScope::Account => (format!("login:{email}"), "account"),
        };
        let detail = json!({ "action": "login", "scope": scope, "email": email });
        self.record_limited(&key, lock.retry_after_secs, client, detail).await;
        Err(AuthError::RateLimited { retry_after_secs: lock.retry_after_secs })
    }

    /// Records a wrong password for `email` from the client's address in the
    /// login back-offs.
    async fn login_failed(&self, email: &Email, client: &ClientInfo) -> Result<()> {
        let limits = &self.inner.config.rate_limits;
        if limits.enabled {
            let address = ratelimit::address_bucket(client.ip);
            self.inner.limiter.login_failed(email.as_str(), &address, limits).await?;
            self.watch_failures(email, &address, client).await?;
        }
        Ok(())
    }

    /// Clears the back-off of the client's address for `email` and remembers
    /// the address as known. A failure is logged: the caller has proved the
    /// password, and stale failures expire by themselves.
    async fn login_succeeded(&self, email: &Email, client: &ClientInfo) {
        let limits = &self.inner.config.rate_limits;
        if limits.enabled {
            let address = ratelimit::address_bucket(client.ip);
            if let Err(error) = self.inner.limiter.login_succeeded(email.as_str(), &address, limits).await {
                tracing::warn!(%error, "could not record a successful login in the rate limiter");
            }
        }
    }

    // ----- access tokens -------------------------------------------------

    /// Verifies an access token: signature, claims and session revocation,
    /// all in memory. Every failure is [`AuthError::InvalidToken`]. The
    /// claims are the verified-token cache's own, shared, not copied.
    pub fn verify_access(&self, token: &str) -> Result<Arc<AccessClaims>> {
        let claims = self.inner.tokens.verify(token)?;
        if self.inner.revocations.is_revoked(claims.sid, claims.iat) {
            return Err(crate::tokens::rejected("revoked"));
        }
        Ok(claims)
    }

    /// Stops this instance accepting access tokens signed with the
    /// verification key `kid`, at once: the key leaves the JWKS and the
    /// verified-token cache forgets its tokens. For a leaked key, or the end of
    /// a rotation's overlap, without a restart; every instance must be told,
    /// and the key removed from `tokens.verification_keys` before the next
    /// start. The signing key cannot be retired (rotate first).
    pub fn retire_verification_key(&self, kid: &str) -> Result<()> {
        self.inner.tokens.retire_key(kid).map_err(|message| crate::error::FieldErrors::single("kid", message))?;
        tracing::warn!(kid, "verification key retired; its tokens are refused from now on");
        Ok(())
    }

    /// Records a denied request (a 403 of an authenticated caller) in the
    /// audit trail, coalesced: repeats of one caller's denial for one reason
    /// within a minute become one row and a count, through a bounded queue.
    /// Never waits: call it from a request guard as it is.
    pub fn record_denied(&self, user: Option<Uuid>, client: &ClientInfo, reason: &str, detail: serde_json::Value) {
        self.inner.denials.record(user, client, reason, detail);
    }

    /// An access token of `session`, saying how its user signed in.
    fn mint(&self, account: AccountFlags, session: &Family, tenant: Option<(Uuid, String)>) -> Result<String> {
        let grant = AccessGrant {
            user_id: session.user_id,
            session_id: session.id,
            tenant,
            account,
            amr: amr::claimed(&session.amr),
            auth_time: session.auth_time.div_euclid(1000),
        };
        Ok(self.inner.tokens.mint(&grant)?.0)
    }

    fn pair(&self, access: String, refresh: &OpaqueToken, session: &Family) -> TokenPair {
        let now = self.inner.clock.now_ms();
        let idle_end = now + secs_to_ms(self.inner.config.tokens.refresh_idle_ttl_secs);
        let refresh_expires_in = (idle_end.min(session.absolute_expires_at) - now).max(0) / 1000;
        TokenPair {
            access: Secret::new(access),
            refresh: Secret::new(refresh.as_str()),
            token_type: "Bearer",
            expires_in: self.inner.tokens.ttl_secs(),
            refresh_expires_in: u64::try_from(refresh_expires_in).unwrap_or(0),
        }
    }

    /// Starts a login session (a refresh family) for a user who has just
    /// signed in with `methods`, and returns its first tokens. The user's
    /// oldest sessions beyond `tokens.max_sessions_per_user` end.
    async fn start_session(
        &self,
        user: &User,
        tenant: Option<(Uuid, String)>,
        methods: &[AuthMethod],
        client: &ClientInfo,
    ) -> Result<TokenPair> {
        let t = &self.inner.config.tokens;
        let now = self.inner.clock.now_ms();
        let absolute_expires_at = now + secs_to_ms(t.refresh_absolute_ttl_secs);
        let family = NewFamily {
            id: Uuid::now_v7(),
            user_id: user.id,
            tenant_id: tenant.as_ref().map(|(id, _)| *id),
            now,
            absolute_expires_at,
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
            amr: amr::stored(methods),
        };
        let refresh = OpaqueToken::generate();
        let idle = secs_to_ms(t.refresh_idle_ttl_secs);
        let device = self.inner.devices.as_ref().and_then(|key| key.device(client));
        // One transaction: the new session, the cap on live sessions and the
        // device it came from hold together.
        let mut tx = self.inner.store.begin().await?;
        tx.insert_family(&family).await?;
        tx.insert_refresh_token(refresh.hash(), family.id, family.tenant_id, now).await?;
        let ended = tx.revoke_sessions_beyond(user.id, t.max_sessions_per_user, now, idle).await?;
        let seen = match &device {
            Some(device) => Some(tx.see_device(user.id, &device.fingerprint, now, now - NEW_DEVICE_WINDOW_MS).await?),
            None => None,
        };
        tx.commit().await?;
        if let (Some(Seen::New), Some(device)) = (seen, &device) {
            self.new_device_sign_in(user, device, family.id, client).await;
        }
        if !ended.is_empty() {
            let detail = json!({ "sessions": ended, "reason": "session_limit" });
            self.revoked(ended);
            self.audit(AuditEvent::SessionRevoked, Some(user.id), client, detail).await;
        }
        let session = Family {
            id: family.id,
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            absolute_expires_at,
            revoked_at: None,
            amr: family.amr,
            auth_time: now,
        };
        let access = self.mint(user.flags(), &session, tenant)?;
        Ok(self.pair(access, &refresh, &session))
    }

    fn revoked(&self, sessions: Vec<Uuid>) {
        self.inner.revocations.revoke(sessions, self.inner.clock.now_ms());
    }

    /// A sign-in from a device the account has not used in 90 days: audited
    /// now; after the answer, the user is mailed when, with what (the family
    /// only), and a password reset link, which also ends every session, that
    /// one included.
    async fn new_device_sign_in(&self, user: &User, device: &Device, session: Uuid, client: &ClientInfo) {
        let detail = json!({ "session": session, "device": device.description });
        self.audit(AuditEvent::NewDeviceSignIn, Some(user.id), client, detail).await;
        let (this, user_id, email, device) = (self.clone(), user.id, user.email.clone(), device.description.clone());
        self.detach(async move {
            let token = this.accounts().issue_reset_token(user_id).await?;
            this.send(&recovery::new_device_notice(&this.inner.config, &email, this.now(), &device, &token)).await;
            Ok(())
        });
    }
}

/// The WebAuthn relying party of `config`, or `None` (passkeys off, with a
/// warning) when `public_url` or the `webauthn` settings cannot make one.
fn relying_party(config: &AuthConfig) -> Option<Arc<webauthn_rs::Webauthn>> {
    let built = config.relying_party().and_then(|rp| {
        let mut builder = webauthn_rs::WebauthnBuilder::new(&rp.id, &rp.origins[0]).map_err(|e| e.to_string())?;
        for origin in &rp.origins[1..] {
            builder = builder.append_allowed_origin(origin);
        }
        builder.rp_name(&rp.name).timeout(Duration::from_secs(300)).build().map_err(|e| e.to_string())
    });
    match built {
        Ok(webauthn) => Some(Arc::new(webauthn)),
        Err(reason) => {
            tracing::warn!(%reason, "passkeys are off: no WebAuthn relying party");
            None
        }
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}
