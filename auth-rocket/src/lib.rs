//! # auth-rocket
//!
//! Mounts the auth platform's HTTP contract into any Rocket app, in one call:
//!
//! ```no_run
//! # use rocket::launch;
//! #[launch]
//! fn rocket() -> _ {
//!     // Settings: [default.auth] in Rocket.toml, and the environment.
//!     rocket::build().attach(auth_rocket::AuthFairing::mounted_at("/api/auth"))
//! }
//! ```
//!
//! That mounts [`routes()`] and the JSON error [`catchers()`] under
//! `/api/auth`, the hosted pages ([`ui`]) under `/api/auth/ui`, and
//! [`well_known()`] (`/.well-known/jwks.json`) at `/`; the pieces stay
//! available for a host that mounts them itself.
//!
//! Host handlers protect themselves with `#[requires(...)]` (auth-macros,
//! re-exported by auth-platform), which compiles a list of conditions into a
//! [`Policy`] checked by an [`Authorized<P>`] guard, or with the guards
//! [`AuthUser`] and [`TenantScope`]; every failure answers with the
//! contract's JSON error body where [`catchers()`] are registered (register
//! them at the base of your API too). The platform's own routes are marked
//! the same way. [`policy`] lists every mounted route with its policy, and the
//! fairing refuses to launch outside development while a route has none.
//!
//! What this crate does is adapt Rocket to auth-core: the contract (each
//! operation's rate limits and audit, each error's status and headers, the
//! request and response bodies of [`auth_core::contract`]) lives there.

// `#[requires]` names this crate `::auth_rocket`, in the platform's own routes too.
extern crate self as auth_rocket;

pub mod browser;
mod catchers;
pub mod cli;
mod cors;
mod error;
mod fairing;
mod guards;
mod json;
mod method_not_allowed;
mod metrics;
mod mounted;
mod openapi;
pub mod policy;
mod routes;
mod secret_query;
#[cfg(feature = "testing")]
pub mod testing;
pub mod ui;

pub use error::ApiError;
pub use fairing::AuthFairing;
pub use guards::{AuthUser, Authorized, Policy, RemoteClient, TenantScope};
pub use json::JsonBody;
pub use openapi::document as openapi_document;
pub use secret_query::SecretQuery;

/// Every endpoint of the contract, to mount under a base such as `/api/auth`,
/// including sign-in with the OpenID Connect providers of `[auth.oauth.<name>]`
/// (`/oauth/<provider>/authorize`, `/oauth/<provider>/callback`,
/// `/oauth/exchange` and the signed-in `/oauth/<provider>/link`; 404 for a
/// name that is not configured), and `405 Method Not Allowed` with `Allow`
/// for a method a path does not take.
pub fn routes() -> Vec<rocket::Route> {
    use routes::{account::*, keys::*, oauth::*, sessions::*, tenants::*};
    use routes::{activity::*, admin::*, mfa::*, passkeys::*, webhooks::*};
    rocket::routes![
        register,
        verify_email,
        verify_email_link,
        resend_verification,
        login,
        login_mfa,
        refresh,
        logout,
        logout_all,
        sessions,
        revoke_session,
        me,
        export,
        request_email_change,
        confirm_email_change,
        delete_account,
        update_profile,
        change_password,
        request_password_reset,
        confirm_password_reset,
        create_tenant,
        tenants,
        members,
        invite,
        invitations,
        revoke_invitation,
        accept_invitation,
        change_member_role,
        remove_member,
        tenant_token,
        tenant_settings,
        enroll_totp,
        confirm_totp,
        disable_totp,
        regenerate_recovery_codes,
        passkey_register_start,
        passkey_register_finish,
        passkeys,
        delete_passkey,
        passkey_login_start,
        passkey_login_finish,
        login_mfa_webauthn_start,
        jwks,
        oauth_authorize,
        oauth_callback,
        oauth_link,
        oauth_exchange,
        openapi::openapi_json,
        me_activity,
        admin_find_users,
        admin_user,
        admin_deactivate,
        admin_activate,
        admin_logout_all,
        admin_set_staff,
        admin_audit,
        admin_subscribe_webhook,
        admin_webhooks,
        admin_unsubscribe_webhook,
        admin_webhook_deliveries,
    ]
}

/// `/.well-known/jwks.json`, to mount at `/`.
pub fn well_known() -> Vec<rocket::Route> {
    rocket::routes![routes::keys::well_known_jwks]
}

/// JSON error bodies for every status, to register at the base of the
/// platform's routes and of any API whose handlers use its guards.
pub fn catchers() -> Vec<rocket::Catcher> {
    rocket::catchers![catchers::default_catcher]
}
