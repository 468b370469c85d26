//! HTTP itself: error bodies for every bad input, 405 with `Allow`, trailing slashes.

use rocket::http::Method;
use serde_json::json;
use uuid::Uuid;

use crate::testing::{Conformance, FULL_NAME, PASSWORD, TestUser};

impl Conformance {
    /// Every error answer, whatever the client sends, has the contract's body
    /// and is never a 500.
    pub async fn error_bodies(&self) {
        let user = self.verified_user("errors").await;
        let tokens = self.sign_in(&user).await;
        let bearer = Some(tokens.access.as_str());
        let uuid = Uuid::new_v4().to_string();
        let oversized_token = "x".repeat(8000);
        let requests: Vec<(Method, String, Option<&str>, Option<String>)> = vec![
            (Method::Get, self.at("/no-such-endpoint"), None, None),
            (Method::Get, self.at("/login"), None, None),
            (Method::Delete, self.at("/register"), bearer, None),
            (Method::Post, self.at("/login"), None, None),
            (Method::Post, self.at("/login"), None, Some("[]".into())),
            (Method::Post, self.at("/login"), None, Some("null".into())),
            (Method::Post, self.at("/login"), None, Some(r#"{"email": ["a"], "password": {}}"#.into())),
            (Method::Post, self.at("/login"), None, Some("\u{0}\u{1}binary".into())),
            (
                Method::Post,
                self.at("/login"),
                None,
                Some(format!(r#"{{"email": "{}", "password": "x"}}"#, "a".repeat(5000))),
            ),
            (
                Method::Post,
                self.at("/login"),
                None,
                Some(format!(r#"{{"email": "a@example.com", "password": "{}"}}"#, "p".repeat(4000))),
            ),
            (Method::Post, self.at("/refresh"), None, Some(r#"{"refresh": 12}"#.into())),
            (Method::Post, self.at("/refresh"), None, Some(format!(r#"{{"refresh": "{}"}}"#, "r".repeat(10_000)))),
            (Method::Post, self.at("/verify-email"), None, Some(r#"{"token": ""}"#.into())),
            (Method::Post, self.at("/password/reset"), None, Some(r#"{"email": "not an email"}"#.into())),
            (Method::Post, self.at("/password/reset/confirm"), None, Some(r#"{"token": "x"}"#.into())),
            (Method::Patch, self.at("/me/profile"), bearer, Some(r#"{"full_name": 7}"#.into())),
            (
                Method::Patch,
                self.at("/me/profile"),
                bearer,
                Some(format!(r#"{{"full_name": "{}"}}"#, "n".repeat(5000))),
            ),
            (Method::Post, self.at("/tenants"), bearer, Some(format!(r#"{{"name": "{}"}}"#, "t".repeat(5000)))),
            (Method::Get, self.at(&format!("/tenants/{uuid}/members")), bearer, None),
            (Method::Get, self.at("/tenants/%00%ff/members"), bearer, None),
            (Method::Delete, self.at(&format!("/tenants/{uuid}/members/{uuid}")), bearer, None),
            (Method::Delete, self.at("/sessions/%27%20OR%201=1--"), bearer, None),
            (Method::Post, self.at("/token/tenant"), bearer, Some(r#"{"tenant_id": null}"#.into())),
            (Method::Get, self.at("/me"), Some("a.b.c"), None),
            (Method::Get, self.at("/me"), Some(&oversized_token), None),
        ];
        for (method, uri, bearer, body) in requests {
            let answer = self.send(method, &uri, bearer, body, &[]).await;
            // `send` has checked the body of every error; these must all be errors.
            assert!(answer.status >= 400, "expected an error answer: {answer}");
        }
    }

    /// A path of the contract asked with a method it does not take: `405`
    /// with the contract's body and `Allow` listing the methods it takes;
    /// an unknown path stays `404`, and so does a route's own 404.
    pub async fn method_not_allowed(&self) {
        let session = format!("/sessions/{}", Uuid::new_v4());
        let members = format!("/tenants/{}/members", Uuid::new_v4());
        let invitations = format!("/tenants/{}/invitations", Uuid::new_v4());
        let cases = [
            (Method::Put, "/login", "POST"),
            (Method::Get, "/login", "POST"),
            (Method::Put, "/me", "GET, HEAD, DELETE"),
            (Method::Post, "/me", "GET, HEAD, DELETE"),
            (Method::Post, "/me/profile", "PATCH"),
            (Method::Get, "/me/email", "POST"),
            (Method::Get, session.as_str(), "DELETE"),
            (Method::Post, members.as_str(), "GET, HEAD"),
            (Method::Put, invitations.as_str(), "GET, HEAD, POST"),
            (Method::Get, "/invitations/accept", "POST"),
            (Method::Patch, "/verify-email", "GET, HEAD, POST"),
        ];
        for (method, path, allow) in cases {
            let answer = self.send(method, &self.at(path), None, None, &[]).await;
            answer.expect_error(405, "method_not_allowed");
            assert_eq!(answer.allow.as_deref(), Some(allow), "{answer}");
        }
        self.send(Method::Put, &self.at("/no-such-endpoint"), None, None, &[]).await.expect_error(404, "not_found");
        let unknown_provider = self.at("/oauth/no-such-provider/authorize");
        self.send(Method::Get, &unknown_provider, None, None, &[]).await.expect_error(404, "not_found");
    }

    /// The seed's paths end in a slash: `<base>/register/`, `<base>/login/`,
    /// … behave like their slash-less forms.
    pub async fn trailing_slashes(&self) {
        let email = self.unique_email("slash");
        let body = json!({ "email": email, "password": PASSWORD, "full_name": FULL_NAME });
        let registered = self.post("/register/", None, &body).await;
        registered.expect(201);
        let user =
            TestUser { id: registered.str("/id").to_owned(), email: email.clone(), password: PASSWORD.to_owned() };
        let token = self.wait_for_mail(&email, 0).await.token();
        self.post("/verify-email/", None, &json!({ "token": token })).await.expect(200);
        let login = self.post("/login/", None, &json!({ "email": email, "password": PASSWORD })).await;
        login.expect(200);
        let access = login.str("/access").to_owned();
        let refresh = login.str("/refresh").to_owned();
        let me = self.get("/me/", Some(&access)).await;
        me.expect(200);
        assert_eq!(me.str("/id"), user.id, "{me}");
        self.get("/sessions/", Some(&access)).await.expect(200);
        self.get("/tenants/", Some(&access)).await.expect(200);
        self.get("/jwks.json/", None).await.expect(200);
        self.get("/me/", None).await.expect(401);
        let rotated = self.post("/refresh/", None, &json!({ "refresh": refresh })).await;
        rotated.expect(200);
        self.post_empty("/logout-all/", Some(rotated.str("/access"))).await.expect(204);
    }
}
