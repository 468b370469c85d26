//! Passkeys at the engine, driven by a real software authenticator
//! (`support/authenticator.rs`): registration, discoverable sign-in, the
//! second step of a password login, and what is refused (a cloned
//! authenticator, a reused or expired challenge, no user verification, a
//! wrong origin). On SQLite always and on PostgreSQL with `--ignored`.

#[path = "support/authenticator.rs"]
mod authenticator;
mod common;

use std::sync::Arc;
use std::time::Duration;

use auth_core::{AuthError, SecondFactor, TokenPair, mfa::MfaMethod, tokens::AccessClaims};
use authenticator::SoftwareAuthenticator;
use common::{PASSWORD, TestContext, client};
use uuid::Uuid;

backend_tests!(
    a_passkey_is_registered_and_signs_in_without_a_password,
    a_passkey_is_the_second_factor_of_a_password_login,
    a_cloned_authenticator_is_refused_and_audited,
    a_challenge_works_once_and_for_five_minutes,
    an_assertion_without_user_verification_is_refused,
    an_assertion_from_another_origin_is_refused,
    removing_passkeys_needs_proof_and_keeps_recovery_codes_while_a_factor_remains,
    deleting_the_account_deletes_its_passkeys,
);

/// The test configuration's `public_url`: the relying party is `localhost`.
const ORIGIN: &str = "http://localhost:8000";

fn claims(ctx: &TestContext, pair: &TokenPair) -> Arc<AccessClaims> {
    ctx.auth.verify_access(pair.access.expose()).expect("a valid access token")
}

/// Registers a passkey of `pair`'s user on a fresh authenticator.
async fn register(ctx: &TestContext, pair: &TokenPair, name: &str) -> (SoftwareAuthenticator, Uuid) {
    let mut device = SoftwareAuthenticator::new(ORIGIN);
    let options = ctx.auth.passkeys().register_start(&claims(ctx, pair), &client()).await.unwrap();
    let credential = device.create(&options).await;
    let view = ctx.auth.passkeys().register_finish(&claims(ctx, pair), &credential, name, &client()).await.unwrap();
    (device, view.id)
}

/// A discoverable sign-in with `device`.
async fn sign_in(ctx: &TestContext, device: &mut SoftwareAuthenticator) -> Result<TokenPair, AuthError> {
    let challenge = ctx.auth.passkeys().sign_in_start(None, &client()).await.unwrap();
    let assertion = device.get(&challenge.public_key).await;
    ctx.auth.passkeys().sign_in_finish(challenge.challenge_id, &assertion, &client()).await
}

async fn a_passkey_is_registered_and_signs_in_without_a_password(ctx: TestContext) {
    let user = ctx.verified_user("ada@example.com").await;
    let pair = ctx.login("ada@example.com").await;
    let other = ctx.login("ada@example.com").await;
    let (mut device, id) = register(&ctx, &pair, "  YubiKey  ").await;

    let listed = ctx.auth.passkeys().list(&claims(&ctx, &pair)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].name.as_str(), listed[0].last_used_at), (id, "YubiKey", None));
    assert_eq!(ctx.auth.mfa().factors(user).await.unwrap().passkeys, 1);
    assert_eq!(ctx.count("SELECT COUNT(*) FROM audit_events WHERE event = 'passkey_added'").await, 1);
    // Adding a factor ends the other sessions.
    assert!(ctx.auth.sessions().refresh(other.refresh.expose(), &client()).await.is_err());

    let signed_in = sign_in(&ctx, &mut device).await.unwrap();
    let signed = claims(&ctx, &signed_in);
    assert_eq!(signed.sub, user);
    // passkey-rs's passkeys are backup-eligible (synced): `swk`; user-verified, so `mfa`.
    assert_eq!(signed.amr, ["swk", "mfa"]);
    assert!(signed.auth_time > 0);
    let listed = ctx.auth.passkeys().list(&claims(&ctx, &pair)).await.unwrap();
    assert!(listed[0].last_used_at.is_some());

    // The same credential again is refused; so is an eleventh passkey.
    let options = ctx.auth.passkeys().register_start(&claims(&ctx, &pair), &client()).await.unwrap();
    let excluded = options["excludeCredentials"].as_array().map_or(0, Vec::len);
    assert_eq!(excluded, 1, "{options}");
    for n in 1..10 {
        register(&ctx, &pair, &format!("key {n}")).await;
    }
    let mut eleventh = SoftwareAuthenticator::new(ORIGIN);
    let options = ctx.auth.passkeys().register_start(&claims(&ctx, &pair), &client()).await.unwrap();
    let credential = eleventh.create(&options).await;
    let refused =
        ctx.auth.passkeys().register_finish(&claims(&ctx, &pair), &credential, "one too many", &client()).await;
    assert!(matches!(refused, Err(AuthError::PasskeyLimit)), "{refused:?}");
    // The registration's challenge was spent by that attempt.
    let again = ctx.auth.passkeys().register_finish(&claims(&ctx, &pair), &credential, "again", &client()).await;
    assert!(matches!(again, Err(AuthError::InvalidOneTimeToken)), "{again:?}");
}

