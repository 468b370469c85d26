//! Test harness: a real [`Auth`] on a fresh SQLite file or a fresh PostgreSQL
//! schema, with an in-memory mailer and a manual clock.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::{sync::LazyLock, time::Duration};

use auth_core::{
    Auth, AuthConfig, ClientInfo, Clock, SigningAlgorithm,
    config::{KeySpec, MailTransport},
    identity::Registration,
    mail::MemoryMailer,
    ratelimit::RateLimiter,
    tokens::KeySet,
};
use uuid::Uuid;

#[path = "../support/pg_schema.rs"]
mod pg_schema;
use pg_schema::PgSchema;

pub const PASSWORD: &str = "Correct-Horse-Battery-42";

/// RSA key generation is slow: one key per test binary.
static RSA_KEY: LazyLock<KeySpec> =
    LazyLock::new(|| KeySet::generate(SigningAlgorithm::Rs256, "test-rs256").expect("generate a test key"));

pub enum Backend {
    Sqlite(tempfile::TempDir),
    /// A schema of its own in the database of `TEST_DATABASE_URL`, dropped afterwards.
    Postgres(PgSchema),
}

pub struct TestContext {
    pub auth: Auth,
    pub mail: MemoryMailer,
    pub clock: Clock,
    pub config: AuthConfig,
    pub backend: Backend,
}

/// Settings for tests: cheap argon2 (the policy and algorithm are unchanged).
pub fn test_config(database_url: String) -> AuthConfig {
    let mut config = AuthConfig { database_url, ..AuthConfig::default() };
    config.password.argon2_memory_kib = 1024;
    config.password.argon2_iterations = 1;
    config.tokens.signing_key = Some(RSA_KEY.clone());
    config.mail.transport = MailTransport::Memory;
    config.mfa.encryption_key = Some(MFA_KEY.clone());
    config
}

/// A fresh key to seal TOTP secrets, one per test binary.
static MFA_KEY: LazyLock<auth_core::Secret> = LazyLock::new(|| {
    use base64::Engine as _;
    auth_core::Secret::new(base64::engine::general_purpose::STANDARD.encode(auth_core::tokens::random_bytes()))
});

