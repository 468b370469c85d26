//! Rate limits: per-client-IP quotas on the unauthenticated endpoints, a
//! soft lock with exponential back-off on repeated failed logins for one email
//! address, and per-address quotas on the mails anyone can trigger.
//!
//! Two [`RateLimiter`]s: [`MemoryRateLimiter`] counts in the process (one
//! instance), [`RedisRateLimiter`] counts in Redis so that every instance
//! shares the same limits. [`crate::Auth`] picks one from
//! [`RateLimitSettings::redis_url`].
//!
//! Keys name the scope and the action: `ip:login:203.0.113.7`,
//! `account:password_reset:ada@example.com`, and `login:ada@example.com` for
//! the login back-off. An account key is the normalised email whether or not
//! an account exists, so a limit reveals nothing about which addresses are
//! registered.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use redis::{Script, aio::ConnectionManager};

pub use crate::config::{Quota, RateLimitSettings};
use crate::{clock::Clock, error::AuthError};

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

    /// How long a lock lasts after `failures` failed logins: nothing below
    /// `login_failures_per_account`, then the base, doubling with each further
    /// failure, capped at `login_backoff_max_secs`.
    pub fn login_backoff(&self, failures: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(self.login_failures_per_account)?;
        let doubled = self.login_backoff_base_secs.saturating_mul(1u64 << beyond.min(32));
        Some(Duration::from_secs(doubled.min(self.login_backoff_max_secs)))
    }
}

/// The key of a per-IP quota. IPv6 clients are counted per /64 (one
/// subscriber usually holds a whole /64); IPv4-mapped addresses as IPv4.
/// Clients of unknown address are one client: never exempt, and a forged
/// header cannot buy a fresh quota.
pub fn ip_key(action: Action, ip: Option<IpAddr>) -> String {
    let Some(ip) = ip else { return format!("ip:{}:unknown", action.as_str()) };
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                return format!("ip:{}:{}/64", action.as_str(), Ipv6Addr::from(prefix));
            }
        },
        v4 => v4,
    };
    format!("ip:{}:{ip}", action.as_str())
}

/// The key of a per-address quota; `account` is a normalised email.
pub fn account_key(action: Action, account: &str) -> String {
    format!("account:{}:{account}", action.as_str())
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

/// Counts requests and failed logins. Implementations must be cheap to call
/// and never panic; a backing store that cannot be reached is
/// [`AuthError::Unavailable`].
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request under `key` and says whether it is within `quota`.
    async fn hit(&self, key: &str, quota: Quota) -> Result<Decision, AuthError>;

    /// Whether `account` (a normalised email) may try a password now, or is
    /// soft-locked after failed logins.
    async fn login_allowed(&self, account: &str, settings: &RateLimitSettings) -> Result<Decision, AuthError>;

    /// Records a failed login for `account`; from the
    /// `login_failures_per_account`-th failure within the window on, locks it
    /// for [`RateLimitSettings::login_backoff`].
    async fn login_failed(&self, account: &str, settings: &RateLimitSettings) -> Result<(), AuthError>;

    /// Forgets the failures and any lock of `account`.
    async fn login_succeeded(&self, account: &str) -> Result<(), AuthError>;
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

// ----- in process ------------------------------------------------------------

/// Keys kept at most by default: about 15 MB.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Expired keys are swept every this many calls.
const SWEEP_EVERY: u32 = 1024;

/// Counts in this process: right for one instance; with several, each counts
/// on its own (use [`RedisRateLimiter`]).
///
/// Each key has a fixed window that starts at its first request. The map is
/// behind a [`Mutex`] held only for a few map operations, never across an
/// `await`. Memory is bounded: expired keys are swept every 1024 calls, and at
/// `max_keys` the least recently used keys are evicted, a tenth at a time, so
/// rotating keys cannot grow the map without bound.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    clock: Clock,
    max_keys: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    calls_since_sweep: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the entry is forgotten: the end of a quota's window, or of a
    /// login failure count.
    expires_at: i64,
    /// When it was last counted (the eviction order).
    touched_at: i64,
    slot: Slot,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    /// Requests counted in a quota's window.
    Window { count: u32 },
    /// Failed logins of one account, and its lock.
    Login { failures: u32, locked_until: i64 },
}

