//! # auth-rocket
//!
//! Mounts the auth platform's HTTP contract into any Rocket app:
//!
//! ```no_run
//! # use rocket::launch;
//! #[launch]
//! fn rocket() -> _ {
//!     rocket::build()
//!         .attach(auth_rocket::AuthFairing::default()) // settings: [default.auth] + env
//!         .mount("/api/auth", auth_rocket::routes())
//!         .mount("/", auth_rocket::well_known()) // /.well-known/jwks.json
//!         .register("/", auth_rocket::catchers())
//! }
//! ```
//!
//! Host handlers protect themselves with the request guards [`AuthUser`],
//! [`TenantScope`] and [`Authorized<P>`]; every failure answers with the
//! contract's JSON error body. `#[requires(...)]` (auth-macros, re-exported by
//! auth-platform) generates the [`Policy`] of an `Authorized<P>` from a list of
//! conditions; [`policy`] lists every mounted route with its policy, and the
//! fairing refuses to launch outside development while a route has none.

mod catchers;
pub mod cli;
mod cors;
mod error;
mod fairing;
mod guards;
mod json;
mod oauth;
mod openapi;
pub mod policy;
mod routes;
mod secret_query;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::ApiError;
pub use fairing::{AuthFairing, development_key, load_config};
pub use guards::{AuthUser, Authorized, Client, Policy, TenantScope, check_tenant_role, path_segment};
pub use json::JsonBody;
pub use openapi::document as openapi_document;
pub use secret_query::SecretQuery;

/// Every endpoint of the contract, to mount under a base such as `/api/auth`,
/// including sign-in with the OpenID Connect providers of `[auth.oauth.<name>]`
/// (`/oauth/<provider>/authorize`, `/oauth/<provider>/callback`,
/// `/oauth/exchange` and the signed-in `/oauth/<provider>/link`; 404 for a
/// name that is not configured).
pub fn routes() -> Vec<rocket::Route> {
    use routes::*;
    policy::platform(rocket::routes![
        register,
        verify_email,
        verify_email_link,
        resend_verification,
        login,
        refresh,
        logout,
        logout_all,
        sessions,
        revoke_session,
        me,
        update_profile,
        change_password,
        request_password_reset,
        confirm_password_reset,
        create_tenant,
        tenants,
        members,
        add_member,
        remove_member,
        tenant_token,
        jwks,
        oauth::oauth_authorize,
        oauth::oauth_callback,
        oauth::oauth_link,
        oauth::oauth_exchange,
        openapi::openapi_json,
    ])
}

/// `/.well-known/jwks.json`, to mount at `/`.
pub fn well_known() -> Vec<rocket::Route> {
    policy::platform(rocket::routes![routes::well_known_jwks])
}

/// JSON error bodies for every status, to register at `/`.
pub fn catchers() -> Vec<rocket::Catcher> {
    rocket::catchers![catchers::default_catcher]
}
