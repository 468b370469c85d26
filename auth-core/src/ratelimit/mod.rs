//! Rate limits: per-client-IP quotas on the unauthenticated endpoints,
//! per-user quotas on the authenticated ones that cost a hash or write a row,
//! a soft lock with exponential back-off on repeated failed logins, and
//! per-address quotas on the mails anyone can trigger.
//!
//! The login back-off cannot be aimed at the owner. Failures for one account
//! from one client address ([`address_bucket`]) lock that address out of that
//! account; failures from all addresses together, past a higher threshold,
//! lock the account for every address that has not signed in to it
//! successfully within `login_known_address_secs` ("known" addresses, the
//! most recent `login_known_addresses_per_account` of them). So an attacker
//! at one address is stopped by that address's back-off, one spread over
//! many by the account-wide lock, and the owner keeps signing in from where
//! they usually do; from a known address, its own back-off still applies.
//!
//! Two [`RateLimiter`]s: [`MemoryRateLimiter`] counts in the process (one
//! instance), [`RedisRateLimiter`] counts in Redis so that every instance
//! shares the same limits. [`crate::Auth`] picks one from
//! [`RateLimitSettings::redis_url`].
//!
//! Keys name the scope and the action: `ip:login:203.0.113.7`,
//! `account:password_reset:ada@example.com`, `user:create_tenant:<uuid>`, and
//! `login:ada@example.com` (account-wide) and
//! `login:ada@example.com:203.0.113.7` (one address) for the login back-off.
//! An account key is the normalised email whether or not
//! an account exists, so a limit reveals nothing about which addresses are
//! registered.

use std::{
    net::{IpAddr, Ipv6Addr},
    time::Duration,
};

use async_trait::async_trait;
use uuid::Uuid;

pub use crate::config::{Quota, RateLimitSettings};
use crate::error::AuthError;

mod memory;
mod redis;

pub use memory::{DEFAULT_MAX_KEYS, MemoryRateLimiter};
pub use redis::RedisRateLimiter;

/// An endpoint with a per-IP quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Login,
    Register,
    Refresh,
    PasswordReset,
    ResetConfirm,
    VerificationResend,
}

impl Action {
    pub const ALL: [Action; 6] =
        [Self::Login, Self::Register, Self::Refresh, Self::PasswordReset, Self::ResetConfirm, Self::VerificationResend];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Register => "register",
            Self::Refresh => "refresh",
            Self::PasswordReset => "password_reset",
            Self::ResetConfirm => "reset_confirm",
            Self::VerificationResend => "verification_resend",
        }
    }
}

/// An authenticated operation with a per-user quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserAction {
    PasswordChange,
    TenantToken,
    CreateTenant,
    ProfileUpdate,
    SessionRevoke,
    MemberChange,
    EmailChange,
    MfaChange,
    PasskeyChange,
}

impl UserAction {
    pub const ALL: [UserAction; 9] = [
        Self::PasswordChange,
        Self::TenantToken,
        Self::CreateTenant,
        Self::ProfileUpdate,
        Self::SessionRevoke,
        Self::MemberChange,
        Self::EmailChange,
        Self::MfaChange,
        Self::PasskeyChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordChange => "password_change",
            Self::TenantToken => "tenant_token",
            Self::CreateTenant => "create_tenant",
            Self::ProfileUpdate => "profile_update",
            Self::SessionRevoke => "session_revoke",
            Self::MemberChange => "member_change",
            Self::EmailChange => "email_change",
            Self::MfaChange => "mfa_change",
            Self::PasskeyChange => "passkey_change",
        }
    }
}

impl RateLimitSettings {
    /// The per-client-IP quota of `action`.
    pub fn per_ip(&self, action: Action) -> Quota {
        match action {
            Action::Login => self.login,
            Action::Register => self.register,
            Action::Refresh => self.refresh,
            Action::PasswordReset => self.password_reset,
            Action::ResetConfirm => self.reset_confirm,
            Action::VerificationResend => self.verification_resend,
        }
    }