impl MemoryRateLimiter {
    pub fn new(clock: Clock) -> Self {
        Self::with_max_keys(clock, DEFAULT_MAX_KEYS)
    }

    pub fn with_max_keys(clock: Clock, max_keys: usize) -> Self {
        Self { clock, max_keys: max_keys.max(1), state: Mutex::default() }
    }

    /// Keys held now, expired or not (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // Every mutation leaves the map consistent, so a poisoned lock is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn login_key(account: &str) -> String {
        format!("login:{account}")
    }

    /// The live entry under `key`, or `fresh` in its place (making room for
    /// it if the key is new), marked as used now.
    fn upsert<'a>(&self, state: &'a mut State, key: &str, now: i64, fresh: Entry) -> &'a mut Entry {
        state.calls_since_sweep += 1;
        if state.calls_since_sweep >= SWEEP_EVERY || state.entries.len() >= self.max_keys {
            state.entries.retain(|_, entry| entry.expires_at > now);
            state.calls_since_sweep = 0;
        }
        if state.entries.len() >= self.max_keys && !state.entries.contains_key(key) {
            state.evict_least_recently_used(self.max_keys / 10 + 1);
        }
        let entry = state.entries.entry(key.to_owned()).or_insert(fresh);
        let same_kind = matches!(
            (entry.slot, fresh.slot),
            (Slot::Window { .. }, Slot::Window { .. }) | (Slot::Login { .. }, Slot::Login { .. })
        );
        if entry.expires_at <= now || !same_kind {
            *entry = fresh;
        }
        entry.touched_at = now;
        entry
    }
}

impl State {
    /// Removes the `count` entries used least recently.
    fn evict_least_recently_used(&mut self, count: usize) {
        let mut by_age: Vec<(i64, &String)> = self.entries.iter().map(|(k, e)| (e.touched_at, k)).collect();
        let count = count.min(by_age.len());
        if count == 0 {
            return;
        }
        by_age.select_nth_unstable(count - 1);
        let evicted: Vec<String> = by_age[..count].iter().map(|(_, key)| (*key).clone()).collect();
        for key in evicted {
            self.entries.remove(&key);
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, quota: Quota) -> Result<Decision, AuthError> {
        let now = self.clock.now_ms();
        let fresh = Entry {
            expires_at: now.saturating_add(secs_to_ms(quota.window_secs)),
            touched_at: now,
            slot: Slot::Window { count: 0 },
        };
        let mut state = self.lock();
        let entry = self.upsert(&mut state, key, now, fresh);
        let Slot::Window { count } = &mut entry.slot else { return Ok(Decision::Allowed) };
        *count = count.saturating_add(1);
        let (count, ends_at) = (*count, entry.expires_at);
        drop(state);
        if count > quota.requests {
            Ok(Decision::Limited { retry_after_secs: retry_after(ends_at - now) })
        } else {
            Ok(Decision::Allowed)
        }
    }

    async fn login_allowed(&self, account: &str, _settings: &RateLimitSettings) -> Result<Decision, AuthError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let locked_until = match state.entries.get_mut(&Self::login_key(account)) {
            Some(Entry { slot: Slot::Login { locked_until, .. }, touched_at, .. }) => {
                // A lock being tried is in use: the last to be evicted.
                *touched_at = now;
                *locked_until
            }
            _ => return Ok(Decision::Allowed),
        };
        drop(state);
        if locked_until > now {
            Ok(Decision::Limited { retry_after_secs: retry_after(locked_until - now) })
        } else {
            Ok(Decision::Allowed)
        }
    }

