//! One [`AuthConfig`] with secure defaults, validated once at start-up, and the
//! production checklist of the seed guide expressed as code.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

pub use crate::oauth::{OAuthPreset, OAuthProvider};
pub use crate::secret::Secret;
use crate::secret::exposed;

/// Passwords longer than this many bytes are rejected before any hashing, so a
/// huge body cannot buy a long argon2 run.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest access-token lifetime the platform accepts (deployment checklist).
pub const MAX_ACCESS_TTL_SECS: u64 = 15 * 60;
/// The shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// Where the platform runs, when a deployment says so on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// The deployment checklist is enforced (the default of everything but
    /// a debug build on Rocket's debug profile).
    Production,
    /// The checklist is relaxed: development keys, the file outbox, cheap
    /// settings. Never implied by a profile name in a release build.
    Development,
}

/// Settings of the whole platform. Every field has a secure default.
///
/// `Debug` hides every secret and the database URL's credentials. Serialising
/// writes the secrets in full: it is for handing a configuration to figment
/// (tests, tools), never for a log or an answer.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Unset: production, except a debug build on Rocket's debug profile.
    pub environment: Option<Environment>,
    /// `iss` of every access token.
    pub issuer: String,
    /// `aud` of every access token.
    pub audience: String,
    /// Base of every link sent by email; never taken from a request's `Host`.
    pub public_url: String,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Path (under `public_url`) of the page that verifies an emailed token.
    /// Unset: the hosted page when there is one (auth-rocket's `ui`), else
    /// [`AuthConfig::DEFAULT_VERIFY_EMAIL_PATH`].
    pub verify_email_path: Option<String>,
    /// Path (under `public_url`) of the page where a user sets a new password
    /// with an emailed reset token. Unset: the hosted page, else
    /// [`AuthConfig::DEFAULT_RESET_PASSWORD_PATH`].
    pub reset_password_path: Option<String>,
    /// Path (under `public_url`) of the page where an invited user accepts an
    /// emailed invitation (`POST /invitations/accept` with its token). Unset:
    /// the hosted page, else [`AuthConfig::DEFAULT_INVITATION_PATH`].
    pub invitation_path: Option<String>,
    /// Path (under `public_url`) of the page that confirms a new email
    /// address with the emailed token (`POST /me/email/confirm`).
    pub email_change_path: String,
    /// Whether login requires a verified email address.
    pub require_verified_email: bool,
    pub tokens: TokenSettings,
    pub password: PasswordSettings,
    pub mail: MailSettings,
    pub http: HttpSettings,
    pub rate_limits: RateLimitSettings,
    pub audit: AuditSettings,
    pub mfa: MfaSettings,
    pub webauthn: WebauthnSettings,
    pub metrics: MetricsSettings,
    pub webhooks: WebhookSettings,
    /// OpenID Connect providers by name (`[default.auth.oauth.<name>]`); the
    /// name is the `<provider>` of `/oauth/<provider>/…`.
    pub oauth: BTreeMap<String, OAuthProvider>,
}

impl AuthConfig {
    /// The emailed verification link's path without hosted pages: the JSON
    /// API's own `GET /verify-email` under the demo's mount.
    pub const DEFAULT_VERIFY_EMAIL_PATH: &str = "/api/auth/verify-email";
    pub const DEFAULT_RESET_PASSWORD_PATH: &str = "/reset-password";
    pub const DEFAULT_INVITATION_PATH: &str = "/accept-invitation";

    /// The path of the emailed email-verification link.
    pub fn verify_email_link(&self) -> &str {
        self.verify_email_path.as_deref().unwrap_or(Self::DEFAULT_VERIFY_EMAIL_PATH)
    }

    /// The path of the emailed password-reset link.
    pub fn reset_password_link(&self) -> &str {
        self.reset_password_path.as_deref().unwrap_or(Self::DEFAULT_RESET_PASSWORD_PATH)
    }

    /// The path of the emailed invitation link.
    pub fn invitation_link(&self) -> &str {
        self.invitation_path.as_deref().unwrap_or(Self::DEFAULT_INVITATION_PATH)
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            environment: None,
            issuer: "http://localhost:8000".into(),
            audience: "auth-platform".into(),
            public_url: "http://localhost:8000".into(),
            database_url: "sqlite://auth.db?mode=rwc".into(),
            verify_email_path: None,
            reset_password_path: None,
            invitation_path: None,
            email_change_path: "/confirm-email".into(),
            require_verified_email: true,
            tokens: TokenSettings::default(),
            password: PasswordSettings::default(),
            mail: MailSettings::default(),
            http: HttpSettings::default(),
            rate_limits: RateLimitSettings::default(),
            audit: AuditSettings::default(),
            mfa: MfaSettings::default(),
            webauthn: WebauthnSettings::default(),
            metrics: MetricsSettings::default(),
            webhooks: WebhookSettings::default(),
            oauth: BTreeMap::new(),
        }
    }
}

/// JWS algorithms the platform signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "EdDSA")]
    EdDsa,
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "HS256")]
    Hs256,
}

impl SigningAlgorithm {
    pub fn is_symmetric(self) -> bool {
        self == Self::Hs256
    }
}

/// One key: a private key (PEM, inline or in a file) for asymmetric algorithms,
/// a public key for verification-only keys, or a secret for HS256.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySpec {
    /// The `kid` header of tokens signed with this key.
    pub kid: String,
    /// Defaults to `tokens.algorithm`.
    pub algorithm: Option<SigningAlgorithm>,
    /// A PKCS#8 private key or SPKI public key in PEM form.
    #[serde(serialize_with = "exposed::serialize_option")]
    pub pem: Option<Secret>,
    /// A file holding `pem`.
    pub pem_file: Option<PathBuf>,
    /// The HS256 secret (at least 32 bytes).
    #[serde(serialize_with = "exposed::serialize_option")]
    pub secret: Option<Secret>,
}

