//! The seed's end-to-end tests of the demo routes, ported and extended: every
//! request goes through the demo app's real routing and guards, with tokens
//! from its own login and `/token/tenant` endpoints.

mod common;

use auth_core::ClientInfo;
use common::{Backend, DEMO_BASE, NEW_PASSWORD, PASSWORD, TestApp, Tokens, testing::assert_bearer_challenge};
use rocket::http::{ContentType, Header, Method, Status};
use serde_json::json;
use uuid::Uuid;

backend_tests!(
    registration_answers_201_with_the_email,
    login_returns_tokens,
    protected_endpoint_requires_auth,
    protected_endpoint_answers_the_user_id,
    protected_endpoint_refuses_rejected_tokens,
    protected_endpoint_refuses_revoked_sessions,
    tenant_data_for_members_of_that_tenant,
    cross_tenant_access_denied,
    a_token_whose_tenant_id_was_changed_is_refused,
    tenant_data_needs_a_tenant_scoped_token,
    malformed_tenant_id_is_403_not_500,
    tenant_admin_route_needs_admin,
    demoted_member_loses_admin_route_after_refresh,
    deactivated_user_is_locked_out,
    emailed_links_use_the_public_url,
    staff_route_is_for_staff_only,
    guards_answer_before_body_parsing,
    unknown_routes_answer_the_contract_body,
);

/// A user of `tenant_id` with `role`, invited by its owner, with a scoped token.
async fn member_of(app: &TestApp, owner_scoped: &Tokens, tenant_id: &str, role: &str, label: &str) -> Tokens {
    let (user, tokens) = app.signed_in(label).await;
    app.kit.join(&owner_scoped.access, tenant_id, &user, role).await;
    app.kit.scoped(&tokens.access, tenant_id).await
}

/// An owner, their tenant, and tokens scoped to it.
async fn tenant(app: &TestApp, label: &str) -> (String, Tokens) {
    let (_, tokens) = app.signed_in(label).await;
    let tenant_id = app.kit.create_tenant(&tokens.access).await;
    let scoped = app.kit.scoped(&tokens.access, &tenant_id).await;
    (tenant_id, scoped)
}

/// Seed 1.3, at the seed's path (with its trailing slash).
async fn registration_answers_201_with_the_email(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let email = app.kit.unique_email("user");
    let body = json!({ "email": email, "password": PASSWORD, "full_name": "Test User" });
    let answer = app.kit.send(Method::Post, "/api/auth/register/", None, Some(body.to_string()), &[]).await;
    answer.expect(201);
    assert_eq!(answer.str("/email"), email, "{answer}");
}

/// Seed 1.4: an active (verified) user logs in and gets both tokens.
async fn login_returns_tokens(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let user = app.kit.verified_user("login").await;
    let body = json!({ "email": user.email, "password": user.password });
    let answer = app.kit.send(Method::Post, "/api/auth/login/", None, Some(body.to_string()), &[]).await;
    answer.expect(200);
    assert!(answer.get("/access").is_string() && answer.get("/refresh").is_string(), "{answer}");
    assert_eq!(answer.str("/token_type"), "Bearer", "{answer}");
}

/// Seed 1.5, with and without the trailing slash.
async fn protected_endpoint_requires_auth(backend: Backend) {
    let app = TestApp::demo(backend).await;
    for uri in ["/api/protected", "/api/protected/"] {
        let answer = app.get(uri, None).await;
        answer.expect_error(401, "missing_token");
        assert_bearer_challenge(&answer, None);
    }
}

async fn protected_endpoint_answers_the_user_id(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (user, tokens) = app.signed_in("protected").await;
    for uri in ["/api/protected", "/api/protected/"] {
        let answer = app.get(uri, Some(&tokens.access)).await;
        answer.expect(200);
        assert_eq!(answer.json, json!({ "user_id": user.id }), "{answer}");
    }
    // A tenant-scoped token is a valid access token too.
    let tenant_id = app.kit.create_tenant(&tokens.access).await;
    let scoped = app.kit.scoped(&tokens.access, &tenant_id).await;
    app.get("/api/protected", Some(&scoped.access)).await.expect(200);
}

