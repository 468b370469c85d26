//! Second factors at the engine: TOTP with codes computed by RFC 6238 at the
//! engine's clock (replay, skew), recovery codes, the second step of a login
//! and its limits, tenants that require a second factor, the secret sealed at
//! rest. On SQLite always and on PostgreSQL with `--ignored`; nothing mocked.

mod common;

use std::sync::Arc;
use std::time::Duration;

use auth_core::{
    AuthError, SecondFactor, TokenPair,
    mfa::{MfaMethod, totp::TotpSecret},
    tokens::AccessClaims,
};
use common::{PASSWORD, TestContext, client, token_in};
use uuid::Uuid;

backend_tests!(
    totp_is_enrolled_confirmed_and_then_asked_for_at_login,
    a_code_works_once_within_one_step_of_skew,
    five_wrong_codes_end_the_login_and_count_as_failed_logins,
    recovery_codes_are_single_use_mailed_and_regenerated,
    disabling_totp_needs_password_and_code_and_ends_other_sessions,
    a_tenant_that_requires_mfa_mints_tokens_only_for_sessions_with_a_second_factor,
    deleting_an_account_with_a_factor_needs_a_code,
    a_password_reset_keeps_the_second_factor,
    the_secret_is_sealed_at_rest_and_a_deployment_without_its_key_refuses_to_start,
);

/// Moves the clock to one second into a 30-second step, so a test has 29
/// seconds of real time before the step changes under it.
fn align_to_step(ctx: &TestContext) {
    let into = ctx.clock.now().timestamp().rem_euclid(30);
    ctx.clock.advance(Duration::from_secs(u64::try_from(31 - into).unwrap()));
}

/// The code of `secret` `steps` steps from now, by the engine's clock.
fn code(ctx: &TestContext, secret: &TotpSecret, steps: i64) -> String {
    secret.code_at(u64::try_from(ctx.clock.now().timestamp() + 30 * steps).unwrap())
}

fn claims(ctx: &TestContext, pair: &TokenPair) -> Arc<AccessClaims> {
    ctx.auth.verify_access(pair.access.expose()).expect("a valid access token")
}

/// A verified user with TOTP on; its secret, recovery codes and the session that enrolled.
async fn with_totp(ctx: &TestContext, email: &str) -> (Uuid, TotpSecret, Vec<String>, TokenPair) {
    let user = ctx.verified_user(email).await;
    let pair = ctx.login(email).await;
    let enrollment = ctx.auth.mfa().enroll_totp(&claims(ctx, &pair), PASSWORD, &client()).await.unwrap();
    let secret = TotpSecret::from_base32(enrollment.secret.expose()).expect("a base32 secret");
    align_to_step(ctx);
    let codes = ctx.auth.mfa().confirm_totp(&claims(ctx, &pair), &code(ctx, &secret, 0), &client()).await.unwrap();
    (user, secret, codes.iter().map(|c| c.expose().to_owned()).collect(), pair)
}

/// The `mfa_token` of a login that awaits its second factor.
async fn password_step(ctx: &TestContext, email: &str, tenant_id: Option<Uuid>) -> String {
    match ctx.auth.sessions().login(email, PASSWORD, tenant_id, &client()).await {
        Err(AuthError::SecondFactorRequired { mfa_token, .. }) => mfa_token.expose().to_owned(),
        other => panic!("expected mfa_required, got {other:?}"),
    }
}

