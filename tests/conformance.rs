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
    password_change,
    password_reset,
    tenants,
    tenant_members,
    tenant_token,
    jwks,
    openapi,
    error_bodies,
    trailing_slashes,
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
    app.kit.trailing_slashes().await;
}

/// Every check in one run, sharing one app (the checks are independent).
async fn run_all_on_a_host_app(backend: Backend) {
    TestApp::host(backend).await.kit.run_all().await;
}
