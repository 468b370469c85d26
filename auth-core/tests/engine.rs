//! The engine's behaviour end to end, on SQLite always and on PostgreSQL when
//! `TEST_DATABASE_URL` is set (`cargo test -- --ignored`). Real argon2, real
//! signatures, real databases; nothing is mocked.

mod common;

use std::{sync::Arc, time::Duration};

use auth_core::{
    AuthError, SigningAlgorithm,
    identity::{ProfileUpdate, Registration},
    tenancy::Roles,
    testing::{record_second_factor, store},
    tokens::{AccessClaims, AuthMethod},
};
use common::{PASSWORD, TestContext, client};
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use sqlx::Row;

backend_tests!(
    registration_normalises_email_and_keeps_profile_apart,
    registration_reports_every_invalid_field,
    a_failed_registration_leaves_nothing_behind,
    duplicate_registration_race_has_one_winner,
    passwords_are_argon2id_and_rehashed_when_parameters_change,
    login_failures_look_the_same,
    login_requires_a_verified_email_and_an_active_account,
    superusers_are_created_verified_and_staff,
    access_tokens_carry_the_contract_claims_and_no_pii,
    access_tokens_expire_and_are_dated_by_the_engine_clock,
    refresh_rotates_and_detects_reuse,
    concurrent_refreshes_have_exactly_one_winner,
    refresh_respects_idle_and_absolute_lifetimes,
    reuse_grace_window_returns_the_same_successor,
    grace_window_races_leave_one_chain_and_a_used_successor_makes_reuse,
    tenant_tokens_end_with_the_login_they_came_from,
    a_user_holds_at_most_the_configured_number_of_sessions,
    tenant_scoped_refresh_rereads_the_membership,
    tenant_rules_are_enforced,
    custom_role_sets_are_used,
    logout_revokes_one_session_and_its_access_tokens,
    logout_all_and_password_change_revoke_sessions,
    deactivation_stops_everything_at_once,
    refresh_rereads_the_account_and_refuses_an_inactive_one,
    revocation_reaches_other_instances_within_the_poll_interval,
    revocation_polls_read_only_rows_revoked_since_the_last_poll,
    email_verification_tokens_are_single_use_and_expire,
    password_reset_flow,
    reset_tokens_die_when_the_password_changes_otherwise,
    sessions_are_listed_and_revocable,
    profile_updates_are_validated,
    audit_trail_records_events_without_secrets,
    operators_invite_under_the_rules_and_audited,
    pruning_removes_ended_sessions,
    audit_events_past_their_retention_are_pruned,
    a_closed_store_is_unavailable,
    sessions_say_how_and_when_the_user_signed_in_and_refreshes_never_change_it,
    a_second_factor_upgrades_the_session_and_only_its_next_tokens,
);

async fn registration_normalises_email_and_keeps_profile_apart(ctx: TestContext) {
    let registration = Registration {
        email: "  Ada.Lovelace@Example.COM ".into(),
        password: PASSWORD.into(),
        full_name: " Ada Lovelace ".into(),
        phone: Some("+44 20 7946 0958".into()),
    };
    let (user, profile) = ctx.auth.accounts().register(&registration, &client()).await.unwrap();
    assert_eq!(user.email.as_str(), "ada.lovelace@example.com");
    assert!(!user.email_verified() && user.is_active && !user.is_staff && !user.is_superuser);
    assert_eq!(profile.full_name, "Ada Lovelace");

    let again = Registration { email: "ADA.LOVELACE@example.com".into(), ..registration };
    assert!(matches!(ctx.auth.accounts().register(&again, &client()).await, Err(AuthError::EmailTaken)));

    let account = ctx.auth.accounts().account(user.id).await.unwrap();
    assert_eq!(account.profile.phone.as_deref(), Some("+44 20 7946 0958"));
    assert_eq!(ctx.count("SELECT COUNT(*) FROM profiles").await, 1);
    // The verification email links to the configured public URL.
    let mail = ctx.mail.last_to("ada.lovelace@example.com").unwrap();
    assert!(mail.text.contains("http://localhost:8000/api/auth/verify-email?token="), "{}", mail.text);
}

async fn registration_reports_every_invalid_field(ctx: TestContext) {
    let registration = Registration {
        email: "not-an-email".into(),
        password: "short".into(),
        full_name: " ".into(),
        phone: Some("call me".into()),
    };
    let Err(AuthError::Validation(fields)) = ctx.auth.accounts().register(&registration, &client()).await else {
        panic!("expected a validation error");
    };
    for field in ["email", "password", "full_name", "phone"] {
        assert!(fields.get(field).is_some(), "{field} missing: {fields:?}");
    }
    // Weak or email-like passwords are field errors too.
    for password in ["password123", "grace.hopper@navy.mil", "grace.hopper2024"] {
        let registration = Registration {
            email: "grace.hopper@navy.mil".into(),
            password: password.into(),
            full_name: "Grace Hopper".into(),
            phone: None,
        };
        let result = ctx.auth.accounts().register(&registration, &client()).await;
        assert!(matches!(&result, Err(AuthError::Validation(f)) if f.get("password").is_some()), "{password}");
    }
    assert_eq!(ctx.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn a_failed_registration_leaves_nothing_behind(ctx: TestContext) {
    // Break the second statement of the transaction: the profile insert.
    let pool = ctx.raw().await;
    sqlx::query("ALTER TABLE profiles RENAME TO profiles_gone").execute(&pool).await.unwrap();
    let result = ctx
        .auth
        .accounts()
        .register(
            &Registration {
                email: "half@example.com".into(),
                password: PASSWORD.into(),
                full_name: "H".into(),
                phone: None,
            },
            &client(),
        )
        .await;
    assert!(matches!(result, Err(AuthError::Internal(_))), "{result:?}");
    let users: i64 = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&pool).await.unwrap().get(0);
    assert_eq!(users, 0, "the user row must be rolled back with the profile");
    pool.close().await;
}

async fn duplicate_registration_race_has_one_winner(ctx: TestContext) {
    let attempts = (0..4).map(|i| {
        let auth = ctx.auth.clone();
        async move {
            let email = if i % 2 == 0 { "Race@Example.com" } else { "race@example.com" };
            let registration =
                Registration { email: email.into(), password: PASSWORD.into(), full_name: "R".into(), phone: None };
            auth.accounts().register(&registration, &client()).await
        }
    });
    let results = futures_join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(AuthError::EmailTaken))));
    assert_eq!(ctx.count("SELECT COUNT(*) FROM profiles").await, 1);
}