async fn a_passkey_is_the_second_factor_of_a_password_login(ctx: TestContext) {
    ctx.verified_user("ada@example.com").await;
    let pair = ctx.login("ada@example.com").await;
    let (mut device, _) = register(&ctx, &pair, "laptop").await;

    let mfa_token = match ctx.auth.sessions().login("ada@example.com", PASSWORD, None, &client()).await {
        Err(AuthError::SecondFactorRequired { mfa_token, methods }) => {
            assert_eq!(methods, [MfaMethod::Webauthn]);
            mfa_token.expose().to_owned()
        }
        other => panic!("expected mfa_required, got {other:?}"),
    };
    let sessions = ctx.auth.sessions();
    // A wrong assertion (its signature altered) counts as a wrong code.
    let challenge = sessions.second_factor_challenge(&mfa_token, &client()).await.unwrap();
    let mut wrong = device.get(&challenge.public_key).await;
    let signature = wrong["response"]["signature"].as_str().unwrap().to_owned();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    wrong["response"]["signature"] = format!("{flipped}{}", &signature[1..]).into();
    let refused = sessions.finish_login(&mfa_token, SecondFactor::Passkey(&wrong), &client()).await;
    assert!(matches!(refused, Err(AuthError::InvalidCode)), "{refused:?}");
    assert_eq!(ctx.count("SELECT failures FROM mfa_logins").await, 1);

    let challenge = sessions.second_factor_challenge(&mfa_token, &client()).await.unwrap();
    let assertion = device.get(&challenge.public_key).await;
    let signed_in = sessions.finish_login(&mfa_token, SecondFactor::Passkey(&assertion), &client()).await.unwrap();
    assert_eq!(claims(&ctx, &signed_in).amr, ["pwd", "swk", "mfa"]);
    // The mfa_token finished its login.
    let again = sessions.second_factor_challenge(&mfa_token, &client()).await;
    assert!(matches!(again, Err(AuthError::InvalidOneTimeToken)), "{again:?}");
}

async fn a_cloned_authenticator_is_refused_and_audited(ctx: TestContext) {
    ctx.verified_user("ada@example.com").await;
    let pair = ctx.login("ada@example.com").await;
    let (mut device, _) = register(&ctx, &pair, "key").await;
    let mut clone = device.clone_device();
    sign_in(&ctx, &mut device).await.unwrap();
    // The clone's counter is behind the one the platform has seen.
    let refused = sign_in(&ctx, &mut clone).await;
    assert!(matches!(refused, Err(AuthError::InvalidCode)), "{refused:?}");
    assert_eq!(ctx.count("SELECT COUNT(*) FROM audit_events WHERE event = 'passkey_clone_suspected'").await, 1);
    // The genuine device goes on working.
    sign_in(&ctx, &mut device).await.unwrap();
}

async fn a_challenge_works_once_and_for_five_minutes(ctx: TestContext) {
    ctx.verified_user("ada@example.com").await;
    let pair = ctx.login("ada@example.com").await;
    let (mut device, _) = register(&ctx, &pair, "key").await;
    let passkeys = ctx.auth.passkeys();

    let challenge = passkeys.sign_in_start(None, &client()).await.unwrap();
    let assertion = device.get(&challenge.public_key).await;
    passkeys.sign_in_finish(challenge.challenge_id, &assertion, &client()).await.unwrap();
    let replayed = passkeys.sign_in_finish(challenge.challenge_id, &assertion, &client()).await;
    assert!(matches!(replayed, Err(AuthError::InvalidOneTimeToken)), "{replayed:?}");

    let challenge = passkeys.sign_in_start(None, &client()).await.unwrap();
    let assertion = device.get(&challenge.public_key).await;
    ctx.clock.advance(Duration::from_secs(5 * 60 + 1));
    let late = passkeys.sign_in_finish(challenge.challenge_id, &assertion, &client()).await;
    assert!(matches!(late, Err(AuthError::InvalidOneTimeToken)), "{late:?}");

    let unknown = passkeys.sign_in_finish(Uuid::new_v4(), &assertion, &client()).await;
    assert!(matches!(unknown, Err(AuthError::InvalidOneTimeToken)), "{unknown:?}");
}

