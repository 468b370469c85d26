//! [`MemoryRateLimiter`]: the limits counted in this process.

use std::{
    collections::{HashMap, hash_map},
    sync::{Mutex, PoisonError},
};

use async_trait::async_trait;

use super::{Decision, LoginLock, Quota, RateLimitSettings, RateLimiter, login_lock, ms, retry_after, secs_to_ms};
use crate::{clock::Clock, error::AuthError};

/// Keys kept at most by default: about 15 MB.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Expired keys are swept every this many calls.
const SWEEP_EVERY: u32 = 1024;

/// Counts in this process: right for one instance; with several, each counts
/// on its own (use [`RedisRateLimiter`](super::RedisRateLimiter)).
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ratelimit::LockScope;

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
}