async fn passwords_are_argon2id_and_rehashed_when_parameters_change(ctx: TestContext) {
    ctx.verified_user("hash@example.com").await;
    let pool = ctx.raw().await;
    let stored =
        || async { sqlx::query("SELECT password_hash FROM users").fetch_one(&pool).await.unwrap().get::<String, _>(0) };
    let before = stored().await;
    assert!(before.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{before}");
    assert!(!before.contains(PASSWORD));

    // A second instance configured with stronger parameters upgrades the hash at login.
    let stronger = ctx.second_instance(|c| c.password.argon2_memory_kib = 2048).await;
    stronger.sessions().login("hash@example.com", PASSWORD, None, &client()).await.unwrap();
    let after = stored().await;
    assert!(after.starts_with("$argon2id$v=19$m=2048,t=1,p=1$"), "{after}");
    // And the new hash still verifies.
    stronger.sessions().login("hash@example.com", PASSWORD, None, &client()).await.unwrap();
    assert_eq!(stored().await, after, "no rehash when parameters match");
    pool.close().await;
}

async fn login_failures_look_the_same(ctx: TestContext) {
    ctx.verified_user("known@example.com").await;
    let unknown = ctx.auth.sessions().login("nobody@example.com", PASSWORD, None, &client()).await.unwrap_err();
    let wrong =
        ctx.auth.sessions().login("known@example.com", "Wrong-Password-123", None, &client()).await.unwrap_err();
    assert!(matches!(unknown, AuthError::InvalidCredentials));
    assert!(matches!(wrong, AuthError::InvalidCredentials));
    assert_eq!(unknown.to_string(), wrong.to_string());
    let huge = "x".repeat(2000);
    assert!(matches!(
        ctx.auth.sessions().login("known@example.com", &huge, None, &client()).await,
        Err(AuthError::InvalidCredentials)
    ));
    // Case-insensitive login.
    ctx.auth.sessions().login("KNOWN@example.com", PASSWORD, None, &client()).await.unwrap();
}

async fn login_requires_a_verified_email_and_an_active_account(ctx: TestContext) {
    let id = ctx.register("unverified@example.com").await;
    assert!(matches!(
        ctx.auth.sessions().login("unverified@example.com", PASSWORD, None, &client()).await,
        Err(AuthError::EmailNotVerified)
    ));
    // Only after a correct password: a wrong one stays invalid_credentials.
    assert!(matches!(
        ctx.auth.sessions().login("unverified@example.com", "Wrong-Password-123", None, &client()).await,
        Err(AuthError::InvalidCredentials)
    ));
    let token = ctx.token_mailed_to("unverified@example.com").await;
    ctx.auth.accounts().verify_email(&token, &client()).await.unwrap();
    ctx.login("unverified@example.com").await;
    ctx.auth.operators().set_user_active(auth_core::Operator::Cli, id, false, &client()).await.unwrap();
    assert!(matches!(
        ctx.auth.sessions().login("unverified@example.com", PASSWORD, None, &client()).await,
        Err(AuthError::AccountDisabled)
    ));
}

async fn superusers_are_created_verified_and_staff(ctx: TestContext) {
    let user = ctx.auth.operators().create_superuser("Root@Example.com", PASSWORD, "Root").await.unwrap();
    assert!(user.is_staff && user.is_superuser && user.is_active && user.email_verified());
    let pair = ctx.login("root@example.com").await;
    let claims = ctx.auth.verify_access(pair.access.expose()).unwrap();
    assert!(claims.staff && claims.superuser && claims.email_verified);
    // Rotation reads the flags with the session: a refreshed token says the same.
    let refreshed = ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await.unwrap();
    let claims = ctx.auth.verify_access(refreshed.access.expose()).unwrap();
    assert!(claims.staff && claims.superuser && claims.email_verified);
    assert!(matches!(
        ctx.auth.operators().create_superuser("weak@example.com", "password", "W").await,
        Err(AuthError::Validation(_))
    ));
}

async fn access_tokens_carry_the_contract_claims_and_no_pii(ctx: TestContext) {
    let id = ctx.verified_user("claims@example.com").await;
    let pair = ctx.login("claims@example.com").await;
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.expires_in, 300);
    let header = jsonwebtoken::decode_header(pair.access.expose()).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some("test-rs256"));
    let claims = ctx.auth.verify_access(pair.access.expose()).unwrap();
    assert_eq!(claims.sub, id);
    assert_eq!((claims.iss.as_str(), claims.aud.as_str()), ("http://localhost:8000", "auth-platform"));
    assert_eq!(claims.exp - claims.iat, 300);
    assert!(claims.tenant_id.is_none() && claims.role.is_none());

    // A third party verifies with the JWKS alone.
    let jwks: JwkSet = serde_json::from_value(serde_json::to_value(ctx.auth.jwks()).unwrap()).unwrap();
    let jwk = jwks.find("test-rs256").unwrap();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["auth-platform"]);
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let decoded = jsonwebtoken::decode::<serde_json::Value>(pair.access.expose(), &key, &validation).unwrap();
    let payload = decoded.claims.to_string();
    assert!(!payload.contains("claims@example.com") && !payload.contains("Test User"), "{payload}");
    for claim in ["iss", "aud", "sub", "iat", "exp", "jti", "sid", "amr", "auth_time"] {
        assert!(decoded.claims.get(claim).is_some(), "{claim} missing");
    }
    assert_eq!(decoded.claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(decoded.claims["auth_time"], claims.auth_time);
    // A refresh token is not an access token and vice versa.
    assert!(matches!(ctx.auth.verify_access(pair.refresh.expose()), Err(AuthError::InvalidToken)));
    assert!(matches!(ctx.auth.sessions().refresh(pair.access.expose(), &client()).await, Err(AuthError::InvalidToken)));
}

/// Access tokens are minted and checked by the engine's clock, like sessions
/// and one-time tokens: moving a manual clock past exp and the leeway is enough.
async fn access_tokens_expire_and_are_dated_by_the_engine_clock(ctx: TestContext) {
    ctx.verified_user("clock@example.com").await;
    let first = ctx.login("clock@example.com").await;
    let claims = ctx.auth.verify_access(first.access.expose()).unwrap();
    let t = &ctx.config.tokens;
    ctx.clock.advance(Duration::from_secs(t.access_ttl_secs + t.leeway_secs + 1));
    assert!(matches!(ctx.auth.verify_access(first.access.expose()), Err(AuthError::InvalidToken)));

    let second = ctx.auth.sessions().refresh(first.refresh.expose(), &client()).await.unwrap();
    let fresh = ctx.auth.verify_access(second.access.expose()).unwrap();
    let advanced = i64::try_from(t.access_ttl_secs + t.leeway_secs + 1).unwrap();
    assert!(fresh.iat >= claims.iat + advanced, "iat {} is not the clock's time", fresh.iat);
    assert_eq!(fresh.exp, fresh.iat + i64::try_from(t.access_ttl_secs).unwrap());
    assert_eq!(fresh.nbf, fresh.iat);
}

async fn refresh_rotates_and_detects_reuse(ctx: TestContext) {
    ctx.verified_user("rotate@example.com").await;
    let first = ctx.login("rotate@example.com").await;
    let second = ctx.auth.sessions().refresh(first.refresh.expose(), &client()).await.unwrap();
    assert_ne!(second.refresh, first.refresh);
    let second_claims = ctx.auth.verify_access(second.access.expose()).unwrap();
    assert_eq!(second_claims.sid, ctx.auth.verify_access(first.access.expose()).unwrap().sid);

    // Presenting the consumed token again is reuse: the whole family dies.
    assert!(matches!(
        ctx.auth.sessions().refresh(first.refresh.expose(), &client()).await,
        Err(AuthError::TokenReused)
    ));
    assert!(matches!(
        ctx.auth.sessions().refresh(second.refresh.expose(), &client()).await,
        Err(AuthError::InvalidToken)
    ));
    assert!(matches!(ctx.auth.verify_access(second.access.expose()), Err(AuthError::InvalidToken)));
    // Garbage is simply invalid.
    assert!(matches!(ctx.auth.sessions().refresh("garbage", &client()).await, Err(AuthError::InvalidToken)));
    let unknown = auth_core::tokens::OpaqueToken::generate();
    assert!(matches!(ctx.auth.sessions().refresh(unknown.as_str(), &client()).await, Err(AuthError::InvalidToken)));
}