/// Token lifetimes, algorithm and keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    pub algorithm: SigningAlgorithm,
    /// The key that signs new tokens. `None` only in development, where the
    /// web layer generates and persists one.
    pub signing_key: Option<KeySpec>,
    /// Older keys still accepted for verification (key rotation).
    pub verification_keys: Vec<KeySpec>,
    pub access_ttl_secs: u64,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
    pub refresh_idle_ttl_secs: u64,
    pub refresh_absolute_ttl_secs: u64,
    /// Within this many seconds of a rotation, presenting the consumed token
    /// again returns its successor instead of revoking the family. 0 disables it.
    pub refresh_reuse_grace_secs: u64,
    /// How often each instance reloads revoked sessions from the store; the
    /// bound on cross-instance revocation of access tokens.
    pub revocation_poll_secs: u64,
    /// Live login sessions a user may hold; a new login ends the oldest beyond it.
    pub max_sessions_per_user: u32,
    /// The most revoked sessions each instance holds in memory. Past it the
    /// oldest are dropped and every access token issued before them is
    /// refused instead (its client refreshes): memory stays bounded, and no
    /// revoked session's token is accepted.
    pub revocation_max_entries: usize,
    /// Access tokens whose signature check each instance remembers, so that a
    /// client's next request with the same token skips it (under 0.5 KiB
    /// each; expiry, revocation and policy are still checked on every
    /// request). 0 verifies every request.
    pub verified_cache_entries: usize,
    pub verification_ttl_secs: u64,
    pub reset_ttl_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::Rs256,
            signing_key: None,
            verification_keys: Vec::new(),
            access_ttl_secs: 5 * 60,
            leeway_secs: 30,
            refresh_idle_ttl_secs: 24 * 3600,
            refresh_absolute_ttl_secs: 30 * 24 * 3600,
            refresh_reuse_grace_secs: 0,
            revocation_poll_secs: 2,
            max_sessions_per_user: 20,
            revocation_max_entries: 1_000_000,
            verified_cache_entries: 10_000,
            verification_ttl_secs: 24 * 3600,
            reset_ttl_secs: 30 * 60,
        }
    }
}

impl TokenSettings {
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_ttl_secs)
    }
}

/// Password policy and argon2id cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordSettings {
    /// Minimum length in characters.
    pub min_length: usize,
    /// Maximum length in characters (at least 64; at most [`MAX_PASSWORD_BYTES`] bytes).
    pub max_length: usize,
    /// Minimum zxcvbn score, 0 (anything) to 4 (very strong).
    pub min_strength: u8,
    /// argon2id memory cost in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// argon2id iterations (OWASP: 2).
    pub argon2_iterations: u32,
    /// argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Threads that hash passwords; 0 means one per CPU but one (at least one),
    /// so a login storm leaves a core to the request path (BENCHMARKS.md).
    pub hashing_threads: usize,
    /// How long a caller waits for a free hashing thread before `Overloaded`.
    pub hashing_queue_timeout_ms: u64,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 128,
            min_strength: 3,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hashing_threads: 0,
            hashing_queue_timeout_ms: 2000,
        }
    }
}

/// The audit trail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Events older than this many days are deleted (hourly, by every instance).
    pub retention_days: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { retention_days: 365 }
    }
}

/// Second factors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfaSettings {
    /// The key that seals TOTP secrets at rest: 32 random bytes in standard
    /// base64 (`openssl rand -base64 32`). Every instance needs the same one,
    /// and losing it loses every TOTP factor (their users sign in with a
    /// recovery code). Unset: TOTP cannot be enrolled, and the platform
    /// refuses to start while any user has a TOTP factor; in development a
    /// key is derived from the development signing key.
    #[serde(serialize_with = "exposed::serialize_option")]
    pub encryption_key: Option<Secret>,
    /// The issuer an authenticator app shows beside the account (the
    /// `otpauth://` URI's `issuer`).
    pub totp_issuer: String,
}

impl Default for MfaSettings {
    fn default() -> Self {
        Self { encryption_key: None, totp_issuer: "Auth Platform".into() }
    }
}

/// The length of `mfa.encryption_key` once decoded.
pub const MFA_KEY_BYTES: usize = 32;

impl MfaSettings {
    /// A development launch's `encryption_key`: derived from its (generated)
    /// signing key, so it lasts as long as that key's file and needs no
    /// second one. Never for production: whoever has the signing key has it.
    pub fn development_key(signing_key: &KeySpec) -> Secret {
        use base64::Engine as _;
        let material = signing_key.pem.as_ref().or(signing_key.secret.as_ref()).map_or("", |m| m.expose());
        let input = [b"auth-platform/development-mfa-key/v1\0".as_slice(), material.as_bytes()].concat();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
        Secret::new(base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
    }

    /// The decoded encryption key, if one is set and well formed.
    pub(crate) fn key_bytes(&self) -> Option<secrecy::zeroize::Zeroizing<Vec<u8>>> {
        use base64::Engine as _;
        let key = self.encryption_key.as_ref()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(key.expose().trim()).ok()?;
        (bytes.len() == MFA_KEY_BYTES).then(|| secrecy::zeroize::Zeroizing::new(bytes))
    }
}

/// Signed webhooks (see [`crate::webhooks`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Endpoints may be `http://` URLs; production refuses this (https only).
    pub allow_http: bool,
    /// Endpoints may resolve to loopback, private, link-local or other
    /// non-public addresses (an internal receiver); off, they are refused.
    pub allow_private_addresses: bool,
    /// Seconds a delivery may take, connection included.
    pub timeout_secs: u64,
    /// Attempts before a delivery is `failed`.
    pub max_attempts: u32,
    /// The first retry's delay; each next one waits four times longer (at most 6 hours).
    pub retry_base_secs: u64,
    /// How often each instance's worker looks for due deliveries, in milliseconds.
    pub poll_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_private_addresses: false,
            timeout_secs: 10,
            max_attempts: 8,
            retry_base_secs: 10,
            poll_ms: 1000,
        }
    }
}

