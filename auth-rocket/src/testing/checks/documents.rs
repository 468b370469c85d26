//! The published documents: the JSON Web Key Set and the OpenAPI document.

use rocket::http::Method;
use serde_json::json;

use crate::testing::Conformance;

impl Conformance {
    /// `<base>/jwks.json` and `/.well-known/jwks.json` publish the same public
    /// keys (`kid`, `alg`, `use: "sig"`, no private members), and a stock JWT
    /// library verifies an issued access token with them alone and reads the
    /// contract's claims from it.
    pub async fn jwks(&self) {
        let mounted = self.get("/jwks.json", None).await;
        mounted.expect(200);
        let well_known = self.send(Method::Get, "/.well-known/jwks.json", None, None, &[]).await;
        well_known.expect(200);
        assert_eq!(mounted.json, well_known.json, "both JWKS documents are the same");
        let keys = mounted.get("/keys").as_array().unwrap_or_else(|| panic!("`keys` is a list: {mounted}"));
        assert!(!keys.is_empty(), "at least one public key: {mounted}");
        for key in keys {
            assert!(key["kid"].is_string() && key["alg"].is_string(), "each key has kid and alg: {key}");
            assert_eq!(key["use"], json!("sig"), "{key}");
            for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
                assert!(key.get(private).is_none(), "private member {private:?} published: {key}");
            }
        }

        let user = self.verified_user("jwks").await;
        let tokens = self.sign_in(&user).await;
        let claims = self
            .verify_with_jwks(&tokens.access)
            .await
            .unwrap_or_else(|e| panic!("a stock JWT library must verify an access token with the JWKS alone: {e}"));
        assert_eq!(claims["sub"], json!(user.id), "{claims}");
        for claim in ["iss", "aud", "iat", "nbf", "exp", "jti", "sid", "auth_time"] {
            assert!(!claims[claim].is_null(), "claim {claim} missing: {claims}");
        }
        assert_eq!(claims["amr"], json!(["pwd"]), "{claims}");
        let header = tokens.header();
        let published = keys.iter().find(|k| k["kid"] == header["kid"]).expect("the signing key is published");
        assert_eq!(published["alg"], header["alg"], "the JWK's alg is the token's: {published}");
        for (label, forged) in self.forged_tokens(&tokens.access).await {
            assert!(self.verify_with_jwks(&forged).await.is_err(), "a {label} token must not verify");
        }
    }

    /// `<base>/openapi.json` is an OpenAPI 3 document listing `<base>/login`.
    pub async fn openapi(&self) {
        let answer = self.get("/openapi.json", None).await;
        answer.expect(200);
        assert!(answer.str("/openapi").starts_with("3."), "OpenAPI 3.x: {answer}");
        let paths = answer.get("/paths").as_object().unwrap_or_else(|| panic!("`paths` is an object: {answer}"));
        let login =
            paths.get(&self.at("/login")).unwrap_or_else(|| panic!("{} is listed: {answer}", self.at("/login")));
        assert!(login.get("post").is_some(), "POST {} is described: {login}", self.at("/login"));
        for path in ["/register", "/refresh", "/me", "/jwks.json"] {
            assert!(paths.contains_key(&self.at(path)), "{} is listed", self.at(path));
        }
    }
}
