//! The endpoints of the HTTP contract (`../shared/spec/http-api.md`). Each
//! handler translates JSON to one call of [`Auth`] and its result back.

use auth_core::{
    Auth, AuthError, TokenPair,
    identity::{ProfileUpdate, Registration},
    ratelimit::Action,
    store::Session,
    tenancy::Member,
};
use rocket::{
    Request, Response, State, delete, get,
    http::{Header, Status},
    patch, post,
    response::{self, Responder, content::RawHtml},
    serde::json::Json,
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    error::ApiError,
    guards::{AuthUser, Client, TenantScope},
    json::JsonBody,
    secret_query::SecretQuery,
};

type ApiResult<T> = Result<T, ApiError>;

/// A token answer: the pair as JSON, never cached (RFC 6749 §5.1).
pub struct Tokens(pub TokenPair);

impl<'r> Responder<'r, 'static> for Tokens {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        Response::build_from(Json(self.0).respond_to(request)?)
            .header(Header::new("Cache-Control", "no-store"))
            .header(Header::new("Pragma", "no-cache"))
            .header(Header::new("Referrer-Policy", "no-referrer"))
            .ok()
    }
}

/// The answer of requests that must not reveal whether an account exists.
fn accepted() -> (Status, Json<Value>) {
    (Status::Accepted, Json(json!({ "detail": "if the account exists, an email is on its way" })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterBody {
    email: String,
    password: String,
    full_name: String,
    phone: Option<String>,
}

#[utoipa::path(tag = "account", request_body = RegisterBody, responses((status = 201, description = "Registered; a verification email is sent", body = crate::openapi::RegisteredSchema), (status = 409, description = "Email already registered", body = crate::openapi::ErrorBody), (status = 422, description = "Invalid fields", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited", body = crate::openapi::ErrorBody)))]
#[post("/register", data = "<body>")]
pub async fn register(
    auth: &State<Auth>,
    client: Client,
    body: JsonBody<RegisterBody>,
) -> ApiResult<(Status, Json<Value>)> {
    auth.rate_limit(Action::Register, &client.0).await?;
    let body = body.into_inner();
    let registration = Registration {
        email: body.email,
        password: body.password.into(),
        full_name: body.full_name,
        phone: body.phone,
    };
    let (user, profile) = auth.register(&registration, &client.0).await?;
    let answer = json!({
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified(),
        "profile": profile,
    });
    Ok((Status::Created, Json(answer)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenBody {
    token: String,
}

#[utoipa::path(tag = "account", request_body = TokenBody, responses((status = 200, description = "Verified"), (status = 400, description = "Unknown, expired or used token", body = crate::openapi::ErrorBody)))]
#[post("/verify-email", data = "<body>")]
pub async fn verify_email(auth: &State<Auth>, client: Client, body: JsonBody<TokenBody>) -> ApiResult<Json<Value>> {
    auth.rate_limit(Action::VerificationResend, &client.0).await?;
    auth.verify_email(&body.0.token, &client.0).await?;
    Ok(Json(json!({ "email_verified": true })))
}

/// The page behind the emailed link.
#[utoipa::path(tag = "account", params(("token" = Option<String>, Query, description = "The emailed token")), responses((status = 200, description = "HTML page: verified", content_type = "text/html"), (status = 400, description = "HTML page: invalid link", content_type = "text/html")))]
#[get("/verify-email")]
pub async fn verify_email_link(auth: &State<Auth>, client: Client, query: SecretQuery) -> (Status, RawHtml<String>) {
    let limited = auth.rate_limit(Action::VerificationResend, &client.0).await;
    let result = match (limited, query.get("token")) {
        (Ok(()), Some(token)) => auth.verify_email(&token, &client.0).await,
        (Err(error), _) => Err(error),
        (Ok(()), None) => Err(AuthError::InvalidOneTimeToken),
    };
    match result {
        Ok(()) => (Status::Ok, page("Email verified", "Your email address is verified. You can sign in now.")),
        Err(AuthError::RateLimited { .. }) => (
            Status::TooManyRequests,
            page("Try again later", "Too many attempts. Wait a minute and open the link again."),
        ),
        Err(AuthError::Unavailable | AuthError::Overloaded) => {
            (Status::ServiceUnavailable, page("Try again later", "The service is busy. Open the link again shortly."))
        }
        Err(_) => (
            Status::BadRequest,
            page("Link invalid", "This verification link is invalid, already used or expired. Ask for a new one."),
        ),
    }
}

/// A minimal page; `title` and `text` are constants, never request data.
fn page(title: &str, text: &str) -> RawHtml<String> {
    RawHtml(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>"
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EmailBody {
    email: String,
}

#[utoipa::path(tag = "account", request_body = EmailBody, responses((status = 202, description = "Accepted, whether or not the account exists"), (status = 429, description = "Rate limited", body = crate::openapi::ErrorBody)))]
#[post("/verify-email/resend", data = "<body>")]
pub async fn resend_verification(
    auth: &State<Auth>,
    client: Client,
    body: JsonBody<EmailBody>,
) -> ApiResult<(Status, Json<Value>)> {
    auth.rate_limit(Action::VerificationResend, &client.0).await?;
    auth.resend_verification(&body.0.email, &client.0).await?;
    Ok(accepted())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    email: String,
    password: String,
    tenant_id: Option<Uuid>,
}

#[utoipa::path(tag = "session", request_body = LoginBody, responses((status = 200, body = crate::openapi::TokenPairSchema), (status = 401, description = "Invalid credentials", body = crate::openapi::ErrorBody), (status = 403, description = "Email not verified, or not a member of tenant_id", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited", body = crate::openapi::ErrorBody)))]
#[post("/login", data = "<body>")]
pub async fn login(auth: &State<Auth>, client: Client, body: JsonBody<LoginBody>) -> ApiResult<Tokens> {
    auth.rate_limit(Action::Login, &client.0).await?;
    let body = body.into_inner();
    Ok(Tokens(auth.login(&body.email, &body.password, body.tenant_id, &client.0).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    refresh: String,
}

#[utoipa::path(tag = "session", request_body = RefreshBody, responses((status = 200, body = crate::openapi::TokenPairSchema), (status = 401, description = "Invalid or reused refresh token", body = crate::openapi::ErrorBody)))]
#[post("/refresh", data = "<body>")]
pub async fn refresh(auth: &State<Auth>, client: Client, body: JsonBody<RefreshBody>) -> ApiResult<Tokens> {
    auth.rate_limit(Action::Refresh, &client.0).await?;
    Ok(Tokens(auth.refresh(&body.0.refresh, &client.0).await?))
}

#[utoipa::path(tag = "session", request_body = RefreshBody, security(("bearer" = [])), responses((status = 204, description = "That session is revoked"), (status = 401, body = crate::openapi::ErrorBody), (status = 403, description = "Another user's refresh token", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = crate::openapi::ErrorBody)))]
#[post("/logout", data = "<body>")]
pub async fn logout(
    auth: &State<Auth>,
    user: AuthUser,
    client: Client,
    body: JsonBody<RefreshBody>,
) -> ApiResult<Status> {
    auth.logout(user.claims(), &body.0.refresh, &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "session", security(("bearer" = [])), responses((status = 204, description = "Every session is revoked"), (status = 401, body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = crate::openapi::ErrorBody)))]
#[post("/logout-all")]
pub async fn logout_all(auth: &State<Auth>, user: AuthUser, client: Client) -> ApiResult<Status> {
    auth.logout_all(user.claims(), &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "session", security(("bearer" = [])), responses((status = 200, body = Vec<crate::openapi::SessionSchema>), (status = 401, body = crate::openapi::ErrorBody)))]
#[get("/sessions")]
pub async fn sessions(auth: &State<Auth>, user: AuthUser) -> ApiResult<Json<Vec<Session>>> {
    Ok(Json(auth.sessions(user.claims()).await?))
}

#[utoipa::path(tag = "session", security(("bearer" = [])), params(("id" = String, Path, description = "Session id")), responses((status = 204, description = "Revoked"), (status = 404, description = "Not one of the caller's sessions", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = crate::openapi::ErrorBody)))]
#[delete("/sessions/<id>")]
pub async fn revoke_session(auth: &State<Auth>, user: AuthUser, client: Client, id: &str) -> ApiResult<Status> {
    // Any id that is not one of the caller's sessions, malformed ones included, is 404.
    let id = id.parse::<Uuid>().map_err(|_| AuthError::NotFound)?;
    auth.revoke_session(user.claims(), id, &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "account", security(("bearer" = [])), responses((status = 200, body = crate::openapi::AccountSchema), (status = 401, body = crate::openapi::ErrorBody)))]
#[get("/me")]
pub async fn me(auth: &State<Auth>, user: AuthUser) -> ApiResult<Json<Value>> {
    let account = auth.account(user.id()).await?;
    let user = &account.user;
    Ok(Json(json!({
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified(),
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "date_joined": user.date_joined,
        "profile": account.profile,
        "memberships": account.memberships,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ProfileBody {
    full_name: Option<String>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    phone: Option<Option<String>>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[utoipa::path(tag = "account", security(("bearer" = [])), request_body = ProfileBody, responses((status = 200, body = crate::openapi::ProfileSchema), (status = 422, body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = crate::openapi::ErrorBody)))]
#[patch("/me/profile", data = "<body>")]
pub async fn update_profile(
    auth: &State<Auth>,
    user: AuthUser,
    client: Client,
    body: JsonBody<ProfileBody>,
) -> ApiResult<Json<Value>> {
    let body = body.into_inner();
    let update = ProfileUpdate { full_name: body.full_name, phone: body.phone };
    let profile = auth.update_profile(user.id(), &update, &client.0).await?;
    Ok(Json(json!(profile)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PasswordChangeBody {
    current_password: String,
    new_password: String,
}

#[utoipa::path(tag = "account", security(("bearer" = [])), request_body = PasswordChangeBody, responses((status = 204, description = "Changed; other sessions revoked"), (status = 400, description = "Wrong current password", body = crate::openapi::ErrorBody), (status = 422, description = "Weak new password", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited: the per-user quota, or the login back-off of this address", body = crate::openapi::ErrorBody)))]
#[post("/password/change", data = "<body>")]
pub async fn change_password(
    auth: &State<Auth>,
    user: AuthUser,
    client: Client,
    body: JsonBody<PasswordChangeBody>,
) -> ApiResult<Status> {
    let body = body.into_inner();
    auth.change_password(user.claims(), &body.current_password, &body.new_password, &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "account", request_body = EmailBody, responses((status = 202, description = "Accepted, whether or not the account exists"), (status = 429, description = "Rate limited", body = crate::openapi::ErrorBody)))]
#[post("/password/reset", data = "<body>")]
pub async fn request_password_reset(
    auth: &State<Auth>,
    client: Client,
    body: JsonBody<EmailBody>,
) -> ApiResult<(Status, Json<Value>)> {
    auth.rate_limit(Action::PasswordReset, &client.0).await?;
    auth.request_password_reset(&body.0.email, &client.0).await?;
    Ok(accepted())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetConfirmBody {
    token: String,
    new_password: String,
}

#[utoipa::path(tag = "account", request_body = ResetConfirmBody, responses((status = 204, description = "Password set; every session revoked"), (status = 400, description = "Invalid token", body = crate::openapi::ErrorBody), (status = 422, description = "Weak password", body = crate::openapi::ErrorBody)))]
#[post("/password/reset/confirm", data = "<body>")]
pub async fn confirm_password_reset(
    auth: &State<Auth>,
    client: Client,
    body: JsonBody<ResetConfirmBody>,
) -> ApiResult<Status> {
    auth.rate_limit(Action::ResetConfirm, &client.0).await?;
    let body = body.into_inner();
    auth.confirm_password_reset(&body.token, &body.new_password, &client.0).await?;
    Ok(Status::NoContent)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TenantBody {
    name: String,
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), request_body = TenantBody, responses((status = 201, body = crate::openapi::TenantSchema), (status = 422, body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = crate::openapi::ErrorBody)))]
#[post("/tenants", data = "<body>")]
pub async fn create_tenant(
    auth: &State<Auth>,
    user: AuthUser,
    client: Client,
    body: JsonBody<TenantBody>,
) -> ApiResult<(Status, Json<Value>)> {
    let tenant = auth.create_tenant(user.id(), &body.0.name, &client.0).await?;
    Ok((Status::Created, Json(json!(tenant))))
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), responses((status = 200, body = Vec<crate::openapi::TenantSchema>)))]
#[get("/tenants")]
pub async fn tenants(auth: &State<Auth>, user: AuthUser) -> ApiResult<Json<Value>> {
    Ok(Json(json!(auth.tenants(user.id()).await?)))
}

/// The path's tenant must be the token's: a token scoped elsewhere is 403.
fn scoped_to(scope: &TenantScope, tenant_id: &str) -> Result<Uuid, ApiError> {
    match tenant_id.parse::<Uuid>() {
        Ok(id) if id == scope.tenant_id => Ok(id),
        _ => Err(AuthError::NotAMember.into()),
    }
}

/// The token's role gates member changes; the store re-checks the current
/// membership in the same transaction as the change.
fn require_member_manager(auth: &Auth, scope: &TenantScope) -> Result<(), ApiError> {
    if auth.roles().has_permission(&scope.role, auth_core::tenancy::MANAGE_MEMBERS) {
        Ok(())
    } else {
        Err(AuthError::InsufficientRole.into())
    }
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = String, Path)), responses((status = 200, body = Vec<crate::openapi::MemberSchema>), (status = 403, description = "Token not scoped to this tenant", body = crate::openapi::ErrorBody)))]
#[get("/tenants/<tenant_id>/members")]
pub async fn members(auth: &State<Auth>, scope: TenantScope, tenant_id: &str) -> ApiResult<Json<Vec<Member>>> {
    let tenant_id = scoped_to(&scope, tenant_id)?;
    Ok(Json(auth.members(scope.user.id(), tenant_id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MemberBody {
    email: String,
    role: String,
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = String, Path)), request_body = MemberBody, responses((status = 201, body = crate::openapi::MemberSchema), (status = 403, body = crate::openapi::ErrorBody), (status = 404, description = "Unknown user", body = crate::openapi::ErrorBody), (status = 409, description = "Already a member", body = crate::openapi::ErrorBody), (status = 422, description = "Unknown role", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = crate::openapi::ErrorBody)))]
#[post("/tenants/<tenant_id>/members", data = "<body>")]
pub async fn add_member(
    auth: &State<Auth>,
    scope: TenantScope,
    client: Client,
    tenant_id: &str,
    body: JsonBody<MemberBody>,
) -> ApiResult<(Status, Json<Member>)> {
    let tenant_id = scoped_to(&scope, tenant_id)?;
    require_member_manager(auth, &scope)?;
    let body = body.into_inner();
    let member = auth.add_member(scope.user.id(), tenant_id, &body.email, &body.role, &client.0).await?;
    Ok((Status::Created, Json(member)))
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = String, Path), ("user_id" = String, Path)), responses((status = 204, description = "Removed"), (status = 403, description = "Not allowed, or the last owner", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = crate::openapi::ErrorBody)))]
#[delete("/tenants/<tenant_id>/members/<user_id>")]
pub async fn remove_member(
    auth: &State<Auth>,
    scope: TenantScope,
    client: Client,
    tenant_id: &str,
    user_id: &str,
) -> ApiResult<Status> {
    let tenant_id = scoped_to(&scope, tenant_id)?;
    require_member_manager(auth, &scope)?;
    let user_id = user_id.parse::<Uuid>().map_err(|_| AuthError::NotFound)?;
    auth.remove_member(scope.user.id(), tenant_id, user_id, &client.0).await?;
    Ok(Status::NoContent)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TenantTokenBody {
    tenant_id: Uuid,
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), request_body = TenantTokenBody, responses((status = 200, body = crate::openapi::TokenPairSchema), (status = 403, description = "Not a member", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = crate::openapi::ErrorBody)))]
#[post("/token/tenant", data = "<body>")]
pub async fn tenant_token(
    auth: &State<Auth>,
    user: AuthUser,
    client: Client,
    body: JsonBody<TenantTokenBody>,
) -> ApiResult<Tokens> {
    Ok(Tokens(auth.tenant_token(user.claims(), body.0.tenant_id, &client.0).await?))
}

#[utoipa::path(tag = "keys", responses((status = 200, description = "The public JSON Web Key Set")))]
#[get("/jwks.json")]
pub fn jwks(auth: &State<Auth>) -> Json<Value> {
    Json(json!(auth.jwks()))
}

#[get("/.well-known/jwks.json")]
pub fn well_known_jwks(auth: &State<Auth>) -> Json<Value> {
    Json(json!(auth.jwks()))
}
