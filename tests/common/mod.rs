//! Harness of the end-to-end suites: the demo app (or a minimal host app) on
//! a fresh SQLite file or a fresh PostgreSQL schema, driven through Rocket's
//! local asynchronous client. Nothing is mocked: real routing, real argon2
//! (cheap parameters), real RS256 signatures, real databases; one-time tokens
//! come only from the mail the platform sends.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::{path::Path, sync::Arc, sync::LazyLock};

use auth_core::{
    Auth, AuthConfig, SigningAlgorithm,
    config::{KeySpec, MailTransport, Quota},
    mail::MemoryMailer,
    tokens::KeySet,
};
use auth_rocket::{AuthFairing, testing::Conformance};
use rocket::{
    figment::{Figment, providers::Serialized},
    local::asynchronous::Client,
};

#[path = "../../auth-core/tests/support/pg_schema.rs"]
mod pg_schema;
use pg_schema::PgSchema;

#[allow(unused_imports)] // each test binary uses some
pub use auth_rocket::testing::{self, Answer, NEW_PASSWORD, PASSWORD, TestUser, Tokens};

/// The mount point of the auth routes in the demo app.
pub const DEMO_BASE: &str = "/api/auth";
/// The mount point of the minimal host app: anything but the demo's.
pub const HOST_BASE: &str = "/identity/v1";
pub const MAIL_FROM: &str = "Auth Tests <no-reply@example.com>";

/// RSA key generation is slow: one key per test binary.
pub static RSA_KEY: LazyLock<KeySpec> =
    LazyLock::new(|| KeySet::generate(SigningAlgorithm::Rs256, "e2e-rs256").expect("generate a test key"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of one test: a SQLite file in a temporary directory, or a
/// schema of its own in the database of `TEST_DATABASE_URL`, dropped afterwards.
pub struct TestDatabase {
    pub url: String,
    dir: tempfile::TempDir,
    schema: Option<PgSchema>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("auth.db").display());
                Self { url, dir, schema: None }
            }
            Backend::Postgres => {
                let schema = PgSchema::create("e2e").await;
                Self { url: schema.url.clone(), dir, schema: Some(schema) }
            }
        }
    }

    /// A scratch directory that lives as long as the database (outbox, key files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Settings for tests: cheap argon2 (the policy and algorithm are unchanged),
/// the binary's RS256 key, mail kept in memory, and rate limits no test
/// reaches unless it lowers them.
pub fn test_config(database_url: &str) -> AuthConfig {
    let mut config = AuthConfig { database_url: database_url.to_owned(), ..AuthConfig::default() };
    config.issuer = "http://localhost:8000".into();
    config.audience = "auth-e2e".into();
    config.password.argon2_memory_kib = 1024;
    config.password.argon2_iterations = 1;
    config.tokens.signing_key = Some(RSA_KEY.clone());
    config.mail.from = MAIL_FROM.into();
    config.mail.transport = MailTransport::Memory;
    let limits = &mut config.rate_limits;
    limits.login_failures_per_account = 100;
    limits.login_failures_account_wide = 1000;
    let generous = Quota::new(10_000, 60);
    limits.login = generous;
    limits.register = generous;
    limits.refresh = generous;
    limits.password_reset = generous;
    limits.reset_confirm = generous;
    limits.verification_resend = generous;
    limits.password_reset_per_account = generous;
    limits.verification_resend_per_account = generous;
    limits.password_change = generous;
    limits.tenant_token = generous;
    limits.create_tenant = generous;
    limits.profile_update = generous;
    limits.session_revoke = generous;
    limits.member_change = generous;
    limits.mfa_change = generous;
    limits.passkey_change = generous;
    // Any well-formed key: the suites' TOTP secrets live as long as their database.
    config.mfa.encryption_key = Some(auth_core::config::MfaSettings::development_key(&RSA_KEY));
    config
}