/// `GET /metrics` (the Prometheus text format; see [`crate::metrics`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Off by default. On, auth-rocket serves `GET /metrics` at the root.
    pub enabled: bool,
    /// The bearer token a scraper must send (`Authorization: Bearer …`);
    /// required when enabled, at least 32 characters.
    #[serde(serialize_with = "exposed::serialize_option")]
    pub token: Option<Secret>,
}

/// Passkeys (WebAuthn): the relying party that credentials are bound to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebauthnSettings {
    /// The relying-party id: a registrable domain (`example.com`), which
    /// every credential is bound to for good. Unset: the host of `public_url`.
    pub rp_id: Option<String>,
    /// The name an authenticator shows. Unset: `mfa.totp_issuer`.
    pub rp_name: Option<String>,
    /// The origins (`https://app.example.com`) whose pages may use the
    /// credentials; each must be the rp id or under it. Unset: `public_url`'s origin.
    pub origins: Vec<String>,
}

/// The relying party of a deployment, once its settings are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    pub id: String,
    pub name: String,
    pub origins: Vec<webauthn_rs::prelude::Url>,
}

impl AuthConfig {
    /// The relying party the `webauthn` settings (or `public_url`) name, or
    /// why there can be none: a relying-party id is a domain name, so a
    /// `public_url` on an IP address leaves passkeys off.
    pub fn relying_party(&self) -> Result<RelyingParty, String> {
        use webauthn_rs::prelude::Url;
        let w = &self.webauthn;
        let origins: Vec<Url> = if w.origins.is_empty() {
            vec![Url::parse(&self.public_url).map_err(|e| format!("public_url: {e}"))?]
        } else {
            w.origins
                .iter()
                .map(|o| Url::parse(o).map_err(|e| format!("webauthn.origins: {o}: {e}")))
                .collect::<Result<_, _>>()?
        };
        let id = match &w.rp_id {
            Some(id) => id.clone(),
            None => origins[0].host_str().unwrap_or_default().to_owned(),
        };
        if id.is_empty() || id.starts_with('[') || id.parse::<std::net::IpAddr>().is_ok() {
            return Err(format!("webauthn.rp_id `{id}` is no domain name"));
        }
        for origin in &origins {
            let host = origin.host_str().unwrap_or_default();
            if !(host == id || host.ends_with(&format!(".{id}"))) {
                return Err(format!("webauthn.origins: {origin} is not under the rp id `{id}`"));
            }
        }
        let name = w.rp_name.clone().unwrap_or_else(|| self.mfa.totp_issuer.clone());
        Ok(RelyingParty { id, name, origins })
    }
}

/// What a web layer needs to treat requests safely.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` and
    /// `Forwarded` are believed ([`crate::forwarded::client_ip`]).
    /// Empty: the client IP is the socket's peer address, whatever headers say.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Origins allowed to call the API from a browser (exact match). Empty: CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// The largest JSON body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { trusted_proxies: Vec::new(), cors_allowed_origins: Vec::new(), max_body_bytes: 16 * 1024 }
    }
}

/// Where mail goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// The `From:` header.
    pub from: String,
    pub transport: MailTransport,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            from: "Auth Platform <no-reply@localhost>".into(),
            transport: MailTransport::Outbox { dir: PathBuf::from("outbox") },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MailTransport {
    /// Each message is written to `dir` as an `.eml` file (development).
    Outbox { dir: PathBuf },
    /// SMTP with STARTTLS (port 587) or implicit TLS (port 465).
    Smtp {
        host: String,
        #[serde(default = "default_smtp_port")]
        port: u16,
        username: Option<String>,
        #[serde(serialize_with = "exposed::serialize_option")]
        password: Option<Secret>,
        /// Plain-text SMTP, for a local relay only; refused in production.
        #[serde(default)]
        insecure: bool,
    },
    /// Kept in memory (tests).
    Memory,
}

fn default_smtp_port() -> u16 {
    587
}

/// At most `requests` requests per `window_secs` seconds (a fixed window that
/// starts at a key's first request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub requests: u32,
    pub window_secs: u64,
}

impl Quota {
    pub const fn new(requests: u32, window_secs: u64) -> Self {
        Self { requests, window_secs }
    }
}

