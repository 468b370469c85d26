//! Every type that holds a secret, built with a known value: neither `{:?}`
//! nor `{:#?}` may show it. A `#[derive(Debug)]` over a plain `String` brought
//! back into any of them fails here.

use std::fmt::Debug;

use auth_core::{
    AuthConfig, Secret, SigningAlgorithm, TokenPair,
    config::{KeySpec, MailTransport, OAuthProvider},
    identity::Registration,
    mail::Email,
    oauth::{AccountOrigin, OAuthCallback, OAuthLogin, OAuthStart, STATE_COOKIE, SignInAnswer, StateCookie},
    tokens::{KeySet, OpaqueToken},
};
use uuid::Uuid;

/// Fails if any of `secrets` appears in either form of `value`'s `Debug`.
#[track_caller]
fn assert_hidden(value: &impl Debug, secrets: &[&str]) {
    for rendered in [format!("{value:?}"), format!("{value:#?}")] {
        for secret in secrets {
            assert!(!rendered.contains(secret), "{secret:?} shows in {rendered}");
        }
    }
}

/// A line from the middle of a PEM body: key material, whatever the header.
fn pem_body_line(spec: &KeySpec) -> String {
    let pem = spec.pem.as_ref().expect("a PEM key").expose();
    pem.lines().nth(1).expect("a PEM body").to_owned()
}

#[test]
fn a_secret() {
    assert_hidden(&Secret::new("plain-secret-value"), &["plain-secret-value"]);
}

#[test]
fn the_configuration() {
    let signing = KeySet::generate(SigningAlgorithm::EdDsa, "k1").unwrap();
    let hmac = KeySpec {
        kid: "k2".into(),
        algorithm: Some(SigningAlgorithm::Hs256),
        secret: Some(Secret::new("hs256-secret-0123456789-0123456789")),
        ..KeySpec::default()
    };
    let mut config = AuthConfig {
        database_url: "postgres://app:db-password-1@db.internal:5432/auth?password=db-password-2".into(),
        ..AuthConfig::default()
    };
    config.tokens.signing_key = Some(signing.clone());
    config.tokens.verification_keys = vec![hmac];
    config.rate_limits.redis_url = Some("redis://app:redis-password@redis.internal:6379/0".into());
    config.mail.transport = MailTransport::Smtp {
        host: "smtp.example.com".into(),
        port: 587,
        username: Some("mailer".into()),
        password: Some(Secret::new("smtp-password")),
        insecure: false,
    };
    config.oauth.insert(
        "idp".into(),
        OAuthProvider { client_secret: Secret::new("oauth-client-secret"), ..OAuthProvider::default() },
    );
    assert_hidden(
        &config,
        &[
            "db-password-1",
            "db-password-2",
            &pem_body_line(&signing),
            "hs256-secret-0123456789",
            "redis-password",
            "smtp-password",
            "oauth-client-secret",
        ],
    );
}

#[test]
fn signing_keys() {
    for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
        let spec = KeySet::generate(algorithm, "k1").unwrap();
        let body = pem_body_line(&spec);
        assert_hidden(&spec, &[&body]);
        let settings = auth_core::config::TokenSettings { algorithm, signing_key: Some(spec), ..Default::default() };
        assert_hidden(&KeySet::from_settings(&settings).unwrap(), &[&body]);
    }
    let spec = KeySet::generate(SigningAlgorithm::Hs256, "k1").unwrap();
    let secret = spec.secret.as_ref().unwrap().expose().to_owned();
    assert_hidden(&spec, &[&secret]);
    let settings = auth_core::config::TokenSettings {
        algorithm: SigningAlgorithm::Hs256,
        signing_key: Some(spec),
        ..Default::default()
    };
    assert_hidden(&KeySet::from_settings(&settings).unwrap(), &[&secret]);
}

#[test]
fn a_registration() {
    let registration = Registration {
        email: "ada@example.com".into(),
        password: "registration-password".into(),
        full_name: "Ada".into(),
        phone: None,
    };
    assert_hidden(&registration, &["registration-password"]);
}

