//! [`RedisRateLimiter`]: the limits counted in Redis, shared by every instance.

use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, aio::ConnectionManager};

use super::{Decision, LoginLock, Quota, RateLimitSettings, RateLimiter, login_lock, retry_after, secs_to_ms};
use crate::error::AuthError;

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