async fn protected_endpoint_refuses_rejected_tokens(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (_, tokens) = app.signed_in("rejected").await;
    let (head, rest) = tokens.access.split_once('.').expect("a JWS");
    let tampered = format!("{head}.e30{}", &rest[rest.find('.').expect("a JWS")..]);
    for token in ["garbage", tokens.refresh.as_str(), tampered.as_str()] {
        let answer = app.get("/api/protected", Some(token)).await;
        answer.expect_error(401, "invalid_token");
        assert_bearer_challenge(&answer, Some("invalid_token"));
    }
    let in_query = app.get(&format!("/api/protected?access_token={}", tokens.access), None).await;
    in_query.expect_error(401, "missing_token");
}

/// Logout-all reaches the demo's routes at once, without a database query per request.
async fn protected_endpoint_refuses_revoked_sessions(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (_, tokens) = app.signed_in("revoked").await;
    app.get("/api/protected", Some(&tokens.access)).await.expect(200);
    app.kit.post_empty("/logout-all", Some(&tokens.access)).await.expect(204);
    app.get("/api/protected", Some(&tokens.access)).await.expect_error(401, "invalid_token");
}

async fn tenant_data_for_members_of_that_tenant(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (tenant_id, owner) = tenant(&app, "data-owner").await;
    let member = member_of(&app, &owner, &tenant_id, "member", "data-member").await;
    let uri = format!("/api/tenant/{tenant_id}/data");
    for (tokens, role) in [(&member, "member"), (&owner, "owner")] {
        let answer = app.get(&uri, Some(&tokens.access)).await;
        answer.expect(200);
        assert_eq!(answer.str("/tenant_id"), tenant_id, "{answer}");
        assert_eq!(answer.str("/role"), role, "{answer}");
    }
    app.get(&format!("{uri}/"), Some(&member.access)).await.expect(200);
    app.get(&uri, None).await.expect_error(401, "missing_token");
}

/// Seed 1.6: a token of one tenant gets nothing from another.
async fn cross_tenant_access_denied(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (tenant_a, owner_a) = tenant(&app, "tenant-a").await;
    let (tenant_b, owner_b) = tenant(&app, "tenant-b").await;
    let member_a = member_of(&app, &owner_a, &tenant_a, "member", "member-a").await;
    for tokens in [&owner_a, &member_a] {
        for uri in [format!("/api/tenant/{tenant_b}/data"), format!("/api/tenant/{tenant_b}/admin")] {
            app.get(&uri, Some(&tokens.access)).await.expect(403);
        }
        // The seed's own request.
        app.get("/api/tenant/other-tenant/data/", Some(&tokens.access)).await.expect(403);
    }
    app.get(&format!("/api/tenant/{tenant_b}/data"), Some(&owner_b.access)).await.expect(200);
    // Membership of both does not let a token scoped to one reach the other.
    let invite = json!({ "email": app.kit.unique_email("nobody"), "role": "member" });
    app.kit.post(&format!("/tenants/{tenant_b}/invitations"), Some(&owner_a.access), &invite).await.expect(403);
}

/// Seed 4.4: a user edits `tenant_id` in the payload of a token scoped to
/// their tenant. The signature no longer matches: `401 invalid_token`, for
/// the other tenant's route and for their own.
async fn a_token_whose_tenant_id_was_changed_is_refused(backend: Backend) {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let app = TestApp::demo(backend).await;
    let (tenant_a, owner_a) = tenant(&app, "tamper-a").await;
    let (tenant_b, _) = tenant(&app, "tamper-b").await;
    let [header, payload, signature] = owner_a.access.split('.').collect::<Vec<_>>()[..] else {
        panic!("a JWS of three parts");
    };
    let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["tenant_id"], json!(tenant_a), "{claims}");
    claims["tenant_id"] = json!(tenant_b);
    let tampered = format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    for tenant in [&tenant_b, &tenant_a] {
        let answer = app.get(&format!("/api/tenant/{tenant}/data"), Some(&tampered)).await;
        answer.expect_error(401, "invalid_token");
    }
    app.get(&format!("/api/tenant/{tenant_a}/data"), Some(&owner_a.access)).await.expect(200);
}

async fn tenant_data_needs_a_tenant_scoped_token(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (_, tokens) = app.signed_in("unscoped").await;
    let tenant_id = app.kit.create_tenant(&tokens.access).await;
    for route in ["data", "admin"] {
        let answer = app.get(&format!("/api/tenant/{tenant_id}/{route}"), Some(&tokens.access)).await;
        answer.expect(403);
    }
}