async fn totp_is_enrolled_confirmed_and_then_asked_for_at_login(ctx: TestContext) {
    let user = ctx.verified_user("ada@example.com").await;
    let first = ctx.login("ada@example.com").await;
    let other = ctx.login("ada@example.com").await;
    let mfa = ctx.auth.mfa();
    let wrong = mfa.enroll_totp(&claims(&ctx, &first), "not the password", &client()).await;
    assert!(matches!(wrong, Err(AuthError::ReauthenticationFailed)), "{wrong:?}");
    let enrollment = mfa.enroll_totp(&claims(&ctx, &first), PASSWORD, &client()).await.unwrap();
    let uri = enrollment.otpauth_uri.expose();
    assert!(uri.starts_with("otpauth://totp/") && uri.contains("ada%40example.com"), "{uri}");
    assert!(uri.contains(&format!("secret={}", enrollment.secret.expose())), "{uri}");
    let secret = TotpSecret::from_base32(enrollment.secret.expose()).unwrap();

    // Not a factor until confirmed: the password alone still signs in.
    assert!(mfa.factors(user).await.unwrap().methods().is_empty());
    ctx.login("ada@example.com").await;
    align_to_step(&ctx);
    let bad = mfa.confirm_totp(&claims(&ctx, &first), &code(&ctx, &secret, 3), &client()).await;
    assert!(matches!(bad, Err(AuthError::InvalidCode)), "{bad:?}");
    let codes = mfa.confirm_totp(&claims(&ctx, &first), &code(&ctx, &secret, 0), &client()).await.unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(mfa.factors(user).await.unwrap().methods(), [MfaMethod::Totp, MfaMethod::RecoveryCode]);
    let again = mfa.enroll_totp(&claims(&ctx, &first), PASSWORD, &client()).await;
    assert!(matches!(again, Err(AuthError::MfaAlreadyEnabled)), "{again:?}");

    // The other sessions ended; the enrolling one's next token says `otp mfa`.
    assert!(ctx.auth.sessions().refresh(other.refresh.expose(), &client()).await.is_err());
    let upgraded = ctx.auth.sessions().refresh(first.refresh.expose(), &client()).await.unwrap();
    assert_eq!(claims(&ctx, &upgraded).amr, ["pwd", "otp", "mfa"]);
    assert!(ctx.nth_mail("ada@example.com", "Security notice", 1).await.text.contains("authenticator app"));

    // Now a password is only the first step.
    let login = ctx.auth.sessions().login("ada@example.com", PASSWORD, None, &client()).await;
    let Err(AuthError::SecondFactorRequired { mfa_token, methods }) = login else { panic!("{login:?}") };
    assert_eq!(methods, [MfaMethod::Totp, MfaMethod::RecoveryCode]);
    let wrong_password = ctx.auth.sessions().login("ada@example.com", "wrong", None, &client()).await;
    assert!(matches!(wrong_password, Err(AuthError::InvalidCredentials)), "no hint of a factor: {wrong_password:?}");
    let sessions = ctx.auth.sessions();
    let pair = sessions.finish_login(mfa_token.expose(), SecondFactor::Totp(&code(&ctx, &secret, 1)), &client()).await;
    let pair = pair.unwrap();
    let signed_in = claims(&ctx, &pair);
    assert_eq!(signed_in.amr, ["pwd", "otp", "mfa"]);
    assert!(signed_in.auth_time >= ctx.clock.now().timestamp() - 1);
    let reused =
        sessions.finish_login(mfa_token.expose(), SecondFactor::Totp(&code(&ctx, &secret, 1)), &client()).await;
    assert!(matches!(reused, Err(AuthError::InvalidOneTimeToken)), "an mfa_token works once: {reused:?}");
    for junk in ["", "short", &"x".repeat(43)] {
        let junk = sessions.finish_login(junk, SecondFactor::Totp("123456"), &client()).await;
        assert!(matches!(junk, Err(AuthError::InvalidOneTimeToken)), "{junk:?}");
    }

    // Five minutes, then the token is dead.
    let late = password_step(&ctx, "ada@example.com", None).await;
    ctx.clock.advance(Duration::from_secs(5 * 60 + 1));
    let expired = sessions.finish_login(&late, SecondFactor::Totp(&code(&ctx, &secret, 0)), &client()).await;
    assert!(matches!(expired, Err(AuthError::InvalidOneTimeToken)), "{expired:?}");
}

