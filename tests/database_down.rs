//! With the database gone, endpoints that need it answer 503 with the
//! contract's body and a `Retry-After`, never a 500; protected routes keep
//! working, since verifying an access token needs no database.

mod common;

use common::{Answer, Backend, PASSWORD, TestApp};
use serde_json::json;

backend_tests!(database_down_is_503_and_protected_routes_still_work);

#[track_caller]
fn assert_unavailable(answer: &Answer) {
    answer.expect_error(503, "unavailable");
    let retry_after = answer.retry_after.as_deref().unwrap_or_else(|| panic!("503 without Retry-After: {answer}"));
    assert!(retry_after.parse::<u64>().is_ok_and(|s| s >= 1), "Retry-After is seconds: {answer}");
}

async fn database_down_is_503_and_protected_routes_still_work(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (user, tokens) = app.signed_in("outage").await;
    let tenant_id = app.kit.create_tenant(&tokens.access).await;
    let scoped = app.kit.scoped(&tokens.access, &tenant_id).await;

    auth_core::testing::store(app.auth()).close().await;

    let login = app.kit.post("/login", None, &json!({ "email": user.email, "password": PASSWORD })).await;
    assert_unavailable(&login);
    let body = json!({ "email": app.kit.unique_email("late"), "password": PASSWORD, "full_name": "Late" });
    assert_unavailable(&app.kit.post("/register", None, &body).await);
    assert_unavailable(&app.kit.post("/refresh", None, &json!({ "refresh": tokens.refresh })).await);
    assert_unavailable(&app.kit.get("/me", Some(&tokens.access)).await);
    assert_unavailable(&app.kit.get("/sessions", Some(&tokens.access)).await);

    // No database work behind these.
    let protected = app.get("/api/protected", Some(&tokens.access)).await;
    protected.expect(200);
    assert_eq!(protected.json, json!({ "user_id": user.id }), "{protected}");
    app.get(&format!("/api/tenant/{tenant_id}/data"), Some(&scoped.access)).await.expect(200);
    app.get(&format!("/api/tenant/{tenant_id}/admin"), Some(&scoped.access)).await.expect(200);
    app.get("/api/protected", Some("garbage")).await.expect_error(401, "invalid_token");
    app.get("/api/protected", None).await.expect_error(401, "missing_token");
    app.get("/.well-known/jwks.json", None).await.expect(200);
    app.kit.get("/jwks.json", None).await.expect(200);
}