fn token_pair() -> TokenPair {
    TokenPair {
        access: Secret::new("eyJ.access-token.sig"),
        refresh: Secret::new("refresh-token-value"),
        token_type: "Bearer",
        expires_in: 300,
        refresh_expires_in: 3600,
    }
}

#[test]
fn a_token_pair_hides_its_tokens_but_serialises_them_for_the_client() {
    let pair = token_pair();
    assert_hidden(&pair, &["access-token", "refresh-token-value"]);
    // The wire form is unchanged: the body of a login answer.
    assert_eq!(
        serde_json::to_value(&pair).unwrap(),
        serde_json::json!({
            "access": "eyJ.access-token.sig", "refresh": "refresh-token-value",
            "token_type": "Bearer", "expires_in": 300,
        })
    );
}

#[test]
fn opaque_tokens() {
    let token = OpaqueToken::generate();
    assert_hidden(&token, &[token.as_str()]);
    let successor = token.successor(b"salt");
    assert_hidden(&successor, &[successor.as_str()]);
}

#[test]
fn oauth_sign_ins() {
    let user_id = Uuid::now_v7();
    let with_tokens = OAuthLogin { user_id, origin: AccountOrigin::Linked, answer: SignInAnswer::Tokens(token_pair()) };
    assert_hidden(&with_tokens, &["access-token", "refresh-token-value"]);
    let redirect = SignInAnswer::Redirect(Secret::new("https://app.example.com/done#code=one-time-code"));
    let with_code = OAuthLogin { user_id, origin: AccountOrigin::Created, answer: redirect };
    assert_hidden(&with_code, &["one-time-code"]);

    let cookie = StateCookie {
        name: STATE_COOKIE,
        value: Secret::new("sealed-state-cookie"),
        path: "/callback".into(),
        max_age_secs: 300,
        secure: true,
    };
    assert_hidden(&cookie, &["sealed-state-cookie"]);
    let start = OAuthStart {
        location: "https://idp.example.com/authorize?state=state-value&nonce=nonce-value&code_challenge=c".into(),
        cookie,
    };
    assert_hidden(&start, &["state-value", "nonce-value", "sealed-state-cookie"]);

    let callback = OAuthCallback { code: Some("authorization-code"), state: Some("state-value"), ..Default::default() };
    assert_hidden(&callback, &["authorization-code", "state-value"]);
}

#[test]
fn mail_bodies_with_their_links() {
    let email = Email {
        to: "ada@example.com".into(),
        subject: "Reset your password".into(),
        text: "https://app.example.com/reset-password?token=reset-token-value".into(),
    };
    assert_hidden(&email, &["reset-token-value"]);
}

#[test]
fn the_request_bodies_of_the_contract() {
    use auth_core::contract::{
        CodeRequest, LoginRequest, PasswordChangeRequest, RefreshRequest, RegisterRequest, ResetConfirmRequest,
        TokenRequest,
    };
    fn parsed<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).expect("a body of the contract")
    }
    let register: RegisterRequest =
        parsed(r#"{"email": "a@example.com", "password": "register-pw-1", "full_name": "A"}"#);
    assert_hidden(&register, &["register-pw-1"]);
    let login: LoginRequest = parsed(r#"{"email": "a@example.com", "password": "login-pw-1"}"#);
    assert_hidden(&login, &["login-pw-1"]);
    let change: PasswordChangeRequest = parsed(r#"{"current_password": "old-pw-1", "new_password": "new-pw-1"}"#);
    assert_hidden(&change, &["old-pw-1", "new-pw-1"]);
    let reset: ResetConfirmRequest = parsed(r#"{"token": "reset-token-1", "new_password": "reset-pw-1"}"#);
    assert_hidden(&reset, &["reset-token-1", "reset-pw-1"]);
    assert_hidden(&parsed::<TokenRequest>(r#"{"token": "verify-token-1"}"#), &["verify-token-1"]);
    assert_hidden(&parsed::<RefreshRequest>(r#"{"refresh": "refresh-token-1"}"#), &["refresh-token-1"]);
    assert_hidden(&parsed::<CodeRequest>(r#"{"code": "exchange-code-1"}"#), &["exchange-code-1"]);
}
