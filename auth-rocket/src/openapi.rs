//! The OpenAPI 3 document of the routes, generated from the handlers'
//! `#[utoipa::path]` annotations and served at `<mount>/openapi.json` with
//! every path under the mount point the host chose.

use auth_macros::public;
use rocket::{Route, get, serde::json::Json};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::routes::{account, keys, oauth, sessions, tenants};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "auth-platform", description = "Authentication and authorization endpoints."),
    paths(
        account::register,
        account::verify_email,
        account::verify_email_link,
        account::resend_verification,
        sessions::login,
        sessions::refresh,
        sessions::logout,
        sessions::logout_all,
        sessions::sessions,
        sessions::revoke_session,
        account::me,
        account::update_profile,
        account::change_password,
        account::request_password_reset,
        account::confirm_password_reset,
        tenants::create_tenant,
        tenants::tenants,
        tenants::members,
        tenants::add_member,
        tenants::remove_member,
        tenants::tenant_token,
        keys::jwks,
        oauth::oauth_authorize,
        oauth::oauth_callback,
        oauth::oauth_link,
        oauth::oauth_exchange,
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The document with every path prefixed by `base` (the mount point).
pub fn document(base: &str) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let base = base.trim_end_matches('/');
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths.into_iter().map(|(path, item)| (format!("{base}{path}"), item)).collect();
    doc
}

#[public]
#[get("/openapi.json")]
pub fn openapi_json(route: &Route) -> Json<utoipa::openapi::OpenApi> {
    Json(document(route.uri.base()))
}
