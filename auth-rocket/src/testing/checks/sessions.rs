//! Sign-in, bearer tokens, refresh rotation, sign-out and sessions.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rocket::http::Method;
use serde_json::json;
use uuid::Uuid;

use crate::testing::{
    Conformance, FULL_NAME, NEW_PASSWORD, Tokens, assert_bearer_challenge,
    tokens::{assert_same_sign_in, b64_json, jwt_part},
};

impl Conformance {
    /// `POST /login`: 200 `{access, refresh, token_type: "Bearer", expires_in}`
    /// with an RFC 9068 access token without PII that says how and when the
    /// user signed in (`amr: ["pwd"]`, `auth_time`); an unknown email and a
    /// wrong password get identical 401 answers.
    pub async fn login(&self) {
        let user = self.verified_user("login").await;
        let answer = self.post("/login", None, &json!({ "email": user.email, "password": user.password })).await;
        answer.expect(200);
        assert_eq!(answer.cache_control.as_deref(), Some("no-store"), "token answers are never cached (RFC 6749 5.1)");
        assert_eq!(answer.str("/token_type"), "Bearer", "{answer}");
        let expires_in = answer.get("/expires_in").as_u64().unwrap_or_else(|| panic!("expires_in: {answer}"));
        assert!((1..=900).contains(&expires_in), "access tokens live at most 15 minutes: {answer}");
        let tokens = Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() };
        assert_ne!(tokens.access, tokens.refresh, "{answer}");
        let header = tokens.header();
        assert_eq!(header["typ"], json!("at+jwt"), "typ of an access token (RFC 9068): {header}");
        assert!(header["kid"].is_string(), "a kid: {header}");
        assert!(!matches!(header["alg"].as_str(), None | Some("none")), "a real alg: {header}");
        let claims = tokens.claims();
        assert_eq!(claims["sub"], json!(user.id), "sub is the user id: {claims}");
        for claim in ["iss", "aud", "iat", "exp", "jti", "sid", "amr", "auth_time"] {
            assert!(!claims[claim].is_null(), "claim {claim} missing: {claims}");
        }
        assert_eq!(claims["amr"], json!(["pwd"]), "a password sign-in (RFC 8176): {claims}");
        let signed_in = claims["auth_time"].as_i64().unwrap_or_else(|| panic!("auth_time in seconds: {claims}"));
        let issued = claims["iat"].as_i64().unwrap_or_else(|| panic!("iat in seconds: {claims}"));
        assert!((issued - 60..=issued).contains(&signed_in), "auth_time is the sign-in's, just now: {claims}");
        let payload = claims.to_string();
        assert!(!payload.contains(&user.email) && !payload.contains(FULL_NAME), "no PII in tokens: {claims}");

        // The address is matched case-insensitively.
        let upper = json!({ "email": user.email.to_uppercase(), "password": user.password });
        self.post("/login", None, &upper).await.expect(200);

        let wrong = self.post("/login", None, &json!({ "email": user.email, "password": NEW_PASSWORD })).await;
        wrong.expect_error(401, "invalid_credentials");
        let unknown_email = self.unique_email("unknown");
        let unknown = self.post("/login", None, &json!({ "email": unknown_email, "password": NEW_PASSWORD })).await;
        unknown.expect_error(401, "invalid_credentials");
        assert_eq!(wrong.json, unknown.json, "unknown email and wrong password must look the same");
        assert_eq!(wrong.www_authenticate, unknown.www_authenticate, "same headers too");