    /// The per-email-address quota of `action`, for the actions that send mail.
    pub fn per_account(&self, action: Action) -> Option<Quota> {
        match action {
            Action::PasswordReset => Some(self.password_reset_per_account),
            Action::VerificationResend => Some(self.verification_resend_per_account),
            _ => None,
        }
    }

    /// The per-user quota of `action`.
    pub fn per_user(&self, action: UserAction) -> Quota {
        match action {
            UserAction::PasswordChange => self.password_change,
            UserAction::TenantToken => self.tenant_token,
            UserAction::CreateTenant => self.create_tenant,
            UserAction::ProfileUpdate => self.profile_update,
            UserAction::SessionRevoke => self.session_revoke,
            UserAction::MemberChange => self.member_change,
            UserAction::EmailChange => self.email_change,
            UserAction::MfaChange => self.mfa_change,
            UserAction::PasskeyChange => self.passkey_change,
        }
    }

    /// How long a lock lasts after `failures` failed logins counted against
    /// `threshold` (`login_failures_per_account` for one address,
    /// `login_failures_account_wide` for the account): nothing below it, then
    /// the base, doubling with each further failure, capped at
    /// `login_backoff_max_secs`.
    pub fn login_backoff(&self, threshold: u32, failures: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(threshold)?;
        let doubled = self.login_backoff_base_secs.saturating_mul(1u64 << beyond.min(32));
        Some(Duration::from_secs(doubled.min(self.login_backoff_max_secs)))
    }
}

/// The bucket a client address is counted in: IPv6 clients per /64 (one
/// subscriber usually holds a whole /64), IPv4-mapped addresses as IPv4, and
/// every client whose address is unknown together, as `unknown`: never
/// exempt, and a forged header cannot buy a fresh quota.
pub fn address_bucket(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        None => "unknown".to_owned(),
        Some(IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", Ipv6Addr::from(prefix))
        }
        Some(v4) => v4.to_string(),
    }
}

/// The key of a per-IP quota.
pub fn ip_key(action: Action, ip: Option<IpAddr>) -> String {
    format!("ip:{}:{}", action.as_str(), address_bucket(ip))
}

/// The key of a per-address quota; `account` is a normalised email.
pub fn account_key(action: Action, account: &str) -> String {
    format!("account:{}:{account}", action.as_str())
}

/// The key of a per-user quota.
pub fn user_key(action: UserAction, user_id: Uuid) -> String {
    format!("user:{}:{user_id}", action.as_str())
}

/// The answer to one counted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after_secs: u64 },
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Self::Allowed
    }
}

/// A login back-off that refuses an attempt (see [`RateLimiter::login_allowed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLock {
    pub scope: LockScope,
    pub retry_after_secs: u64,
}

/// Which back-off a [`LoginLock`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    /// Too many failures for the account from this client address.
    Address,
    /// Too many failures for the account from all addresses together, and
    /// this address has not signed in to it recently.
    Account,
}

/// The longer of the two locks, given the milliseconds left in each (0 or
/// less: none).
fn login_lock(address_ms: i64, account_ms: i64) -> Option<LoginLock> {
    let (scope, left_ms) =
        if address_ms >= account_ms { (LockScope::Address, address_ms) } else { (LockScope::Account, account_ms) };
    (left_ms > 0).then(|| LoginLock { scope, retry_after_secs: retry_after(left_ms) })
}

