//! Second factors over HTTP: TOTP, recovery codes, the second step of a
//! login, step-up refusals, and tenants that require a second factor.

use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::mfa::totp::TotpSecret;
use rocket::http::Method;
use serde_json::json;

use crate::testing::{Conformance, PASSWORD, TestUser, Tokens, assert_bearer_challenge};

/// The authenticator app's code `steps` 30-second steps from now (the kit
/// reads the system clock, as an app on a phone does). A code is accepted
/// once, and never one older than an accepted one: the kit moves forward a
/// step for each code it spends (the server accepts one step of skew).
fn code(secret: &TotpSecret, steps: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    secret.code_at(now + 30 * steps)
}

impl Conformance {
    /// `POST /mfa/totp/enroll` (password re-entered) and `/confirm` (ten
    /// recovery codes), then a login answers `403 mfa_required` with
    /// `mfa_token` and `methods` and `POST /login/mfa` finishes it once, with
    /// a code or a recovery code; wrong ones are `400 invalid_code`; a route
    /// that needs a second factor refuses a token without one with the RFC 9470
    /// challenge; `DELETE /mfa/totp` turns it off.
    pub async fn mfa(&self) {
        let user = self.verified_user("mfa").await;
        let before = self.sign_in(&user).await;
        let other = self.sign_in(&user).await;
        let (secret, recovery_codes) = self.enable_totp(&before).await;
        assert!(!self.refresh_works(&other.refresh).await, "turning a factor on ends the other sessions");
        assert!(
            self.wait_for_mail(&user.email, 1).await.text.contains("authenticator app"),
            "a notice is mailed when a factor is turned on"
        );

        // The password is only the first step now.
        let wrong = self.post("/login", None, &json!({ "email": user.email, "password": "Wrong-Password-1" })).await;
        wrong.expect_error(401, "invalid_credentials");
        assert!(wrong.json.pointer("/error/mfa_token").is_none(), "a wrong password says nothing of factors: {wrong}");
        let mfa_token = self.password_step(&user).await;
        let both = json!({ "mfa_token": mfa_token, "code": code(&secret, 1), "recovery_code": recovery_codes[0] });
        self.post("/login/mfa", None, &both).await.expect_invalid("code");
        let far = self.post("/login/mfa", None, &json!({ "mfa_token": mfa_token, "code": code(&secret, 9) })).await;
        far.expect_error(400, "invalid_code");
        let signed_in =
            self.post("/login/mfa", None, &json!({ "mfa_token": mfa_token, "code": code(&secret, 1) })).await;
        signed_in.expect(200);
        assert_eq!(signed_in.cache_control.as_deref(), Some("no-store"), "{signed_in}");
        let tokens =
            Tokens { access: signed_in.str("/access").to_owned(), refresh: signed_in.str("/refresh").to_owned() };
        assert_eq!(tokens.claims()["amr"], json!(["pwd", "otp", "mfa"]), "{signed_in}");
        let again = self.post("/login/mfa", None, &json!({ "mfa_token": mfa_token, "code": code(&secret, 1) })).await;
        again.expect_error(400, "invalid_token");
        let junk = self.post("/login/mfa", None, &json!({ "mfa_token": "not-a-token", "code": "123456" })).await;
        junk.expect_error(400, "invalid_token");

        // A recovery code instead, once.
        let mfa_token = self.password_step(&user).await;
        let recovery = json!({ "mfa_token": mfa_token, "recovery_code": recovery_codes[0] });
        self.post("/login/mfa", None, &recovery).await.expect(200);
        let mfa_token = self.password_step(&user).await;
        let reused = json!({ "mfa_token": mfa_token, "recovery_code": recovery_codes[0] });
        self.post("/login/mfa", None, &reused).await.expect_error(400, "invalid_code");

        // Step-up: the token minted before the factor proves none.
        let refused =
            self.send(Method::Post, &self.at("/mfa/recovery-codes"), Some(&before.access), Some(password()), &[]).await;
        refused.expect_error(403, "mfa_required");
        assert_bearer_challenge(&refused, Some("insufficient_user_authentication"));
        let fresh =
            self.send(Method::Post, &self.at("/mfa/recovery-codes"), Some(&tokens.access), Some(password()), &[]).await;
        fresh.expect(200);
        assert_eq!(fresh.get("/recovery_codes").as_array().map(Vec::len), Some(10), "{fresh}");

        let export = self.get("/me/export", Some(&tokens.access)).await;
        assert_eq!(export.get("/mfa_methods"), &json!(["totp", "recovery_code"]), "{export}");
        assert!(!export.text.contains("otpauth") && !export.text.contains(&recovery_codes[1]), "no secret: {export}");

        // Off again: password and code (a recovery code will do), from a session with a factor.
        let off = |code: &str| json!({ "password": PASSWORD, "code": code }).to_string();
        let totp = self.at("/mfa/totp");
        let stale = self.send(Method::Delete, &totp, Some(&before.access), Some(off(&code(&secret, 2))), &[]).await;
        stale.expect_error(403, "mfa_required");
        let wrong = self.send(Method::Delete, &totp, Some(&tokens.access), Some(off("000000")), &[]).await;
        wrong.expect_error(400, "invalid_code");
        let spare = fresh.get("/recovery_codes/0").as_str().expect("a code").to_owned();
        self.send(Method::Delete, &totp, Some(&tokens.access), Some(off(&spare)), &[]).await.expect(204);
        self.post("/login", None, &json!({ "email": user.email, "password": PASSWORD })).await.expect(200);
    }