async fn a_code_works_once_within_one_step_of_skew(ctx: TestContext) {
    let (_, secret, _, _) = with_totp(&ctx, "ada@example.com").await;
    let sessions = ctx.auth.sessions();
    // The confirmation spent this step's code: it is refused now, and so is the step before.
    for spent in [0, -1] {
        let token = password_step(&ctx, "ada@example.com", None).await;
        let replay = sessions.finish_login(&token, SecondFactor::Totp(&code(&ctx, &secret, spent)), &client()).await;
        assert!(matches!(replay, Err(AuthError::InvalidCode)), "step {spent}: {replay:?}");
    }
    let too_early = password_step(&ctx, "ada@example.com", None).await;
    let early = sessions.finish_login(&too_early, SecondFactor::Totp(&code(&ctx, &secret, 2)), &client()).await;
    assert!(matches!(early, Err(AuthError::InvalidCode)), "two steps ahead: {early:?}");
    // One step ahead (a fast phone clock) is accepted, once.
    let token = password_step(&ctx, "ada@example.com", None).await;
    sessions.finish_login(&token, SecondFactor::Totp(&code(&ctx, &secret, 1)), &client()).await.unwrap();
    let token = password_step(&ctx, "ada@example.com", None).await;
    let twice = sessions.finish_login(&token, SecondFactor::Totp(&code(&ctx, &secret, 1)), &client()).await;
    assert!(matches!(twice, Err(AuthError::InvalidCode)), "a code is accepted once: {twice:?}");
    // One step late (a slow phone, a slow network) is accepted, for a step not yet used.
    ctx.clock.advance(Duration::from_secs(90));
    let token = password_step(&ctx, "ada@example.com", None).await;
    sessions.finish_login(&token, SecondFactor::Totp(&code(&ctx, &secret, -1)), &client()).await.unwrap();
    ctx.clock.advance(Duration::from_secs(60));
    let token = password_step(&ctx, "ada@example.com", None).await;
    let stale = sessions.finish_login(&token, SecondFactor::Totp(&code(&ctx, &secret, -2)), &client()).await;
    assert!(matches!(stale, Err(AuthError::InvalidCode)), "two steps late: {stale:?}");
}

async fn five_wrong_codes_end_the_login_and_count_as_failed_logins(ctx: TestContext) {
    let (_, secret, _, _) = with_totp(&ctx, "ada@example.com").await;
    let sessions = ctx.auth.sessions();
    let token = password_step(&ctx, "ada@example.com", None).await;
    for _ in 0..5 {
        let wrong = sessions.finish_login(&token, SecondFactor::Totp(&code(&ctx, &secret, 5)), &client()).await;
        assert!(matches!(wrong, Err(AuthError::InvalidCode)), "{wrong:?}");
    }
    // The fifth failure ended the token, and the five count as failed logins of the
    // account from this address: the back-off now refuses it before any hashing.
    let right = sessions.finish_login(&token, SecondFactor::Totp(&code(&ctx, &secret, 1)), &client()).await;
    assert!(matches!(right, Err(AuthError::InvalidOneTimeToken)), "{right:?}");
    let login = sessions.login("ada@example.com", PASSWORD, None, &client()).await;
    assert!(matches!(login, Err(AuthError::RateLimited { .. })), "{login:?}");
    let other = common::client_at("198.51.100.9");
    let Err(AuthError::SecondFactorRequired { mfa_token: fresh, .. }) =
        sessions.login("ada@example.com", PASSWORD, None, &other).await
    else {
        panic!("another address is not locked out")
    };
    let ended = sessions.finish_login(&token, SecondFactor::Totp(&code(&ctx, &secret, 1)), &other).await;
    assert!(matches!(ended, Err(AuthError::InvalidOneTimeToken)), "the fifth failure ended it: {ended:?}");
    sessions.finish_login(fresh.expose(), SecondFactor::Totp(&code(&ctx, &secret, 1)), &other).await.unwrap();
    assert_eq!(ctx.count("SELECT COUNT(*) FROM audit_events WHERE event = 'second_factor_failed'").await, 5);
}

