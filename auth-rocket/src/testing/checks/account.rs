//! Registration, email verification, the profile, password change and reset.

use rocket::http::Method;
use serde_json::json;
use uuid::Uuid;

use crate::testing::{Conformance, FULL_NAME, NEW_PASSWORD, OVERSIZED_BODY_BYTES, PASSWORD, TestUser, WEAK_PASSWORD};

impl Conformance {
    /// `POST /register`: 201 with the contract's shape and a normalised email,
    /// a verification email, 409 for the same address in another case, 422
    /// with `fields` for a bad email, a weak password or a missing field, 400
    /// for malformed JSON and 413 for a body over the limit.
    pub async fn registration(&self) {
        let email = self.unique_email("register");
        let shouted = format!("  {}  ", email.to_uppercase());
        let body =
            json!({ "email": shouted, "password": PASSWORD, "full_name": FULL_NAME, "phone": "+1 415 555 0100" });
        let answer = self.post("/register", None, &body).await;
        answer.expect(201);
        assert!(answer.str("/id").parse::<Uuid>().is_ok(), "`id` is a UUID: {answer}");
        assert_eq!(answer.str("/email"), email, "the email is trimmed and lower-cased: {answer}");
        assert_eq!(answer.get("/email_verified"), &json!(false), "{answer}");
        assert_eq!(answer.str("/profile/full_name"), FULL_NAME, "{answer}");
        assert_eq!(answer.str("/profile/phone"), "+1 415 555 0100", "{answer}");
        let lower = answer.text.to_lowercase();
        assert!(!answer.text.contains(PASSWORD) && !lower.contains("hash"), "no password material: {answer}");
        let mail = self.wait_for_mail(&email, 0).await;
        assert!(mail.token().len() >= 16, "the verification email carries a token: {mail:?}");

        let again = json!({ "email": email.to_uppercase(), "password": NEW_PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &again).await.expect_error(409, "email_taken");

        let bad_email = json!({ "email": "not-an-email", "password": PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &bad_email).await.expect_invalid("email");

        let weak_email = self.unique_email("weak");
        let weak = json!({ "email": weak_email, "password": WEAK_PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &weak).await.expect_invalid("password");
        // Nothing was stored for the refused registration.
        let fixed = json!({ "email": weak_email, "password": PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &fixed).await.expect(201);

        let missing = json!({ "email": self.unique_email("missing"), "password": PASSWORD });
        self.post("/register", None, &missing).await.expect_invalid("full_name");
        let wrong_type = json!({ "email": 42, "password": PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &wrong_type).await.expect_invalid("email");

        for malformed in [r#"{"email": "#, "not json at all", r#"{"email": "a@example.com",}"#] {
            let answer = self.post_raw("/register", None, malformed).await;
            answer.expect(400);
            answer.assert_error_body();
        }

        let huge = format!(
            r#"{{"email": "{}", "password": "{}", "full_name": "{FULL_NAME}"}}"#,
            self.unique_email("huge"),
            "x".repeat(OVERSIZED_BODY_BYTES)
        );
        let answer = self.post_raw("/register", None, &huge).await;
        answer.expect(413);
        answer.assert_error_body();
    }

    /// Email verification through the token actually mailed: POST and the GET
    /// link page, single use, resend, links not built from the request's
    /// `Host`; an unverified account gets 403 `email_not_verified` only after a
    /// correct password.
    pub async fn email_verification(&self) {
        // Registered through a request that lies about the host.
        let email = self.unique_email("verify");
        let body = json!({ "email": email, "password": PASSWORD, "full_name": FULL_NAME });
        let headers = [("Host", "evil.example"), ("X-Forwarded-Host", "evil.example")];
        self.send(Method::Post, &self.at("/register"), None, Some(body.to_string()), &headers).await.expect(201);
        let user = TestUser { id: String::new(), email: email.clone(), password: PASSWORD.to_owned() };
        let first = self.wait_for_mail(&email, 0).await;
        assert!(
            !first.text.contains("evil.example"),
            "email links must come from the configured public URL: {first:?}"
        );

        let wrong = self.post("/login", None, &json!({ "email": email, "password": NEW_PASSWORD })).await;
        wrong.expect_error(401, "invalid_credentials");
        let right = self.post("/login", None, &json!({ "email": email, "password": PASSWORD })).await;
        right.expect_error(403, "email_not_verified");

        // A resend answers the same whether or not the account exists, and mails a new link.
        let known = self.post("/verify-email/resend", None, &json!({ "email": email })).await;
        known.expect(202);
        let unknown = self.post("/verify-email/resend", None, &json!({ "email": self.unique_email("nobody") })).await;
        unknown.expect(202);
        assert_eq!(known.text, unknown.text, "resend must not reveal whether an account exists");
        let token = self.wait_for_mail(&email, 1).await.token();

        let answer = self.post("/verify-email", None, &json!({ "token": token })).await;
        answer.expect(200);
        assert_eq!(answer.json, json!({ "email_verified": true }), "{answer}");
        self.post("/verify-email", None, &json!({ "token": token })).await.expect_error(400, "invalid_token");
        self.post("/verify-email", None, &json!({ "token": "not-a-real-token" }))
            .await
            .expect_error(400, "invalid_token");
        self.post("/verify-email", None, &json!({})).await.expect_invalid("token");
        self.sign_in(&user).await;

        // The link page, as opened from the email.
        let linked = self.register("verify-link").await;
        let token = self.wait_for_mail(&linked.email, 0).await.token();
        let page = self.get(&format!("/verify-email?token={token}"), None).await;
        page.expect(200);
        assert!(page.is_html(), "the link answers an HTML page: {page}");
        let again = self.get(&format!("/verify-email?token={token}"), None).await;
        again.expect(400);
        assert!(again.is_html(), "a used link answers an HTML page: {again}");
        assert!(!again.text.contains(&token), "the page does not echo the token: {again}");
        self.get("/verify-email?token=garbage", None).await.expect(400);
        self.get("/verify-email", None).await.expect(400);
        self.sign_in(&linked).await;
    }

    /// `GET /me` has the contract's shape; `PATCH /me/profile` updates and
    /// answers the profile, 422 on a bad phone number.
    pub async fn profile(&self) {
        let user = self.verified_user("me").await;
        let tokens = self.sign_in(&user).await;
        let me = self.get("/me", Some(&tokens.access)).await;
        me.expect(200);
        assert_eq!(me.str("/id"), user.id, "{me}");
        assert_eq!(me.str("/email"), user.email, "{me}");
        assert_eq!(me.get("/email_verified"), &json!(true), "{me}");
        assert_eq!(me.get("/is_staff"), &json!(false), "{me}");
        assert_eq!(me.get("/is_superuser"), &json!(false), "{me}");
        assert!(me.get("/date_joined").is_string(), "{me}");
        assert_eq!(me.str("/profile/full_name"), FULL_NAME, "{me}");
        assert!(me.get("/profile/phone").is_null(), "{me}");
        assert_eq!(me.get("/memberships"), &json!([]), "{me}");
        assert!(!me.text.contains(PASSWORD) && !me.text.to_lowercase().contains("hash"), "no password material: {me}");

        let update = json!({ "full_name": "Renamed Tester", "phone": "+44 20 7946 0958" });
        let answer = self.patch("/me/profile", Some(&tokens.access), &update).await;
        answer.expect(200);
        assert_eq!(answer.json, update, "the answer is the new profile: {answer}");
        let me = self.get("/me", Some(&tokens.access)).await;
        assert_eq!(me.get("/profile"), &update, "{me}");

        let partial = self.patch("/me/profile", Some(&tokens.access), &json!({ "phone": null })).await;
        partial.expect(200);
        assert_eq!(partial.json, json!({ "full_name": "Renamed Tester", "phone": null }), "{partial}");

        let bad = self.patch("/me/profile", Some(&tokens.access), &json!({ "phone": "call me maybe" })).await;
        bad.expect_invalid("phone");
        let me = self.get("/me", Some(&tokens.access)).await;
        assert!(me.get("/profile/phone").is_null(), "a refused update changes nothing: {me}");
        self.patch("/me/profile", None, &json!({ "full_name": "Nobody" })).await.expect(401);
        self.get("/me", None).await.expect(401);
    }

    /// `POST /password/change`: 400 for a wrong current password, 422 for a
    /// weak new one; 204 then, every other session revoked, the old password
    /// refused.
    pub async fn password_change(&self) {
        let user = self.verified_user("change").await;
        let current = self.sign_in(&user).await;
        let other = self.sign_in(&user).await;

        let wrong = json!({ "current_password": NEW_PASSWORD, "new_password": NEW_PASSWORD });
        self.post("/password/change", Some(&current.access), &wrong).await.expect(400);
        let weak = json!({ "current_password": PASSWORD, "new_password": WEAK_PASSWORD });
        self.post("/password/change", Some(&current.access), &weak).await.expect_invalid("new_password");
        assert!(self.access_works(&other.access).await, "refused changes revoke nothing");
        let change = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
        self.post("/password/change", None, &change).await.expect(401);

        self.post("/password/change", Some(&current.access), &change).await.expect(204);
        assert!(!self.access_works(&other.access).await, "other sessions' access tokens are revoked");
        assert!(!self.refresh_works(&other.refresh).await, "other sessions' refresh tokens are revoked");
        assert!(self.access_works(&current.access).await, "the session that changed it continues");

        let old = self.post("/login", None, &json!({ "email": user.email, "password": PASSWORD })).await;
        old.expect_error(401, "invalid_credentials");
        self.sign_in(&TestUser { password: NEW_PASSWORD.to_owned(), ..user }).await;
    }

    /// Password reset through the mailed token: 202 with the same answer for
    /// an unknown email; confirm 422 for a weak password, 204 then; the token
    /// works once; the old password and every session are dead.
    pub async fn password_reset(&self) {
        let user = self.verified_user("reset").await;
        let before = self.sign_in(&user).await;
        let mails = self.mail_to(&user.email).len();

        let known = self.post("/password/reset", None, &json!({ "email": user.email })).await;
        known.expect(202);
        let unknown = self.post("/password/reset", None, &json!({ "email": self.unique_email("nobody") })).await;
        unknown.expect(202);
        assert_eq!(known.text, unknown.text, "the answer must not reveal whether the account exists");
        let token = self.wait_for_mail(&user.email, mails).await.token();

        let weak = json!({ "token": token, "new_password": WEAK_PASSWORD });
        self.post("/password/reset/confirm", None, &weak).await.expect_invalid("new_password");
        let garbage = json!({ "token": "not-a-reset-token", "new_password": NEW_PASSWORD });
        self.post("/password/reset/confirm", None, &garbage).await.expect_error(400, "invalid_token");
        assert!(self.access_works(&before.access).await, "nothing changed yet");

        let confirm = json!({ "token": token, "new_password": NEW_PASSWORD });
        self.post("/password/reset/confirm", None, &confirm).await.expect(204);
        let reuse = json!({ "token": token, "new_password": "Another-Quite-Long-Passphrase-31" });
        self.post("/password/reset/confirm", None, &reuse).await.expect_error(400, "invalid_token");

        let old = self.post("/login", None, &json!({ "email": user.email, "password": PASSWORD })).await;
        old.expect_error(401, "invalid_credentials");
        assert!(!self.access_works(&before.access).await, "every session's access token is revoked");
        assert!(!self.refresh_works(&before.refresh).await, "every session's refresh token is revoked");
        self.sign_in(&TestUser { password: NEW_PASSWORD.to_owned(), ..user }).await;
    }

    /// `GET /me/export`: everything held about the caller (account, profile,
    /// memberships, sessions, identity links, second factors, their own audit
    /// events), never cached, with no password, hash or token in it, and
    /// nothing of another user; 401 without a token.
    pub async fn account_export(&self) {
        let user = self.verified_user("export").await;
        let tokens = self.sign_in(&user).await;
        let tenant = self.create_tenant(&tokens.access).await;
        let other = self.verified_user("export-other").await;
        self.sign_in(&other).await;

        self.get("/me/export", None).await.expect_error(401, "missing_token");
        let export = self.get("/me/export", Some(&tokens.access)).await;
        export.expect(200);
        assert_eq!(export.cache_control.as_deref(), Some("no-store"), "{export}");
        assert_eq!(export.str("/account/email"), user.email);
        assert_eq!(export.str("/account/id"), user.id);
        assert_eq!(export.str("/account/profile/full_name"), FULL_NAME);
        assert_eq!(export.str("/account/memberships/0/tenant_id"), tenant);
        let sessions = export.get("/sessions").as_array().cloned().unwrap_or_default();
        assert!(sessions.iter().any(|s| s["current"] == json!(true)), "{export}");
        assert_eq!(export.get("/identity_links"), &json!([]));
        assert_eq!(export.get("/mfa_methods"), &json!([]));
        let events: Vec<&str> =
            export.get("/audit_events").as_array().into_iter().flatten().filter_map(|e| e["event"].as_str()).collect();
        for event in ["registered", "email_verified", "login_succeeded", "tenant_created"] {
            assert!(events.contains(&event), "{event} is missing from {events:?}");
        }
        for held_back in [user.password.as_str(), "$argon2", &tokens.access, &tokens.refresh, &other.email, &other.id] {
            assert!(!export.text.contains(held_back), "the export must not hold {held_back:?}: {export}");
        }
    }

    /// `POST /me/email` (202 the same whether the new address is free or
    /// taken; 400 `invalid_credentials` for a wrong password, 422 for a bad
    /// address) and `POST /me/email/confirm` with the token mailed to the new
    /// address (200; single use): the account takes the address, the old one
    /// gets a notice and can reset the password only until the change is
    /// confirmed, and every other session ends.
    pub async fn email_change(&self) {
        let user = self.verified_user("mover").await;
        let asking = self.sign_in(&user).await;
        let other = self.sign_in(&user).await;
        let taken = self.verified_user("mover-taken").await;
        let new_email = self.unique_email("moved");
        let change = |email: &str, password: &str| json!({ "new_email": email, "password": password });

        self.post("/me/email", None, &change(&new_email, PASSWORD)).await.expect_error(401, "missing_token");
        let wrong = self.post("/me/email", Some(&asking.access), &change(&new_email, NEW_PASSWORD)).await;
        wrong.expect_error(400, "invalid_credentials");
        self.post("/me/email", Some(&asking.access), &change("not-an-email", PASSWORD))
            .await
            .expect_invalid("new_email");

        let to_taken = self.post("/me/email", Some(&asking.access), &change(&taken.email, PASSWORD)).await;
        let to_free = self.post("/me/email", Some(&asking.access), &change(&new_email, PASSWORD)).await;
        to_free.expect(202);
        assert_eq!((to_taken.status, &to_taken.json), (to_free.status, &to_free.json), "a taken address answers alike");
        let taken_notice = self.wait_for_mail(&taken.email, 1).await;
        assert!(!taken_notice.text.contains("token="), "a taken address gets no link: {}", taken_notice.text);
        let link = self.wait_for_mail(&new_email, 0).await.token();
        // Two notices to the old address, one per request.
        self.wait_for_mail(&user.email, 2).await;

        // Until it is confirmed, the old address still resets the password.
        let before_reset = self.mail_to(&user.email).len();
        self.post("/password/reset", None, &json!({ "email": user.email })).await.expect(202);
        let reset = self.wait_for_mail(&user.email, before_reset).await.token();

        self.post("/me/email/confirm", None, &json!({ "token": "bogus" })).await.expect_error(400, "invalid_token");
        let confirmed = self.post("/me/email/confirm", None, &json!({ "token": link })).await;
        confirmed.expect(200);
        assert_eq!(confirmed.json, json!({ "email": new_email, "email_verified": true }), "{confirmed}");
        self.wait_for_mail(&user.email, before_reset + 1).await;
        let again = self.post("/me/email/confirm", None, &json!({ "token": link })).await;
        again.expect_error(400, "invalid_token");

        let me = self.get("/me", Some(&asking.access)).await;
        assert_eq!(me.str("/email"), new_email, "the asking session lives on: {me}");
        assert!(!self.access_works(&other.access).await, "the other session is revoked");
        assert!(!self.refresh_works(&other.refresh).await, "the other session is revoked");
        let reset_confirm = json!({ "token": reset, "new_password": NEW_PASSWORD });
        let dead = self.post("/password/reset/confirm", None, &reset_confirm).await;
        dead.expect_error(400, "invalid_token");
        self.post("/login", None, &json!({ "email": user.email, "password": PASSWORD })).await.expect(401);
        self.sign_in(&TestUser { email: new_email, ..user }).await;
    }

    /// `DELETE /me` with the password: 400 `invalid_credentials` for a wrong
    /// one, 409 `last_owner` while the caller is the only owner of a tenant
    /// with other members, otherwise 204: every session ends at once, the
    /// account is gone from its tenants, and its address can sign up again.
    pub async fn account_deletion(&self) {
        let user = self.verified_user("deleted").await;
        let tokens = self.sign_in(&user).await;
        let tenant = self.create_tenant(&tokens.access).await;
        let scoped = self.scoped(&tokens.access, &tenant).await;
        let heir = self.verified_user("heir").await;
        self.join(&scoped.access, &tenant, &heir, &self.roles[2]).await;
        let delete = |password: &str| Some(json!({ "password": password }).to_string());
        let me = self.at("/me");

        self.send(Method::Delete, &me, None, delete(PASSWORD), &[]).await.expect_error(401, "missing_token");
        let wrong = self.send(Method::Delete, &me, Some(&tokens.access), delete(NEW_PASSWORD), &[]).await;
        wrong.expect_error(400, "invalid_credentials");
        let refused = self.send(Method::Delete, &me, Some(&tokens.access), delete(PASSWORD), &[]).await;
        refused.expect_error(409, "last_owner");
        assert!(self.access_works(&tokens.access).await, "a refused deletion changes nothing");

        let heir_role = json!({ "role": self.roles[0] });
        self.patch(&format!("/tenants/{tenant}/members/{}", heir.id), Some(&scoped.access), &heir_role)
            .await
            .expect(200);
        self.send(Method::Delete, &me, Some(&tokens.access), delete(PASSWORD), &[]).await.expect(204);
        assert!(!self.access_works(&tokens.access).await, "its access token stops at once");
        assert!(!self.refresh_works(&tokens.refresh).await, "its refresh token is dead");
        self.post("/login", None, &json!({ "email": user.email, "password": PASSWORD })).await.expect(401);
        let heir_scoped = self.scoped(&self.sign_in(&heir).await.access, &tenant).await;
        let members = self.get(&format!("/tenants/{tenant}/members"), Some(&heir_scoped.access)).await;
        assert!(!members.text.contains(&user.id), "the deleted account left its tenants: {members}");
        let sign_up = json!({ "email": user.email, "password": PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &sign_up).await.expect(201);
    }
}