    /// A tenant whose owner sets `require_mfa` (`PATCH /tenants/<id>`, owner
    /// only, from a session with a second factor): then `POST /token/tenant`
    /// and a login into it refuse a session without one (`403 mfa_required`).
    pub async fn tenant_mfa(&self) {
        let [owner_role, _, member_role] = &self.roles;
        let owner = self.verified_user("tenant-mfa-owner").await;
        let first = self.sign_in(&owner).await;
        let (secret, _) = self.enable_totp(&first).await;
        let mfa_token = self.password_step(&owner).await;
        let signed_in =
            self.post("/login/mfa", None, &json!({ "mfa_token": mfa_token, "code": code(&secret, 1) })).await;
        signed_in.expect(200);
        let access = signed_in.str("/access").to_owned();
        let tenant = self.create_tenant(&access).await;
        let member = self.verified_user("tenant-mfa-member").await;
        let owner_scoped = self.scoped(&access, &tenant).await;
        self.join(&owner_scoped.access, &tenant, &member, member_role).await;
        let member_tokens = self.sign_in(&member).await;
        let member_scoped = self.scoped(&member_tokens.access, &tenant).await;

        let settings = format!("/tenants/{tenant}");
        let on = json!({ "require_mfa": true });
        self.patch(&settings, Some(&member_scoped.access), &on).await.expect(403);
        let answer = self.patch(&settings, Some(&owner_scoped.access), &on).await;
        answer.expect(200);
        assert_eq!(answer.json, json!({ "id": tenant, "require_mfa": true }), "{answer}");
        assert_eq!(owner_scoped.claims()["role"], json!(owner_role));

        let refused = self.post("/token/tenant", Some(&member_tokens.access), &json!({ "tenant_id": tenant })).await;
        refused.expect_error(403, "mfa_required");
        assert_bearer_challenge(&refused, Some("insufficient_user_authentication"));
        let login = json!({ "email": member.email, "password": PASSWORD, "tenant_id": tenant });
        let refused = self.post("/login", None, &login).await;
        refused.expect_error(403, "mfa_required");
        assert!(
            refused.json.pointer("/error/mfa_token").is_none(),
            "the member has no factor to finish with: {refused}"
        );
        assert!(!self.refresh_works(&member_scoped.refresh).await, "the tenant chain ends at its next refresh");
        self.post("/token/tenant", Some(&access), &json!({ "tenant_id": tenant })).await.expect(200);
    }

    /// Enrols and confirms TOTP from `tokens`' session: the secret and the recovery codes.
    async fn enable_totp(&self, tokens: &Tokens) -> (TotpSecret, Vec<String>) {
        let enroll = self.at("/mfa/totp/enroll");
        let wrong = json!({ "password": "Wrong-Password-1" }).to_string();
        let answer = self.send(Method::Post, &enroll, Some(&tokens.access), Some(wrong), &[]).await;
        answer.expect_error(400, "invalid_credentials");
        let answer = self.send(Method::Post, &enroll, Some(&tokens.access), Some(password()), &[]).await;
        answer.expect(200);
        assert_eq!(answer.cache_control.as_deref(), Some("no-store"), "{answer}");
        let uri = answer.str("/otpauth_uri");
        assert!(uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={}", answer.str("/secret"))));
        let secret = TotpSecret::from_base32(answer.str("/secret")).unwrap_or_else(|| panic!("base32: {answer}"));
        let confirm = |code: String| json!({ "code": code });
        let wrong = self.post("/mfa/totp/confirm", Some(&tokens.access), &confirm(code(&secret, 9))).await;
        wrong.expect_error(400, "invalid_code");
        let answer = self.post("/mfa/totp/confirm", Some(&tokens.access), &confirm(code(&secret, 0))).await;
        answer.expect(200);
        let codes: Vec<String> = answer
            .get("/recovery_codes")
            .as_array()
            .unwrap_or_else(|| panic!("ten recovery codes: {answer}"))
            .iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        assert_eq!(codes.len(), 10, "{answer}");
        (secret, codes)
    }

    /// A correct password of a user with a second factor: `403 mfa_required`
    /// with the `mfa_token` and the methods in the error object.
    async fn password_step(&self, user: &TestUser) -> String {
        let answer = self.post("/login", None, &json!({ "email": user.email, "password": user.password })).await;
        answer.expect_error(403, "mfa_required");
        assert_eq!(answer.get("/error/methods"), &json!(["totp", "recovery_code"]), "{answer}");
        answer.str("/error/mfa_token").to_owned()
    }
}

fn password() -> String {
    json!({ "password": PASSWORD }).to_string()
}
