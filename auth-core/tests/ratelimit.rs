//! Rate limits through [`Auth`]: the login back-off per email address and
//! client address, the per-IP quotas, the per-address mail quotas; and the Redis limiter against
//! a real Redis (`TEST_REDIS_URL`, tests marked `ignored`). Time moves with
//! the manual clock in process; Redis keeps its own time, so its window tests
//! sleep for about a second.

mod common;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use auth_core::{
    Auth, AuthError, BuildError,
    ratelimit::{Action, Decision, LockScope, LoginLock, Quota, RateLimitSettings, RateLimiter, RedisRateLimiter},
};
use common::{PASSWORD, TestContext, client, client_at, redis_test_prefix, redis_url};

const WRONG: &str = "Wrong-Password-123";

backend_tests!(
    the_sixth_wrong_password_locks_the_account_until_the_backoff_passes,
    unknown_emails_are_locked_the_same_way,
    per_ip_quotas_trip_and_recover_after_the_window,
    reset_and_resend_mails_stop_at_the_per_account_quota,
);

async fn login(auth: &Auth, email: &str, password: &str) -> Result<auth_core::TokenPair, AuthError> {
    auth.sessions().login(email, password, None, &client()).await
}

fn retry_after(result: Result<impl std::fmt::Debug, AuthError>) -> u64 {
    match result {
        Err(AuthError::RateLimited { retry_after_secs }) => retry_after_secs,
        other => panic!("expected rate_limited, got {other:?}"),
    }
}

fn invalid(result: Result<impl std::fmt::Debug, AuthError>) {
    assert!(matches!(result, Err(AuthError::InvalidCredentials)), "expected invalid_credentials, got {result:?}");
}

async fn rate_limited_events(ctx: &TestContext) -> Vec<serde_json::Value> {
    let events = ctx.auth.operators().audit_trail(None, 1000).await.unwrap();
    events.into_iter().filter(|e| e.event == "rate_limited").map(|e| e.detail).collect()
}

async fn the_sixth_wrong_password_locks_the_account_until_the_backoff_passes(ctx: TestContext) {
    const EMAIL: &str = "locked@example.com";
    ctx.verified_user(EMAIL).await;
    ctx.verified_user("bystander@example.com").await;
    for _ in 0..5 {
        invalid(login(&ctx.auth, EMAIL, WRONG).await);
    }
    // Locked: even the right password is refused, without being checked.
    assert_eq!(retry_after(login(&ctx.auth, EMAIL, PASSWORD).await), 30);
    assert_eq!(retry_after(login(&ctx.auth, "LOCKED@Example.com", PASSWORD).await), 30);
    ctx.clock.advance(Duration::from_secs(29));
    assert_eq!(retry_after(login(&ctx.auth, EMAIL, PASSWORD).await), 1);
    // Other accounts are not affected.
    ctx.login("bystander@example.com").await;

    // The lock has passed; the next failure locks for twice as long.
    ctx.clock.advance(Duration::from_secs(1));
    invalid(login(&ctx.auth, EMAIL, WRONG).await);
    assert_eq!(retry_after(login(&ctx.auth, EMAIL, PASSWORD).await), 60);
    ctx.clock.advance(Duration::from_secs(60));

    // A successful login clears the count: five more failures before a 30 s lock again.
    ctx.login(EMAIL).await;
    for _ in 0..5 {
        invalid(login(&ctx.auth, EMAIL, WRONG).await);
    }
    assert_eq!(retry_after(login(&ctx.auth, EMAIL, PASSWORD).await), 30);

    // One audit event per lock, not one per refused attempt.
    let events = rate_limited_events(&ctx).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.iter().all(|d| d["action"] == "login" && d["scope"] == "account_address" && d["email"] == EMAIL));
}

async fn unknown_emails_are_locked_the_same_way(ctx: TestContext) {
    ctx.verified_user("known@example.com").await;
    for email in ["known@example.com", "ghost@example.com"] {
        for _ in 0..5 {
            invalid(login(&ctx.auth, email, WRONG).await);
        }
    }
    // The same answer, registered or not: the lock reveals nothing.
    assert_eq!(retry_after(login(&ctx.auth, "known@example.com", PASSWORD).await), 30);
    assert_eq!(retry_after(login(&ctx.auth, "ghost@example.com", PASSWORD).await), 30);
    assert_eq!(retry_after(login(&ctx.auth, " Ghost@EXAMPLE.com ", WRONG).await), 30);
    ctx.clock.advance(Duration::from_secs(30));
    invalid(login(&ctx.auth, "ghost@example.com", WRONG).await);
    assert_eq!(retry_after(login(&ctx.auth, "ghost@example.com", WRONG).await), 60);
}