    async fn login_failed(&self, account: &str, settings: &RateLimitSettings) -> Result<(), AuthError> {
        let now = self.clock.now_ms();
        let window = secs_to_ms(settings.login_failure_window_secs);
        let fresh = Entry {
            expires_at: now.saturating_add(window),
            touched_at: now,
            slot: Slot::Login { failures: 0, locked_until: 0 },
        };
        let mut state = self.lock();
        let entry = self.upsert(&mut state, &Self::login_key(account), now, fresh);
        if let Slot::Login { failures, locked_until } = &mut entry.slot {
            *failures = failures.saturating_add(1);
            if let Some(backoff) = settings.login_backoff(*failures) {
                *locked_until = now.saturating_add(ms(backoff));
                // The count outlives the lock, so the next failure doubles it.
                entry.expires_at = locked_until.saturating_add(window);
            }
        }
        Ok(())
    }

    async fn login_succeeded(&self, account: &str) -> Result<(), AuthError> {
        self.lock().entries.remove(&Self::login_key(account));
        Ok(())
    }
}

// ----- Redis -------------------------------------------------------------------

/// Counts one request: `INCR`, and `PEXPIRE` when the window starts. Returns
/// -1 when within the quota, else the milliseconds left in the window.
/// KEYS[1] the counter; ARGV[1] the quota's requests, ARGV[2] its window in ms.
const HIT_SCRIPT: &str = r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
if count > tonumber(ARGV[1]) then
  return ttl
end
return -1
";

/// Records a failed login. KEYS[1] the failure count, KEYS[2] the lock;
/// ARGV: threshold, window ms, base back-off ms, max back-off ms. Returns
/// the lock set in ms, or 0 below the threshold.
const LOGIN_FAILED_SCRIPT: &str = r"
local failures = redis.call('INCR', KEYS[1])
local threshold = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
if failures < threshold then
  if failures == 1 or redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], window)
  end
  return 0
end
local exponent = math.min(failures - threshold, 32)
local backoff = math.min(tonumber(ARGV[3]) * math.pow(2, exponent), tonumber(ARGV[4]))
backoff = string.format('%d', backoff)
redis.call('SET', KEYS[2], '1', 'PX', backoff)
redis.call('PEXPIRE', KEYS[1], string.format('%d', tonumber(backoff) + window))
return tonumber(backoff)
";

/// Counts in Redis, so that every instance of the application shares the
/// same limits. Each multi-step operation is one Lua script (atomic on the
/// server); lock checks and resets are single commands. Every key has a TTL:
/// nothing is permanent. A connection or command failure is
/// [`AuthError::Unavailable`]; the [`ConnectionManager`] reconnects by itself.
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    prefix: String,
    hit: Script,
    login_failed: Script,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// How long one Redis command or connection attempt may take before the
/// request it guards answers `Unavailable`.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

fn unavailable(error: redis::RedisError) -> AuthError {
    tracing::warn!(%error, "rate-limit store (Redis) unavailable");
    AuthError::Unavailable
}

