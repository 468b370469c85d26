//! Launch rules: in the release profile the demo refuses to ignite while the
//! deployment checklist fails, and ignites with a complete production
//! configuration; in debug, a development key is generated once into
//! `AUTH_DEV_KEY_FILE` and reused by the next ignition.
//!
//! These tests share one lock: one of them sets an environment variable,
//! which must not happen while another thread of this binary reads the
//! environment (Rocket's figment and the fairing do).

mod common;

use auth_core::{
    AuthConfig, SigningAlgorithm,
    config::{KeySpec, MailTransport, Secret},
};
use common::{Backend, MAIL_FROM, RSA_KEY, TestDatabase, figment, release_figment, test_config};
use rocket::local::asynchronous::Client;
use serde_json::json;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// A change that breaks a production configuration: its name, what the
/// operators' `checklist` reports of it, the change.
type Breakage = (&'static str, &'static str, Box<dyn Fn(&mut AuthConfig)>);

/// What the deployment checklist wants, on the test's database.
fn production_config(database_url: &str) -> AuthConfig {
    let mut config = AuthConfig { database_url: database_url.to_owned(), ..AuthConfig::default() };
    config.issuer = "https://auth.example.com".into();
    config.public_url = "https://app.example.com".into();
    config.audience = "auth-e2e".into();
    config.tokens.signing_key = Some(RSA_KEY.clone());
    config.mail.from = MAIL_FROM.into();
    config.mail.transport = MailTransport::Smtp {
        host: "127.0.0.1".into(),
        port: 2525,
        username: Some("mailer".into()),
        password: Some(Secret::new("a-smtp-password")),
        insecure: false,
    };
    config
}

/// Whether ignition failed. A `rocket::Error` must be inspected before it is
/// dropped (it panics otherwise), and a failed ignition must be the fairing's.
fn refused(result: Result<Client, rocket::Error>) -> bool {
    match result {
        Ok(_) => false,
        Err(error) => {
            assert!(
                matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
                "ignition failed for another reason: {error}"
            );
            true
        }
    }
}

/// The demo, or a host app that mounts nothing but the platform.
#[derive(Debug, Clone, Copy)]
enum App {
    Demo,
    Host,
}

