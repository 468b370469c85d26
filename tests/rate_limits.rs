//! Brute-force limits through HTTP, with small limits configured: the login
//! back-off per account and client address, the account-wide lock that spares
//! the owner's known addresses, password change as a login attempt, the
//! per-IP and per-user quotas, and which `X-Forwarded-For` is believed (only
//! a trusted proxy's).

mod common;

use std::net::SocketAddr;

use auth_core::{AuthConfig, config::Quota};
use common::{Answer, Backend, DEMO_BASE, NEW_PASSWORD, PASSWORD, TestApp};
use rocket::http::{ContentType, Header, Method};
use serde_json::json;

backend_tests!(
    sixth_wrong_login_locks_the_account,
    an_attacker_cannot_lock_the_owner_out_of_a_known_address,
    failures_spread_over_addresses_lock_new_addresses_not_known_ones,
    wrong_current_passwords_count_as_failed_logins,
    password_change_has_a_per_user_quota,
    tenant_token_and_create_tenant_have_per_user_quotas,
    profile_and_session_writes_have_per_user_quotas,
    unknown_accounts_lock_the_same_way,
    per_ip_login_quota,
    forwarded_for_is_ignored_from_untrusted_peers,
    forwarded_for_is_believed_from_trusted_proxies,
    per_ip_register_and_reset_quotas,
);

const CLIENT: &str = "203.0.113.9:1234";
const OTHER_CLIENT: &str = "203.0.113.10:1234";
/// Where the owner usually signs in.
const OWNER: &str = "198.51.100.20:4321";
const PROXY: &str = "10.0.0.5:443";

/// Small per-IP quotas (3 logins a minute), the default account lock (5).
fn small_limits(config: &mut AuthConfig) {
    let limits = &mut config.rate_limits;
    limits.login_failures_per_account = 5;
    limits.login_backoff_base_secs = 30;
    limits.login = Quota::new(3, 60);
    limits.register = Quota::new(2, 60);
    limits.password_reset = Quota::new(2, 60);
}

/// The account lock alone: per-IP quotas out of reach; the account-wide lock
/// after 10 failures from all addresses together.
fn account_lock_only(config: &mut AuthConfig) {
    small_limits(config);
    config.rate_limits.login = Quota::new(1000, 60);
    config.rate_limits.login_failures_account_wide = 10;
}

/// `POST /api/auth/password/change` from `remote` with `access`.
async fn change_password_from(app: &TestApp, remote: &str, access: &str, current: &str) -> Answer {
    let body = json!({ "current_password": current, "new_password": "An0ther-Long-Passphrase!" }).to_string();
    let bearer = format!("Bearer {access}");
    post_from(app, remote, "/password/change", &body, &[("Authorization", &bearer)]).await
}