/// Brute-force and abuse limits (see [`crate::ratelimit`]). Per-IP quotas are
/// applied by the web layer through [`crate::Auth::rate_limit`]; the
/// per-account and per-user limits are applied by [`crate::Auth`] itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Whether any limit is applied.
    pub enabled: bool,
    /// Failed logins for one (normalised) email address, existing or not,
    /// from one client address (an IPv4 address, an IPv6 /64, or all clients
    /// whose address is unknown, together) within `login_failure_window_secs`,
    /// after which that address is soft-locked out of that account.
    pub login_failures_per_account: u32,
    /// The window in which one address's failed logins are counted; once it
    /// has been locked, its count is kept this long after the end of the lock.
    pub login_failure_window_secs: u64,
    /// Failed logins for one email address from all client addresses
    /// together within `login_account_failure_window_secs`, after which the
    /// account is soft-locked for every address not known from a recent
    /// successful sign-in.
    pub login_failures_account_wide: u32,
    /// The window of the account-wide count, kept as long after a lock.
    pub login_account_failure_window_secs: u64,
    /// The first lock lasts this long; each further failure doubles it.
    pub login_backoff_base_secs: u64,
    /// The longest lock (there is never a permanent one).
    pub login_backoff_max_secs: u64,
    /// How long an address that signed in to an account stays exempt from
    /// that account's account-wide lock.
    pub login_known_address_secs: u64,
    /// Known addresses kept per account (the most recent ones).
    pub login_known_addresses_per_account: u32,
    /// Credential stuffing: this many different accounts failing to sign in
    /// from one client address within `stuffing_window_secs` is
    /// `credential_stuffing_suspected`, and that address's logins then count
    /// against `login_suspected` too, for the rest of the window.
    pub stuffing_accounts_per_address: u32,
    /// An account under attack: this many different client addresses failing
    /// to sign in to one account within `stuffing_window_secs` is
    /// `account_under_attack` (the account-wide lock stops them).
    pub attack_addresses_per_account: u32,
    pub stuffing_window_secs: u64,
    /// Per client IP suspected of credential stuffing: `POST /login`.
    pub login_suspected: Quota,
    /// Per client IP: `POST /login`.
    pub login: Quota,
    /// Per client IP: `POST /register`.
    pub register: Quota,
    /// Per client IP: `POST /refresh`.
    pub refresh: Quota,
    /// Per client IP: `POST /password/reset`.
    pub password_reset: Quota,
    /// Per client IP: `POST /password/reset/confirm`.
    pub reset_confirm: Quota,
    /// Per client IP: `POST /verify-email/resend`.
    pub verification_resend: Quota,
    /// Per email address: reset mails sent (further requests are answered the
    /// same but send nothing).
    pub password_reset_per_account: Quota,
    /// Per email address: verification mails re-sent.
    pub verification_resend_per_account: Quota,
    /// Per user: `POST /password/change` and `DELETE /me` (each a password
    /// guess, costing one or two hashes).
    pub password_change: Quota,
    /// Per user: `POST /token/tenant` (each writes a session).
    pub tenant_token: Quota,
    /// Per user: `POST /tenants`.
    pub create_tenant: Quota,
    /// Per user: `PATCH /me/profile`.
    pub profile_update: Quota,
    /// Per user: `POST /logout`, `POST /logout-all`, `DELETE /sessions/<id>`.
    pub session_revoke: Quota,
    /// Per user: inviting, re-roling and removing members of a tenant,
    /// revoking and accepting invitations.
    pub member_change: Quota,
    /// Per user: `POST /me/email` (a password guess, and mail to two addresses).
    pub email_change: Quota,
    /// Per user: enrolling, confirming and disabling TOTP, new recovery codes
    /// (each a password or code guess).
    pub mfa_change: Quota,
    /// Per user: starting and finishing a passkey registration, removing a
    /// passkey (a password guess when one is given).
    pub passkey_change: Quota,
    /// `redis://…`: share the limits between instances through Redis instead
    /// of counting in each process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so that several deployments can share a Redis.
    pub redis_key_prefix: String,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            login_failures_per_account: 5,
            login_failure_window_secs: 300,
            login_failures_account_wide: 20,
            login_account_failure_window_secs: 3600,
            login_backoff_base_secs: 30,
            login_backoff_max_secs: 15 * 60,
            login_known_address_secs: 30 * 24 * 3600,
            login_known_addresses_per_account: 10,
            stuffing_accounts_per_address: 10,
            attack_addresses_per_account: 10,
            stuffing_window_secs: 15 * 60,
            login_suspected: Quota::new(5, 15 * 60),
            login: Quota::new(30, 60),
            register: Quota::new(10, 60),
            refresh: Quota::new(60, 60),
            password_reset: Quota::new(5, 60),
            reset_confirm: Quota::new(10, 60),
            verification_resend: Quota::new(5, 60),
            password_reset_per_account: Quota::new(3, 15 * 60),
            verification_resend_per_account: Quota::new(3, 15 * 60),
            password_change: Quota::new(5, 15 * 60),
            tenant_token: Quota::new(30, 60),
            create_tenant: Quota::new(10, 3600),
            profile_update: Quota::new(30, 60),
            session_revoke: Quota::new(30, 60),
            member_change: Quota::new(60, 60),
            email_change: Quota::new(5, 3600),
            mfa_change: Quota::new(10, 15 * 60),
            passkey_change: Quota::new(30, 15 * 60),
            redis_url: None,
            redis_key_prefix: "auth:rl:".into(),
        }
    }
}

impl RateLimitSettings {
    /// Every quota with its field name.
    pub fn quotas(&self) -> [(&'static str, Quota); 18] {
        [
            ("login", self.login),
            ("login_suspected", self.login_suspected),
            ("register", self.register),
            ("refresh", self.refresh),
            ("password_reset", self.password_reset),
            ("reset_confirm", self.reset_confirm),
            ("verification_resend", self.verification_resend),
            ("password_reset_per_account", self.password_reset_per_account),
            ("verification_resend_per_account", self.verification_resend_per_account),
            ("password_change", self.password_change),
            ("tenant_token", self.tenant_token),
            ("create_tenant", self.create_tenant),
            ("profile_update", self.profile_update),
            ("session_revoke", self.session_revoke),
            ("member_change", self.member_change),
            ("email_change", self.email_change),
            ("mfa_change", self.mfa_change),
            ("passkey_change", self.passkey_change),
        ]
    }
}

/// The database URL may hold a password: shown without its user-info part and query.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            environment,
            issuer,
            audience,
            public_url,
            database_url,
            verify_email_path,
            reset_password_path,
            invitation_path,
            email_change_path,
            require_verified_email,
            tokens,
            password,
            mail,
            http,
            rate_limits,
            audit,
            mfa,
            webauthn,
            metrics,
            webhooks,
            oauth,
        } = self;
        f.debug_struct("AuthConfig")
            .field("environment", environment)
            .field("issuer", issuer)
            .field("audience", audience)
            .field("public_url", public_url)
            .field("database_url", &redact_url(database_url))
            .field("verify_email_path", verify_email_path)
            .field("reset_password_path", reset_password_path)
            .field("invitation_path", invitation_path)
            .field("email_change_path", email_change_path)
            .field("require_verified_email", require_verified_email)
            .field("tokens", tokens)
            .field("password", password)
            .field("mail", mail)
            .field("http", http)
            .field("rate_limits", rate_limits)
            .field("audit", audit)
            .field("mfa", mfa)
            .field("webauthn", webauthn)
            .field("metrics", metrics)
            .field("webhooks", webhooks)
            .field("oauth", oauth)
            .finish()
    }
}

