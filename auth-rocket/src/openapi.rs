//! The OpenAPI 3 document of the routes, generated from the handlers'
//! `#[utoipa::path]` annotations and served at `<mount>/openapi.json` with
//! every path under the mount point the host chose.

use rocket::{Route, get, serde::json::Json};
use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::routes;

/// The contract's error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_credentials`.
    code: String,
    message: String,
    /// Per-field messages; present only for validation errors (422).
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    fields: Option<()>,
}

/// Access and refresh tokens.
#[derive(Serialize, ToSchema)]
pub struct TokenPairSchema {
    access: String,
    refresh: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: u64,
}

/// Where to send the browser to link a provider.
#[derive(Serialize, ToSchema)]
pub struct AuthorizeUrlSchema {
    authorize_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileSchema {
    full_name: String,
    phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MembershipSchema {
    tenant_id: uuid::Uuid,
    tenant_name: String,
    role: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccountSchema {
    id: uuid::Uuid,
    email: String,
    email_verified: bool,
    is_staff: bool,
    is_superuser: bool,
    date_joined: chrono::DateTime<chrono::Utc>,
    profile: ProfileSchema,
    memberships: Vec<MembershipSchema>,
}

#[derive(Serialize, ToSchema)]
pub struct RegisteredSchema {
    id: uuid::Uuid,
    email: String,
    email_verified: bool,
    profile: ProfileSchema,
}

#[derive(Serialize, ToSchema)]
pub struct SessionSchema {
    id: uuid::Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    last_used_at: chrono::DateTime<chrono::Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
    current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TenantSchema {
    id: uuid::Uuid,
    name: String,
    role: String,
}

#[derive(Serialize, ToSchema)]
pub struct MemberSchema {
    user_id: uuid::Uuid,
    email: String,
    role: String,
}

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
        routes::register,
        routes::verify_email,
        routes::verify_email_link,
        routes::resend_verification,
        routes::login,
        routes::refresh,
        routes::logout,
        routes::logout_all,
        routes::sessions,
        routes::revoke_session,
        routes::me,
        routes::update_profile,
        routes::change_password,
        routes::request_password_reset,
        routes::confirm_password_reset,
        routes::create_tenant,
        routes::tenants,
        routes::members,
        routes::add_member,
        routes::remove_member,
        routes::tenant_token,
        routes::jwks,
        crate::oauth::oauth_authorize,
        crate::oauth::oauth_callback,
        crate::oauth::oauth_link,
        crate::oauth::oauth_exchange,
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

#[get("/openapi.json")]
pub fn openapi_json(route: &Route) -> Json<utoipa::openapi::OpenApi> {
    Json(document(route.uri.base()))
}
