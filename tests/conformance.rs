//! The conformance kit (`auth_rocket::testing`) against the demo app, one test
//! per check, on SQLite and PostgreSQL; and the kit against a minimal host app
//! built exactly as the kit's documentation shows (platform mounted elsewhere,
//! a memory mailer handed to it).

mod common;

use common::{Backend, TestApp};

/// One `async fn(Backend)` per kit check, run on a fresh demo app, and the
/// SQLite and PostgreSQL tests of those checks and of the host-app checks below.
macro_rules! checks {
    ($($check:ident),* $(,)?) => {
        $(
            async fn $check(backend: Backend) {
                TestApp::demo(backend).await.kit.$check().await;
            }
        )*
        backend_tests!($($check,)* host_app_checks, run_all_on_a_host_app);
    };
}

checks!(
    registration,
    email_verification,
    login,
    bearer_tokens,
    refresh_rotation,
    concurrent_refresh,
    logout,
    logout_all,
    sessions,
    profile,
    account_export,
    email_change,
    account_deletion,
    password_change,
    password_reset,
    tenants,
    tenant_members,
    invitations,
    member_roles_and_leaving,
    tenant_token,
    jwks,
    openapi,
    error_bodies,
    method_not_allowed,
    trailing_slashes,
    operators,
    activity,
    mfa,
    tenant_mfa,
    passkeys,
);

/// The mail-reading and mount-point-dependent checks on the documented host
/// app, which mounts the platform at `/identity/v1` and reads a memory mailer.
async fn host_app_checks(backend: Backend) {
    let app = TestApp::host(backend).await;
    app.kit.registration().await;
    app.kit.email_verification().await;
    app.kit.password_reset().await;
    app.kit.jwks().await;
    app.kit.openapi().await;
    app.kit.method_not_allowed().await;
    app.kit.trailing_slashes().await;
}

/// Every check in one run, sharing one app (the checks are independent).
async fn run_all_on_a_host_app(backend: Backend) {
    TestApp::host(backend).await.kit.run_all().await;
}

/// `AuthFairing::mounted_at` mounts the routes, the JWKS document and the
/// catchers in one call, and claims no error page outside its base.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_mounts_the_platform_and_leaves_other_error_pages_alone() {
    let app = TestApp::host(Backend::Sqlite).await;
    let jwks = app.get("/.well-known/jwks.json", None).await;
    jwks.expect(200);
    let inside = app.get(&format!("{}/no-such-endpoint", common::HOST_BASE), None).await;
    inside.expect_error(404, "not_found");
    let outside = app.client().get("/no-such-page").dispatch().await;
    assert_eq!(outside.status().code, 404);
    let html = outside.content_type().is_some_and(|ct| ct.is_html());
    assert!(html, "outside its base the host's own (here Rocket's default) error page answers");
}