async fn recovery_codes_are_single_use_mailed_and_regenerated(ctx: TestContext) {
    let (user, _, codes, enrolled) = with_totp(&ctx, "ada@example.com").await;
    assert_eq!(ctx.count("SELECT COUNT(*) FROM recovery_codes WHERE used_at IS NULL").await, 10);
    let sessions = ctx.auth.sessions();
    let token = password_step(&ctx, "ada@example.com", None).await;
    // Typed in capitals with spaces, as people do.
    let typed = codes[3].to_uppercase().replace('-', " ");
    let pair = sessions.finish_login(&token, SecondFactor::RecoveryCode(&typed), &client()).await.unwrap();
    assert_eq!(claims(&ctx, &pair).amr, ["pwd", "otp", "mfa"]);
    let notice = ctx.nth_mail("ada@example.com", "Security notice", 2).await;
    assert!(notice.text.contains("recovery code was used") && notice.text.contains("9 left"), "{}", notice.text);
    let token = password_step(&ctx, "ada@example.com", None).await;
    let again = sessions.finish_login(&token, SecondFactor::RecoveryCode(&codes[3]), &client()).await;
    assert!(matches!(again, Err(AuthError::InvalidCode)), "single use: {again:?}");
    assert_eq!(ctx.auth.mfa().factors(user).await.unwrap().recovery_codes_left, 9);

    let mfa = ctx.auth.mfa();
    let upgraded = sessions.refresh(enrolled.refresh.expose(), &client()).await.unwrap();
    let wrong = mfa.regenerate_recovery_codes(&claims(&ctx, &upgraded), "wrong", &client()).await;
    assert!(matches!(wrong, Err(AuthError::ReauthenticationFailed)), "{wrong:?}");
    let fresh = mfa.regenerate_recovery_codes(&claims(&ctx, &upgraded), PASSWORD, &client()).await.unwrap();
    assert_eq!(fresh.len(), 10);
    let token = password_step(&ctx, "ada@example.com", None).await;
    let old = sessions.finish_login(&token, SecondFactor::RecoveryCode(&codes[4]), &client()).await;
    assert!(matches!(old, Err(AuthError::InvalidCode)), "the old set is dead: {old:?}");
    sessions.finish_login(&token, SecondFactor::RecoveryCode(fresh[0].expose()), &client()).await.unwrap();
    // Only hashes are stored.
    let plain = fresh[1].expose().replace('-', "");
    let stored = ctx.count(&format!("SELECT COUNT(*) FROM recovery_codes WHERE code_hash = '{plain}'")).await;
    assert_eq!(stored, 0);
}

async fn disabling_totp_needs_password_and_code_and_ends_other_sessions(ctx: TestContext) {
    let (user, secret, _, enrolled) = with_totp(&ctx, "ada@example.com").await;
    let current = ctx.auth.sessions().refresh(enrolled.refresh.expose(), &client()).await.unwrap();
    let token = password_step(&ctx, "ada@example.com", None).await;
    let other =
        ctx.auth.sessions().finish_login(&token, SecondFactor::Totp(&code(&ctx, &secret, 1)), &client()).await.unwrap();
    let mfa = ctx.auth.mfa();
    let caller = claims(&ctx, &current);
    let wrong_password = mfa.disable_totp(&caller, "wrong", &code(&ctx, &secret, 1), &client()).await;
    assert!(matches!(wrong_password, Err(AuthError::ReauthenticationFailed)), "{wrong_password:?}");
    let wrong_code = mfa.disable_totp(&caller, PASSWORD, "000000", &client()).await;
    assert!(matches!(wrong_code, Err(AuthError::InvalidCode)), "{wrong_code:?}");
    ctx.clock.advance(Duration::from_secs(30));
    mfa.disable_totp(&caller, PASSWORD, &code(&ctx, &secret, 1), &client()).await.unwrap();
    assert!(mfa.factors(user).await.unwrap().methods().is_empty(), "the recovery codes went with the last factor");
    assert_eq!(ctx.count("SELECT COUNT(*) FROM recovery_codes").await, 0);
    assert!(ctx.auth.sessions().refresh(other.refresh.expose(), &client()).await.is_err(), "other sessions end");
    ctx.auth.sessions().refresh(current.refresh.expose(), &client()).await.unwrap();
    assert!(ctx.nth_mail("ada@example.com", "Security notice", 2).await.text.contains("removed"));
    ctx.login("ada@example.com").await;
    let gone = mfa.disable_totp(&caller, PASSWORD, &code(&ctx, &secret, 0), &client()).await;
    assert!(matches!(gone, Err(AuthError::NotFound)), "{gone:?}");
}