/// Rocket's debug defaults with `config` as the `auth` table. `Rocket.toml`
/// is left out on purpose: its `[default.auth]` would be merged key by key
/// into `config` (a `mail.transport` of another kind, say).
pub fn figment(config: &AuthConfig) -> Figment {
    quiet(Figment::from(rocket::Config::debug_default())).merge(Serialized::global("auth", config))
}

/// The same in the release profile, where the deployment checklist is enforced.
pub fn release_figment(config: &AuthConfig) -> Figment {
    quiet(Figment::from(rocket::Config::release_default())).merge(Serialized::global("auth", config))
}

/// Keeps Rocket's own logging to failures.
pub fn quiet(figment: Figment) -> Figment {
    figment.merge(Serialized::global("log_level", "critical")).merge(Serialized::global("cli_colors", false))
}

/// An app under test: its client wrapped in the conformance kit, and its database.
pub struct TestApp {
    pub kit: Conformance,
    /// Dropped after the app (fields drop in order).
    pub db: TestDatabase,
}

impl TestApp {
    /// The demo app (`auth_demo::rocket`) on `backend`, mail in a file outbox.
    pub async fn demo(backend: Backend) -> Self {
        Self::demo_with(backend, |_| {}).await
    }

    /// The demo app with adjusted settings.
    ///
    /// The demo attaches its own `AuthFairing`, so no mailer can be handed to
    /// it: its mail goes to a file outbox in the test's scratch directory,
    /// which the kit reads.
    pub async fn demo_with(backend: Backend, tweak: impl FnOnce(&mut AuthConfig)) -> Self {
        let db = TestDatabase::new(backend).await;
        let outbox = db.dir().join("outbox");
        let mut config = test_config(&db.url);
        config.mail.transport = MailTransport::Outbox { dir: outbox.clone() };
        tweak(&mut config);
        let client = Client::tracked(auth_demo::rocket(figment(&config))).await.expect("the demo app ignites");
        Self { kit: Conformance::with_outbox(client, DEMO_BASE, outbox), db }
    }

    /// A minimal host app, exactly as the kit's documentation builds one: the
    /// platform mounted at [`HOST_BASE`], mail in a [`MemoryMailer`].
    pub async fn host(backend: Backend) -> Self {
        let db = TestDatabase::new(backend).await;
        let config = test_config(&db.url);
        let mail = MemoryMailer::new(MAIL_FROM).expect("a memory mailer");
        let platform_mail = mail.clone();
        let platform = AuthFairing::mounted_at(HOST_BASE).customize(move |b| b.mailer(Arc::new(platform_mail.clone())));
        let rocket = rocket::custom(figment(&config)).attach(platform);
        let client = Client::tracked(rocket).await.expect("the host app ignites");
        Self { kit: Conformance::new(client, HOST_BASE, mail), db }
    }

    pub fn client(&self) -> &Client {
        self.kit.client()
    }

    /// The platform the app manages.
    pub fn auth(&self) -> &Auth {
        self.client().rocket().state::<Auth>().expect("the app manages an Auth")
    }

    /// `GET <uri>` (absolute) with an optional bearer token.
    pub async fn get(&self, uri: &str, bearer: Option<&str>) -> Answer {
        self.kit.send(rocket::http::Method::Get, uri, bearer, None, &[]).await
    }

    /// A verified user, logged in.
    pub async fn signed_in(&self, label: &str) -> (TestUser, Tokens) {
        let user = self.kit.verified_user(label).await;
        let tokens = self.kit.sign_in(&user).await;
        (user, tokens)
    }
}

/// Generates `#[tokio::test]` entry points running each listed
/// `async fn(Backend)` on SQLite and, when selected, on PostgreSQL. The
/// PostgreSQL variants are `#[ignore]`d: run them with
/// `TEST_DATABASE_URL=… cargo test -- --ignored`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set TEST_DATABASE_URL and pass --ignored"]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}