async fn per_ip_quotas_trip_and_recover_after_the_window(ctx: TestContext) {
    // register: 10 per 60 s by default.
    for _ in 0..10 {
        ctx.auth.rate_limit(Action::Register, &client()).await.unwrap();
    }
    assert_eq!(retry_after(ctx.auth.rate_limit(Action::Register, &client()).await), 60);
    ctx.clock.advance(Duration::from_secs(20));
    assert_eq!(retry_after(ctx.auth.rate_limit(Action::Register, &client()).await), 40);
    // Each IP and each action has its own count.
    ctx.auth.rate_limit(Action::Register, &client_at("198.51.100.9")).await.unwrap();
    ctx.auth.rate_limit(Action::Login, &client()).await.unwrap();
    // Clients of unknown address share one count: limited, never exempt.
    let unknown = auth_core::ClientInfo::new(None, Some("another agent"));
    for _ in 0..10 {
        ctx.auth.rate_limit(Action::Register, &auth_core::ClientInfo::default()).await.unwrap();
    }
    assert_eq!(retry_after(ctx.auth.rate_limit(Action::Register, &unknown).await), 60);
    // One /64 is one client.
    for i in 0..10 {
        ctx.auth.rate_limit(Action::Register, &client_at(&format!("2001:db8:7:7::{i}"))).await.unwrap();
    }
    assert!(ctx.auth.rate_limit(Action::Register, &client_at("2001:db8:7:7:ffff::1")).await.is_err());
    ctx.auth.rate_limit(Action::Register, &client_at("2001:db8:7:8::1")).await.unwrap();

    // The window ends: the quota is whole again.
    ctx.clock.advance(Duration::from_secs(40));
    for _ in 0..10 {
        ctx.auth.rate_limit(Action::Register, &client()).await.unwrap();
    }
    assert_eq!(retry_after(ctx.auth.rate_limit(Action::Register, &client()).await), 60);

    // Audited once per window and client, at most.
    let events = rate_limited_events(&ctx).await;
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events.iter().all(|d| d["action"] == "register" && d["scope"] == "ip"));
}