/// A Redis URL may hold a password: shown without its user-info part and query.
impl fmt::Debug for RateLimitSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redis_url = self.redis_url.as_deref().map(redact_url);
        f.debug_struct("RateLimitSettings")
            .field("enabled", &self.enabled)
            .field("login_failures_per_account", &self.login_failures_per_account)
            .field("login_failure_window_secs", &self.login_failure_window_secs)
            .field("login_failures_account_wide", &self.login_failures_account_wide)
            .field("login_account_failure_window_secs", &self.login_account_failure_window_secs)
            .field("login_backoff_base_secs", &self.login_backoff_base_secs)
            .field("login_backoff_max_secs", &self.login_backoff_max_secs)
            .field("login_known_address_secs", &self.login_known_address_secs)
            .field("login_known_addresses_per_account", &self.login_known_addresses_per_account)
            .field("stuffing_accounts_per_address", &self.stuffing_accounts_per_address)
            .field("attack_addresses_per_account", &self.attack_addresses_per_account)
            .field("stuffing_window_secs", &self.stuffing_window_secs)
            .field("login_suspected", &self.login_suspected)
            .field("login", &self.login)
            .field("register", &self.register)
            .field("refresh", &self.refresh)
            .field("password_reset", &self.password_reset)
            .field("reset_confirm", &self.reset_confirm)
            .field("verification_resend", &self.verification_resend)
            .field("password_reset_per_account", &self.password_reset_per_account)
            .field("verification_resend_per_account", &self.verification_resend_per_account)
            .field("password_change", &self.password_change)
            .field("tenant_token", &self.tenant_token)
            .field("create_tenant", &self.create_tenant)
            .field("profile_update", &self.profile_update)
            .field("session_revoke", &self.session_revoke)
            .field("member_change", &self.member_change)
            .field("email_change", &self.email_change)
            .field("mfa_change", &self.mfa_change)
            .field("passkey_change", &self.passkey_change)
            .field("redis_url", &redis_url)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .finish()
    }
}

/// `scheme://user:pass@host/path?query` becomes `scheme://***@host/path?***`:
/// credentials can sit in the user-info part or (PostgreSQL's `password=`)
/// in the query. A URL that does not parse so is hidden whole.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "***".to_owned() };
    let (rest, query) = match rest.split_once(['?', '#']) {
        Some((rest, _)) => (rest, "?***"),
        None => (rest, ""),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}{query}", &rest[at..]),
        None => format!("{scheme}://{rest}{query}"),
    }
}

/// The longest window or lock the limits accept.
const MAX_LIMIT_SECS: u64 = 24 * 3600;
/// The longest an address stays known to an account.
const MAX_KNOWN_ADDRESS_SECS: u64 = 365 * 24 * 3600;

/// One thing wrong with the configuration, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub field: String,
    pub message: String,
}

/// Every problem found by [`AuthConfig::validate`] or the production checklist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid auth configuration")?;
        for problem in &self.0 {
            write!(f, "; {}: {}", problem.field, problem.message)?;
        }
        Ok(())
    }
}

impl ConfigError {
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        Self(vec![ConfigProblem { field: field.into(), message: message.into() }])
    }
}