async fn malformed_tenant_id_is_403_not_500(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (_, scoped) = tenant(&app, "malformed").await;
    for id in ["not-a-uuid", "1", "%27%20OR%201%3D1", "00000000-0000-0000-0000-00000000000g", &"9".repeat(300)] {
        for route in ["data", "admin"] {
            let answer = app.get(&format!("/api/tenant/{id}/{route}"), Some(&scoped.access)).await;
            answer.expect(403);
        }
    }
}

async fn tenant_admin_route_needs_admin(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (tenant_id, owner) = tenant(&app, "admin-owner").await;
    let member = member_of(&app, &owner, &tenant_id, "member", "admin-member").await;
    let admin = member_of(&app, &owner, &tenant_id, "admin", "admin-admin").await;
    let uri = format!("/api/tenant/{tenant_id}/admin");
    let denied = app.get(&uri, Some(&member.access)).await;
    denied.expect(403);
    for tokens in [&admin, &owner] {
        let answer = app.get(&uri, Some(&tokens.access)).await;
        answer.expect(200);
        assert_eq!(answer.str("/tenant_id"), tenant_id, "{answer}");
    }
}

/// A demotion shows in the next token (the role is re-read on refresh); a
/// removal ends the scoped session.
async fn demoted_member_loses_admin_route_after_refresh(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (owner, owner_tokens) = app.signed_in("demote-owner").await;
    let tenant_id = app.kit.create_tenant(&owner_tokens.access).await;
    let owner_scoped = app.kit.scoped(&owner_tokens.access, &tenant_id).await;
    let (user, tokens) = app.signed_in("demoted").await;
    let members = format!("/tenants/{tenant_id}/members");
    app.kit.join(&owner_scoped.access, &tenant_id, &user, "admin").await;
    let admin = app.kit.scoped(&tokens.access, &tenant_id).await;
    let uri = format!("/api/tenant/{tenant_id}/admin");
    app.get(&uri, Some(&admin.access)).await.expect(200);

    let (actor, tenant, target) = (parse(&owner.id), parse(&tenant_id), parse(&user.id));
    let client = ClientInfo::default();
    app.auth().tenants().set_member_role(actor, tenant, target, "member", &client).await.expect("demote");
    let demoted = app.kit.refreshed(&admin.refresh).await;
    assert_eq!(demoted.claims()["role"], json!("member"), "the next token carries the new role");
    app.get(&uri, Some(&demoted.access)).await.expect(403);
    app.get(&format!("/api/tenant/{tenant_id}/data"), Some(&demoted.access)).await.expect(200);

    app.kit.delete(&format!("{members}/{}", user.id), Some(&owner_scoped.access)).await.expect(204);
    assert!(!app.kit.refresh_works(&demoted.refresh).await, "a removed member's scoped session ends");
    app.kit.post("/token/tenant", Some(&tokens.access), &json!({ "tenant_id": tenant_id })).await.expect(403);
}

fn parse(id: &str) -> Uuid {
    id.parse().expect("a UUID")
}

/// Deactivation ends every session at once, on the demo's routes too.
async fn deactivated_user_is_locked_out(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (user, tokens) = app.signed_in("deactivated").await;
    app.get("/api/protected", Some(&tokens.access)).await.expect(200);
    app.auth()
        .operators()
        .set_user_active(auth_core::Operator::Cli, parse(&user.id), false, &ClientInfo::default())
        .await
        .expect("deactivate");
    app.get("/api/protected", Some(&tokens.access)).await.expect_error(401, "invalid_token");
    assert!(!app.kit.refresh_works(&tokens.refresh).await, "the refresh token is dead");
    let login = app.kit.post("/login", None, &json!({ "email": user.email, "password": user.password })).await;
    login.expect(403);
    let wrong = app.kit.post("/login", None, &json!({ "email": user.email, "password": NEW_PASSWORD })).await;
    wrong.expect_error(401, "invalid_credentials");
}