impl TestContext {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(|_| {}).await
    }

    pub async fn postgres() -> Self {
        Self::postgres_with(|_| {}).await
    }

    pub async fn sqlite_with(tweak: impl FnOnce(&mut AuthConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("auth.db").display());
        Self::start(url, Backend::Sqlite(dir), tweak, None).await
    }

    /// On SQLite, counting with `limiter` instead of the configured one.
    pub async fn sqlite_with_limiter(limiter: std::sync::Arc<dyn RateLimiter>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("auth.db").display());
        Self::start(url, Backend::Sqlite(dir), |_| {}, Some(limiter)).await
    }

    pub async fn postgres_with(tweak: impl FnOnce(&mut AuthConfig)) -> Self {
        let schema = PgSchema::create("t").await;
        Self::start(schema.url.clone(), Backend::Postgres(schema), tweak, None).await
    }

    async fn start(
        url: String,
        backend: Backend,
        tweak: impl FnOnce(&mut AuthConfig),
        limiter: Option<std::sync::Arc<dyn RateLimiter>>,
    ) -> Self {
        let mut config = test_config(url);
        tweak(&mut config);
        let mail = MemoryMailer::new(&config.mail.from).expect("mailer");
        let clock = Clock::manual();
        let mut builder = Auth::builder(config.clone()).mailer(std::sync::Arc::new(mail.clone())).clock(clock.clone());
        if let Some(limiter) = limiter {
            builder = builder.rate_limiter(limiter);
        }
        let auth = builder.build().await.expect("build Auth");
        Self { auth, mail, clock, config, backend }
    }

    /// Another instance on the same database (a second server).
    pub async fn second_instance(&self, tweak: impl FnOnce(&mut AuthConfig)) -> Auth {
        let mut config = self.config.clone();
        tweak(&mut config);
        Auth::builder(config)
            .mailer(std::sync::Arc::new(self.mail.clone()))
            .clock(self.clock.clone())
            .build()
            .await
            .expect("build a second Auth")
    }

    /// The one number `sql` (a `SELECT COUNT(*) …`) answers on the test database.
    pub async fn count(&self, sql: &str) -> i64 {
        use sqlx::Row;
        let pool = self.raw().await;
        let count = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.expect("count").get::<i64, _>(0);
        pool.close().await;
        count
    }

    /// A raw connection to the test database, for checking what was stored.
    pub async fn raw(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.config.database_url).await.expect("raw connection")
    }

    pub async fn register(&self, email: &str) -> Uuid {
        let registration =
            Registration { email: email.into(), password: PASSWORD.into(), full_name: "Test User".into(), phone: None };
        self.auth.accounts().register(&registration, &client()).await.expect("register").0.id
    }

    /// Registers and verifies through the emailed token.
    pub async fn verified_user(&self, email: &str) -> Uuid {
        let id = self.register(email).await;
        let token = self.token_mailed_to(email).await;
        self.auth.accounts().verify_email(&token, &client()).await.expect("verify email");
        id
    }

    /// The token of the latest link mailed to `to`, waiting for detached sends.
    pub async fn token_mailed_to(&self, to: &str) -> String {
        for _ in 0..100 {
            if let Some(email) = self.mail.last_to(to) {
                return token_in(&email.text);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no email reached {to}");
    }

    /// The `n`th mail (from 1) to `to` whose subject starts with `subject`,
    /// waiting for detached sends.
    pub async fn nth_mail(&self, to: &str, subject: &str, n: usize) -> auth_core::mail::Email {
        for _ in 0..100 {
            let matching: Vec<_> = self
                .mail
                .sent()
                .into_iter()
                .filter(|email| email.to.eq_ignore_ascii_case(to) && email.subject.starts_with(subject))
                .collect();
            if let Some(email) = matching.into_iter().nth(n - 1) {
                return email;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no mail {n} {subject:?} reached {to}");
    }

    /// The token of the `n`th invitation mailed to `to`.
    pub async fn invitation_token(&self, to: &str, n: usize) -> String {
        token_in(&self.nth_mail(to, "You are invited", n).await.text)
    }

    /// Makes the verified account `member` of `email` join `tenant_id` with
    /// `role`, invited by `actor`: the only way in.
    pub async fn join(&self, actor: Uuid, tenant_id: Uuid, member: Uuid, email: &str, role: &str) {
        self.join_on(&self.auth, actor, tenant_id, member, email, role).await;
    }

    /// [`Self::join`] through another instance (a custom role set, say).
    pub async fn join_on(&self, auth: &Auth, actor: Uuid, tenant_id: Uuid, member: Uuid, email: &str, role: &str) {
        let before = self.mail.sent().iter().filter(|m| m.to == email && m.subject.starts_with("You are")).count();
        auth.tenants().invite(actor, tenant_id, email, role, &client()).await.expect("invite");
        let token = self.invitation_token(email, before + 1).await;
        auth.tenants().accept_invitation(member, &token, &client()).await.expect("accept the invitation");
    }

    pub async fn login(&self, email: &str) -> auth_core::TokenPair {
        self.auth.sessions().login(email, PASSWORD, None, &client()).await.expect("login")
    }
}

/// Whether `auth` refuses `access` within 3 s of real time: another instance
/// learns of a revocation at its next poll (the tests poll every second).
pub async fn refused_within_3s(auth: &Auth, access: &str) -> bool {
    for _ in 0..30 {
        if auth.verify_access(access).is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

pub fn client() -> ClientInfo {
    ClientInfo::new(Some("203.0.113.7".parse().expect("ip")), Some("test-agent/1.0"))
}

/// A client at another address.
pub fn client_at(ip: &str) -> ClientInfo {
    ClientInfo::new(Some(ip.parse().expect("ip")), Some("test-agent/1.0"))
}

/// The Redis of `TEST_REDIS_URL`, for the tests marked `ignored`.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .expect("Redis tests need TEST_REDIS_URL, e.g. TEST_REDIS_URL=redis://127.0.0.1:6379 cargo test -- --ignored")
}

/// A key prefix of its own for one test, so runs and tests do not collide.
pub fn redis_test_prefix() -> String {
    format!("auth-test:{}:", Uuid::new_v4().simple())
}

/// The value of `token=` in the first link of a mail body.
pub fn token_in(text: &str) -> String {
    let start = text.find("token=").expect("a link with a token") + "token=".len();
    text[start..].split_whitespace().next().expect("token").to_owned()
}

/// Generates `#[tokio::test]` entry points running each listed
/// `async fn(TestContext)` on SQLite and, when selected, on PostgreSQL.
/// The PostgreSQL variants are `#[ignore]`d: run them with
/// `TEST_DATABASE_URL=… cargo test -- --ignored`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestContext::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set TEST_DATABASE_URL and pass --ignored"]
                async fn $name() {
                    super::$name($crate::common::TestContext::postgres().await).await;
                }
            )*
        }
    };
}