impl RedisRateLimiter {
    /// Connects to `url` (checked by [`crate::AuthConfig::validate`]); every
    /// key starts with `prefix`.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, AuthError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_with_config(client, config).await.map_err(unavailable)?;
        Ok(Self {
            connection,
            prefix: prefix.into(),
            hit: Script::new(HIT_SCRIPT),
            login_failed: Script::new(LOGIN_FAILED_SCRIPT),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The failure count and lock of `account`, hash-tagged to one cluster slot.
    fn login_keys(&self, account: &str) -> [String; 2] {
        [self.key(&format!("login:{{{account}}}:failures")), self.key(&format!("login:{{{account}}}:lock"))]
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, quota: Quota) -> Result<Decision, AuthError> {
        let mut connection = self.connection.clone();
        let left_ms: i64 = self
            .hit
            .key(self.key(key))
            .arg(quota.requests)
            .arg(secs_to_ms(quota.window_secs))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(if left_ms < 0 { Decision::Allowed } else { Decision::Limited { retry_after_secs: retry_after(left_ms) } })
    }

    async fn login_allowed(&self, account: &str, _settings: &RateLimitSettings) -> Result<Decision, AuthError> {
        let [_, lock] = self.login_keys(account);
        let mut connection = self.connection.clone();
        let left_ms: i64 = redis::cmd("PTTL").arg(lock).query_async(&mut connection).await.map_err(unavailable)?;
        // -2: no lock; -1: a key without TTL, which this limiter never writes.
        Ok(if left_ms > 0 { Decision::Limited { retry_after_secs: retry_after(left_ms) } } else { Decision::Allowed })
    }

    async fn login_failed(&self, account: &str, settings: &RateLimitSettings) -> Result<(), AuthError> {
        let [failures, lock] = self.login_keys(account);
        let mut connection = self.connection.clone();
        let _lock_ms: i64 = self
            .login_failed
            .key(failures)
            .key(lock)
            .arg(settings.login_failures_per_account)
            .arg(secs_to_ms(settings.login_failure_window_secs))
            .arg(secs_to_ms(settings.login_backoff_base_secs))
            .arg(secs_to_ms(settings.login_backoff_max_secs))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn login_succeeded(&self, account: &str) -> Result<(), AuthError> {
        let mut connection = self.connection.clone();
        let _deleted: i64 =
            redis::cmd("DEL").arg(&self.login_keys(account)).query_async(&mut connection).await.map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "ada@example.com";

    fn limiter() -> (MemoryRateLimiter, Clock) {
        let clock = Clock::manual();
        (MemoryRateLimiter::new(clock.clone()), clock)
    }

    fn limited(secs: u64) -> Decision {
        Decision::Limited { retry_after_secs: secs }
    }

    #[tokio::test]
    async fn a_quota_allows_its_requests_then_limits_until_the_window_ends() {
        let (limiter, clock) = limiter();
        let quota = Quota::new(3, 60);
        for _ in 0..3 {
            assert_eq!(limiter.hit("ip:login:192.0.2.1", quota).await.unwrap(), Decision::Allowed);
        }
        assert_eq!(limiter.hit("ip:login:192.0.2.1", quota).await.unwrap(), limited(60));
        // Other keys have their own count.
        assert_eq!(limiter.hit("ip:login:192.0.2.2", quota).await.unwrap(), Decision::Allowed);
        assert_eq!(limiter.hit("ip:register:192.0.2.1", quota).await.unwrap(), Decision::Allowed);

        clock.advance(Duration::from_millis(59_500));
        assert_eq!(limiter.hit("ip:login:192.0.2.1", quota).await.unwrap(), limited(1));
        clock.advance(Duration::from_millis(500));
        // A new window: three more.
        for _ in 0..3 {
            assert_eq!(limiter.hit("ip:login:192.0.2.1", quota).await.unwrap(), Decision::Allowed);
        }
        assert_eq!(limiter.hit("ip:login:192.0.2.1", quota).await.unwrap(), limited(60));
    }

    #[tokio::test]
    async fn login_backoff_starts_at_the_threshold_doubles_and_is_capped() {
        let (limiter, clock) = limiter();
        let settings = RateLimitSettings::default();
        for _ in 0..4 {
            limiter.login_failed(ACCOUNT, &settings).await.unwrap();
            assert_eq!(limiter.login_allowed(ACCOUNT, &settings).await.unwrap(), Decision::Allowed);
        }
        let mut expected = Vec::new();
        let mut seen = Vec::new();
        for lock in [30, 60, 120, 240, 480, 900, 900, 900] {
            limiter.login_failed(ACCOUNT, &settings).await.unwrap();
            let Decision::Limited { retry_after_secs } = limiter.login_allowed(ACCOUNT, &settings).await.unwrap()
            else {
                panic!("not locked after a failure past the threshold");
            };
            seen.push(retry_after_secs);
            expected.push(lock);
            // The lock ends; the count does not, so the next failure doubles it.
            clock.advance(Duration::from_secs(retry_after_secs));
            assert_eq!(limiter.login_allowed(ACCOUNT, &settings).await.unwrap(), Decision::Allowed);
        }
        assert_eq!(seen, expected);
        // Another account is unaffected.
        assert_eq!(limiter.login_allowed("bob@example.com", &settings).await.unwrap(), Decision::Allowed);
    }

    #[tokio::test]
    async fn failures_are_counted_within_the_window_and_then_forgotten() {
        let (limiter, clock) = limiter();
        let settings = RateLimitSettings::default();
        for _ in 0..4 {
            limiter.login_failed(ACCOUNT, &settings).await.unwrap();
        }
        clock.advance(Duration::from_secs(300));
        // The window of the first four has passed: this is failure 1 of a new one.
        limiter.login_failed(ACCOUNT, &settings).await.unwrap();
        assert_eq!(limiter.login_allowed(ACCOUNT, &settings).await.unwrap(), Decision::Allowed);

        // After a lock, a quiet window after its end forgets the count: no permanent escalation.
        for _ in 0..4 {
            limiter.login_failed(ACCOUNT, &settings).await.unwrap();
        }
        assert_eq!(limiter.login_allowed(ACCOUNT, &settings).await.unwrap(), limited(30));
        clock.advance(Duration::from_secs(30 + 300));
        limiter.login_failed(ACCOUNT, &settings).await.unwrap();
        assert_eq!(limiter.login_allowed(ACCOUNT, &settings).await.unwrap(), Decision::Allowed);
    }

    #[tokio::test]
    async fn a_successful_login_clears_failures_and_lock() {
        let (limiter, _clock) = limiter();
        let settings = RateLimitSettings::default();
        for _ in 0..6 {
            limiter.login_failed(ACCOUNT, &settings).await.unwrap();
        }
        assert_eq!(limiter.login_allowed(ACCOUNT, &settings).await.unwrap(), limited(60));
        limiter.login_succeeded(ACCOUNT).await.unwrap();
        assert_eq!(limiter.login_allowed(ACCOUNT, &settings).await.unwrap(), Decision::Allowed);
        // Counting starts again from zero: four more failures lock nothing.
        for _ in 0..4 {
            limiter.login_failed(ACCOUNT, &settings).await.unwrap();
        }
        assert_eq!(limiter.login_allowed(ACCOUNT, &settings).await.unwrap(), Decision::Allowed);
    }

    #[tokio::test]
    async fn expired_keys_are_swept() {
        let (limiter, clock) = limiter();
        let quota = Quota::new(1, 10);
        for i in 0..5000 {
            limiter.hit(&format!("ip:login:10.0.{}.{}", i / 256, i % 256), quota).await.unwrap();
        }
        assert_eq!(limiter.len(), 5000);
        clock.advance(Duration::from_secs(10));
        for i in 0..usize::try_from(SWEEP_EVERY).unwrap() {
            limiter.hit(&format!("ip:register:{i}"), quota).await.unwrap();
        }
        // The 5000 expired keys are gone; at most the new ones remain.
        assert!(limiter.len() <= 1024, "{} keys kept", limiter.len());
    }

    #[tokio::test]
    async fn rotating_keys_cannot_grow_the_map_past_its_cap() {
        let clock = Clock::manual();
        let limiter = MemoryRateLimiter::with_max_keys(clock.clone(), 1000);
        let quota = Quota::new(1, 3600);
        let settings = RateLimitSettings::default();
        for _ in 0..5 {
            limiter.login_failed(ACCOUNT, &settings).await.unwrap();
        }
        for i in 0..20_000 {
            clock.advance(Duration::from_millis(1));
            limiter.hit(&format!("ip:login:attacker-{i}"), quota).await.unwrap();
            assert!(limiter.len() <= 1000, "{} keys after {i}", limiter.len());
            if i % 100 == 0 {
                // A lock that keeps being tried is in use, and stays.
                assert!(!limiter.login_allowed(ACCOUNT, &settings).await.unwrap().is_allowed());
            }
        }
        // The newest keys are still counted; the oldest were evicted and count afresh.
        assert!(!limiter.hit("ip:login:attacker-19999", quota).await.unwrap().is_allowed());
        assert!(limiter.hit("ip:login:attacker-0", quota).await.unwrap().is_allowed());
    }

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
    fn backoff_is_none_below_the_threshold_and_never_overflows() {
        let settings = RateLimitSettings::default();
        assert_eq!(settings.login_backoff(4), None);
        assert_eq!(settings.login_backoff(5), Some(Duration::from_secs(30)));
        assert_eq!(settings.login_backoff(6), Some(Duration::from_secs(60)));
        assert_eq!(settings.login_backoff(u32::MAX), Some(Duration::from_secs(900)));
    }
}