/// Emailed links are built from `public_url`, whatever the request says.
async fn emailed_links_use_the_public_url(backend: Backend) {
    let app = TestApp::demo_with(backend, |config| config.public_url = "https://app.example.test/".into()).await;
    let email = app.kit.unique_email("links");
    let body = json!({ "email": email, "password": PASSWORD, "full_name": "Link User" }).to_string();
    let lies = [("Host", "evil.example"), ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "http")];
    app.kit.send(Method::Post, "/api/auth/register", None, Some(body), &lies).await.expect(201);
    let mail = app.kit.wait_for_mail(&email, 0).await;
    let link = format!("https://app.example.test/api/auth/ui/verify-email?token={}", mail.token());
    assert!(mail.text.contains(&link), "the verification link is {link}: {}", mail.text);

    let reset = json!({ "email": email }).to_string();
    app.kit.send(Method::Post, "/api/auth/password/reset", None, Some(reset), &lies).await.expect(202);
    let mail = app.kit.wait_for_mail(&email, 1).await;
    let link = format!("https://app.example.test/api/auth/ui/reset-password?token={}", mail.token());
    assert!(mail.text.contains(&link), "the reset link is {link}: {}", mail.text);
    assert!(!mail.text.contains("evil.example"), "{}", mail.text);
}

async fn staff_route_is_for_staff_only(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (_, normal) = app.signed_in("normal").await;
    app.get("/api/staff", Some(&normal.access)).await.expect(403);
    app.get("/api/staff", None).await.expect_error(401, "missing_token");

    let email = app.kit.unique_email("root");
    let superuser =
        app.auth().operators().create_superuser(&email, NEW_PASSWORD, "Super User").await.expect("create a superuser");
    let login = app.kit.post("/login", None, &json!({ "email": email, "password": NEW_PASSWORD })).await;
    login.expect(200);
    let access = login.str("/access").to_owned();
    let answer = app.get("/api/staff", Some(&access)).await;
    answer.expect(200);
    assert_eq!(answer.get("/user_id"), &json!(superuser.id), "{answer}");
    let me = app.kit.get("/me", Some(&access)).await;
    assert_eq!((me.get("/is_staff"), me.get("/is_superuser")), (&json!(true), &json!(true)), "{me}");
}

/// A guard's 401/403 comes before any body parsing (400, 413, 422).
async fn guards_answer_before_body_parsing(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (_, tokens) = app.signed_in("guards").await;
    let client = app.client();
    let huge = format!(r#"{{"refresh": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let bodies = ["{not json", "[]", r#"{"unexpected": true}"#, huge.as_str()];
    let authenticated = [
        (Method::Post, "/logout"),
        (Method::Post, "/logout-all"),
        (Method::Post, "/password/change"),
        (Method::Patch, "/me/profile"),
        (Method::Post, "/tenants"),
        (Method::Post, "/token/tenant"),
    ];
    for (method, path) in authenticated {
        for body in bodies {
            for bearer in [None, Some("garbage")] {
                let mut request = client.req(method, format!("{DEMO_BASE}{path}")).header(ContentType::JSON);
                if let Some(token) = bearer {
                    request = request.header(Header::new("Authorization", format!("Bearer {token}")));
                }
                let response = request.body(body).dispatch().await;
                let status = response.status();
                let text = response.into_string().await.unwrap_or_default();
                assert_eq!(status, Status::Unauthorized, "{method} {path} with {bearer:?}: {text}");
            }
        }
    }
    // Scoped routes: 403 for an unscoped token, whatever the body.
    let tenant_id = Uuid::new_v4();
    for body in bodies {
        let uri = format!("{DEMO_BASE}/tenants/{tenant_id}/invitations");
        let request = client.post(uri).header(ContentType::JSON);
        let response = request.header(Header::new("Authorization", format!("Bearer {}", tokens.access))).body(body);
        let response = response.dispatch().await;
        assert_eq!(response.status(), Status::Forbidden, "POST invitations with an unscoped token");
    }
}

async fn unknown_routes_answer_the_contract_body(backend: Backend) {
    let app = TestApp::demo(backend).await;
    for uri in ["/api/nope", "/api/tenant", "/api/tenant/x/y/z", "/nope", "/api/protected/extra"] {
        let answer = app.get(uri, None).await;
        answer.expect(404);
        answer.assert_error_body();
    }
    let answer = app.kit.send(Method::Delete, "/api/protected", None, None, &[]).await;
    assert!(answer.status == 404 || answer.status == 405, "{answer}");
}