async fn an_assertion_without_user_verification_is_refused(ctx: TestContext) {
    ctx.verified_user("ada@example.com").await;
    let pair = ctx.login("ada@example.com").await;
    let (mut device, _) = register(&ctx, &pair, "key").await;
    let passkeys = ctx.auth.passkeys();
    let challenge = passkeys.sign_in_start(None, &client()).await.unwrap();
    // A client that drops the requirement: the authenticator signs without verifying the user.
    let mut options = challenge.public_key.clone();
    assert_eq!(options["userVerification"], "required");
    options["userVerification"] = "discouraged".into();
    let assertion = device.get(&options).await;
    let refused = passkeys.sign_in_finish(challenge.challenge_id, &assertion, &client()).await;
    assert!(matches!(refused, Err(AuthError::InvalidCode)), "{refused:?}");
}

async fn an_assertion_from_another_origin_is_refused(ctx: TestContext) {
    ctx.verified_user("ada@example.com").await;
    let pair = ctx.login("ada@example.com").await;
    let (device, _) = register(&ctx, &pair, "key").await;
    let mut elsewhere = device.at_origin("http://localhost:9999");
    let refused = sign_in(&ctx, &mut elsewhere).await;
    assert!(matches!(refused, Err(AuthError::InvalidCode)), "{refused:?}");
    // Given an email, another account's passkey is refused, and an unknown address answers alike.
    let passkeys = ctx.auth.passkeys();
    ctx.verified_user("bob@example.com").await;
    for email in ["bob@example.com", "nobody@example.com"] {
        let challenge = passkeys.sign_in_start(Some(email), &client()).await.unwrap();
        let mut device = device.at_origin(ORIGIN);
        let assertion = device.get(&challenge.public_key).await;
        let refused = passkeys.sign_in_finish(challenge.challenge_id, &assertion, &client()).await;
        assert!(matches!(refused, Err(AuthError::InvalidCode)), "{email}: {refused:?}");
    }
}

async fn removing_passkeys_needs_proof_and_keeps_recovery_codes_while_a_factor_remains(ctx: TestContext) {
    let user = ctx.verified_user("ada@example.com").await;
    let pair = ctx.login("ada@example.com").await;
    let (_, first) = register(&ctx, &pair, "one").await;
    let (mut device, second) = register(&ctx, &pair, "two").await;
    ctx.auth.mfa().regenerate_recovery_codes(&claims(&ctx, &pair), PASSWORD, &client()).await.unwrap();
    let passkeys = ctx.auth.passkeys();
    // The password session has no second factor: without a password, removal is refused.
    let needs = passkeys.delete(&claims(&ctx, &pair), first, None, &client()).await;
    assert!(matches!(needs, Err(AuthError::ReauthenticationRequired { .. })), "{needs:?}");
    let wrong = passkeys.delete(&claims(&ctx, &pair), first, Some("not the password"), &client()).await;
    assert!(matches!(wrong, Err(AuthError::ReauthenticationFailed)), "{wrong:?}");
    passkeys.delete(&claims(&ctx, &pair), first, Some(PASSWORD), &client()).await.unwrap();
    let factors = ctx.auth.mfa().factors(user).await.unwrap();
    assert_eq!((factors.passkeys, factors.recovery_codes_left), (1, 10));
    let gone = passkeys.delete(&claims(&ctx, &pair), first, Some(PASSWORD), &client()).await;
    assert!(matches!(gone, Err(AuthError::NotFound)), "{gone:?}");

    // A passkey sign-in is a fresh second factor: no password needed, for ten minutes.
    let fresh = claims(&ctx, &sign_in(&ctx, &mut device).await.unwrap());
    ctx.clock.advance(Duration::from_secs(601));
    let stale = passkeys.delete(&fresh, second, None, &client()).await;
    assert!(matches!(stale, Err(AuthError::ReauthenticationRequired { .. })), "{stale:?}");
    let fresh = claims(&ctx, &sign_in(&ctx, &mut device).await.unwrap());
    passkeys.delete(&fresh, second, None, &client()).await.unwrap();
    // The last factor went: the recovery codes with it.
    let factors = ctx.auth.mfa().factors(user).await.unwrap();
    assert_eq!((factors.passkeys, factors.recovery_codes_left), (0, 0));
    assert_eq!(ctx.count("SELECT COUNT(*) FROM audit_events WHERE event = 'passkey_removed'").await, 2);
}

async fn deleting_the_account_deletes_its_passkeys(ctx: TestContext) {
    ctx.verified_user("ada@example.com").await;
    let pair = ctx.login("ada@example.com").await;
    let (mut device, _) = register(&ctx, &pair, "key").await;
    // A passkey-only account has no code: a passkey sign-in is the fresh second factor.
    let signed_in = sign_in(&ctx, &mut device).await.unwrap();
    ctx.auth.accounts().delete_account(&claims(&ctx, &signed_in), PASSWORD, None, &client()).await.unwrap();
    assert_eq!(ctx.count("SELECT COUNT(*) FROM passkeys").await, 0);
    assert_eq!(ctx.count("SELECT COUNT(*) FROM webauthn_challenges").await, 0);
}