#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn check(&mut self, ok: bool, field: &str, message: &str) {
        if !ok {
            self.0.push(ConfigProblem { field: field.into(), message: message.into() });
        }
    }
    fn into_result(self) -> Result<(), ConfigError> {
        if self.0.is_empty() { Ok(()) } else { Err(ConfigError(self.0)) }
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

impl AuthConfig {
    /// Checks every setting; the error names each offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        let t = &self.tokens;
        let pw = &self.password;
        p.check(!self.issuer.trim().is_empty(), "issuer", "must not be empty");
        p.check(!self.audience.trim().is_empty(), "audience", "must not be empty");
        p.check(is_http_url(&self.public_url), "public_url", "must be an http(s) URL");
        for (field, path) in [
            ("verify_email_path", self.verify_email_link()),
            ("reset_password_path", self.reset_password_link()),
            ("invitation_path", self.invitation_link()),
            ("email_change_path", &self.email_change_path),
        ] {
            p.check(path.starts_with('/') && !path.contains(['?', '#']), field, "must be a path starting with /");
        }
        let w = &self.webhooks;
        p.check((1..=60).contains(&w.timeout_secs), "webhooks.timeout_secs", "must be between 1 and 60");
        p.check((1..=20).contains(&w.max_attempts), "webhooks.max_attempts", "must be between 1 and 20");
        p.check((1..=3600).contains(&w.retry_base_secs), "webhooks.retry_base_secs", "must be between 1 and 3600");
        p.check((10..=60_000).contains(&w.poll_ms), "webhooks.poll_ms", "must be between 10 and 60000");
        let metrics_token = self.metrics.token.as_ref().map_or(0, |t| t.expose().trim().chars().count());
        p.check(!self.metrics.enabled || metrics_token >= 32, "metrics.token", "must be set, 32 characters or more");
        p.check(
            self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"),
            "database_url",
            "must start with sqlite:// or postgres://",
        );
        p.check(
            (1..=MAX_ACCESS_TTL_SECS).contains(&t.access_ttl_secs),
            "tokens.access_ttl_secs",
            "must be between 1 and 900 seconds (15 minutes)",
        );
        p.check(t.leeway_secs <= 120, "tokens.leeway_secs", "must be at most 120 seconds");
        p.check(t.refresh_idle_ttl_secs > 0, "tokens.refresh_idle_ttl_secs", "must be positive");
        p.check(
            t.refresh_absolute_ttl_secs >= t.refresh_idle_ttl_secs,
            "tokens.refresh_absolute_ttl_secs",
            "must be at least refresh_idle_ttl_secs",
        );
        p.check(t.refresh_reuse_grace_secs <= 60, "tokens.refresh_reuse_grace_secs", "must be at most 60 seconds");
        p.check(
            (1..=60).contains(&t.revocation_poll_secs),
            "tokens.revocation_poll_secs",
            "must be between 1 and 60 seconds",
        );
        p.check(
            (1..=1000).contains(&t.max_sessions_per_user),
            "tokens.max_sessions_per_user",
            "must be between 1 and 1000",
        );
        p.check(t.revocation_max_entries > 0, "tokens.revocation_max_entries", "must be positive");
        p.check(
            t.verified_cache_entries <= 10_000_000,
            "tokens.verified_cache_entries",
            "must be at most 10 000 000 (about 5 GiB)",
        );
        p.check(t.verification_ttl_secs > 0, "tokens.verification_ttl_secs", "must be positive");
        p.check(
            (60..=24 * 3600).contains(&t.reset_ttl_secs),
            "tokens.reset_ttl_secs",
            "must be between 60 seconds and 24 hours",
        );
        p.check(
            (1024..=1024 * 1024).contains(&self.http.max_body_bytes),
            "http.max_body_bytes",
            "must be between 1 KiB and 1 MiB",
        );
        for origin in &self.http.cors_allowed_origins {
            let exact = is_http_url(origin) && !origin.ends_with('/') && !origin.contains('*');
            p.check(exact, "http.cors_allowed_origins", "list exact origins such as https://app.example.com");
        }
        // Keys are checked where they are loaded: `tokens::KeySet::from_settings`.
        p.check((1..=64).contains(&pw.min_length), "password.min_length", "must be between 1 and 64");
        p.check(
            (64..=MAX_PASSWORD_BYTES).contains(&pw.max_length) && pw.max_length >= pw.min_length,
            "password.max_length",
            "must be between 64 and 1024",
        );
        p.check(pw.min_strength <= 4, "password.min_strength", "must be between 0 and 4");
        p.check(
            argon2::Params::new(pw.argon2_memory_kib, pw.argon2_iterations, pw.argon2_parallelism, None).is_ok(),
            "password.argon2_memory_kib",
            "argon2 parameters are out of range",
        );
        p.check(pw.hashing_queue_timeout_ms > 0, "password.hashing_queue_timeout_ms", "must be positive");
        p.check(self.mail.from.parse::<lettre::message::Mailbox>().is_ok(), "mail.from", "must be a mailbox");
        p.check(
            (1..=3650).contains(&self.audit.retention_days),
            "audit.retention_days",
            "must be between 1 and 3650 days",
        );
        let rl = &self.rate_limits;
        p.check(
            (1..=1000).contains(&rl.login_failures_per_account),
            "rate_limits.login_failures_per_account",
            "must be between 1 and 1000",
        );
        p.check(
            (1..=MAX_LIMIT_SECS).contains(&rl.login_failure_window_secs),
            "rate_limits.login_failure_window_secs",
            "must be between 1 second and 24 hours",
        );
        p.check(
            (1..=100_000).contains(&rl.login_failures_account_wide),
            "rate_limits.login_failures_account_wide",
            "must be between 1 and 100000",
        );
        p.check(
            (1..=MAX_LIMIT_SECS).contains(&rl.login_account_failure_window_secs),
            "rate_limits.login_account_failure_window_secs",
            "must be between 1 second and 24 hours",
        );
        p.check(
            (1..=MAX_KNOWN_ADDRESS_SECS).contains(&rl.login_known_address_secs),
            "rate_limits.login_known_address_secs",
            "must be between 1 second and 365 days",
        );
        for (field, threshold) in [
            ("stuffing_accounts_per_address", rl.stuffing_accounts_per_address),
            ("attack_addresses_per_account", rl.attack_addresses_per_account),
        ] {
            p.check(threshold >= 2, &format!("rate_limits.{field}"), "must be at least 2");
        }
        p.check(
            (1..=MAX_LIMIT_SECS).contains(&rl.stuffing_window_secs),
            "rate_limits.stuffing_window_secs",
            "must be between 1 second and 24 hours",
        );
        p.check(
            (1..=100).contains(&rl.login_known_addresses_per_account),
            "rate_limits.login_known_addresses_per_account",
            "must be between 1 and 100",
        );
        p.check(
            (1..=MAX_LIMIT_SECS).contains(&rl.login_backoff_base_secs),
            "rate_limits.login_backoff_base_secs",
            "must be between 1 second and 24 hours",
        );
        p.check(
            (rl.login_backoff_base_secs..=MAX_LIMIT_SECS).contains(&rl.login_backoff_max_secs),
            "rate_limits.login_backoff_max_secs",
            "must be between login_backoff_base_secs and 24 hours",
        );
        for (name, quota) in rl.quotas() {
            p.check(quota.requests >= 1, &format!("rate_limits.{name}.requests"), "must be at least 1");
            p.check(
                (1..=MAX_LIMIT_SECS).contains(&quota.window_secs),
                &format!("rate_limits.{name}.window_secs"),
                "must be between 1 second and 24 hours",
            );
        }
        if let Some(url) = &rl.redis_url {
            p.check(
                redis::Client::open(url.as_str()).is_ok(),
                "rate_limits.redis_url",
                "must be a redis:// URL (TLS, rediss://, is not built in)",
            );
        }
        p.check(
            self.mfa.encryption_key.is_none() || self.mfa.key_bytes().is_some(),
            "mfa.encryption_key",
            "must be 32 bytes in standard base64 (openssl rand -base64 32)",
        );
        p.check(
            (1..=64).contains(&self.mfa.totp_issuer.chars().count()) && !self.mfa.totp_issuer.contains(':'),
            "mfa.totp_issuer",
            "must be 1 to 64 characters without a colon",
        );
        for (name, provider) in &self.oauth {
            p.0.extend(provider.problems(name));
        }
        p.into_result()
    }

    /// The seed guide's deployment checklist as code: every setting that is
    /// acceptable in development but must stop a production launch, each a
    /// named [`LaunchCheck`] (docs/deployment.md maps the guide's items to
    /// these names). Run after [`Self::validate`].
    pub fn launch_checks(&self) -> Vec<LaunchCheck> {
        let check = |name, setting: &str, passed, requirement| LaunchCheck {
            name,
            setting: setting.into(),
            requirement,
            passed,
        };
        let t = &self.tokens;
        let pw = &self.password;
        let mut checks = vec![
            check(
                "signing_key_configured",
                "tokens.signing_key",
                t.signing_key.is_some(),
                "configure a signing key; generated development keys are not allowed in production",
            ),
            check(
                "asymmetric_signing",
                "tokens.algorithm",
                !t.algorithm.is_symmetric(),
                "use an asymmetric algorithm (RS256, EdDSA, ES256) so services verify without the signing secret",
            ),
            check("https_public_url", "public_url", self.public_url.starts_with("https://"), HTTPS),
            check("https_issuer", "issuer", self.issuer.starts_with("https://"), HTTPS),
            check(
                "https_passkey_origins",
                "webauthn.origins",
                self.webauthn.origins.iter().all(|origin| origin.starts_with("https://")),
                HTTPS,
            ),
            check(
                "verified_email_required",
                "require_verified_email",
                self.require_verified_email,
                "must be true in production",
            ),
            check(
                "https_webhooks",
                "webhooks.allow_http",
                !self.webhooks.allow_http,
                "webhook endpoints must use https in production",
            ),
            check(
                "argon2_owasp_minimum",
                "password.argon2_memory_kib",
                pw.argon2_memory_kib >= 19456 && pw.argon2_iterations >= 2,
                "must meet OWASP's argon2id minimum (19456 KiB, 2 iterations)",
            ),
            check("password_min_length", "password.min_length", pw.min_length >= 8, "must be at least 8 in production"),
            check(
                "rate_limits_enabled",
                "rate_limits.enabled",
                self.rate_limits.enabled,
                "brute-force limits must be on in production",
            ),
            match &self.mail.transport {
                MailTransport::Smtp { insecure, .. } => check(
                    "smtp_mail_with_tls",
                    "mail.transport.insecure",
                    !insecure,
                    "plain-text SMTP is not allowed in production",
                ),
                _ => check(
                    "smtp_mail_with_tls",
                    "mail.transport",
                    false,
                    "use SMTP in production; the outbox and memory mailers deliver nothing",
                ),
            },
        ];
        for (name, provider) in &self.oauth {
            checks.extend(provider.launch_checks(name));
        }
        checks
    }

    /// Every failed [`Self::launch_checks`], by setting.
    pub fn check_production(&self) -> Result<(), ConfigError> {
        let problems: Vec<ConfigProblem> = self
            .launch_checks()
            .into_iter()
            .filter(|check| !check.passed)
            .map(|check| ConfigProblem { field: check.setting, message: check.requirement.into() })
            .collect();
        if problems.is_empty() { Ok(()) } else { Err(ConfigError(problems)) }
    }
}