/// Ignites `app` in the release profile with `config`.
async fn ignite_release(app: App, config: &AuthConfig) -> Result<Client, rocket::Error> {
    let figment = release_figment(config);
    let rocket = match app {
        App::Demo => auth_demo::rocket(figment),
        App::Host => rocket::custom(figment)
            .attach(auth_rocket::AuthFairing::default())
            .mount("/api/auth", auth_rocket::routes())
            .mount("/", auth_rocket::well_known())
            .register("/", auth_rocket::catchers()),
    };
    Client::tracked(rocket).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_ignites_a_host_app_with_a_complete_production_config() {
    release_ignites_with_a_complete_production_config(App::Host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_ignites_the_demo_with_a_complete_production_config() {
    release_ignites_with_a_complete_production_config(App::Demo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_refuses_a_host_app_what_the_checklist_forbids() {
    release_refuses_what_the_checklist_forbids(App::Host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_refuses_the_demo_what_the_checklist_forbids() {
    release_refuses_what_the_checklist_forbids(App::Demo).await;
}

async fn release_ignites_with_a_complete_production_config(app: App) {
    let _serial = SERIAL.lock().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let client = ignite_release(app, &production_config(&db.url)).await.expect("a production config ignites");
    let response = client.get("/.well-known/jwks.json").dispatch().await;
    assert_eq!(response.status().code, 200);
    let jwks: serde_json::Value = response.into_json().await.expect("a JWKS");
    assert_eq!(jwks["keys"][0]["kid"], json!(RSA_KEY.kid));
}

/// What a launch outside development refuses, each with the failed launch
/// check that `checklist` names (or, for an invalid setting, the setting).
fn breakages() -> Vec<Breakage> {
    let hs256 = KeySpec {
        kid: "hs".into(),
        algorithm: Some(SigningAlgorithm::Hs256),
        secret: Some(Secret::new("an-hs256-secret-of-at-least-32-bytes-long")),
        ..KeySpec::default()
    };
    vec![
        ("no signing key", "FAIL signing_key_configured", Box::new(|c| c.tokens.signing_key = None)),
        ("access_ttl_secs = 1000", "tokens.access_ttl_secs", Box::new(|c| c.tokens.access_ttl_secs = 1000)),
        (
            "HS256",
            "FAIL asymmetric_signing",
            Box::new(move |c| {
                c.tokens.algorithm = SigningAlgorithm::Hs256;
                c.tokens.signing_key = Some(hs256.clone());
            }),
        ),
        ("an http public URL", "FAIL https_public_url", Box::new(|c| c.public_url = "http://app.example.com".into())),
        ("an http issuer", "FAIL https_issuer", Box::new(|c| c.issuer = "http://auth.example.com".into())),
        ("unverified logins", "FAIL verified_email_required", Box::new(|c| c.require_verified_email = false)),
        ("cheap argon2", "FAIL argon2_owasp_minimum", Box::new(|c| c.password.argon2_memory_kib = 1024)),
        ("no rate limits", "FAIL rate_limits_enabled", Box::new(|c| c.rate_limits.enabled = false)),
        (
            "the file outbox",
            "FAIL smtp_mail_with_tls",
            Box::new(|c| c.mail.transport = MailTransport::Outbox { dir: "outbox".into() }),
        ),
        ("the memory mailer", "FAIL smtp_mail_with_tls", Box::new(|c| c.mail.transport = MailTransport::Memory)),
        (
            "plain-text SMTP",
            "FAIL smtp_mail_with_tls",
            Box::new(|c| {
                c.mail.transport = MailTransport::Smtp {
                    host: "127.0.0.1".into(),
                    port: 2525,
                    username: None,
                    password: None,
                    insecure: true,
                }
            }),
        ),
    ]
}

async fn release_refuses_what_the_checklist_forbids(app: App) {
    let _serial = SERIAL.lock().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    for (label, _, break_it) in breakages() {
        let mut config = production_config(&db.url);
        break_it(&mut config);
        assert!(refused(ignite_release(app, &config).await), "release must refuse {app:?} with {label}");
    }
    // The same complete config, for contrast, ignites.
    ignite_release(app, &production_config(&db.url)).await.expect("the complete config ignites");
}

/// The operators' `checklist` judges a configuration as the launch does,
/// naming the failed check, and opens no database to do it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checklist_command_names_what_a_launch_refuses_without_opening_the_database() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("never-opened.db");
    let url = format!("sqlite://{}?mode=rwc", database.display());
    let checklist = |config: &AuthConfig| {
        auth_rocket::cli::execute(["demo", "checklist"], auth_demo::rocket(release_figment(config)))
    };

    let report = checklist(&production_config(&url)).await.expect("a complete config passes");
    assert!(report.contains("ok   signing_key_configured"), "{report}");
    assert!(report.contains("ok   routes_marked"), "{report}");
    assert!(report.trim_end().ends_with("checks pass"), "{report}");
    for (label, named, break_it) in breakages() {
        let mut config = production_config(&url);
        break_it(&mut config);
        let report = checklist(&config).await.expect_err(label);
        assert!(report.contains(named), "{label}: {report}");
    }
    // Several failures are listed at once, each by name.
    let report = checklist(&test_config(&url)).await.expect_err("development settings in production");
    for named in ["FAIL https_public_url", "FAIL argon2_owasp_minimum", "FAIL smtp_mail_with_tls"] {
        assert!(report.contains(named), "{named}: {report}");
    }
    assert!(!database.exists(), "the checklist opened the database");
}

/// Rocket's figment on a profile of that name, in this (debug) build.
fn profile_figment(profile: &str, config: &AuthConfig) -> rocket::figment::Figment {
    let rocket_config = rocket::Config { profile: profile.into(), ..rocket::Config::debug_default() };
    common::quiet(rocket::figment::Figment::from(rocket_config))
        .merge(rocket::figment::providers::Serialized::global("auth", config))
}

/// Issue #10.6: the checklist was keyed on the profile name `release`, so
/// `ROCKET_PROFILE=production` skipped it. Only the debug profile (or
/// `environment = "development"` on purpose) relaxes it now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_profile_but_debug_enforces_the_checklist() {
    let _serial = SERIAL.lock().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let development_settings = test_config(&db.url); // memory mail, cheap argon2, http URLs
    for profile in ["production", "staging", "prod"] {
        let ignited = Client::tracked(auth_demo::rocket(profile_figment(profile, &development_settings))).await;
        assert!(refused(ignited), "profile {profile} must enforce the checklist");
        let ignited = Client::tracked(auth_demo::rocket(profile_figment(profile, &production_config(&db.url)))).await;
        ignited.unwrap_or_else(|e| panic!("profile {profile} ignites a complete production config: {e}"));
    }
    // Unmarked routes are refused outside development too.
    #[rocket::get("/unmarked")]
    fn unmarked() -> &'static str {
        "open by accident"
    }
    let rocket = auth_demo::rocket(profile_figment("production", &production_config(&db.url)))
        .mount("/", rocket::routes![unmarked]);
    assert!(refused(Client::tracked(rocket).await), "an unmarked route under the production profile");

    let mut explicit = development_settings.clone();
    explicit.environment = Some(auth_core::config::Environment::Development);
    let ignited = Client::tracked(auth_demo::rocket(profile_figment("staging", &explicit))).await;
    ignited.expect("environment = \"development\", written on purpose, relaxes the checklist");
    let mut explicit = production_config(&db.url);
    explicit.environment = Some(auth_core::config::Environment::Production);
    explicit.password.argon2_memory_kib = 1024;
    let ignited = Client::tracked(auth_demo::rocket(figment(&explicit))).await;
    assert!(refused(ignited), "environment = \"production\" enforces the checklist on the debug profile too");
}

/// Invalid settings are refused in every profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_refuses_invalid_settings_too() {
    let _serial = SERIAL.lock().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let mut config = test_config(&db.url);
    config.tokens.access_ttl_secs = 1000;
    assert!(refused(Client::tracked(auth_demo::rocket(figment(&config))).await), "access_ttl_secs = 1000");
    let config = test_config("mysql://nowhere");
    assert!(refused(Client::tracked(auth_demo::rocket(figment(&config))).await), "an unsupported database");
}

/// Debug without a key: one is generated into `AUTH_DEV_KEY_FILE` on the
/// first ignition and reused by the next, so issued tokens stay valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_generates_and_reuses_a_development_key() {
    let _serial = SERIAL.lock().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let key_file = db.dir().join("dev-key.pem");
    // SAFETY: every test of this binary holds `SERIAL`, so no other thread of
    // this process reads the environment while it changes.
    unsafe { std::env::set_var("AUTH_DEV_KEY_FILE", &key_file) };

    let mut config = test_config(&db.url);
    config.tokens.signing_key = None;
    let first = Client::tracked(auth_demo::rocket(figment(&config))).await.expect("debug ignites without a key");
    let pem = std::fs::read_to_string(&key_file).expect("the development key was written");
    assert!(pem.contains("PRIVATE KEY"), "a PEM private key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the development key is private to its owner");
    }

    let auth = first.rocket().state::<auth_core::Auth>().expect("an Auth");
    let email = "dev-key-user@example.com";
    auth.operators().create_superuser(email, common::PASSWORD, "Dev Key").await.expect("a superuser");
    let login = json!({ "email": email, "password": common::PASSWORD }).to_string();
    let response = first.post("/api/auth/login").header(rocket::http::ContentType::JSON).body(login).dispatch().await;
    assert_eq!(response.status().code, 200);
    let tokens: serde_json::Value = response.into_json().await.expect("tokens");
    let access = tokens["access"].as_str().expect("an access token").to_owned();
    let jwks_first: serde_json::Value =
        first.get("/.well-known/jwks.json").dispatch().await.into_json().await.expect("a JWKS");
    drop(first);

    let second = Client::tracked(auth_demo::rocket(figment(&config))).await.expect("debug ignites again");
    assert_eq!(std::fs::read_to_string(&key_file).expect("the key file"), pem, "the key file is kept as it was");
    let jwks_second: serde_json::Value =
        second.get("/.well-known/jwks.json").dispatch().await.into_json().await.expect("a JWKS");
    assert_eq!(jwks_first, jwks_second, "the same key is published");
    let bearer = rocket::http::Header::new("Authorization", format!("Bearer {access}"));
    let status = second.get("/api/protected").header(bearer).dispatch().await.status();
    assert_eq!(status.code, 200, "a token of the first instance verifies on the second");
    drop(second);

    // Never in release: a development key is no production key.
    let release =
        ignite_release(App::Host, &AuthConfig { tokens: config.tokens.clone(), ..production_config(&db.url) }).await;
    assert!(refused(release), "release ignores AUTH_DEV_KEY_FILE and wants a configured key");

    // SAFETY: as above.
    unsafe { std::env::remove_var("AUTH_DEV_KEY_FILE") };
}