/// Mails to `to` once the detached tasks have settled.
async fn settled_mail_count(ctx: &TestContext, to: &str, expected: usize) -> usize {
    let count = || ctx.mail.sent().iter().filter(|m| m.to.eq_ignore_ascii_case(to)).count();
    for _ in 0..100 {
        if count() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    count()
}

async fn reset_and_resend_mails_stop_at_the_per_account_quota(ctx: TestContext) {
    // Each request from another address: the per-account quota holds whoever asks.
    let mut addresses = (1..).map(|i| client_at(&format!("198.51.100.{i}")));
    let mut next = || addresses.next().expect("addresses");
    ctx.verified_user("reset@example.com").await;
    let before = settled_mail_count(&ctx, "reset@example.com", 1).await;
    for _ in 0..6 {
        // The answer never changes.
        ctx.auth.accounts().request_password_reset("Reset@Example.com", &next()).await.unwrap();
    }
    assert_eq!(settled_mail_count(&ctx, "reset@example.com", before + 3).await, before + 3);
    ctx.clock.advance(Duration::from_secs(15 * 60));
    ctx.auth.accounts().request_password_reset("reset@example.com", &next()).await.unwrap();
    assert_eq!(settled_mail_count(&ctx, "reset@example.com", before + 4).await, before + 4);

    ctx.register("unverified@example.com").await;
    assert_eq!(settled_mail_count(&ctx, "unverified@example.com", 1).await, 1);
    for _ in 0..5 {
        ctx.auth.accounts().resend_verification("unverified@example.com", &next()).await.unwrap();
    }
    assert_eq!(settled_mail_count(&ctx, "unverified@example.com", 4).await, 4);

    // Unknown addresses are counted too (nothing is sent to them anyway).
    for _ in 0..5 {
        ctx.auth.accounts().request_password_reset("nobody@example.com", &next()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = rate_limited_events(&ctx).await;
    for (action, email) in [
        ("password_reset", "reset@example.com"),
        ("verification_resend", "unverified@example.com"),
        ("password_reset", "nobody@example.com"),
    ] {
        assert!(
            events.iter().any(|d| d["action"] == action && d["scope"] == "account" && d["email"] == email),
            "no {action} event for {email} in {events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_limits_never_refuse() {
    let ctx = TestContext::sqlite_with(|c| c.rate_limits.enabled = false).await;
    ctx.verified_user("free@example.com").await;
    for _ in 0..8 {
        invalid(login(&ctx.auth, "free@example.com", WRONG).await);
    }
    ctx.login("free@example.com").await;
    for _ in 0..100 {
        ctx.auth.rate_limit(Action::PasswordReset, &client()).await.unwrap();
    }
    for _ in 0..5 {
        ctx.auth.accounts().request_password_reset("free@example.com", &client()).await.unwrap();
    }
    assert_eq!(settled_mail_count(&ctx, "free@example.com", 6).await, 6);
}

/// A limiter whose every answer is fixed.
struct Fixed(Result<Decision, ()>);

#[async_trait]
impl RateLimiter for Fixed {
    async fn hit(&self, _key: &str, _quota: Quota) -> Result<Decision, AuthError> {
        self.0.map_err(|()| AuthError::Unavailable)
    }
    async fn login_allowed(
        &self,
        _account: &str,
        _address: &str,
        _settings: &RateLimitSettings,
    ) -> Result<Option<LoginLock>, AuthError> {
        match self.0.map_err(|()| AuthError::Unavailable)? {
            Decision::Allowed => Ok(None),
            Decision::Limited { retry_after_secs } => {
                Ok(Some(LoginLock { scope: LockScope::Address, retry_after_secs }))
            }
        }
    }
    async fn login_failed(
        &self,
        _account: &str,
        _address: &str,
        _settings: &RateLimitSettings,
    ) -> Result<(), AuthError> {
        self.0.map(|_| ()).map_err(|()| AuthError::Unavailable)
    }
    async fn login_succeeded(
        &self,
        _account: &str,
        _address: &str,
        _settings: &RateLimitSettings,
    ) -> Result<(), AuthError> {
        self.0.map(|_| ()).map_err(|()| AuthError::Unavailable)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builder_takes_a_custom_limiter() {
    let ctx = TestContext::sqlite_with_limiter(Arc::new(Fixed(Ok(Decision::Limited { retry_after_secs: 7 })))).await;
    assert_eq!(retry_after(ctx.auth.rate_limit(Action::Refresh, &client()).await), 7);
    assert_eq!(retry_after(login(&ctx.auth, "any@example.com", PASSWORD).await), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_limiter_is_unavailable_not_a_bypass() {
    let ctx = TestContext::sqlite_with_limiter(Arc::new(Fixed(Err(())))).await;
    assert!(matches!(ctx.auth.rate_limit(Action::Login, &client()).await, Err(AuthError::Unavailable)));
    assert!(matches!(login(&ctx.auth, "any@example.com", PASSWORD).await, Err(AuthError::Unavailable)));
    // Each operation applies its own per-IP quota first: no mail without it.
    let reset = ctx.auth.accounts().request_password_reset("any@example.com", &client()).await;
    assert!(matches!(reset, Err(AuthError::Unavailable)));
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable() {
    assert!(matches!(RedisRateLimiter::connect("redis://127.0.0.1:1", "x:").await, Err(AuthError::Unavailable)));
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(format!("sqlite://{}", dir.path().join("auth.db").display()));
    config.rate_limits.redis_url = Some("redis://127.0.0.1:1".into());
    let error = Auth::builder(config).build().await.unwrap_err();
    assert!(matches!(error, BuildError::RateLimiter(AuthError::Unavailable)), "{error:?}");
}

// ----- Redis -------------------------------------------------------------------

/// A limiter on `TEST_REDIS_URL` under a fresh prefix.
async fn redis_limiter() -> (RedisRateLimiter, RedisKeys) {
    let prefix = redis_test_prefix();
    let limiter = RedisRateLimiter::connect(&redis_url(), prefix.as_str()).await.expect("connect to TEST_REDIS_URL");
    (limiter, RedisKeys(prefix))
}

/// The keys of one test; deleted at the end.
struct RedisKeys(String);

impl RedisKeys {
    async fn connection() -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(redis_url()).unwrap();
        client.get_multiplexed_async_connection().await.expect("connect to TEST_REDIS_URL")
    }

    async fn list(&self) -> Vec<String> {
        let mut connection = Self::connection().await;
        redis::cmd("KEYS").arg(format!("{}*", self.0)).query_async(&mut connection).await.unwrap()
    }

    /// Every key expires: nothing this limiter writes is permanent.
    async fn assert_all_expire(&self) {
        let mut connection = Self::connection().await;
        for key in self.list().await {
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut connection).await.unwrap();
            assert!(ttl > 0, "{key} has no expiry ({ttl})");
        }
    }

    async fn delete(self) {
        let keys = self.list().await;
        if !keys.is_empty() {
            let mut connection = Self::connection().await;
            let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut connection).await.unwrap();
        }
    }
}

#[tokio::test]
#[ignore = "needs Redis: set TEST_REDIS_URL and pass --ignored"]
async fn redis_quota_trips_and_recovers_after_the_window() {
    let (limiter, keys) = redis_limiter().await;
    let quota = Quota::new(3, 1);
    for _ in 0..3 {
        assert_eq!(limiter.hit("ip:login:192.0.2.1", quota).await.unwrap(), Decision::Allowed);
    }
    assert_eq!(limiter.hit("ip:login:192.0.2.1", quota).await.unwrap(), Decision::Limited { retry_after_secs: 1 });
    assert_eq!(limiter.hit("ip:login:192.0.2.2", quota).await.unwrap(), Decision::Allowed);
    keys.assert_all_expire().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        assert_eq!(limiter.hit("ip:login:192.0.2.1", quota).await.unwrap(), Decision::Allowed);
    }
    assert!(!limiter.hit("ip:login:192.0.2.1", quota).await.unwrap().is_allowed());
    keys.delete().await;
}

const ADA: &str = "ada@example.com";
const HERE: &str = "192.0.2.1";
const THERE: &str = "198.51.100.1";

/// The seconds `limiter` locks `account` for at `address`, and by which back-off.
async fn redis_lock(limiter: &RedisRateLimiter, account: &str, address: &str) -> Option<(LockScope, u64)> {
    let lock = limiter.login_allowed(account, address, &RateLimitSettings::default()).await.unwrap();
    lock.map(|lock| (lock.scope, lock.retry_after_secs))
}

#[tokio::test]
#[ignore = "needs Redis: set TEST_REDIS_URL and pass --ignored"]
async fn redis_login_backoff_doubles_and_is_capped() {
    let (limiter, keys) = redis_limiter().await;
    let settings = RateLimitSettings { login_failures_account_wide: 1000, ..Default::default() };
    for _ in 0..4 {
        limiter.login_failed(ADA, HERE, &settings).await.unwrap();
        assert_eq!(redis_lock(&limiter, ADA, HERE).await, None);
    }
    let mut seen = Vec::new();
    for _ in 0..8 {
        limiter.login_failed(ADA, HERE, &settings).await.unwrap();
        let (scope, secs) = redis_lock(&limiter, ADA, HERE).await.expect("locked after a failure past the threshold");
        assert_eq!(scope, LockScope::Address);
        seen.push(secs);
    }
    assert_eq!(seen, [30, 60, 120, 240, 480, 900, 900, 900]);
    // Another account, and the same account at another address, are not locked.
    assert_eq!(redis_lock(&limiter, "bob@example.com", HERE).await, None);
    assert_eq!(redis_lock(&limiter, ADA, THERE).await, None);
    keys.assert_all_expire().await;

    // Success clears the count and the lock of that address.
    limiter.login_succeeded(ADA, HERE, &settings).await.unwrap();
    assert_eq!(redis_lock(&limiter, ADA, HERE).await, None);
    for _ in 0..4 {
        limiter.login_failed(ADA, HERE, &settings).await.unwrap();
    }
    assert_eq!(redis_lock(&limiter, ADA, HERE).await, None);
    keys.assert_all_expire().await;
    keys.delete().await;
}

#[tokio::test]
#[ignore = "needs Redis: set TEST_REDIS_URL and pass --ignored"]
async fn redis_account_wide_lock_spares_known_addresses() {
    let (limiter, keys) = redis_limiter().await;
    let settings = RateLimitSettings { login_known_addresses_per_account: 2, ..Default::default() };
    for address in ["192.0.2.10", "192.0.2.11", HERE] {
        limiter.login_succeeded(ADA, address, &settings).await.unwrap();
    }
    for i in 0..19 {
        limiter.login_failed(ADA, &format!("203.0.113.{i}"), &settings).await.unwrap();
    }
    assert_eq!(redis_lock(&limiter, ADA, THERE).await, None);
    limiter.login_failed(ADA, "203.0.113.99", &settings).await.unwrap();
    assert_eq!(redis_lock(&limiter, ADA, THERE).await, Some((LockScope::Account, 30)));
    // The two most recent known addresses are spared; the oldest was dropped.
    assert_eq!(redis_lock(&limiter, ADA, HERE).await, None);
    assert_eq!(redis_lock(&limiter, ADA, "192.0.2.11").await, None);
    assert_eq!(redis_lock(&limiter, ADA, "192.0.2.10").await, Some((LockScope::Account, 30)));
    assert_eq!(redis_lock(&limiter, "bob@example.com", THERE).await, None);
    // A known address keeps its own back-off.
    for _ in 0..5 {
        limiter.login_failed(ADA, HERE, &settings).await.unwrap();
    }
    assert_eq!(redis_lock(&limiter, ADA, HERE).await.map(|(scope, _)| scope), Some(LockScope::Address));
    keys.assert_all_expire().await;
    keys.delete().await;
}

#[tokio::test]
#[ignore = "needs Redis: set TEST_REDIS_URL and pass --ignored"]
async fn redis_known_addresses_expire() {
    let (limiter, keys) = redis_limiter().await;
    let settings = RateLimitSettings { login_known_address_secs: 1, ..Default::default() };
    limiter.login_succeeded(ADA, HERE, &settings).await.unwrap();
    for i in 0..20 {
        limiter.login_failed(ADA, &format!("203.0.113.{i}"), &settings).await.unwrap();
    }
    assert_eq!(redis_lock(&limiter, ADA, HERE).await, None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(redis_lock(&limiter, ADA, HERE).await.map(|(scope, _)| scope), Some(LockScope::Account));
    keys.delete().await;
}

#[tokio::test]
#[ignore = "needs Redis: set TEST_REDIS_URL and pass --ignored"]
async fn redis_lock_ends_when_the_backoff_passes() {
    let (limiter, keys) = redis_limiter().await;
    let settings = RateLimitSettings { login_backoff_base_secs: 1, login_backoff_max_secs: 2, ..Default::default() };
    for _ in 0..5 {
        limiter.login_failed(ADA, HERE, &settings).await.unwrap();
    }
    assert_eq!(redis_lock(&limiter, ADA, HERE).await, Some((LockScope::Address, 1)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(redis_lock(&limiter, ADA, HERE).await, None);
    // The count survived the lock: the next failure doubles it.
    limiter.login_failed(ADA, HERE, &settings).await.unwrap();
    assert_eq!(redis_lock(&limiter, ADA, HERE).await, Some((LockScope::Address, 2)));
    keys.delete().await;
}

#[tokio::test]
#[ignore = "needs Redis: set TEST_REDIS_URL and pass --ignored"]
async fn redis_limits_are_shared_between_instances() {
    let (first, keys) = redis_limiter().await;
    let second = RedisRateLimiter::connect(&redis_url(), keys.0.as_str()).await.unwrap();
    let quota = Quota::new(4, 60);
    for limiter in [&first, &second, &first, &second] {
        assert!(limiter.hit("ip:refresh:192.0.2.1", quota).await.unwrap().is_allowed());
    }
    assert!(!second.hit("ip:refresh:192.0.2.1", quota).await.unwrap().is_allowed());
    let settings = RateLimitSettings::default();
    for limiter in [&first, &second, &first, &second, &first] {
        limiter.login_failed(ADA, HERE, &settings).await.unwrap();
    }
    assert!(redis_lock(&second, ADA, HERE).await.is_some());
    keys.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: set TEST_REDIS_URL and pass --ignored"]
async fn redis_limits_apply_through_auth() {
    let prefix = redis_test_prefix();
    let ctx = TestContext::sqlite_with(|c| {
        c.rate_limits.redis_url = Some(redis_url());
        c.rate_limits.redis_key_prefix = prefix.clone();
    })
    .await;
    ctx.verified_user("redis@example.com").await;
    for _ in 0..5 {
        invalid(login(&ctx.auth, "redis@example.com", WRONG).await);
    }
    assert_eq!(retry_after(login(&ctx.auth, "redis@example.com", PASSWORD).await), 30);
    // A second instance on the same Redis sees the lock.
    let other = ctx.second_instance(|_| {}).await;
    assert_eq!(retry_after(login(&other, "redis@example.com", PASSWORD).await), 30);
    // The registration above counted once against the register quota (10 per minute).
    for _ in 0..9 {
        ctx.auth.rate_limit(Action::Register, &client()).await.unwrap();
    }
    assert!(retry_after(other.rate_limit(Action::Register, &client()).await) <= 60);
    RedisKeys(prefix).delete().await;
}