async fn a_tenant_that_requires_mfa_mints_tokens_only_for_sessions_with_a_second_factor(ctx: TestContext) {
    let (owner, secret, _, enrolled) = with_totp(&ctx, "owner@example.com").await;
    let tenant = ctx.auth.tenants().create(owner, "Acme", &client()).await.unwrap();
    let member = ctx.verified_user("member@example.com").await;
    ctx.join(owner, tenant.id, member, "member@example.com", "member").await;
    let member_login = ctx.login("member@example.com").await;
    let member_tenant = ctx.auth.tenants().token(&claims(&ctx, &member_login), tenant.id, &client()).await.unwrap();
    let tenants = ctx.auth.tenants();

    // Only the owner, and only from a session with a second factor.
    let by_member = tenants.set_require_mfa(&claims(&ctx, &member_login), tenant.id, true, &client()).await;
    assert!(matches!(by_member, Err(AuthError::InsufficientRole)), "{by_member:?}");
    let stale = tenants.set_require_mfa(&claims(&ctx, &enrolled), tenant.id, true, &client()).await;
    assert!(matches!(stale, Err(AuthError::MfaRequired)), "this token predates the factor: {stale:?}");
    let upgraded = ctx.auth.sessions().refresh(enrolled.refresh.expose(), &client()).await.unwrap();
    let settings = tenants.set_require_mfa(&claims(&ctx, &upgraded), tenant.id, true, &client()).await.unwrap();
    assert!(settings.require_mfa);

    // Without a second factor: no tenant token, no login into it, no refresh of the tenant chain.
    let refused = tenants.token(&claims(&ctx, &member_login), tenant.id, &client()).await;
    assert!(matches!(refused, Err(AuthError::MfaRequired)), "{refused:?}");
    let login = ctx.auth.sessions().login("member@example.com", PASSWORD, Some(tenant.id), &client()).await;
    assert!(matches!(login, Err(AuthError::MfaRequired)), "{login:?}");
    let chain = ctx.auth.sessions().refresh(member_tenant.refresh.expose(), &client()).await;
    assert!(matches!(chain, Err(AuthError::InvalidToken)), "{chain:?}");
    ctx.auth.sessions().refresh(member_login.refresh.expose(), &client()).await.expect("the login itself lives on");

    // With one: the owner's login into the tenant finishes with the code.
    let token = password_step(&ctx, "owner@example.com", Some(tenant.id)).await;
    let sessions = ctx.auth.sessions();
    let pair = sessions.finish_login(&token, SecondFactor::Totp(&code(&ctx, &secret, 1)), &client()).await.unwrap();
    let scoped = claims(&ctx, &pair);
    assert_eq!((scoped.tenant_id, scoped.role.as_deref()), (Some(tenant.id), Some("owner")));
    ctx.auth.sessions().refresh(pair.refresh.expose(), &client()).await.expect("its tenant chain refreshes");
    tenants.set_require_mfa(&scoped, tenant.id, false, &client()).await.unwrap();
    tenants.token(&claims(&ctx, &ctx.login("member@example.com").await), tenant.id, &client()).await.unwrap();
}