async fn concurrent_refreshes_have_exactly_one_winner(ctx: TestContext) {
    ctx.verified_user("race@example.com").await;
    let pair = ctx.login("race@example.com").await;
    let refresh = Arc::new(pair.refresh);
    let attempts = (0..8).map(|_| {
        let (auth, refresh) = (ctx.auth.clone(), refresh.clone());
        tokio::spawn(async move { auth.sessions().refresh(refresh.expose(), &client()).await })
    });
    let mut results = Vec::new();
    for attempt in attempts {
        results.push(attempt.await.unwrap());
    }
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(AuthError::TokenReused))), "{results:?}");
    // Reuse revoked the family, the winner's new token included.
    assert!(ctx.auth.sessions().refresh(winners[0].refresh.expose(), &client()).await.is_err());
}

async fn refresh_respects_idle_and_absolute_lifetimes(ctx: TestContext) {
    ctx.verified_user("idle@example.com").await;
    let pair = ctx.login("idle@example.com").await;
    ctx.clock.advance(Duration::from_secs(25 * 3600));
    assert!(matches!(
        ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await,
        Err(AuthError::InvalidToken)
    ));

    // Used every 20 hours, a session still ends 30 days after login.
    let mut pair = ctx.login("idle@example.com").await;
    let mut hours = 0;
    loop {
        ctx.clock.advance(Duration::from_secs(20 * 3600));
        hours += 20;
        match ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await {
            Ok(next) => pair = next,
            Err(error) => {
                assert!(matches!(error, AuthError::InvalidToken));
                break;
            }
        }
        assert!(hours < 30 * 24, "rotation extended the absolute lifetime");
    }
    assert_eq!(hours, 720, "the session ended at 30 days, not before");
}

async fn reuse_grace_window_returns_the_same_successor(ctx: TestContext) {
    let auth = ctx.second_instance(|c| c.tokens.refresh_reuse_grace_secs = 10).await;
    ctx.verified_user("grace@example.com").await;
    let pair = auth.sessions().login("grace@example.com", PASSWORD, None, &client()).await.unwrap();
    let next = auth.sessions().refresh(pair.refresh.expose(), &client()).await.unwrap();
    ctx.clock.advance(Duration::from_secs(5));
    let retried = auth.sessions().refresh(pair.refresh.expose(), &client()).await.unwrap();
    assert_eq!(retried.refresh, next.refresh, "a lost response is answered with the same successor");
    ctx.clock.advance(Duration::from_secs(10));
    assert!(matches!(auth.sessions().refresh(pair.refresh.expose(), &client()).await, Err(AuthError::TokenReused)));
    assert!(auth.sessions().refresh(next.refresh.expose(), &client()).await.is_err());
}

/// Issue #10.11: concurrent presentations of one token within the grace
/// window all get the same successor (one chain); once that successor was
/// used, the old token is a stolen copy: reuse, and the family dies.
async fn grace_window_races_leave_one_chain_and_a_used_successor_makes_reuse(ctx: TestContext) {
    let auth = ctx.second_instance(|c| c.tokens.refresh_reuse_grace_secs = 10).await;
    ctx.verified_user("grace-race@example.com").await;
    let pair = auth.sessions().login("grace-race@example.com", PASSWORD, None, &client()).await.unwrap();
    let refresh = Arc::new(pair.refresh.clone());
    let attempts = (0..8).map(|_| {
        let (auth, refresh) = (auth.clone(), refresh.clone());
        tokio::spawn(async move { auth.sessions().refresh(refresh.expose(), &client()).await })
    });
    let mut successors = std::collections::BTreeSet::new();
    for attempt in attempts {
        successors.insert(
            attempt.await.unwrap().expect("within the grace window every attempt succeeds").refresh.expose().to_owned(),
        );
    }
    assert_eq!(successors.len(), 1, "one successor chain, never two: {successors:?}");
    let successor = successors.pop_first().unwrap();
    let chains = ctx.count("SELECT COUNT(*) FROM refresh_tokens WHERE consumed_at IS NULL").await;
    assert_eq!(chains, 1, "exactly one live token");

    let next = auth.sessions().refresh(&successor, &client()).await.unwrap();
    assert!(
        matches!(auth.sessions().refresh(pair.refresh.expose(), &client()).await, Err(AuthError::TokenReused)),
        "the old token after its successor was used is reuse, even within the grace window"
    );
    assert!(matches!(auth.sessions().refresh(next.refresh.expose(), &client()).await, Err(AuthError::InvalidToken)));
    assert!(matches!(auth.verify_access(next.access.expose()), Err(AuthError::InvalidToken)));
}

/// Issue #10.1: `tenant_token` adds a chain to the caller's login instead of
/// starting a session of its own; ending the login ends the tenant's tokens.
async fn tenant_tokens_end_with_the_login_they_came_from(ctx: TestContext) {
    let owner = ctx.verified_user("login-owner@example.com").await;
    let tenant = ctx.auth.tenants().create(owner, "Acme", &client()).await.unwrap();
    // A tenant-scoped pair from a login; `end` ends that login one way or another.
    let scoped_pair = async || {
        let login = ctx.login("login-owner@example.com").await;
        let claims = ctx.auth.verify_access(login.access.expose()).unwrap();
        let scoped = ctx.auth.tenants().token(&claims, tenant.id, &client()).await.unwrap();
        let scoped_claims = ctx.auth.verify_access(scoped.access.expose()).unwrap();
        assert_eq!(scoped_claims.sid, claims.sid, "the scoped tokens belong to the login");
        assert_eq!(scoped_claims.tenant_id, Some(tenant.id));
        (login, claims, scoped)
    };
    let assert_ended = async |scoped: &auth_core::TokenPair, how: &str| {
        assert!(matches!(ctx.auth.verify_access(scoped.access.expose()), Err(AuthError::InvalidToken)), "{how}");
        assert!(
            matches!(
                ctx.auth.sessions().refresh(scoped.refresh.expose(), &client()).await,
                Err(AuthError::InvalidToken)
            ),
            "{how}"
        );
    };

    let (login, claims, scoped) = scoped_pair().await;
    let sessions = ctx.auth.sessions().list(&claims).await.unwrap();
    assert_eq!(sessions.len(), 1, "the login is listed once: {sessions:?}");
    // The chain is opened in the audit trail, with its tenant and session.
    let events = ctx.auth.operators().audit_trail(Some(owner), 50).await.unwrap();
    let issued = events.iter().find(|e| e.event == "tenant_token_issued").expect("tenant_token_issued");
    assert_eq!(issued.detail["tenant_id"], serde_json::json!(tenant.id));
    assert_eq!(issued.detail["session"], serde_json::json!(claims.sid));
    // Both chains rotate independently within the one login.
    let scoped = ctx.auth.sessions().refresh(scoped.refresh.expose(), &client()).await.unwrap();
    let login = ctx.auth.sessions().refresh(login.refresh.expose(), &client()).await.unwrap();
    ctx.auth.sessions().logout(&claims, login.refresh.expose(), &client()).await.unwrap();
    assert_ended(&scoped, "logout").await;

    let (login, _, scoped) = scoped_pair().await;
    ctx.auth.sessions().refresh(login.refresh.expose(), &client()).await.unwrap();
    assert!(matches!(
        ctx.auth.sessions().refresh(login.refresh.expose(), &client()).await,
        Err(AuthError::TokenReused)
    ));
    assert_ended(&scoped, "reuse detection").await;

    let (_, claims, scoped) = scoped_pair().await;
    ctx.auth.sessions().revoke(&claims, claims.sid, &client()).await.unwrap();
    assert_ended(&scoped, "revoking the session").await;

    let (_, _, scoped) = scoped_pair().await;
    ctx.clock.advance(Duration::from_secs(25 * 3600));
    assert!(
        matches!(ctx.auth.sessions().refresh(scoped.refresh.expose(), &client()).await, Err(AuthError::InvalidToken)),
        "expiry"
    );

    // A token of an ended login cannot start a tenant chain either.
    let (login, claims, _) = scoped_pair().await;
    ctx.auth.sessions().logout(&claims, login.refresh.expose(), &client()).await.unwrap();
    assert!(matches!(ctx.auth.tenants().token(&claims, tenant.id, &client()).await, Err(AuthError::InvalidToken)));
}