pub(crate) const HTTPS: &str = "must use https in production";

/// One item of the deployment checklist, for one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchCheck {
    /// Its stable name, as docs/deployment.md and the operators' `checklist` cite it.
    pub name: &'static str,
    /// The setting that satisfies it.
    pub setting: String,
    /// What it requires of that setting.
    pub requirement: &'static str,
    pub passed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        AuthConfig::default().validate().unwrap();
    }

    #[test]
    fn access_lifetime_over_fifteen_minutes_is_rejected_by_name() {
        let mut config = AuthConfig::default();
        config.tokens.access_ttl_secs = 16 * 60;
        let error = config.validate().unwrap_err();
        assert_eq!(error.0.len(), 1);
        assert_eq!(error.0[0].field, "tokens.access_ttl_secs");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let error = serde_json::from_str::<AuthConfig>(r#"{"acces_ttl_secs": 60}"#).unwrap_err();
        assert!(error.to_string().contains("acces_ttl_secs"));
    }

    #[test]
    fn development_defaults_fail_the_production_checklist() {
        let error = AuthConfig::default().check_production().unwrap_err();
        let fields: Vec<_> = error.0.iter().map(|p| p.field.as_str()).collect();
        for expected in ["tokens.signing_key", "public_url", "issuer", "mail.transport"] {
            assert!(fields.contains(&expected), "{expected} missing from {fields:?}");
        }
    }

    #[test]
    fn rate_limit_settings_are_validated_by_name() {
        let mut config = AuthConfig::default();
        config.rate_limits.login.requests = 0;
        config.rate_limits.password_reset_per_account.window_secs = 0;
        config.rate_limits.login_backoff_max_secs = 10; // below the 30 s base
        config.rate_limits.login_failures_per_account = 0;
        config.rate_limits.login_known_addresses_per_account = 0;
        config.rate_limits.create_tenant.requests = 0;
        config.rate_limits.redis_url = Some("http://127.0.0.1:6379".into());
        let error = config.validate().unwrap_err();
        let fields: Vec<_> = error.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rate_limits.login_failures_per_account",
                "rate_limits.login_known_addresses_per_account",
                "rate_limits.login_backoff_max_secs",
                "rate_limits.login.requests",
                "rate_limits.password_reset_per_account.window_secs",
                "rate_limits.create_tenant.requests",
                "rate_limits.redis_url",
            ]
        );
    }

    #[test]
    fn rate_limits_have_documented_defaults_and_reject_unknown_fields() {
        let config: AuthConfig =
            serde_json::from_str(r#"{"rate_limits": {"login": {"requests": 50, "window_secs": 60}}}"#).unwrap();
        let rl = &config.rate_limits;
        assert!(rl.enabled);
        assert_eq!(rl.login, Quota::new(50, 60));
        assert_eq!(rl.register, Quota::new(10, 60));
        assert_eq!(
            (rl.login_failures_per_account, rl.login_failure_window_secs, rl.login_backoff_base_secs),
            (5, 300, 30)
        );
        assert_eq!(rl.login_backoff_max_secs, 900);
        assert_eq!(
            (rl.login_failures_account_wide, rl.login_account_failure_window_secs),
            (20, 3600),
            "the account-wide lock: a higher threshold over a longer window"
        );
        assert_eq!((rl.login_known_address_secs, rl.login_known_addresses_per_account), (30 * 24 * 3600, 10));
        assert_eq!(rl.password_reset_per_account, Quota::new(3, 900));
        assert_eq!(rl.password_change, Quota::new(5, 900));
        assert_eq!(rl.tenant_token, Quota::new(30, 60));
        assert_eq!(rl.create_tenant, Quota::new(10, 3600));
        assert_eq!(
            (rl.profile_update, rl.session_revoke, rl.member_change),
            (Quota::new(30, 60), Quota::new(30, 60), Quota::new(60, 60))
        );
        assert_eq!(rl.email_change, Quota::new(5, 3600));
        assert!(rl.redis_url.is_none());
        let error = serde_json::from_str::<AuthConfig>(r#"{"rate_limits": {"enable": false}}"#).unwrap_err();
        assert!(error.to_string().contains("enable"));
        let error = serde_json::from_str::<AuthConfig>(r#"{"rate_limits": {"login": {"requests": 5}}}"#).unwrap_err();
        assert!(error.to_string().contains("window_secs"));
    }

    #[test]
    fn redis_passwords_do_not_appear_in_debug_output() {
        let mut config = AuthConfig::default();
        config.rate_limits.redis_url = Some("redis://app:hunter2@redis.internal:6379/0".into());
        config.validate().unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("redis://***@redis.internal:6379/0"), "{debug}");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn disabled_rate_limits_fail_the_production_checklist() {
        let mut config = AuthConfig::default();
        config.rate_limits.enabled = false;
        let error = config.check_production().unwrap_err();
        assert!(error.0.iter().any(|p| p.field == "rate_limits.enabled"));
    }

    #[test]
    fn database_passwords_do_not_appear_in_debug_output() {
        let config = AuthConfig {
            database_url: "postgres://app:hunter2@db.internal:5432/auth?sslmode=require".into(),
            ..AuthConfig::default()
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("postgres://***@db.internal:5432/auth?***"), "{debug}");
        assert_eq!(redact_url("postgres://db/auth?user=app&password=hunter2"), "postgres://db/auth?***");
        assert_eq!(redact_url("sqlite://auth.db?mode=rwc"), "sqlite://auth.db?***");
        assert_eq!(redact_url("not a url hunter2"), "***");
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let spec = KeySpec { secret: Some(Secret::new("hunter2-hunter2")), ..KeySpec::default() };
        assert!(!format!("{spec:?}").contains("hunter2"));
    }

    #[test]
    fn the_relying_party_comes_from_public_url_or_the_webauthn_settings() {
        let mut config = AuthConfig::default();
        let rp = config.relying_party().unwrap();
        assert_eq!((rp.id.as_str(), rp.name.as_str()), ("localhost", "Auth Platform"));
        assert_eq!(rp.origins.iter().map(|o| o.as_str()).collect::<Vec<_>>(), ["http://localhost:8000/"]);

        // An IP address is no relying-party id: passkeys are off.
        config.public_url = "http://127.0.0.1:8000".into();
        assert!(config.relying_party().is_err());
        config.public_url = "http://[::1]:8000".into();
        assert!(config.relying_party().is_err());

        config.webauthn = WebauthnSettings {
            rp_id: Some("example.com".into()),
            rp_name: Some("Example".into()),
            origins: vec!["https://app.example.com".into(), "https://example.com".into()],
        };
        let rp = config.relying_party().unwrap();
        assert_eq!((rp.id.as_str(), rp.name.as_str(), rp.origins.len()), ("example.com", "Example", 2));
        // An origin outside the rp id is refused, and so is a look-alike suffix.
        config.webauthn.origins = vec!["https://notexample.com".into()];
        assert!(config.relying_party().unwrap_err().contains("not under"));
        config.webauthn.origins = vec!["https://example.com.evil.test".into()];
        assert!(config.relying_party().is_err());
    }

    #[test]
    fn production_needs_https_passkey_origins() {
        let mut config = AuthConfig::default();
        config.webauthn.origins = vec!["http://localhost:8000".into()];
        let error = config.check_production().unwrap_err();
        assert!(error.0.iter().any(|p| p.field == "webauthn.origins"), "{error:?}");
    }
}
