//! Registration, email verification, the account and its profile, password
//! change and reset.

use auth_core::{
    Auth, AuthError,
    contract::{
        Accepted, AccountExport, AccountView, DeleteAccountRequest, EmailChangeRequest, EmailChanged, EmailRequest,
        EmailVerified, ErrorBody, PasswordChangeRequest, ProfileRequest, RegisterRequest, Registered,
        ResetConfirmRequest, TokenRequest,
    },
    identity::Profile,
};
use auth_macros::{public, requires};
use rocket::{State, delete, get, http::Status, patch, post, response::content::RawHtml, serde::json::Json};

use super::{ApiResult, NoStore};
use crate::{
    guards::{AuthUser, RemoteClient},
    json::JsonBody,
    secret_query::SecretQuery,
};

#[utoipa::path(tag = "account", request_body = RegisterRequest, responses((status = 201, description = "Registered; a verification email is sent", body = Registered), (status = 409, description = "Email already registered", body = ErrorBody), (status = 422, description = "Invalid fields", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
#[public]
#[post("/register", data = "<body>")]
pub async fn register(
    auth: &State<Auth>,
    client: RemoteClient,
    body: JsonBody<RegisterRequest>,
) -> ApiResult<(Status, Json<Registered>)> {
    let (user, profile) = auth.accounts().register(&body.into_inner().into(), &client.0).await?;
    Ok((Status::Created, Json(Registered::new(&user, profile))))
}

#[utoipa::path(tag = "account", request_body = TokenRequest, responses((status = 200, description = "Verified", body = EmailVerified), (status = 400, description = "Unknown, expired or used token", body = ErrorBody), (status = 429, description = "Rate limited: the verification quota of this address", body = ErrorBody)))]
#[public]
#[post("/verify-email", data = "<body>")]
pub async fn verify_email(
    auth: &State<Auth>,
    client: RemoteClient,
    body: JsonBody<TokenRequest>,
) -> ApiResult<Json<EmailVerified>> {
    auth.accounts().verify_email(body.0.token.expose(), &client.0).await?;
    Ok(Json(EmailVerified { email_verified: true }))
}