/// Counts requests and failed logins. Implementations must be cheap to call
/// and never panic; a backing store that cannot be reached is
/// [`AuthError::Unavailable`].
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request under `key` and says whether it is within `quota`.
    async fn hit(&self, key: &str, quota: Quota) -> Result<Decision, AuthError>;

    /// Whether a password may be tried for `account` (a normalised email)
    /// from `address` (an [`address_bucket`]) now: `None`, or the lock that
    /// refuses it, the longer one when both apply. The account-wide lock does
    /// not apply to an address known from a recent successful login.
    async fn login_allowed(
        &self,
        account: &str,
        address: &str,
        settings: &RateLimitSettings,
    ) -> Result<Option<LoginLock>, AuthError>;

    /// Records a failed login for `account` from `address`. It counts towards
    /// the back-off of that address (from the `login_failures_per_account`-th
    /// failure within `login_failure_window_secs` on) and towards the
    /// account-wide one (`login_failures_account_wide` within
    /// `login_account_failure_window_secs`); each locks for
    /// [`RateLimitSettings::login_backoff`].
    async fn login_failed(&self, account: &str, address: &str, settings: &RateLimitSettings) -> Result<(), AuthError>;

    /// Forgets the failures and any lock of `address` for `account`, and
    /// remembers `address` as known for `login_known_address_secs`. The
    /// account-wide count stays: otherwise every sign-in of the owner would
    /// give an attacker spread over many addresses a fresh allowance.
    async fn login_succeeded(
        &self,
        account: &str,
        address: &str,
        settings: &RateLimitSettings,
    ) -> Result<(), AuthError>;
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn secs_to_ms(secs: u64) -> i64 {
    ms(Duration::from_secs(secs))
}

/// Whole seconds until `remaining_ms` have passed, at least 1.
fn retry_after(remaining_ms: i64) -> u64 {
    u64::try_from(remaining_ms).unwrap_or(0).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "ada@example.com";

    #[test]
    fn ip_keys_name_the_action_and_group_ipv6_by_64() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(ip_key(Action::Login, ip("203.0.113.7")), "ip:login:203.0.113.7");
        assert_eq!(ip_key(Action::Register, ip("::ffff:203.0.113.7")), "ip:register:203.0.113.7");
        assert_eq!(ip_key(Action::Refresh, ip("2001:db8:1:2:aaaa::1")), "ip:refresh:2001:db8:1:2::/64");
        assert_eq!(ip_key(Action::Refresh, ip("2001:db8:1:2:bbbb::9")), ip_key(Action::Refresh, ip("2001:db8:1:2::")));
        assert_eq!(ip_key(Action::Login, None), "ip:login:unknown");
        assert_eq!(account_key(Action::PasswordReset, ACCOUNT), "account:password_reset:ada@example.com");
        let names: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names, ["login", "register", "refresh", "password_reset", "reset_confirm", "verification_resend"]);
    }

    #[test]
    fn address_buckets_group_ipv6_by_64_and_every_unknown_client_together() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(address_bucket(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(address_bucket(ip("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(address_bucket(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(address_bucket(None), "unknown");
        assert_eq!(user_key(UserAction::CreateTenant, Uuid::nil()), format!("user:create_tenant:{}", Uuid::nil()));
        let names: Vec<_> = UserAction::ALL.iter().map(|a| a.as_str()).collect();
        let settings = RateLimitSettings::default();
        let fields: Vec<_> = settings.quotas().iter().map(|(name, _)| *name).collect();
        for name in &names {
            assert!(fields.contains(name), "no validated setting named {name}");
        }
    }

    #[test]
    fn backoff_is_none_below_the_threshold_and_never_overflows() {
        let settings = RateLimitSettings::default();
        assert_eq!(settings.login_backoff(5, 4), None);
        assert_eq!(settings.login_backoff(5, 5), Some(Duration::from_secs(30)));
        assert_eq!(settings.login_backoff(5, 6), Some(Duration::from_secs(60)));
        assert_eq!(settings.login_backoff(5, u32::MAX), Some(Duration::from_secs(900)));
        assert_eq!(settings.login_backoff(20, 19), None);
        assert_eq!(settings.login_backoff(20, 20), Some(Duration::from_secs(30)));
    }
}
