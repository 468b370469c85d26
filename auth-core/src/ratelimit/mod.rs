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
    collections::{HashMap, hash_map},
    net::{IpAddr, Ipv6Addr},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use redis::{Script, aio::ConnectionManager};
use uuid::Uuid;

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

/// An authenticated operation with a per-user quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserAction {
    PasswordChange,
    TenantToken,
    CreateTenant,
    ProfileUpdate,
    SessionRevoke,
    MemberChange,
}

impl UserAction {
    pub const ALL: [UserAction; 6] = [
        Self::PasswordChange,
        Self::TenantToken,
        Self::CreateTenant,
        Self::ProfileUpdate,
        Self::SessionRevoke,
        Self::MemberChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordChange => "password_change",
            Self::TenantToken => "tenant_token",
            Self::CreateTenant => "create_tenant",
            Self::ProfileUpdate => "profile_update",
            Self::SessionRevoke => "session_revoke",
            Self::MemberChange => "member_change",
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
/// rotating keys cannot grow the map without bound. Known addresses are
/// evicted after every other kind of key: nobody can create them without a
/// password, so a flood of keys cannot push the owner's out.
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

#[derive(Debug)]
struct Entry {
    /// When the entry is forgotten: the end of a quota's window, of a login
    /// failure count, or of the last known address.
    expires_at: i64,
    /// When it was last counted (the eviction order).
    touched_at: i64,
    slot: Slot,
}

#[derive(Debug)]
enum Slot {
    /// Requests counted in a quota's window.
    Window { count: u32 },
    /// Failed logins of one account (from one address, or from all), and its lock.
    Login { failures: u32, locked_until: i64 },
    /// The addresses that signed in to one account, each with the time it
    /// stops being known, oldest first.
    Known { addresses: Vec<(String, i64)> },
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

    /// The account-wide failure count and lock.
    fn account_key(account: &str) -> String {
        format!("login:{account}")
    }

    /// The failure count and lock of one address. Unambiguous: an email's
    /// domain holds no `:`, an address bucket no `@`.
    fn address_key(account: &str, address: &str) -> String {
        format!("login:{account}:{address}")
    }

    fn known_key(account: &str) -> String {
        format!("known:{account}")
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
        let entry = match state.entries.entry(key.to_owned()) {
            hash_map::Entry::Vacant(vacant) => vacant.insert(fresh),
            hash_map::Entry::Occupied(occupied) => {
                let entry = occupied.into_mut();
                if entry.expires_at <= now || std::mem::discriminant(&entry.slot) != std::mem::discriminant(&fresh.slot)
                {
                    *entry = fresh;
                }
                entry
            }
        };
        entry.touched_at = now;
        entry
    }

    /// Counts one failed login under `key` against `threshold` within `window_ms`.
    fn count_failure(
        &self,
        state: &mut State,
        key: &str,
        now: i64,
        threshold: u32,
        window_ms: i64,
        settings: &RateLimitSettings,
    ) {
        let fresh = Entry {
            expires_at: now.saturating_add(window_ms),
            touched_at: now,
            slot: Slot::Login { failures: 0, locked_until: 0 },
        };
        let entry = self.upsert(state, key, now, fresh);
        if let Slot::Login { failures, locked_until } = &mut entry.slot {
            *failures = failures.saturating_add(1);
            if let Some(backoff) = settings.login_backoff(threshold, *failures) {
                *locked_until = now.saturating_add(ms(backoff));
                // The count outlives the lock, so the next failure doubles it.
                entry.expires_at = locked_until.saturating_add(window_ms);
            }
        }
    }
}

impl State {
    /// Removes the `count` entries used least recently, known addresses last.
    fn evict_least_recently_used(&mut self, count: usize) {
        let mut by_age: Vec<((bool, i64), &String)> = self
            .entries
            .iter()
            .map(|(key, entry)| ((matches!(entry.slot, Slot::Known { .. }), entry.touched_at), key))
            .collect();
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

    /// Milliseconds left in the login lock under `key` (0 or less: none). A
    /// lock being tried is in use: marked so, it is the last to be evicted.
    fn lock_left_ms(&mut self, key: &str, now: i64) -> i64 {
        match self.entries.get_mut(key) {
            Some(Entry { slot: Slot::Login { locked_until, .. }, touched_at, .. }) => {
                *touched_at = now;
                *locked_until - now
            }
            _ => 0,
        }
    }

    fn is_known(&self, account: &str, address: &str, now: i64) -> bool {
        match self.entries.get(&MemoryRateLimiter::known_key(account)) {
            Some(Entry { slot: Slot::Known { addresses }, .. }) => {
                addresses.iter().any(|(known, until)| known == address && *until > now)
            }
            _ => false,
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

    async fn login_allowed(
        &self,
        account: &str,
        address: &str,
        _settings: &RateLimitSettings,
    ) -> Result<Option<LoginLock>, AuthError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let address_ms = state.lock_left_ms(&Self::address_key(account, address), now);
        let mut account_ms = state.lock_left_ms(&Self::account_key(account), now);
        if account_ms > 0 && state.is_known(account, address, now) {
            account_ms = 0;
        }
        drop(state);
        Ok(login_lock(address_ms, account_ms))
    }

    async fn login_failed(&self, account: &str, address: &str, settings: &RateLimitSettings) -> Result<(), AuthError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let address_window = secs_to_ms(settings.login_failure_window_secs);
        let threshold = settings.login_failures_per_account;
        self.count_failure(&mut state, &Self::address_key(account, address), now, threshold, address_window, settings);
        let account_window = secs_to_ms(settings.login_account_failure_window_secs);
        let threshold = settings.login_failures_account_wide;
        self.count_failure(&mut state, &Self::account_key(account), now, threshold, account_window, settings);
        Ok(())
    }

    async fn login_succeeded(
        &self,
        account: &str,
        address: &str,
        settings: &RateLimitSettings,
    ) -> Result<(), AuthError> {
        let now = self.clock.now_ms();
        let known_until = now.saturating_add(secs_to_ms(settings.login_known_address_secs));
        let mut state = self.lock();
        state.entries.remove(&Self::address_key(account, address));
        let fresh = Entry { expires_at: known_until, touched_at: now, slot: Slot::Known { addresses: Vec::new() } };
        let entry = self.upsert(&mut state, &Self::known_key(account), now, fresh);
        entry.expires_at = known_until;
        if let Slot::Known { addresses } = &mut entry.slot {
            addresses.retain(|(known, until)| known != address && *until > now);
            addresses.push((address.to_owned(), known_until));
            let excess = addresses.len().saturating_sub(settings.login_known_addresses_per_account as usize);
            addresses.drain(..excess);
        }
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

/// The milliseconds left in the address's and in the account's lock (-2
/// when there is none), the account's set to 0 when the address is known.
/// KEYS: the address's lock, the account's lock, the account's known
/// addresses (a sorted set scored by when each stops being known, in
/// microseconds, so that of two sign-ins within a millisecond the later one
/// ranks last); ARGV[1] the address.
const LOGIN_ALLOWED_SCRIPT: &str = r"
local address_ms = redis.call('PTTL', KEYS[1])
local account_ms = redis.call('PTTL', KEYS[2])
if account_ms > 0 then
  local known_until = redis.call('ZSCORE', KEYS[3], ARGV[1])
  local time = redis.call('TIME')
  if known_until and tonumber(known_until) > time[1] * 1000000 + time[2] then
    account_ms = 0
  end
end
return {address_ms, account_ms}
";

/// Records a failed login in the address's back-off and in the account's.
/// KEYS: the address's failure count and lock, then the account's; ARGV:
/// base and max back-off ms, then threshold and window ms of the address,
/// then of the account.
const LOGIN_FAILED_SCRIPT: &str = r"
local function failed(failures_key, lock_key, threshold, window)
  local failures = redis.call('INCR', failures_key)
  if failures < threshold then
    if failures == 1 or redis.call('PTTL', failures_key) < 0 then
      redis.call('PEXPIRE', failures_key, window)
    end
    return
  end
  local exponent = math.min(failures - threshold, 32)
  local backoff = math.min(tonumber(ARGV[1]) * math.pow(2, exponent), tonumber(ARGV[2]))
  backoff = string.format('%d', backoff)
  redis.call('SET', lock_key, '1', 'PX', backoff)
  -- The count outlives the lock, so the next failure doubles it.
  redis.call('PEXPIRE', failures_key, string.format('%d', tonumber(backoff) + window))
end
failed(KEYS[1], KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
failed(KEYS[3], KEYS[4], tonumber(ARGV[5]), tonumber(ARGV[6]))
return 0
";

/// Clears the address's back-off and remembers it as known, keeping the most
/// recent ARGV[3]. KEYS: the address's failure count and lock, the account's
/// known addresses; ARGV: the address, how long it stays known in ms, how
/// many are kept.
const LOGIN_SUCCEEDED_SCRIPT: &str = r"
redis.call('DEL', KEYS[1], KEYS[2])
local time = redis.call('TIME')
local now = time[1] * 1000000 + time[2]
local known_ms = tonumber(ARGV[2])
redis.call('ZADD', KEYS[3], string.format('%d', now + known_ms * 1000), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%d', now))
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -1 - tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[3], known_ms)
return 0
";

/// Counts in Redis, so that every instance of the application shares the
/// same limits. Each multi-step operation is one Lua script (atomic on the
/// server, on Redis's own clock). Every key has a TTL: nothing is permanent.
/// A connection or command failure is [`AuthError::Unavailable`]; the
/// [`ConnectionManager`] reconnects by itself.
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    prefix: String,
    hit: Script,
    login_allowed: Script,
    login_failed: Script,
    login_succeeded: Script,
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

/// The Redis keys of one account's login back-offs, hash-tagged to one
/// cluster slot.
struct LoginKeys {
    address_failures: String,
    address_lock: String,
    account_failures: String,
    account_lock: String,
    known: String,
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
            login_allowed: Script::new(LOGIN_ALLOWED_SCRIPT),
            login_failed: Script::new(LOGIN_FAILED_SCRIPT),
            login_succeeded: Script::new(LOGIN_SUCCEEDED_SCRIPT),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn login_keys(&self, account: &str, address: &str) -> LoginKeys {
        let account = self.key(&format!("login:{{{account}}}"));
        LoginKeys {
            address_failures: format!("{account}:address:{address}:failures"),
            address_lock: format!("{account}:address:{address}:lock"),
            account_failures: format!("{account}:failures"),
            account_lock: format!("{account}:lock"),
            known: format!("{account}:known"),
        }
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

    async fn login_allowed(
        &self,
        account: &str,
        address: &str,
        _settings: &RateLimitSettings,
    ) -> Result<Option<LoginLock>, AuthError> {
        let keys = self.login_keys(account, address);
        let mut connection = self.connection.clone();
        let (address_ms, account_ms): (i64, i64) = self
            .login_allowed
            .key(keys.address_lock)
            .key(keys.account_lock)
            .key(keys.known)
            .arg(address)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(login_lock(address_ms, account_ms))
    }

    async fn login_failed(&self, account: &str, address: &str, settings: &RateLimitSettings) -> Result<(), AuthError> {
        let keys = self.login_keys(account, address);
        let mut connection = self.connection.clone();
        let _: i64 = self
            .login_failed
            .key(keys.address_failures)
            .key(keys.address_lock)
            .key(keys.account_failures)
            .key(keys.account_lock)
            .arg(secs_to_ms(settings.login_backoff_base_secs))
            .arg(secs_to_ms(settings.login_backoff_max_secs))
            .arg(settings.login_failures_per_account)
            .arg(secs_to_ms(settings.login_failure_window_secs))
            .arg(settings.login_failures_account_wide)
            .arg(secs_to_ms(settings.login_account_failure_window_secs))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn login_succeeded(
        &self,
        account: &str,
        address: &str,
        settings: &RateLimitSettings,
    ) -> Result<(), AuthError> {
        let keys = self.login_keys(account, address);
        let mut connection = self.connection.clone();
        let _: i64 = self
            .login_succeeded
            .key(keys.address_failures)
            .key(keys.address_lock)
            .key(keys.known)
            .arg(address)
            .arg(secs_to_ms(settings.login_known_address_secs))
            .arg(settings.login_known_addresses_per_account)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "ada@example.com";
    const HERE: &str = "192.0.2.1";
    const THERE: &str = "198.51.100.1";

    /// The lock `limiter` puts on `account` tried from `address`, if any.
    async fn lock_of(limiter: &MemoryRateLimiter, account: &str, address: &str) -> Option<LoginLock> {
        limiter.login_allowed(account, address, &RateLimitSettings::default()).await.unwrap()
    }

    /// Locked (by either back-off) for `secs`, or `None` when free.
    async fn locked_for(limiter: &MemoryRateLimiter, account: &str, address: &str) -> Option<u64> {
        lock_of(limiter, account, address).await.map(|lock| lock.retry_after_secs)
    }

    async fn fail(limiter: &MemoryRateLimiter, address: &str, times: usize) {
        for _ in 0..times {
            limiter.login_failed(ACCOUNT, address, &RateLimitSettings::default()).await.unwrap();
        }
    }

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
            limiter.login_failed(ACCOUNT, HERE, &settings).await.unwrap();
            assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, None);
        }
        let mut expected = Vec::new();
        let mut seen = Vec::new();
        for lock in [30, 60, 120, 240, 480, 900, 900, 900] {
            limiter.login_failed(ACCOUNT, HERE, &settings).await.unwrap();
            let retry_after_secs =
                locked_for(&limiter, ACCOUNT, HERE).await.expect("locked after a failure past the threshold");
            seen.push(retry_after_secs);
            expected.push(lock);
            // The lock ends; the count does not, so the next failure doubles it.
            clock.advance(Duration::from_secs(retry_after_secs));
            assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, None);
        }
        assert_eq!(seen, expected);
        // Another account is unaffected.
        assert_eq!(locked_for(&limiter, "bob@example.com", HERE).await, None);
    }

    #[tokio::test]
    async fn failures_are_counted_within_the_window_and_then_forgotten() {
        let (limiter, clock) = limiter();
        let settings = RateLimitSettings::default();
        for _ in 0..4 {
            limiter.login_failed(ACCOUNT, HERE, &settings).await.unwrap();
        }
        clock.advance(Duration::from_secs(300));
        // The window of the first four has passed: this is failure 1 of a new one.
        limiter.login_failed(ACCOUNT, HERE, &settings).await.unwrap();
        assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, None);

        // After a lock, a quiet window after its end forgets the count: no permanent escalation.
        for _ in 0..4 {
            limiter.login_failed(ACCOUNT, HERE, &settings).await.unwrap();
        }
        assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, Some(30));
        clock.advance(Duration::from_secs(30 + 300));
        limiter.login_failed(ACCOUNT, HERE, &settings).await.unwrap();
        assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, None);
    }

    #[tokio::test]
    async fn a_successful_login_clears_failures_and_lock() {
        let (limiter, _clock) = limiter();
        let settings = RateLimitSettings::default();
        for _ in 0..6 {
            limiter.login_failed(ACCOUNT, HERE, &settings).await.unwrap();
        }
        assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, Some(60));
        limiter.login_succeeded(ACCOUNT, HERE, &settings).await.unwrap();
        assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, None);
        // Counting starts again from zero: four more failures lock nothing.
        for _ in 0..4 {
            limiter.login_failed(ACCOUNT, HERE, &settings).await.unwrap();
        }
        assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, None);
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
            limiter.login_failed(ACCOUNT, HERE, &settings).await.unwrap();
        }
        for i in 0..20_000 {
            clock.advance(Duration::from_millis(1));
            limiter.hit(&format!("ip:login:attacker-{i}"), quota).await.unwrap();
            assert!(limiter.len() <= 1000, "{} keys after {i}", limiter.len());
            if i % 100 == 0 {
                // A lock that keeps being tried is in use, and stays.
                assert!(locked_for(&limiter, ACCOUNT, HERE).await.is_some());
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

    #[tokio::test]
    async fn failures_from_one_address_lock_only_that_address() {
        let (limiter, _clock) = limiter();
        fail(&limiter, THERE, 5).await;
        let lock = lock_of(&limiter, ACCOUNT, THERE).await.expect("the failing address is locked");
        assert_eq!(lock, LoginLock { scope: LockScope::Address, retry_after_secs: 30 });
        // The owner elsewhere, known or not, is not locked.
        assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, None);
        assert_eq!(locked_for(&limiter, ACCOUNT, "unknown").await, None);
    }

    #[tokio::test]
    async fn failures_spread_over_addresses_lock_the_account_for_unknown_addresses_only() {
        let (limiter, clock) = limiter();
        let settings = RateLimitSettings::default();
        limiter.login_succeeded(ACCOUNT, HERE, &settings).await.unwrap();
        // 19 addresses, one failure each: under the account-wide threshold of 20.
        for i in 0..19 {
            fail(&limiter, &format!("203.0.113.{i}"), 1).await;
        }
        assert_eq!(locked_for(&limiter, ACCOUNT, THERE).await, None);
        fail(&limiter, "203.0.113.99", 1).await;
        let lock = lock_of(&limiter, ACCOUNT, THERE).await.expect("a new address is locked");
        assert_eq!(lock, LoginLock { scope: LockScope::Account, retry_after_secs: 30 });
        assert_eq!(locked_for(&limiter, "bob@example.com", THERE).await, None);
        // The owner's known address is not; its own back-off still applies.
        assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, None);
        fail(&limiter, HERE, 5).await;
        assert_eq!(lock_of(&limiter, ACCOUNT, HERE).await.map(|lock| lock.scope), Some(LockScope::Address));

        // The owner's success does not reset the account-wide count.
        clock.advance(Duration::from_secs(30 * 64));
        limiter.login_succeeded(ACCOUNT, HERE, &settings).await.unwrap();
        fail(&limiter, "203.0.113.200", 1).await;
        assert_eq!(lock_of(&limiter, ACCOUNT, THERE).await.map(|lock| lock.scope), Some(LockScope::Account));
        assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, None);
    }

    #[tokio::test]
    async fn known_addresses_expire_and_are_bounded_per_account() {
        let (limiter, clock) = limiter();
        let settings = RateLimitSettings { login_known_addresses_per_account: 3, ..Default::default() };
        for i in 0..4 {
            clock.advance(Duration::from_millis(1));
            limiter.login_succeeded(ACCOUNT, &format!("192.0.2.{i}"), &settings).await.unwrap();
        }
        fail(&limiter, THERE, 20).await;
        // The oldest of four is forgotten; the three newest are known.
        assert!(locked_for(&limiter, ACCOUNT, "192.0.2.0").await.is_some());
        for i in 1..4 {
            assert_eq!(locked_for(&limiter, ACCOUNT, &format!("192.0.2.{i}")).await, None);
        }
        // 30 days later none is known any more.
        clock.advance(Duration::from_secs(settings.login_known_address_secs));
        fail(&limiter, THERE, 20).await;
        assert!(locked_for(&limiter, ACCOUNT, "192.0.2.3").await.is_some());
    }

    #[tokio::test]
    async fn a_flood_of_keys_does_not_evict_known_addresses() {
        let clock = Clock::manual();
        let limiter = MemoryRateLimiter::with_max_keys(clock.clone(), 100);
        let settings = RateLimitSettings::default();
        limiter.login_succeeded(ACCOUNT, HERE, &settings).await.unwrap();
        for i in 0..5000 {
            clock.advance(Duration::from_millis(1));
            limiter.hit(&format!("ip:login:attacker-{i}"), Quota::new(1, 3600)).await.unwrap();
        }
        fail(&limiter, THERE, 20).await;
        assert!(locked_for(&limiter, ACCOUNT, THERE).await.is_some());
        assert_eq!(locked_for(&limiter, ACCOUNT, HERE).await, None);
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
