//! Passkeys over HTTP, through the demo app's real routing and guards, with
//! passkey-rs as the browser's authenticator (`auth-core/tests/support/authenticator.rs`):
//! registration, discoverable sign-in, the second step of a password login,
//! the export, removal, and a deployment without a relying party.

#[path = "../auth-core/tests/support/authenticator.rs"]
#[allow(dead_code)] // the engine suite uses the rest (cloned devices, other origins)
mod authenticator;
mod common;

use authenticator::SoftwareAuthenticator;
use common::{Backend, TestApp, Tokens};
use rocket::http::Method;
use serde_json::json;

backend_tests!(
    a_passkey_registers_signs_in_and_is_the_second_factor_of_a_password_login,
    without_a_relying_party_the_passkey_routes_answer_404,
);

/// The demo's `public_url`: the relying party is `localhost`.
const ORIGIN: &str = "http://localhost:8000";

fn tokens(answer: &auth_rocket::testing::Answer) -> Tokens {
    Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() }
}

async fn a_passkey_registers_signs_in_and_is_the_second_factor_of_a_password_login(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let kit = &app.kit;
    let (user, signed_in) = app.signed_in("passkey").await;
    let bearer = Some(signed_in.access.as_str());
    let mut device = SoftwareAuthenticator::new(ORIGIN);

    let options = kit.post_empty("/webauthn/register/start", bearer).await;
    options.expect(200);
    assert_eq!(options.json["publicKey"]["rp"]["id"], "localhost", "{options}");
    assert_eq!(options.json["publicKey"]["authenticatorSelection"]["userVerification"], "required", "{options}");
    let credential = device.create(&options.json["publicKey"]).await;
    let unnamed = kit.post("/webauthn/register/finish", bearer, &json!({ "credential": credential, "name": "" })).await;
    unnamed.expect(422);
    // The failed attempt spent the registration: start again.
    let options = kit.post_empty("/webauthn/register/start", bearer).await;
    let credential = device.create(&options.json["publicKey"]).await;
    let created =
        kit.post("/webauthn/register/finish", bearer, &json!({ "credential": credential, "name": "laptop" })).await;
    created.expect(201);
    assert_eq!(created.json["name"], "laptop", "{created}");
    let id = created.str("/id").to_owned();
    assert!(created.json["created_at"].is_string(), "{created}");
    let listed = kit.get("/webauthn/credentials", bearer).await;
    listed.expect(200);
    assert_eq!(listed.json[0]["id"], id.as_str(), "{listed}");

    // Discoverable sign-in: no email, no password.
    let start = kit.post("/webauthn/login/start", None, &json!({})).await;
    start.expect(200);
    let challenge_id = start.str("/challenge_id").to_owned();
    let assertion = device.get(&start.json["publicKey"]).await;
    let finish = json!({ "challenge_id": challenge_id, "credential": assertion });
    let answer = kit.post("/webauthn/login/finish", None, &finish).await;
    answer.expect(200);
    assert_eq!(tokens(&answer).claims()["amr"], json!(["swk", "mfa"]), "{answer}");
    assert_eq!(tokens(&answer).claims()["sub"], user.id.as_str(), "{answer}");
    kit.post("/webauthn/login/finish", None, &finish).await.expect_error(400, "invalid_token");
    let start = kit.post("/webauthn/login/start", None, &json!({ "email": user.email })).await;
    let junk = json!({ "challenge_id": start.str("/challenge_id"), "credential": { "id": "AAAA" } });
    kit.post("/webauthn/login/finish", None, &junk).await.expect_error(400, "invalid_code");

    // A password login now asks for the passkey.
    let login = kit.post("/login", None, &json!({ "email": user.email, "password": user.password })).await;
    login.expect_error(403, "mfa_required");
    assert_eq!(login.json["error"]["methods"], json!(["webauthn"]), "{login}");
    let mfa_token = login.str("/error/mfa_token").to_owned();
    let start = kit.post("/login/mfa/webauthn/start", None, &json!({ "mfa_token": mfa_token })).await;
    start.expect(200);
    let assertion = device.get(&start.json["publicKey"]).await;
    let answer = kit.post("/login/mfa", None, &json!({ "mfa_token": mfa_token, "credential": assertion })).await;
    answer.expect(200);
    let mfa_tokens = tokens(&answer);
    assert_eq!(mfa_tokens.claims()["amr"], json!(["pwd", "swk", "mfa"]), "{answer}");

    // The export names the method and the passkey, without key material.
    let bearer = Some(mfa_tokens.access.as_str());
    let export = kit.get("/me/export", bearer).await;
    export.expect(200);
    assert_eq!(export.json["mfa_methods"], json!(["webauthn"]), "{export}");
    assert_eq!(export.json["passkeys"][0]["name"], "laptop", "{export}");
    assert!(export.json["passkeys"][0].get("credential").is_none(), "{export}");

    let path = format!("/webauthn/credentials/{id}");
    let wrong = json!({ "password": "Wrong-Password-1" }).to_string();
    let uri = kit.at(&path);
    kit.send(Method::Delete, &uri, bearer, Some(wrong), &[]).await.expect_error(400, "invalid_credentials");
    let right = json!({ "password": user.password }).to_string();
    kit.send(Method::Delete, &uri, bearer, Some(right.clone()), &[]).await.expect(204);
    kit.send(Method::Delete, &uri, bearer, Some(right), &[]).await.expect(404);
    let listed = kit.get("/webauthn/credentials", bearer).await;
    assert_eq!(listed.json, json!([]), "{listed}");
}

async fn without_a_relying_party_the_passkey_routes_answer_404(backend: Backend) {
    // An IP address cannot be a relying-party id: passkeys are off.
    let app = TestApp::demo_with(backend, |config| config.public_url = "http://127.0.0.1:8000".into()).await;
    let (_, signed_in) = app.signed_in("no-rp").await;
    let kit = &app.kit;
    kit.post("/webauthn/login/start", None, &json!({})).await.expect(404);
    kit.post_empty("/webauthn/register/start", Some(&signed_in.access)).await.expect(404);
    kit.get("/webauthn/credentials", Some(&signed_in.access)).await.expect(404);
}
