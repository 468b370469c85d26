//! Passkeys over HTTP, as far as a kit without an authenticator can drive
//! them: the options' shape (user verification required, a discoverable
//! credential), single-use challenges, refused credentials, and 404 on every
//! passkey route of a deployment without a relying party. Real ceremonies
//! with a software authenticator are the platform's own suites
//! (`tests/passkeys.rs`, `auth-core/tests/passkeys.rs`).

use rocket::http::Method;
use serde_json::json;

use crate::testing::Conformance;

impl Conformance {
    /// `POST /webauthn/register/start` and `/webauthn/login/start` answer
    /// WebAuthn options; a made-up credential is `400 invalid_code`, an
    /// unknown challenge `400 invalid_token`; `GET /webauthn/credentials`
    /// lists none; removing an unknown passkey is `404`. With passkeys off,
    /// each of these is `404`.
    pub async fn passkeys(&self) {
        let user = self.verified_user("passkeys").await;
        let tokens = self.sign_in(&user).await;
        let bearer = Some(tokens.access.as_str());
        let start = self.post("/webauthn/login/start", None, &json!({})).await;
        if start.status == 404 {
            self.post_empty("/webauthn/register/start", bearer).await.expect(404);
            self.get("/webauthn/credentials", bearer).await.expect(404);
            return;
        }
        start.expect(200);
        assert_eq!(start.cache_control.as_deref(), Some("no-store"), "{start}");
        assert_eq!(start.get("/publicKey/userVerification"), "required", "{start}");
        assert!(start.get("/publicKey/challenge").is_string(), "{start}");
        let challenge_id = start.str("/challenge_id").to_owned();
        let made_up = json!({ "challenge_id": challenge_id, "credential": { "id": "AAAA", "rawId": "AAAA" } });
        self.post("/webauthn/login/finish", None, &made_up).await.expect_error(400, "invalid_code");
        // That attempt spent the challenge.
        self.post("/webauthn/login/finish", None, &made_up).await.expect_error(400, "invalid_token");
        let unknown = json!({ "challenge_id": "00000000-0000-4000-8000-000000000000", "credential": {} });
        self.post("/webauthn/login/finish", None, &unknown).await.expect_error(400, "invalid_token");

        self.post_empty("/webauthn/register/start", None).await.expect(401);
        let options = self.post_empty("/webauthn/register/start", bearer).await;
        options.expect(200);
        assert_eq!(options.get("/publicKey/authenticatorSelection/userVerification"), "required", "{options}");
        assert_eq!(options.get("/publicKey/authenticatorSelection/residentKey"), "required", "{options}");
        assert!(options.get("/publicKey/rp/id").is_string(), "{options}");
        let made_up = json!({ "credential": { "id": "AAAA" }, "name": "made up" });
        self.post("/webauthn/register/finish", bearer, &made_up).await.expect_error(400, "invalid_code");
        self.post("/webauthn/register/finish", bearer, &made_up).await.expect_error(400, "invalid_token");

        let listed = self.get("/webauthn/credentials", bearer).await;
        listed.expect(200);
        assert_eq!(listed.json, json!([]), "{listed}");
        let uri = self.at("/webauthn/credentials/00000000-0000-4000-8000-000000000000");
        let password = json!({ "password": user.password }).to_string();
        self.send(Method::Delete, &uri, bearer, Some(password), &[]).await.expect(404);
    }
}