async fn deleting_an_account_with_a_factor_needs_a_code(ctx: TestContext) {
    let (user, secret, codes, enrolled) = with_totp(&ctx, "ada@example.com").await;
    let caller = claims(&ctx, &enrolled);
    let accounts = ctx.auth.accounts();
    let missing = accounts.delete_account(&caller, PASSWORD, None, &client()).await;
    assert!(matches!(&missing, Err(AuthError::Validation(fields)) if fields.get("code").is_some()), "{missing:?}");
    let wrong = accounts.delete_account(&caller, PASSWORD, Some("000000"), &client()).await;
    assert!(matches!(wrong, Err(AuthError::InvalidCode)), "{wrong:?}");
    let spent = accounts.delete_account(&caller, PASSWORD, Some(&code(&ctx, &secret, 0)), &client()).await;
    assert!(matches!(spent, Err(AuthError::InvalidCode)), "the confirmation spent that code: {spent:?}");
    accounts.delete_account(&caller, PASSWORD, Some(&codes[0]), &client()).await.unwrap();
    assert!(ctx.auth.mfa().factors(user).await.unwrap().methods().is_empty());
    for table in ["totp_factors", "recovery_codes", "mfa_logins"] {
        assert_eq!(ctx.count(&format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table}");
    }
}

async fn the_secret_is_sealed_at_rest_and_a_deployment_without_its_key_refuses_to_start(ctx: TestContext) {
    let user = ctx.verified_user("ada@example.com").await;
    let pair = ctx.login("ada@example.com").await;
    let enrollment = ctx.auth.mfa().enroll_totp(&claims(&ctx, &pair), PASSWORD, &client()).await.unwrap();
    let plain = base32_decode(enrollment.secret.expose());
    assert_eq!(plain.len(), 20, "160 bits (RFC 4226)");
    let stored = auth_core::testing::store(&ctx.auth).totp_factor(user).await.unwrap().expect("a pending factor");
    assert_eq!(stored.sealed_secret.len(), 12 + 20 + 16, "nonce, ciphertext and tag");
    assert!(!stored.sealed_secret.windows(8).any(|w| plain.windows(8).any(|p| p == w)), "no run of the secret");

    // A deployment without the key cannot read the secrets: it refuses to start.
    let mut config = ctx.config.clone();
    config.mfa.encryption_key = None;
    let refused = auth_core::Auth::builder(config).build().await;
    assert!(matches!(refused, Err(auth_core::BuildError::MfaKeyMissing(1))), "{refused:?}");
    // One with another key starts, and refuses the sealed secret rather than misreading it.
    let other_key = ctx
        .second_instance(|config| {
            config.mfa.encryption_key = Some(auth_core::Secret::new("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="))
        })
        .await;
    let confirm = other_key.mfa().confirm_totp(&claims(&ctx, &pair), "123456", &client()).await;
    assert!(matches!(confirm, Err(AuthError::Internal(_))), "{confirm:?}");
}

/// RFC 4648 base32 without padding, as authenticator apps read the secret.
fn base32_decode(text: &str) -> Vec<u8> {
    let (mut bits, mut count, mut out) = (0u32, 0, Vec::new());
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {text}"),
        };
        bits = (bits << 5) | u32::from(value);
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).unwrap());
        }
    }
    out
}

/// A reset proves the mailbox, not the second factor: the factor stays, and
/// the new password alone signs nobody in (the threat model's exercise of a
/// compromised mailbox).
async fn a_password_reset_keeps_the_second_factor(ctx: TestContext) {
    let email = "reset-mfa@example.com";
    let (user, secret, _, _) = with_totp(&ctx, email).await;
    ctx.auth.accounts().request_password_reset(email, &client()).await.unwrap();
    let token = token_in(&ctx.nth_mail(email, "Reset your password", 1).await.text);
    let new_password = "Brand-New-Passphrase-9";
    ctx.auth.accounts().confirm_password_reset(&token, new_password, &client()).await.unwrap();
    assert_eq!(ctx.auth.mfa().factors(user).await.unwrap().methods(), [MfaMethod::Totp, MfaMethod::RecoveryCode]);
    let mfa_token = match ctx.auth.sessions().login(email, new_password, None, &client()).await {
        Err(AuthError::SecondFactorRequired { mfa_token, methods }) => {
            assert!(methods.contains(&MfaMethod::Totp), "{methods:?}");
            mfa_token
        }
        other => panic!("the new password alone signed in: {other:?}"),
    };
    ctx.clock.advance(Duration::from_secs(30)); // the enrolment used this step's code
    let code = code(&ctx, &secret, 0);
    let factor = SecondFactor::Totp(&code);
    ctx.auth.sessions().finish_login(mfa_token.expose(), factor, &client()).await.expect("and the code finishes it");
}