        self.post("/login", None, &json!({ "email": user.email })).await.expect_invalid("password");
        let bad_tenant = json!({ "email": user.email, "password": user.password, "tenant_id": "not-a-uuid" });
        self.post("/login", None, &bad_tenant).await.expect(422);
        self.post_raw("/login", None, "{").await.expect(400);
    }

    /// Bearer handling (RFC 6750): a missing token is 401 with
    /// `WWW-Authenticate: Bearer`; garbage, tampered, `alg: none` and
    /// algorithm-confused tokens and refresh tokens are 401 with
    /// `Bearer error="invalid_token"`; a token in the query string is ignored.
    pub async fn bearer_tokens(&self) {
        let user = self.verified_user("bearer").await;
        let tokens = self.sign_in(&user).await;
        assert!(self.access_works(&tokens.access).await);

        let missing = self.get("/me", None).await;
        missing.expect(401);
        assert_bearer_challenge(&missing, None);
        let basic =
            self.send(Method::Get, &self.at("/me"), None, None, &[("Authorization", "Basic dXNlcjpwYXNz")]).await;
        basic.expect(401);
        assert_bearer_challenge(&basic, None);

        for (label, token) in self.forged_tokens(&tokens.access).await {
            let answer = self.get("/me", Some(&token)).await;
            assert_eq!(answer.status, 401, "a {label} access token must be refused: {answer}");
            assert_bearer_challenge(&answer, Some("invalid_token"));
        }
        let refresh_as_bearer = self.get("/me", Some(&tokens.refresh)).await;
        refresh_as_bearer.expect(401);
        assert_bearer_challenge(&refresh_as_bearer, Some("invalid_token"));
        let empty = self.send(Method::Get, &self.at("/me"), None, None, &[("Authorization", "Bearer ")]).await;
        empty.expect(401);
        // Exactly one token: a genuine one split by a space, followed by a
        // non-ASCII space, or sent twice is refused.
        let (head, tail) = tokens.access.split_at(20);
        let bearer = format!("Bearer {}", tokens.access);
        for headers in [
            vec![("Authorization", format!("Bearer {head} {tail}"))],
            vec![("Authorization", format!("{bearer}\u{a0}"))],
            vec![("Authorization", bearer.clone()), ("Authorization", bearer.clone())],
        ] {
            let headers: Vec<(&'static str, &str)> =
                headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
            let answer = self.send(Method::Get, &self.at("/me"), None, None, &headers).await;
            assert_eq!(answer.status, 401, "{headers:?} must be refused: {answer}");
            assert_bearer_challenge(&answer, Some("invalid_token"));
        }

        for parameter in ["access_token", "token", "access", "jwt"] {
            let uri = self.at(&format!("/me?{parameter}={}", tokens.access));
            let answer = self.send(Method::Get, &uri, None, None, &[]).await;
            assert_eq!(answer.status, 401, "a token in the query string must be ignored: {answer}");
            assert_bearer_challenge(&answer, None);
        }

        // A refused token changes nothing; the real one still works.
        let forged_logout = self.post_empty("/logout-all", Some("garbage")).await;
        forged_logout.expect(401);
        assert_bearer_challenge(&forged_logout, Some("invalid_token"));
        assert!(self.access_works(&tokens.access).await, "the genuine token still works");
        assert!(self.refresh_works(&tokens.refresh).await, "the genuine session still works");
    }

    /// Variants of a genuine access token that a verifier must refuse.
    pub(in crate::testing) async fn forged_tokens(&self, access: &str) -> Vec<(&'static str, String)> {
        let parts: Vec<&str> = access.split('.').collect();
        assert_eq!(parts.len(), 3, "an access token is a compact JWS: {access}");
        let header = jwt_part(access, 0);
        let mut claims = jwt_part(access, 1);
        let kid = header["kid"].as_str().unwrap_or_default().to_owned();

        let mut elevated = claims.clone();
        elevated["sub"] = json!(Uuid::new_v4().to_string());
        elevated["staff"] = json!(true);
        elevated["superuser"] = json!(true);
        let tampered = format!("{}.{}.{}", parts[0], b64_json(&elevated), parts[2]);

        let none_header = json!({ "alg": "none", "typ": "at+jwt", "kid": kid });
        let alg_none = format!("{}.{}.", b64_json(&none_header), parts[1]);
        let none_signed = format!("{}.{}.{}", b64_json(&none_header), parts[1], parts[2]);

        // HS256 keyed with public key material: the classic algorithm confusion.
        let jwks = self.get("/jwks.json", None).await;
        let public = jwks.json.pointer("/keys/0/n").or_else(|| jwks.json.pointer("/keys/0/x")).cloned();
        let secret = public.and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "public".into());
        let mut hs_header = Header::new(Algorithm::HS256);
        hs_header.kid = Some(kid.clone());
        hs_header.typ = Some("at+jwt".into());
        let confused = jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(secret.as_bytes()))
            .expect("sign a forged HS256 token");

        // Signed by a key the platform never issued, under its kid.
        let mut stranger = Header::new(Algorithm::HS256);
        stranger.kid = Some(kid.clone());
        let foreign = jsonwebtoken::encode(&stranger, &claims, &EncodingKey::from_secret(b"an attacker's own secret"))
            .expect("sign a foreign token");

        // A `jwk` header pointing at the attacker's key must not be consulted.
        let mut embedded = header.clone();
        embedded["jwk"] = json!({ "kty": "oct", "k": URL_SAFE_NO_PAD.encode("attacker") });
        embedded["jku"] = json!("https://evil.example/jwks.json");
        let with_jku = format!("{}.{}.{}", b64_json(&embedded), parts[1], parts[2]);

        let unknown_kid = {
            let mut h = header.clone();
            h["kid"] = json!("no-such-key");
            format!("{}.{}.{}", b64_json(&h), parts[1], parts[2])
        };
        claims["exp"] = json!(1);
        let expired = format!("{}.{}.{}", parts[0], b64_json(&claims), parts[2]);
        vec![
            ("garbage", "garbage".to_owned()),
            ("truncated", access[..access.len() - 8].to_owned()),
            ("two-part", format!("{}.{}", parts[0], parts[1])),
            ("tampered", tampered),
            ("alg-none", alg_none),
            ("alg-none with a signature", none_signed),
            ("HS256 with the public key", confused),
            ("foreign-key", foreign),
            ("jwk/jku header", with_jku),
            ("unknown-kid", unknown_kid),
            ("tampered-exp", expired),
        ]
    }

    /// `POST /refresh` rotates: a new pair of the same session, which says
    /// the sign-in's `amr` and `auth_time` unchanged, the old refresh token
    /// consumed; presenting it again is 401 `token_reused` and kills its
    /// successor; an access token is never a refresh token.
    pub async fn refresh_rotation(&self) {
        let user = self.verified_user("refresh").await;
        let first = self.sign_in(&user).await;
        let answer = self.post("/refresh", None, &json!({ "refresh": first.refresh })).await;
        answer.expect(200);
        assert_eq!(answer.str("/token_type"), "Bearer", "{answer}");
        assert!(answer.get("/expires_in").is_u64(), "{answer}");
        let second = Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() };
        assert_ne!(second.refresh, first.refresh, "rotation returns a new refresh token");
        assert_eq!(second.claims()["sid"], first.claims()["sid"], "the same session (token family)");
        assert_same_sign_in(&first, &second, "a refresh");
        assert!(self.access_works(&second.access).await);
        let third = self.refreshed(&second.refresh).await;

        let reuse = self.post("/refresh", None, &json!({ "refresh": first.refresh })).await;
        reuse.expect_error(401, "token_reused");
        let successor = self.post("/refresh", None, &json!({ "refresh": third.refresh })).await;
        assert_eq!(successor.status, 401, "reuse revokes the whole family, successor included: {successor}");

        self.post("/refresh", None, &json!({ "refresh": "not-a-refresh-token" }))
            .await
            .expect_error(401, "invalid_token");
        let fresh = self.sign_in(&user).await;
        let access_as_refresh = self.post("/refresh", None, &json!({ "refresh": fresh.access })).await;
        access_as_refresh.expect_error(401, "invalid_token");
        self.post("/refresh", None, &json!({})).await.expect_invalid("refresh");
    }

    /// Two concurrent refreshes with the same token: exactly one succeeds,
    /// the other is refused (the contract's rotation rule).
    pub async fn concurrent_refresh(&self) {
        let user = self.verified_user("race").await;
        for _ in 0..3 {
            let tokens = self.sign_in(&user).await;
            let body = json!({ "refresh": tokens.refresh });
            let (a, b) = tokio::join!(self.post("/refresh", None, &body), self.post("/refresh", None, &body));
            if a.status == 200 && b.status == 200 {
                let how = if a.str("/refresh") == b.str("/refresh") {
                    "both got the same successor, as if a reuse grace window applied"
                } else {
                    "with different successors: two live branches of one family"
                };
                panic!("two concurrent refreshes with one token both succeeded, {how}:\n{a}\n{b}");
            }
            let wins = [&a, &b].iter().filter(|answer| answer.status == 200).count();
            assert_eq!(wins, 1, "of two concurrent refreshes exactly one succeeds:\n{a}\n{b}");
            let loser = if a.status == 200 { &b } else { &a };
            assert_eq!(loser.status, 401, "the other one is refused: {loser}");
        }
    }

    /// `POST /logout`: 204, that session's refresh and access tokens die;
    /// another user's refresh token is 403 and stays alive; no bearer is 401.
    pub async fn logout(&self) {
        let user = self.verified_user("logout").await;
        let kept = self.sign_in(&user).await;
        let ended = self.sign_in(&user).await;
        // Verified once, so the revocation below must hold on a cache hit.
        assert!(self.access_works(&ended.access).await);
        let answer = self.post("/logout", Some(&ended.access), &json!({ "refresh": ended.refresh })).await;
        answer.expect(204);
        assert!(!self.refresh_works(&ended.refresh).await, "the logged-out refresh token is dead");
        assert!(!self.access_works(&ended.access).await, "the logged-out session's access token is dead");
        assert!(self.access_works(&kept.access).await, "another session of the user is untouched");

        let other = self.verified_user("logout-other").await;
        let theirs = self.sign_in(&other).await;
        let foreign = self.post("/logout", Some(&kept.access), &json!({ "refresh": theirs.refresh })).await;
        foreign.expect(403);
        assert!(self.access_works(&theirs.access).await, "another user's session is not revoked");
        assert!(self.refresh_works(&theirs.refresh).await, "another user's refresh token is not revoked");

        let anonymous = self.post("/logout", None, &json!({ "refresh": kept.refresh })).await;
        anonymous.expect(401);
        assert_bearer_challenge(&anonymous, None);
        assert!(self.refresh_works(&kept.refresh).await, "an anonymous logout revokes nothing");
    }

    /// `POST /logout-all`: 204, and the access and refresh tokens of every
    /// session of the user die.
    pub async fn logout_all(&self) {
        let user = self.verified_user("logout-all").await;
        let sessions = [self.sign_in(&user).await, self.sign_in(&user).await, self.sign_in(&user).await];
        let bystander = self.verified_user("logout-all-other").await;
        let theirs = self.sign_in(&bystander).await;

        self.post_empty("/logout-all", Some(&sessions[1].access)).await.expect(204);
        for (i, session) in sessions.iter().enumerate() {
            assert!(!self.access_works(&session.access).await, "session {i}'s access token still works");
            assert!(!self.refresh_works(&session.refresh).await, "session {i}'s refresh token still works");
        }
        assert!(self.access_works(&theirs.access).await, "other users are untouched");
        self.sign_in(&user).await; // logging in again works
        self.post_empty("/logout-all", None).await.expect(401);
    }

    /// `GET /sessions` lists the caller's live sessions, the current one
    /// marked; `DELETE /sessions/<id>` revokes one (204); someone else's id,
    /// an unknown id and a malformed id are 404.
    pub async fn sessions(&self) {
        let user = self.verified_user("sessions").await;
        let mine = self.sign_in(&user).await;
        let other_device = self.sign_in(&user).await;
        let answer = self.get("/sessions", Some(&mine.access)).await;
        answer.expect(200);
        let sessions = answer.get("").as_array().unwrap_or_else(|| panic!("a list: {answer}")).clone();
        assert_eq!(sessions.len(), 2, "both sessions are listed: {answer}");
        for session in &sessions {
            for key in ["id", "created_at", "last_used_at", "ip", "user_agent", "current"] {
                assert!(session.get(key).is_some(), "session member {key} missing: {answer}");
            }
        }
        let current = self.current_session(&mine.access).await;
        assert_eq!(json!(current), mine.claims()["sid"], "`current` marks the caller's session: {answer}");
        let other_id = sessions
            .iter()
            .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
            .find(|id| *id != current)
            .unwrap_or_else(|| panic!("two distinct session ids: {answer}"));

        let stranger = self.verified_user("sessions-stranger").await;
        let theirs = self.sign_in(&stranger).await;
        let their_id = self.current_session(&theirs.access).await;
        self.delete(&format!("/sessions/{their_id}"), Some(&mine.access)).await.expect(404);
        assert!(self.access_works(&theirs.access).await, "someone else's session is not revoked");
        self.delete(&format!("/sessions/{}", Uuid::new_v4()), Some(&mine.access)).await.expect(404);
        self.delete("/sessions/not-a-session-id", Some(&mine.access)).await.expect(404);
        self.delete(&format!("/sessions/{other_id}"), None).await.expect(401);

        self.delete(&format!("/sessions/{other_id}"), Some(&mine.access)).await.expect(204);
        assert!(!self.access_works(&other_device.access).await, "the revoked session's access token is dead");
        assert!(!self.refresh_works(&other_device.refresh).await, "the revoked session's refresh token is dead");
        let after = self.get("/sessions", Some(&mine.access)).await;
        after.expect(200);
        assert_eq!(after.get("").as_array().map(Vec::len), Some(1), "one session left: {after}");
        self.delete(&format!("/sessions/{other_id}"), Some(&mine.access)).await.expect(404);
        self.get("/sessions", None).await.expect(401);
    }
}
