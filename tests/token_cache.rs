//! The verified-token cache over HTTP: a token the cache holds is refused at
//! the very next request once its verification key is retired, while tokens
//! of the other keys go on working.

mod common;

use auth_core::{
    Auth, SigningAlgorithm,
    identity::AccountFlags,
    tokens::{AccessGrant, AccessTokens, KeySet},
};
use common::{Backend, TestDatabase, figment, test_config};
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use uuid::Uuid;

async fn status(client: &Client, token: &str) -> Status {
    let bearer = Header::new("Authorization", format!("Bearer {token}"));
    client.get("/api/protected").header(bearer).dispatch().await.status()
}

#[rocket::async_test]
async fn retiring_a_verification_key_refuses_its_cached_tokens_at_the_next_request() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let mut config = test_config(&db.url);
    let old = KeySet::generate(SigningAlgorithm::EdDsa, "2026-11").unwrap();
    config.tokens.algorithm = SigningAlgorithm::EdDsa;
    config.tokens.signing_key = Some(KeySet::generate(SigningAlgorithm::EdDsa, "2026-12").unwrap());
    config.tokens.verification_keys = vec![old.clone()];
    let client = Client::tracked(auth_demo::rocket(figment(&config))).await.expect("the app ignites");
    let auth = client.rocket().state::<Auth>().expect("the app manages an Auth");

    // Tokens of the old key, as an instance that still signed with it minted them.
    let mut minting = config.tokens.clone();
    minting.signing_key = Some(old);
    minting.verification_keys.clear();
    let minter = AccessTokens::new(
        KeySet::from_settings(&minting).unwrap(),
        &config.issuer,
        &config.audience,
        &minting,
        auth_core::Clock::system(),
    );
    let grant = AccessGrant {
        user_id: Uuid::new_v4(),
        session_id: Uuid::new_v4(),
        tenant: None,
        account: AccountFlags { staff: false, superuser: false, email_verified: true },
        amr: vec!["pwd".into()],
        auth_time: auth.now().timestamp(),
    };
    let (old_token, _) = minter.mint(&grant).unwrap();
    let current = AccessTokens::new(
        (*auth.keys()).clone(),
        &config.issuer,
        &config.audience,
        &config.tokens,
        auth_core::Clock::system(),
    );
    let (new_token, _) = current.mint(&grant).unwrap();

    for _ in 0..2 {
        assert_eq!(status(&client, &old_token).await, Status::Ok);
        assert_eq!(status(&client, &new_token).await, Status::Ok);
    }
    assert!(auth.keys().jwks().find("2026-11").is_some());

    auth.retire_verification_key("2026-11").expect("a verification key can be retired");
    assert_eq!(status(&client, &old_token).await, Status::Unauthorized, "refused although it was cached");
    assert_eq!(status(&client, &new_token).await, Status::Ok);
    let jwks = client.get("/.well-known/jwks.json").dispatch().await.into_string().await.unwrap();
    assert!(!jwks.contains("2026-11") && jwks.contains("2026-12"), "{jwks}");
    assert!(auth.retire_verification_key("2026-12").is_err(), "the signing key stays");
}