/// The page behind the emailed link.
#[utoipa::path(tag = "account", params(("token" = Option<String>, Query, description = "The emailed token")), responses((status = 200, description = "HTML page: verified", content_type = "text/html"), (status = 400, description = "HTML page: invalid link", content_type = "text/html"), (status = 429, description = "HTML page: too many attempts", content_type = "text/html"), (status = 503, description = "HTML page: the service is busy", content_type = "text/html")))]
#[public]
#[get("/verify-email")]
pub async fn verify_email_link(
    auth: &State<Auth>,
    client: RemoteClient,
    query: SecretQuery,
) -> (Status, RawHtml<String>) {
    let result = match query.get("token") {
        Some(token) => auth.accounts().verify_email(&token, &client.0).await,
        None => Err(AuthError::InvalidOneTimeToken),
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

#[utoipa::path(tag = "account", request_body = EmailRequest, responses((status = 202, description = "Accepted, whether or not the account exists", body = Accepted), (status = 429, description = "Rate limited", body = ErrorBody)))]
#[public]
#[post("/verify-email/resend", data = "<body>")]
pub async fn resend_verification(
    auth: &State<Auth>,
    client: RemoteClient,
    body: JsonBody<EmailRequest>,
) -> ApiResult<(Status, Json<Accepted>)> {
    auth.accounts().resend_verification(&body.0.email, &client.0).await?;
    Ok((Status::Accepted, Json(Accepted::default())))
}

#[utoipa::path(tag = "account", security(("bearer" = [])), responses((status = 200, description = "The caller's account", body = AccountView)))]
#[requires(authenticated)]
#[get("/me")]
pub async fn me(auth: &State<Auth>, user: AuthUser) -> ApiResult<Json<AccountView>> {
    Ok(Json(auth.accounts().account(user.id()).await?.into()))
}

#[utoipa::path(tag = "account", security(("bearer" = [])), responses((status = 200, description = "Everything held about the caller: account, profile, memberships, sessions, identity links, second factors, their own audit events; no secret, no hash", body = AccountExport)))]
#[requires(authenticated)]
#[get("/me/export")]
pub async fn export(auth: &State<Auth>, user: AuthUser) -> ApiResult<NoStore<AccountExport>> {
    Ok(NoStore::ok(auth.accounts().export(user.claims()).await?))
}

#[utoipa::path(tag = "account", security(("bearer" = [])), request_body = ProfileRequest, responses((status = 200, description = "The profile as saved", body = Profile), (status = 422, description = "Invalid full_name or phone", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(authenticated)]
#[patch("/me/profile", data = "<body>")]
pub async fn update_profile(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<ProfileRequest>,
) -> ApiResult<Json<Profile>> {
    Ok(Json(auth.accounts().update_profile(user.id(), &body.into_inner().into(), &client.0).await?))
}

#[utoipa::path(tag = "account", security(("bearer" = [])), request_body = PasswordChangeRequest, responses((status = 204, description = "Changed; other sessions revoked"), (status = 400, description = "Wrong current password", body = ErrorBody), (status = 422, description = "Weak new password", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota, or the login back-off of this address", body = ErrorBody)))]
#[requires(authenticated)]
#[post("/password/change", data = "<body>")]
pub async fn change_password(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<PasswordChangeRequest>,
) -> ApiResult<Status> {
    let body = body.into_inner();
    auth.accounts()
        .change_password(user.claims(), body.current_password.expose(), body.new_password.expose(), &client.0)
        .await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "account", request_body = EmailRequest, responses((status = 202, description = "Accepted, whether or not the account exists", body = Accepted), (status = 429, description = "Rate limited", body = ErrorBody)))]
#[public]
#[post("/password/reset", data = "<body>")]
pub async fn request_password_reset(
    auth: &State<Auth>,
    client: RemoteClient,
    body: JsonBody<EmailRequest>,
) -> ApiResult<(Status, Json<Accepted>)> {
    auth.accounts().request_password_reset(&body.0.email, &client.0).await?;
    Ok((Status::Accepted, Json(Accepted::default())))
}

#[utoipa::path(tag = "account", request_body = ResetConfirmRequest, responses((status = 204, description = "Password set; every session revoked"), (status = 400, description = "Invalid token", body = ErrorBody), (status = 422, description = "Weak password", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
#[public]
#[post("/password/reset/confirm", data = "<body>")]
pub async fn confirm_password_reset(
    auth: &State<Auth>,
    client: RemoteClient,
    body: JsonBody<ResetConfirmRequest>,
) -> ApiResult<Status> {
    let body = body.into_inner();
    auth.accounts().confirm_password_reset(body.token.expose(), body.new_password.expose(), &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "account", security(("bearer" = [])), request_body = EmailChangeRequest, responses((status = 202, description = "A confirmation link goes to the new address (or, if it has an account, a notice) and a notice to the current one; the same answer either way", body = Accepted), (status = 400, description = "Wrong password", body = ErrorBody), (status = 403, description = "The sign-in is older than 10 minutes (reauthentication_required, with WWW-Authenticate: Bearer error=\"insufficient_user_authentication\", max_age=\"600\"): sign in again", body = ErrorBody), (status = 422, description = "Invalid email, or the account's own", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota, or the login back-off of this address", body = ErrorBody)))]
#[requires(recent_auth = "10m")]
#[post("/me/email", data = "<body>")]
pub async fn request_email_change(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<EmailChangeRequest>,
) -> ApiResult<(Status, Json<Accepted>)> {
    let body = body.into_inner();
    auth.accounts().request_email_change(user.claims(), &body.new_email, body.password.expose(), &client.0).await?;
    Ok((Status::Accepted, Json(Accepted::default())))
}

#[utoipa::path(tag = "account", request_body = TokenRequest, responses((status = 200, description = "The account has the new address, verified; other sessions are revoked", body = EmailChanged), (status = 400, description = "Unknown, expired or used token", body = ErrorBody), (status = 409, description = "The address was taken meanwhile", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
#[public]
#[post("/me/email/confirm", data = "<body>")]
pub async fn confirm_email_change(
    auth: &State<Auth>,
    client: RemoteClient,
    body: JsonBody<TokenRequest>,
) -> ApiResult<Json<EmailChanged>> {
    let email = auth.accounts().confirm_email_change(body.0.token.expose(), &client.0).await?;
    Ok(Json(EmailChanged { email: email.to_string(), email_verified: true }))
}

#[utoipa::path(tag = "account", security(("bearer" = [])), request_body = DeleteAccountRequest, responses((status = 204, description = "Deleted, with every session"), (status = 400, description = "Wrong password (invalid_credentials), or wrong second factor (invalid_code)", body = ErrorBody), (status = 403, description = "The sign-in is older than 10 minutes (reauthentication_required, with WWW-Authenticate: Bearer error=\"insufficient_user_authentication\", max_age=\"600\"): sign in again", body = ErrorBody), (status = 409, description = "The only owner of a tenant that has other members", body = ErrorBody), (status = 422, description = "`code` is missing and the account has a second factor", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota, or the login back-off of this address", body = ErrorBody)))]
#[requires(recent_auth = "10m")]
#[delete("/me", data = "<body>")]
pub async fn delete_account(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<DeleteAccountRequest>,
) -> ApiResult<Status> {
    let body = body.into_inner();
    let code = body.code.as_ref().map(|code| code.expose());
    auth.accounts().delete_account(user.claims(), body.password.expose(), code, &client.0).await?;
    Ok(Status::NoContent)
}