/// `POST /api/auth/login` from `remote`, with extra headers.
async fn login_from(
    app: &TestApp,
    remote: &str,
    email: &str,
    password: &str,
    headers: &[(&'static str, &str)],
) -> Answer {
    let body = json!({ "email": email, "password": password }).to_string();
    post_from(app, remote, "/login", &body, headers).await
}

async fn post_from(app: &TestApp, remote: &str, path: &str, body: &str, headers: &[(&'static str, &str)]) -> Answer {
    let uri = format!("{DEMO_BASE}{path}");
    let mut request = app.client().post(uri.clone()).remote(remote.parse::<SocketAddr>().expect("an address"));
    for (name, value) in headers {
        request = request.header(Header::new(*name, value.to_string()));
    }
    Answer::read(Method::Post, uri, request.header(ContentType::JSON).body(body).dispatch().await).await
}

/// A 429 with the contract's body and a `Retry-After` in whole seconds.
#[track_caller]
fn assert_limited(answer: &Answer) -> u64 {
    answer.expect_error(429, "rate_limited");
    let retry_after = answer.retry_after.as_deref().unwrap_or_else(|| panic!("429 without Retry-After: {answer}"));
    let seconds = retry_after.parse::<u64>().unwrap_or_else(|_| panic!("Retry-After is seconds: {answer}"));
    assert!(seconds >= 1, "{answer}");
    seconds
}

async fn sixth_wrong_login_locks_the_account(backend: Backend) {
    let app = TestApp::demo_with(backend, account_lock_only).await;
    let user = app.kit.verified_user("locked").await;
    for attempt in 1..=5 {
        let answer = login_from(&app, CLIENT, &user.email, NEW_PASSWORD, &[]).await;
        assert_eq!(answer.status, 401, "wrong password {attempt} of 5: {answer}");
        answer.expect_error(401, "invalid_credentials");
    }
    // Locked out of this account from this address now, even with the right password.
    let sixth = login_from(&app, CLIENT, &user.email, PASSWORD, &[]).await;
    let seconds = assert_limited(&sixth);
    assert!(seconds <= 30, "the first lock lasts the base back-off: {sixth}");
    assert_limited(&login_from(&app, CLIENT, &user.email.to_uppercase(), PASSWORD, &[]).await);
    // Other accounts are not affected.
    let other = app.kit.verified_user("unlocked").await;
    login_from(&app, CLIENT, &other.email, PASSWORD, &[]).await.expect(200);
}

/// Five wrong passwords from address A neither let A go on guessing nor keep
/// the owner out at B, where they signed in before.
async fn an_attacker_cannot_lock_the_owner_out_of_a_known_address(backend: Backend) {
    // The account-wide lock out of reach: this is the back-off of one address.
    let app = TestApp::demo_with(backend, |config| {
        account_lock_only(config);
        config.rate_limits.login_failures_account_wide = 100;
    })
    .await;
    let user = app.kit.verified_user("owner").await;
    login_from(&app, OWNER, &user.email, PASSWORD, &[]).await.expect(200);
    for _ in 0..8 {
        let answer = login_from(&app, CLIENT, &user.email, NEW_PASSWORD, &[]).await;
        assert!(answer.status == 401 || answer.status == 429, "{answer}");
    }
    assert_limited(&login_from(&app, CLIENT, &user.email, PASSWORD, &[]).await);
    assert_limited(&login_from(&app, CLIENT, &user.email, NEW_PASSWORD, &[]).await);
    login_from(&app, OWNER, &user.email, PASSWORD, &[]).await.expect(200);
    // The same /64 is the same address: the attacker's neighbour is locked too.
    let neighbour = "[2001:db8:5:5::1]:1000";
    for _ in 0..5 {
        login_from(&app, "[2001:db8:5:5::2]:1000", &user.email, NEW_PASSWORD, &[]).await.expect(401);
    }
    assert_limited(&login_from(&app, neighbour, &user.email, PASSWORD, &[]).await);
    login_from(&app, OWNER, &user.email, PASSWORD, &[]).await.expect(200);
}

/// An attacker rotating addresses trips the account-wide lock: it stops every
/// address that has not signed in to the account, but not the owner's.
async fn failures_spread_over_addresses_lock_new_addresses_not_known_ones(backend: Backend) {
    let app = TestApp::demo_with(backend, account_lock_only).await;
    let user = app.kit.verified_user("spread").await;
    let unknown = app.kit.unique_email("spread-ghost");
    login_from(&app, OWNER, &user.email, PASSWORD, &[]).await.expect(200);
    for email in [&user.email, &unknown] {
        for i in 0..10 {
            let attacker = format!("192.0.2.{i}:5000");
            login_from(&app, &attacker, email, NEW_PASSWORD, &[]).await.expect_error(401, "invalid_credentials");
        }
    }
    // A new address is locked out, even with the right password; the same for an unknown account.
    let new_address = login_from(&app, OTHER_CLIENT, &user.email, PASSWORD, &[]).await;
    let seconds = assert_limited(&new_address);
    assert!(seconds <= 30, "{new_address}");
    let ghost = login_from(&app, OTHER_CLIENT, &unknown, PASSWORD, &[]).await;
    assert_limited(&ghost);
    assert_eq!(new_address.json, ghost.json, "the lock reveals nothing about the account");
    assert_limited(&login_from(&app, "192.0.2.200:5000", &user.email, NEW_PASSWORD, &[]).await);
    // The owner, from where they signed in, is not.
    login_from(&app, OWNER, &user.email, PASSWORD, &[]).await.expect(200);
    // Clients without a known address are one bucket, not exempt.
    app.kit.post("/login", None, &json!({ "email": user.email, "password": PASSWORD })).await.expect(429);
}

/// Guesses at the current password with a stolen token are failed logins:
/// after five the address gets 429 before any hashing, and login from it too.
async fn wrong_current_passwords_count_as_failed_logins(backend: Backend) {
    let app = TestApp::demo_with(backend, account_lock_only).await;
    let user = app.kit.verified_user("stolen").await;
    let tokens = login_from(&app, OWNER, &user.email, PASSWORD, &[]).await;
    tokens.expect(200);
    let stolen = tokens.str("/access").to_owned();
    for attempt in 1..=5 {
        let answer = change_password_from(&app, CLIENT, &stolen, &format!("Guess-{attempt}-Password")).await;
        answer.expect_error(400, "invalid_password");
    }
    assert_limited(&change_password_from(&app, CLIENT, &stolen, "Guess-6-Password").await);
    assert_limited(&change_password_from(&app, CLIENT, &stolen, PASSWORD).await);
    assert_limited(&login_from(&app, CLIENT, &user.email, PASSWORD, &[]).await);
    // The owner at their address is not locked out of either.
    login_from(&app, OWNER, &user.email, PASSWORD, &[]).await.expect(200);
    change_password_from(&app, OWNER, &stolen, PASSWORD).await.expect(204);
}

async fn password_change_has_a_per_user_quota(backend: Backend) {
    let app = TestApp::demo_with(backend, |config| {
        account_lock_only(config);
        config.rate_limits.password_change = Quota::new(3, 900);
    })
    .await;
    let (_, tokens) = app.signed_in("quota-change").await;
    for (i, remote) in [CLIENT, OTHER_CLIENT, OWNER].into_iter().enumerate() {
        change_password_from(&app, remote, &tokens.access, &format!("Guess-{i}-Password")).await.expect(400);
    }
    // Past the quota from any address, before any hashing.
    let fourth = change_password_from(&app, "192.0.2.77:1", &tokens.access, PASSWORD).await;
    let seconds = assert_limited(&fourth);
    assert!(seconds <= 900, "{fourth}");
    // Another user has a quota of their own.
    let (_, other) = app.signed_in("quota-change-other").await;
    change_password_from(&app, CLIENT, &other.access, "Guess-Password-1").await.expect(400);
}

async fn tenant_token_and_create_tenant_have_per_user_quotas(backend: Backend) {
    let app = TestApp::demo_with(backend, |config| {
        config.rate_limits.create_tenant = Quota::new(2, 3600);
        config.rate_limits.tenant_token = Quota::new(3, 60);
    })
    .await;
    let (_, tokens) = app.signed_in("quota-tenants").await;
    let tenant_id = app.kit.create_tenant(&tokens.access).await;
    app.kit.create_tenant(&tokens.access).await;
    let third = app.kit.post("/tenants", Some(&tokens.access), &json!({ "name": "Third" })).await;
    let seconds = assert_limited(&third);
    assert!(seconds <= 3600, "{third}");
    for _ in 0..3 {
        app.kit.scoped(&tokens.access, &tenant_id).await;
    }
    let fourth = app.kit.post("/token/tenant", Some(&tokens.access), &json!({ "tenant_id": tenant_id })).await;
    let seconds = assert_limited(&fourth);
    assert!(seconds <= 60, "{fourth}");
    // The quotas are per user.
    let (_, other) = app.signed_in("quota-tenants-other").await;
    let other_tenant = app.kit.create_tenant(&other.access).await;
    app.kit.scoped(&other.access, &other_tenant).await;
}

async fn profile_and_session_writes_have_per_user_quotas(backend: Backend) {
    let app = TestApp::demo_with(backend, |config| {
        config.rate_limits.profile_update = Quota::new(2, 60);
        config.rate_limits.session_revoke = Quota::new(2, 60);
    })
    .await;
    let (user, tokens) = app.signed_in("quota-writes").await;
    for name in ["First", "Second"] {
        app.kit.patch("/me/profile", Some(&tokens.access), &json!({ "full_name": name })).await.expect(200);
    }
    assert_limited(&app.kit.patch("/me/profile", Some(&tokens.access), &json!({ "full_name": "Third" })).await);
    // Logging out the same (already ended) session again and again writes nothing past the quota.
    let other = app.kit.sign_in(&user).await;
    let logout = json!({ "refresh": other.refresh });
    app.kit.post("/logout", Some(&tokens.access), &logout).await.expect(204);
    app.kit.post("/logout", Some(&tokens.access), &logout).await.expect(204);
    assert_limited(&app.kit.post("/logout", Some(&tokens.access), &logout).await);
    assert_limited(&app.kit.delete(&format!("/sessions/{}", uuid::Uuid::nil()), Some(&tokens.access)).await);
}

/// A lock says nothing about whether the account exists.
async fn unknown_accounts_lock_the_same_way(backend: Backend) {
    let app = TestApp::demo_with(backend, account_lock_only).await;
    let user = app.kit.verified_user("known").await;
    let unknown = app.kit.unique_email("unknown");
    let mut answers = Vec::new();
    for email in [&user.email, &unknown] {
        for _ in 0..5 {
            login_from(&app, CLIENT, email, NEW_PASSWORD, &[]).await.expect_error(401, "invalid_credentials");
        }
        let answer = login_from(&app, CLIENT, email, PASSWORD, &[]).await;
        assert_limited(&answer);
        answers.push(answer);
    }
    assert_eq!(answers[0].json, answers[1].json, "same body for a known and an unknown account");
}

async fn per_ip_login_quota(backend: Backend) {
    let app = TestApp::demo_with(backend, small_limits).await;
    let user = app.kit.verified_user("quota").await;
    for _ in 0..3 {
        login_from(&app, CLIENT, &user.email, PASSWORD, &[]).await.expect(200);
    }
    let fourth = login_from(&app, CLIENT, &user.email, PASSWORD, &[]).await;
    let seconds = assert_limited(&fourth);
    assert!(seconds <= 60, "within the window: {fourth}");
    // Another client address has a quota of its own.
    login_from(&app, OTHER_CLIENT, &user.email, PASSWORD, &[]).await.expect(200);
}

/// From a peer that is not a trusted proxy, `X-Forwarded-For` (and the other
/// forwarding headers) change nothing: the quota is the peer's.
async fn forwarded_for_is_ignored_from_untrusted_peers(backend: Backend) {
    let app = TestApp::demo_with(backend, small_limits).await;
    let user = app.kit.verified_user("spoof").await;
    let spoofs: [&[(&'static str, &str)]; 4] = [
        &[("X-Forwarded-For", "198.51.100.1")],
        &[("X-Forwarded-For", "198.51.100.2, 10.0.0.5")],
        &[("X-Real-IP", "198.51.100.3")],
        &[("Forwarded", "for=198.51.100.4")],
    ];
    for (i, headers) in spoofs.iter().enumerate() {
        let answer = login_from(&app, CLIENT, &user.email, PASSWORD, headers).await;
        if i < 3 {
            answer.expect(200);
        } else {
            assert_limited(&answer);
        }
    }
    let yet_another = [("X-Forwarded-For", "198.51.100.99")];
    assert_limited(&login_from(&app, CLIENT, &user.email, PASSWORD, &yet_another).await);
}

/// Behind a trusted proxy, the client is the right-most address the proxy
/// did not add itself; what the client wrote further left proves nothing.
async fn forwarded_for_is_believed_from_trusted_proxies(backend: Backend) {
    let app = TestApp::demo_with(backend, |config| {
        small_limits(config);
        config.http.trusted_proxies = vec!["10.0.0.0/8".parse().expect("a network")];
    })
    .await;
    let user = app.kit.verified_user("proxied").await;
    let alice = [("X-Forwarded-For", "198.51.100.7")];
    for _ in 0..3 {
        login_from(&app, PROXY, &user.email, PASSWORD, &alice).await.expect(200);
    }
    assert_limited(&login_from(&app, PROXY, &user.email, PASSWORD, &alice).await);
    // Alice claiming to be someone else: the proxy appended her real address.
    let forged = [("X-Forwarded-For", "198.51.100.50, 198.51.100.7")];
    assert_limited(&login_from(&app, PROXY, &user.email, PASSWORD, &forged).await);
    // Through a second trusted hop, still Alice.
    let two_hops = [("X-Forwarded-For", "198.51.100.7, 10.0.0.9")];
    assert_limited(&login_from(&app, PROXY, &user.email, PASSWORD, &two_hops).await);
    // Bob, behind the same proxy, has his own quota.
    let bob = [("X-Forwarded-For", "198.51.100.8")];
    login_from(&app, PROXY, &user.email, PASSWORD, &bob).await.expect(200);
    // The proxy's own quota is not Alice's.
    login_from(&app, PROXY, &user.email, PASSWORD, &[]).await.expect(200);
    // An untrusted peer forwarding for someone is still just itself.
    for _ in 0..3 {
        login_from(&app, CLIENT, &user.email, PASSWORD, &bob).await.expect(200);
    }
    assert_limited(&login_from(&app, CLIENT, &user.email, PASSWORD, &[("X-Forwarded-For", "198.51.100.9")]).await);
}

async fn per_ip_register_and_reset_quotas(backend: Backend) {
    let app = TestApp::demo_with(backend, small_limits).await;
    for _ in 0..2 {
        let body = json!({ "email": app.kit.unique_email("burst"), "password": PASSWORD, "full_name": "Burst" });
        post_from(&app, CLIENT, "/register", &body.to_string(), &[]).await.expect(201);
    }
    let body = json!({ "email": app.kit.unique_email("burst"), "password": PASSWORD, "full_name": "Burst" });
    assert_limited(&post_from(&app, CLIENT, "/register", &body.to_string(), &[]).await);

    let body = json!({ "email": app.kit.unique_email("reset") }).to_string();
    for _ in 0..2 {
        post_from(&app, CLIENT, "/password/reset", &body, &[]).await.expect(202);
    }
    assert_limited(&post_from(&app, CLIENT, "/password/reset", &body, &[]).await);
    post_from(&app, OTHER_CLIENT, "/password/reset", &body, &[]).await.expect(202);
}