/// Issue #10.1: a new login past `tokens.max_sessions_per_user` ends the oldest.
async fn a_user_holds_at_most_the_configured_number_of_sessions(ctx: TestContext) {
    let auth = ctx.second_instance(|c| c.tokens.max_sessions_per_user = 2).await;
    ctx.verified_user("many-devices@example.com").await;
    let login = async || auth.sessions().login("many-devices@example.com", PASSWORD, None, &client()).await.unwrap();
    let first = login().await;
    ctx.clock.advance(Duration::from_millis(5));
    let second = login().await;
    ctx.clock.advance(Duration::from_millis(5));
    let third = login().await;
    assert!(
        matches!(auth.verify_access(first.access.expose()), Err(AuthError::InvalidToken)),
        "the oldest session ended"
    );
    assert!(matches!(auth.sessions().refresh(first.refresh.expose(), &client()).await, Err(AuthError::InvalidToken)));
    let claims = auth.verify_access(third.access.expose()).unwrap();
    assert_eq!(auth.sessions().list(&claims).await.unwrap().len(), 2);
    assert!(auth.sessions().refresh(second.refresh.expose(), &client()).await.is_ok());
    assert!(auth.sessions().refresh(third.refresh.expose(), &client()).await.is_ok());
}

/// Issue #10.11, on PostgreSQL: a revocation that commits while a rotation is
/// under way (after the rotation read the session as live) wins; the rotation
/// must not hand out a successor of the revoked family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set TEST_DATABASE_URL and pass --ignored"]
async fn postgres_a_rotation_never_outlives_a_revocation_committed_meanwhile() {
    let ctx = TestContext::postgres().await;
    ctx.verified_user("raced@example.com").await;
    let pair = ctx.login("raced@example.com").await;
    let sid = ctx.auth.verify_access(pair.access.expose()).unwrap().sid;
    let pool = sqlx::PgPool::connect(&ctx.config.database_url).await.unwrap();
    let mut revoker = pool.begin().await.unwrap();
    sqlx::query("UPDATE refresh_families SET revoked_at = 1, revoke_reason = 'logout' WHERE id = $1")
        .bind(sid)
        .execute(&mut *revoker)
        .await
        .unwrap();
    let auth = ctx.auth.clone();
    let rotation = tokio::spawn(async move { auth.sessions().refresh(pair.refresh.expose(), &client()).await });
    // Until the rotation waits for the revoker's row lock on the family.
    let mut waited = 0;
    loop {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE 'UPDATE refresh_families SET last_used_at%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        waited += 1;
        assert!(waited < 1000, "the rotation never reached the family's row lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    revoker.commit().await.unwrap();
    assert!(matches!(rotation.await.unwrap(), Err(AuthError::InvalidToken)), "a revoked family rotated");
    pool.close().await;
}

async fn tenant_scoped_refresh_rereads_the_membership(ctx: TestContext) {
    let owner = ctx.verified_user("owner@example.com").await;
    let admin = ctx.verified_user("admin@example.com").await;
    let tenant = ctx.auth.tenants().create(owner, "Acme", &client()).await.unwrap();
    ctx.join(owner, tenant.id, admin, "admin@example.com", "admin").await;

    let pair = ctx.auth.sessions().login("admin@example.com", PASSWORD, Some(tenant.id), &client()).await.unwrap();
    let claims = ctx.auth.verify_access(pair.access.expose()).unwrap();
    assert_eq!((claims.tenant_id, claims.role.as_deref()), (Some(tenant.id), Some("admin")));

    ctx.auth.tenants().set_member_role(owner, tenant.id, admin, "member", &client()).await.unwrap();
    let pair = ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await.unwrap();
    assert_eq!(ctx.auth.verify_access(pair.access.expose()).unwrap().role.as_deref(), Some("member"));

    ctx.auth.tenants().remove_member(owner, tenant.id, admin, &client()).await.unwrap();
    assert!(matches!(
        ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await,
        Err(AuthError::InvalidToken)
    ));
    assert!(ctx.auth.verify_access(pair.access.expose()).is_err(), "the ended session's access token is revoked");

    // Tenant tokens from an unscoped session take the role from the membership.
    let owner_pair = ctx.login("owner@example.com").await;
    let owner_claims = ctx.auth.verify_access(owner_pair.access.expose()).unwrap();
    let scoped = ctx.auth.tenants().token(&owner_claims, tenant.id, &client()).await.unwrap();
    let scoped_claims = ctx.auth.verify_access(scoped.access.expose()).unwrap();
    assert_eq!((scoped_claims.tenant_id, scoped_claims.role.as_deref()), (Some(tenant.id), Some("owner")));
    let stranger = ctx.verified_user("stranger@example.com").await;
    let stranger_claims = ctx.auth.verify_access(ctx.login("stranger@example.com").await.access.expose()).unwrap();
    assert_eq!(stranger_claims.sub, stranger);
    assert!(matches!(
        ctx.auth.tenants().token(&stranger_claims, tenant.id, &client()).await,
        Err(AuthError::NotAMember)
    ));
    assert!(matches!(
        ctx.auth.sessions().login("stranger@example.com", PASSWORD, Some(tenant.id), &client()).await,
        Err(AuthError::NotAMember)
    ));
}

async fn tenant_rules_are_enforced(ctx: TestContext) {
    let owner = ctx.verified_user("o@example.com").await;
    let admin = ctx.verified_user("a@example.com").await;
    let member = ctx.verified_user("m@example.com").await;
    ctx.verified_user("x@example.com").await;
    let tenant = ctx.auth.tenants().create(owner, "  Tenant One ", &client()).await.unwrap();
    assert_eq!((tenant.name.as_str(), tenant.role.as_str()), ("Tenant One", "owner"));
    let c = client();

    ctx.join(owner, tenant.id, admin, "a@example.com", "admin").await;
    ctx.join(admin, tenant.id, member, "m@example.com", "member").await;
    let invite = |actor, email: &'static str, role: &'static str| {
        let auth = ctx.auth.clone();
        async move { auth.tenants().invite(actor, tenant.id, email, role, &client()).await }
    };
    let denied = invite(admin, "x@example.com", "owner").await;
    assert!(matches!(denied, Err(AuthError::InsufficientRole)), "nobody invites above their own role");
    assert!(matches!(invite(member, "x@example.com", "member").await, Err(AuthError::InsufficientRole)));
    assert!(matches!(invite(owner, "m@example.com", "member").await, Err(AuthError::AlreadyMember)));
    assert!(matches!(invite(owner, "x@example.com", "root").await, Err(AuthError::Validation(_))));
    // An address with or without an account is invited alike: no oracle.
    let ghost = invite(owner, "ghost@example.com", "member").await.unwrap();
    let known = invite(owner, "x@example.com", "member").await.unwrap();
    assert_eq!((ghost.email.as_str(), known.email.as_str()), ("ghost@example.com", "x@example.com"));
    assert_eq!((ghost.role.as_str(), ghost.invited_by), (known.role.as_str(), known.invited_by));
    assert!(matches!(invite(owner, "x@example.com", "admin").await, Err(AuthError::AlreadyInvited)));
    assert!(matches!(
        ctx.auth.tenants().remove_member(admin, tenant.id, owner, &c).await,
        Err(AuthError::InsufficientRole)
    ));

    // The last owner can be neither removed nor demoted; with two owners, one can go.
    assert!(matches!(ctx.auth.tenants().remove_member(owner, tenant.id, owner, &c).await, Err(AuthError::LastOwner)));
    assert!(matches!(
        ctx.auth.tenants().set_member_role(owner, tenant.id, owner, "admin", &c).await,
        Err(AuthError::LastOwner)
    ));
    ctx.auth.tenants().set_member_role(owner, tenant.id, admin, "owner", &c).await.unwrap();
    ctx.auth.tenants().set_member_role(admin, tenant.id, owner, "member", &c).await.unwrap();

    let members = ctx.auth.tenants().members(member, tenant.id).await.unwrap();
    let roles: Vec<_> = members.iter().map(|m| (m.email.as_str(), m.role.as_str())).collect();
    assert_eq!(roles, [("a@example.com", "owner"), ("m@example.com", "member"), ("o@example.com", "member")]);
    let outsider = ctx.verified_user("out@example.com").await;
    assert!(matches!(ctx.auth.tenants().members(outsider, tenant.id).await, Err(AuthError::NotAMember)));
    assert!(matches!(invite(outsider, "y@example.com", "member").await, Err(AuthError::NotAMember)));
    assert_eq!(ctx.auth.tenants().list(member).await.unwrap().len(), 1);
    assert!(matches!(ctx.auth.tenants().create(owner, " ", &c).await, Err(AuthError::Validation(_))));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Newsroom {
    Editor,
    Writer,
}

impl Roles for Newsroom {
    const ALL: &'static [Self] = &[Self::Editor, Self::Writer];
    fn name(self) -> &'static str {
        match self {
            Self::Editor => "editor",
            Self::Writer => "writer",
        }
    }
    fn grants(self) -> &'static [&'static str] {
        match self {
            Self::Editor => &[auth_core::tenancy::MANAGE_MEMBERS],
            Self::Writer => &[],
        }
    }
}

async fn custom_role_sets_are_used(ctx: TestContext) {
    let auth = auth_core::Auth::builder(ctx.config.clone())
        .roles::<Newsroom>()
        .mailer(Arc::new(ctx.mail.clone()))
        .build()
        .await
        .unwrap();
    let editor = ctx.verified_user("editor@example.com").await;
    let writer = ctx.verified_user("writer@example.com").await;
    let tenant = auth.tenants().create(editor, "Gazette", &client()).await.unwrap();
    assert_eq!(tenant.role, "editor");
    ctx.join_on(&auth, editor, tenant.id, writer, "writer@example.com", "writer").await;
    assert_eq!(auth.tenants().list(writer).await.unwrap()[0].role, "writer");
    assert!(matches!(
        auth.tenants().invite(editor, tenant.id, "x@example.com", "admin", &client()).await,
        Err(AuthError::Validation(_))
    ));
}

async fn logout_revokes_one_session_and_its_access_tokens(ctx: TestContext) {
    ctx.verified_user("out@example.com").await;
    ctx.verified_user("other@example.com").await;
    let a = ctx.login("out@example.com").await;
    let b = ctx.login("out@example.com").await;
    let claims_a = ctx.auth.verify_access(a.access.expose()).unwrap();
    let other = ctx.login("other@example.com").await;
    assert!(matches!(
        ctx.auth.sessions().logout(&claims_a, other.refresh.expose(), &client()).await,
        Err(AuthError::Forbidden)
    ));
    ctx.auth.sessions().refresh(other.refresh.expose(), &client()).await.expect("another user's session is untouched");

    ctx.auth.sessions().logout(&claims_a, a.refresh.expose(), &client()).await.unwrap();
    assert!(matches!(ctx.auth.verify_access(a.access.expose()), Err(AuthError::InvalidToken)));
    assert!(ctx.auth.sessions().refresh(a.refresh.expose(), &client()).await.is_err());
    ctx.auth.verify_access(b.access.expose()).expect("the other session lives");
    ctx.auth.sessions().refresh(b.refresh.expose(), &client()).await.expect("the other session refreshes");
}

async fn logout_all_and_password_change_revoke_sessions(ctx: TestContext) {
    ctx.verified_user("all@example.com").await;
    let a = ctx.login("all@example.com").await;
    let b = ctx.login("all@example.com").await;
    let claims_a = ctx.auth.verify_access(a.access.expose()).unwrap();

    // Password change keeps the current session and ends the others.
    let wrong = ctx.auth.accounts().change_password(&claims_a, "not-it", "Another-Good-Passphrase-7", &client()).await;
    assert!(matches!(wrong, Err(AuthError::WrongPassword)));
    let weak = ctx.auth.accounts().change_password(&claims_a, PASSWORD, "password1", &client()).await;
    assert!(matches!(&weak, Err(AuthError::Validation(f)) if f.get("new_password").is_some()), "{weak:?}");
    ctx.auth.accounts().change_password(&claims_a, PASSWORD, "Another-Good-Passphrase-7", &client()).await.unwrap();
    ctx.auth.verify_access(a.access.expose()).expect("current session kept");
    assert!(ctx.auth.verify_access(b.access.expose()).is_err());
    assert!(ctx.auth.sessions().refresh(b.refresh.expose(), &client()).await.is_err());
    assert!(ctx.auth.sessions().login("all@example.com", PASSWORD, None, &client()).await.is_err());
    let c = ctx.auth.sessions().login("all@example.com", "Another-Good-Passphrase-7", None, &client()).await.unwrap();

    ctx.auth.sessions().logout_all(&claims_a, &client()).await.unwrap();
    for pair in [&a, &c] {
        assert!(ctx.auth.verify_access(pair.access.expose()).is_err());
        assert!(ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await.is_err());
    }
}

async fn deactivation_stops_everything_at_once(ctx: TestContext) {
    let id = ctx.verified_user("gone@example.com").await;
    let pair = ctx.login("gone@example.com").await;
    ctx.auth.operators().set_user_active(auth_core::Operator::Cli, id, false, &client()).await.unwrap();
    assert!(ctx.auth.verify_access(pair.access.expose()).is_err());
    assert!(ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await.is_err());
}

/// Each rotation reads the account afresh: flags changed behind the
/// platform's back reach the next token, and an inactive account's live
/// session mints none.
async fn refresh_rereads_the_account_and_refuses_an_inactive_one(ctx: TestContext) {
    let email = "flags@example.com";
    ctx.verified_user(email).await;
    let pair = ctx.login(email).await;
    assert!(!ctx.auth.verify_access(pair.access.expose()).unwrap().staff);
    let pool = ctx.raw().await;
    sqlx::query("UPDATE users SET is_staff = TRUE WHERE email = $1").bind(email).execute(&pool).await.unwrap();
    let pair = ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await.unwrap();
    assert!(ctx.auth.verify_access(pair.access.expose()).unwrap().staff, "the new token missed the staff flag");

    sqlx::query("UPDATE users SET is_active = FALSE WHERE email = $1").bind(email).execute(&pool).await.unwrap();
    assert!(matches!(
        ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await,
        Err(AuthError::InvalidToken)
    ));
    pool.close().await;
}

async fn revocation_reaches_other_instances_within_the_poll_interval(ctx: TestContext) {
    let other = ctx.second_instance(|c| c.tokens.revocation_poll_secs = 1).await;
    ctx.verified_user("poll@example.com").await;
    let pair = ctx.login("poll@example.com").await;
    let claims = other.verify_access(pair.access.expose()).unwrap();
    ctx.auth.sessions().logout_all(&claims, &client()).await.unwrap();
    let refused = common::refused_within_3s(&other, pair.access.expose()).await;
    assert!(refused, "the second instance still accepts a revoked session's token after 3 s");
}

/// Each poll reads the rows revoked since the previous one, less an overlap
/// for late commits (`COMMIT_MARGIN_MS` plus the clock skew), not the whole
/// window again.
async fn revocation_polls_read_only_rows_revoked_since_the_last_poll(ctx: TestContext) {
    let other = ctx.second_instance(|c| c.tokens.revocation_poll_secs = 1).await;
    ctx.verified_user("cursor@example.com").await;
    let (before_cursor, late, logged_out) = (
        ctx.login("cursor@example.com").await,
        ctx.login("cursor@example.com").await,
        ctx.login("cursor@example.com").await,
    );
    let claims = |pair: &auth_core::TokenPair| other.verify_access(pair.access.expose()).unwrap();
    let (before_cursor_claims, late_claims, logged_out_claims) =
        (claims(&before_cursor), claims(&late), claims(&logged_out));
    let user = logged_out_claims.sub;

    // Both instances have polled already. A row stamped long before that (but
    // within the window) is not re-read; one stamped 5 s ago, as by a write
    // that read the clock and then waited for the database, is: it lies in the
    // overlap. The third session is logged out normally on the first instance.
    let now = ctx.clock.now().timestamp_millis();
    let store = auth_core::testing::store(&ctx.auth);
    assert!(store.revoke_family(before_cursor_claims.sid, user, "test", now - 270_000).await.unwrap());
    assert!(store.revoke_family(late_claims.sid, user, "test", now - 5_000).await.unwrap());
    ctx.auth.sessions().logout(&logged_out_claims, logged_out.refresh.expose(), &client()).await.unwrap();

    let rows = store.revoked_since(now - 10_000).await.unwrap();
    let mut ids: Vec<_> = rows.iter().map(|(id, _)| *id).collect();
    ids.sort();
    let mut expected = vec![late_claims.sid, logged_out_claims.sid];
    expected.sort();
    assert_eq!(ids, expected, "the store returns only the rows revoked since the cursor");

    // Real time: the other instance polls every second.
    let mut refused = false;
    for _ in 0..100 {
        if other.verify_access(logged_out.access.expose()).is_err()
            && other.verify_access(late.access.expose()).is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the other instance picks up the new and the late revocation");
    // The poll that brought them read no row from before its cursor: a full
    // reload of the window would have found this one too.
    assert!(other.verify_access(before_cursor.access.expose()).is_ok(), "a row older than the cursor was re-read");
}

async fn email_verification_tokens_are_single_use_and_expire(ctx: TestContext) {
    ctx.register("verify@example.com").await;
    let token = ctx.token_mailed_to("verify@example.com").await;
    assert!(matches!(ctx.auth.accounts().verify_email("bogus", &client()).await, Err(AuthError::InvalidOneTimeToken)));
    ctx.auth.accounts().verify_email(&token, &client()).await.unwrap();
    assert!(matches!(ctx.auth.accounts().verify_email(&token, &client()).await, Err(AuthError::InvalidOneTimeToken)));

    ctx.register("late@example.com").await;
    let late = ctx.token_mailed_to("late@example.com").await;
    ctx.clock.advance(Duration::from_secs(24 * 3600 + 1));
    assert!(matches!(ctx.auth.accounts().verify_email(&late, &client()).await, Err(AuthError::InvalidOneTimeToken)));
    // Resend issues a fresh link (and only for unverified accounts).
    ctx.auth.accounts().resend_verification("late@example.com", &client()).await.unwrap();
    let mut fresh = late.clone();
    for _ in 0..100 {
        fresh = ctx.token_mailed_to("late@example.com").await;
        if fresh != late {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(fresh, late);
    ctx.auth.accounts().verify_email(&fresh, &client()).await.unwrap();
    ctx.auth
        .accounts()
        .resend_verification("nobody@example.com", &client())
        .await
        .expect("same answer for unknown accounts");
}

async fn password_reset_flow(ctx: TestContext) {
    ctx.verified_user("reset@example.com").await;
    let before = ctx.login("reset@example.com").await;
    ctx.auth.accounts().request_password_reset("reset@example.com", &client()).await.unwrap();
    ctx.auth.accounts().request_password_reset("nobody@example.com", &client()).await.unwrap();
    let mut token = String::new();
    for _ in 0..100 {
        if let Some(mail) = ctx.mail.last_to("reset@example.com").filter(|m| m.subject.contains("Reset")) {
            assert!(mail.text.contains("http://localhost:8000/reset-password?token="), "{}", mail.text);
            token = common::token_in(&mail.text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!token.is_empty(), "no reset email");
    assert!(ctx.mail.last_to("nobody@example.com").is_none());

    let weak = ctx.auth.accounts().confirm_password_reset(&token, "reset@example.com", &client()).await;
    assert!(matches!(weak, Err(AuthError::Validation(_))));
    ctx.auth.accounts().confirm_password_reset(&token, "Brand-New-Passphrase-9", &client()).await.unwrap();
    assert!(matches!(
        ctx.auth.accounts().confirm_password_reset(&token, "Brand-New-Passphrase-10", &client()).await,
        Err(AuthError::InvalidOneTimeToken)
    ));
    assert!(ctx.auth.verify_access(before.access.expose()).is_err(), "every session is revoked");
    assert!(ctx.auth.sessions().refresh(before.refresh.expose(), &client()).await.is_err());
    ctx.auth.sessions().login("reset@example.com", "Brand-New-Passphrase-9", None, &client()).await.unwrap();

    // Reset links expire after 30 minutes.
    ctx.auth.accounts().request_password_reset("reset@example.com", &client()).await.unwrap();
    let mut second = token.clone();
    for _ in 0..100 {
        second = common::token_in(&ctx.mail.last_to("reset@example.com").unwrap().text);
        if second != token {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ctx.clock.advance(Duration::from_secs(31 * 60));
    assert!(matches!(
        ctx.auth.accounts().confirm_password_reset(&second, "Brand-New-Passphrase-11", &client()).await,
        Err(AuthError::InvalidOneTimeToken)
    ));
}

async fn reset_tokens_die_when_the_password_changes_otherwise(ctx: TestContext) {
    ctx.verified_user("twice@example.com").await;
    ctx.auth.accounts().request_password_reset("twice@example.com", &client()).await.unwrap();
    let mut token = None;
    for _ in 0..100 {
        token = ctx
            .mail
            .last_to("twice@example.com")
            .filter(|m| m.subject.contains("Reset"))
            .map(|m| common::token_in(&m.text));
        if token.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = token.expect("reset email");
    let pair = ctx.login("twice@example.com").await;
    let claims = ctx.auth.verify_access(pair.access.expose()).unwrap();
    ctx.auth.accounts().change_password(&claims, PASSWORD, "Changed-Another-Way-5", &client()).await.unwrap();
    assert!(matches!(
        ctx.auth.accounts().confirm_password_reset(&token, "Brand-New-Passphrase-9", &client()).await,
        Err(AuthError::InvalidOneTimeToken)
    ));
}

async fn sessions_are_listed_and_revocable(ctx: TestContext) {
    ctx.verified_user("s@example.com").await;
    ctx.verified_user("t@example.com").await;
    let a = ctx.login("s@example.com").await;
    let b = ctx.login("s@example.com").await;
    let claims = ctx.auth.verify_access(a.access.expose()).unwrap();
    let sessions = ctx.auth.sessions().list(&claims).await.unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].id, claims.sid);
    assert_eq!(current[0].ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(current[0].user_agent.as_deref(), Some("test-agent/1.0"));

    let other = sessions.iter().find(|s| !s.current).unwrap().id;
    let stranger = ctx.auth.verify_access(ctx.login("t@example.com").await.access.expose()).unwrap();
    assert!(matches!(ctx.auth.sessions().revoke(&stranger, other, &client()).await, Err(AuthError::NotFound)));
    ctx.auth.sessions().revoke(&claims, other, &client()).await.unwrap();
    assert!(ctx.auth.verify_access(b.access.expose()).is_err());
    assert_eq!(ctx.auth.sessions().list(&claims).await.unwrap().len(), 1);
    assert!(matches!(ctx.auth.sessions().revoke(&claims, other, &client()).await, Err(AuthError::NotFound)));
}

async fn profile_updates_are_validated(ctx: TestContext) {
    let id = ctx.verified_user("p@example.com").await;
    let update = ProfileUpdate { full_name: Some("New Name".into()), phone: Some(Some("555 0100".into())) };
    let profile = ctx.auth.accounts().update_profile(id, &update, &client()).await.unwrap();
    assert_eq!((profile.full_name.as_str(), profile.phone.as_deref()), ("New Name", Some("555 0100")));
    let bad = ProfileUpdate { full_name: Some("".into()), phone: None };
    assert!(matches!(ctx.auth.accounts().update_profile(id, &bad, &client()).await, Err(AuthError::Validation(_))));
    assert_eq!(ctx.auth.accounts().account(id).await.unwrap().profile, profile);
}

/// The CLI's `invite` goes through this: the membership rules hold for an
/// operator too, the invitation is mailed like any other, and it is audited
/// with the operator as its actor.
async fn operators_invite_under_the_rules_and_audited(ctx: TestContext) {
    let owner = ctx.verified_user("owner@example.com").await;
    let member = ctx.verified_user("member@example.com").await;
    let tenant = ctx.auth.tenants().create(owner, "Acme", &client()).await.unwrap();
    let operators = ctx.auth.operators();

    let invitation = operators.invite(tenant.id, "Member@Example.com", "admin").await.unwrap();
    assert_eq!(
        (invitation.email.as_str(), invitation.role.as_str(), invitation.invited_by),
        ("member@example.com", "admin", None)
    );
    let token = ctx.invitation_token("member@example.com", 1).await;
    ctx.auth.tenants().accept_invitation(member, &token, &client()).await.unwrap();
    assert_eq!(ctx.auth.tenants().list(member).await.unwrap()[0].role, "admin");
    assert!(matches!(operators.invite(tenant.id, "member@example.com", "member").await, Err(AuthError::AlreadyMember)));
    assert!(matches!(operators.invite(tenant.id, "other@example.com", "emperor").await, Err(AuthError::Validation(_))));
    assert!(matches!(
        operators.invite(uuid::Uuid::new_v4(), "member@example.com", "member").await,
        Err(AuthError::NotAMember)
    ));

    let events = operators.audit_trail(None, 50).await.unwrap();
    let sent: Vec<_> = events.iter().filter(|e| e.event == "invitation_sent").collect();
    assert_eq!(sent.len(), 1, "one invitation, one event: {events:?}");
    assert_eq!(sent[0].detail["actor"], "cli");
    assert_eq!(sent[0].detail["tenant_id"], tenant.id.to_string());
    assert_eq!(sent[0].user_id, None, "no user acted");
    let accepted: Vec<_> = events.iter().filter(|e| e.event == "invitation_accepted").collect();
    assert_eq!(accepted[0].user_id, Some(member));
}

async fn audit_trail_records_events_without_secrets(ctx: TestContext) {
    let id = ctx.verified_user("audit@example.com").await;
    let pair = ctx.login("audit@example.com").await;
    let _ = ctx.auth.sessions().login("audit@example.com", "Wrong-Password-123", None, &client()).await;
    ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await.unwrap();
    let _ = ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await;
    let events = ctx.auth.operators().audit_trail(Some(id), 50).await.unwrap();
    let names: Vec<_> = events.iter().map(|e| e.event.as_str()).collect();
    for expected in [
        "registered",
        "verification_sent",
        "email_verified",
        "login_succeeded",
        "login_failed",
        "refreshed",
        "refresh_reuse_detected",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let login = events.iter().find(|e| e.event == "login_succeeded").unwrap();
    assert_eq!(login.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(login.user_agent.as_deref(), Some("test-agent/1.0"));
    let everything = serde_json::to_string(&ctx.auth.operators().audit_trail(None, 500).await.unwrap()).unwrap();
    for secret in [PASSWORD, "Wrong-Password-123", pair.refresh.expose(), pair.access.expose()] {
        assert!(!everything.contains(secret), "a secret reached the audit trail");
    }
}

async fn pruning_removes_ended_sessions(ctx: TestContext) {
    ctx.verified_user("prune@example.com").await;
    let ended = ctx.login("prune@example.com").await;
    let claims = ctx.auth.verify_access(ended.access.expose()).unwrap();
    ctx.auth.sessions().logout(&claims, ended.refresh.expose(), &client()).await.unwrap();
    assert_eq!(ctx.auth.operators().prune().await.unwrap(), 0, "recently ended sessions are kept");
    ctx.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let live = ctx.login("prune@example.com").await;
    assert_eq!(ctx.auth.operators().prune().await.unwrap(), 1);
    ctx.auth.sessions().refresh(live.refresh.expose(), &client()).await.expect("live sessions survive pruning");
}

/// Issue #10.10: `audit_events` was never pruned.
async fn audit_events_past_their_retention_are_pruned(ctx: TestContext) {
    let auth = ctx.second_instance(|c| c.audit.retention_days = 30).await;
    let user = ctx.verified_user("retention@example.com").await;
    let events = async || auth.operators().audit_trail(Some(user), 100).await.unwrap().len();
    let before = events().await;
    assert!(before >= 2, "registration and verification were audited");
    ctx.clock.advance(Duration::from_secs(20 * 24 * 3600));
    auth.sessions().login("retention@example.com", PASSWORD, None, &client()).await.unwrap();
    auth.operators().prune().await.unwrap();
    assert_eq!(events().await, before + 1, "events within the retention are kept");
    ctx.clock.advance(Duration::from_secs(11 * 24 * 3600));
    auth.operators().prune().await.unwrap();
    let left = auth.operators().audit_trail(Some(user), 100).await.unwrap();
    assert_eq!(left.len(), 1, "only the login of 11 days ago is left: {left:?}");
    assert_eq!(left[0].event, "login_succeeded");
}

async fn a_closed_store_is_unavailable(ctx: TestContext) {
    ctx.verified_user("down@example.com").await;
    let pair = ctx.login("down@example.com").await;
    auth_core::testing::store(&ctx.auth).close().await;
    assert!(matches!(
        ctx.auth.sessions().login("down@example.com", PASSWORD, None, &client()).await,
        Err(AuthError::Unavailable)
    ));
    assert!(matches!(ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await, Err(AuthError::Unavailable)));
    // Verifying access tokens needs no database.
    ctx.auth.verify_access(pair.access.expose()).expect("protected requests do not touch the store");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_at_start() {
    let config = common::test_config("postgres://nobody@127.0.0.1:1/none?connect_timeout=2".into());
    let error = auth_core::Auth::builder(config).build().await.unwrap_err();
    assert!(matches!(error, auth_core::BuildError::Store(AuthError::Unavailable)), "{error:?}");
}

#[tokio::test]
async fn each_algorithm_signs_tokens_that_verify_through_the_jwks() {
    for algorithm in
        [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa, SigningAlgorithm::Es256, SigningAlgorithm::Hs256]
    {
        let ctx = TestContext::sqlite_with(|c| {
            c.tokens.algorithm = algorithm;
            c.tokens.signing_key = Some(auth_core::tokens::KeySet::generate(algorithm, "k1").unwrap());
        })
        .await;
        ctx.verified_user("alg@example.com").await;
        let pair = ctx.login("alg@example.com").await;
        ctx.auth.verify_access(pair.access.expose()).unwrap();
        let jwks: JwkSet = serde_json::from_value(serde_json::to_value(ctx.auth.jwks()).unwrap()).unwrap();
        if algorithm == SigningAlgorithm::Hs256 {
            assert!(jwks.keys.is_empty(), "a shared secret must never be published");
            continue;
        }
        let header = jsonwebtoken::decode_header(pair.access.expose()).unwrap();
        let key = DecodingKey::from_jwk(jwks.find("k1").unwrap()).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&["auth-platform"]);
        jsonwebtoken::decode::<serde_json::Value>(pair.access.expose(), &key, &validation)
            .unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
    }
}

/// Runs futures concurrently, each on a task of its own.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

/// `amr` and `auth_time` as the token says.
fn sign_in(claims: &AccessClaims) -> (Vec<&str>, i64) {
    (claims.amr.iter().map(String::as_str).collect(), claims.auth_time)
}

/// Issue #12.5: a session stores how and when its user signed in; every
/// access token of it (refreshes, tenant tokens, their refreshes) repeats that.
async fn sessions_say_how_and_when_the_user_signed_in_and_refreshes_never_change_it(ctx: TestContext) {
    let owner = ctx.verified_user("amr@example.com").await;
    let tenant = ctx.auth.tenants().create(owner, "Acme", &client()).await.unwrap();
    let before = ctx.clock.now().timestamp();
    let login = ctx.login("amr@example.com").await;
    let claims = ctx.auth.verify_access(login.access.expose()).unwrap();
    let (amr, signed_in) = sign_in(&claims);
    assert_eq!(amr, ["pwd"]);
    assert!((before..=claims.iat).contains(&signed_in), "auth_time {signed_in} is the sign-in's, by the clock");
    let stored = store(&ctx.auth).family(claims.sid).await.unwrap().unwrap();
    assert_eq!((stored.amr.as_str(), stored.auth_time / 1000), ("pwd", signed_in));

    ctx.clock.advance(Duration::from_secs(600));
    let refreshed = ctx.auth.sessions().refresh(login.refresh.expose(), &client()).await.unwrap();
    let refreshed_claims = ctx.auth.verify_access(refreshed.access.expose()).unwrap();
    assert!(refreshed_claims.iat >= claims.iat + 600, "a new token");
    assert_eq!(sign_in(&refreshed_claims), (vec!["pwd"], signed_in), "a refresh is no sign-in");

    ctx.clock.advance(Duration::from_secs(600));
    let scoped = ctx.auth.tenants().token(&refreshed_claims, tenant.id, &client()).await.unwrap();
    let scoped_claims = ctx.auth.verify_access(scoped.access.expose()).unwrap();
    assert_eq!(sign_in(&scoped_claims), (vec!["pwd"], signed_in), "a tenant token is the login's");
    ctx.clock.advance(Duration::from_secs(600));
    let scoped = ctx.auth.sessions().refresh(scoped.refresh.expose(), &client()).await.unwrap();
    let scoped_claims = ctx.auth.verify_access(scoped.access.expose()).unwrap();
    assert_eq!(scoped_claims.tenant_id, Some(tenant.id));
    assert_eq!(sign_in(&scoped_claims), (vec!["pwd"], signed_in));

    // A new sign-in is a new session with its own time, scoped or not.
    let scoped_login =
        ctx.auth.sessions().login("amr@example.com", PASSWORD, Some(tenant.id), &client()).await.unwrap();
    let scoped_login = ctx.auth.verify_access(scoped_login.access.expose()).unwrap();
    assert_eq!(sign_in(&scoped_login), (vec!["pwd"], scoped_login.iat));
    assert!(scoped_login.auth_time >= signed_in + 1800);
}

/// Issue #12.5: what a second factor will record (its own code comes later):
/// the session's amr gains the factor and `mfa`, its auth_time moves to now,
/// and only tokens minted afterwards say so.
async fn a_second_factor_upgrades_the_session_and_only_its_next_tokens(ctx: TestContext) {
    let owner = ctx.verified_user("factor@example.com").await;
    let tenant = ctx.auth.tenants().create(owner, "Acme", &client()).await.unwrap();
    let login = ctx.login("factor@example.com").await;
    let claims = ctx.auth.verify_access(login.access.expose()).unwrap();
    let other_login = ctx.login("factor@example.com").await;

    ctx.clock.advance(Duration::from_secs(300));
    let upgraded = record_second_factor(&ctx.auth, &claims, AuthMethod::OneTimeCode).await.unwrap();
    let now = ctx.clock.now().timestamp();
    assert_eq!(upgraded.amr, "pwd otp mfa");
    assert!((claims.auth_time + 300..=now).contains(&(upgraded.auth_time / 1000)), "auth_time moved to now");
    assert_eq!(store(&ctx.auth).family(claims.sid).await.unwrap().unwrap(), upgraded, "stored");
    // The token in hand is signed: it still says what it said.
    assert_eq!(sign_in(&ctx.auth.verify_access(login.access.expose()).unwrap()), (vec!["pwd"], claims.auth_time));

    let refreshed = ctx.auth.sessions().refresh(login.refresh.expose(), &client()).await.unwrap();
    let refreshed = ctx.auth.verify_access(refreshed.access.expose()).unwrap();
    assert_eq!(sign_in(&refreshed), (vec!["pwd", "otp", "mfa"], upgraded.auth_time / 1000));
    assert!(auth_core::tokens::is_multi_factor(&refreshed.amr));
    let scoped = ctx.auth.tenants().token(&refreshed, tenant.id, &client()).await.unwrap();
    let scoped = ctx.auth.verify_access(scoped.access.expose()).unwrap();
    assert_eq!(sign_in(&scoped), (vec!["pwd", "otp", "mfa"], upgraded.auth_time / 1000));
    // The user's other session proved nothing more.
    let other = ctx.auth.sessions().refresh(other_login.refresh.expose(), &client()).await.unwrap();
    assert_eq!(ctx.auth.verify_access(other.access.expose()).unwrap().amr, ["pwd"]);

    // Another factor is added once; mfa stays once.
    let again = record_second_factor(&ctx.auth, &claims, AuthMethod::HardwareKey).await.unwrap();
    assert_eq!(again.amr, "pwd otp mfa hwk");
    let again = record_second_factor(&ctx.auth, &claims, AuthMethod::HardwareKey).await.unwrap();
    assert_eq!(again.amr, "pwd otp mfa hwk");

    // A password is no second factor; another user's claims or an ended session upgrade nothing.
    assert!(matches!(
        record_second_factor(&ctx.auth, &claims, AuthMethod::Password).await,
        Err(AuthError::Internal(_))
    ));
    let stranger = AccessClaims { sub: uuid::Uuid::new_v4(), ..(*claims).clone() };
    assert!(matches!(
        record_second_factor(&ctx.auth, &stranger, AuthMethod::OneTimeCode).await,
        Err(AuthError::InvalidToken)
    ));
    ctx.auth.sessions().logout_all(&claims, &client()).await.unwrap();
    assert!(matches!(
        record_second_factor(&ctx.auth, &claims, AuthMethod::SoftwareKey).await,
        Err(AuthError::InvalidToken)
    ));
    assert_eq!(store(&ctx.auth).family(claims.sid).await.unwrap().unwrap().amr, "pwd otp mfa hwk");
}
