//! Sign-in with a password, refresh, sign-out and the caller's sessions.

use auth_core::{
    Auth, AuthError, FieldErrors, Session,
    contract::{ErrorBody, LoginRequest, LogoutRequest, RefreshRequest, SignedIn},
};
use auth_macros::{public, requires};
use rocket::{State, delete, get, http::Status, post, serde::json::Json};

use super::{ApiResult, NoStore, id_in_path};
use crate::{
    browser::Browser,
    guards::{AuthUser, RemoteClient},
    json::JsonBody,
};

#[utoipa::path(tag = "session", request_body = LoginRequest, responses((status = 200, description = "Signed in: the pair, or with session cookie the cookies and {token_type: cookie, expires_in}", body = SignedIn), (status = 401, description = "Invalid credentials", body = ErrorBody), (status = 403, description = "Email not verified, account disabled, or not a member of tenant_id; a cookie-mode sign-in sent cross-site (csrf_failed); or, after a correct password, mfa_required: with `mfa_token` and `methods` inside the error object when the account has a second factor (finish at POST /login/mfa), without them when tenant_id requires a second factor the account lacks", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
#[public]
#[post("/login", data = "<body>")]
pub async fn login(
    auth: &State<Auth>,
    client: RemoteClient,
    browser: Browser<'_>,
    body: JsonBody<LoginRequest>,
) -> ApiResult<NoStore<SignedIn>> {
    let body = body.into_inner();
    browser.check_sign_in(body.session)?;
    let pair = auth.sessions().login(&body.email, body.password.expose(), body.tenant_id, &client.0).await?;
    Ok(NoStore::ok(browser.signed_in(body.session, pair)))
}

#[utoipa::path(tag = "session", request_body = RefreshRequest, responses((status = 200, description = "Rotated: a new pair (with session cookie and no refresh field: the refresh cookie is used and all three cookies are rotated)", body = SignedIn), (status = 401, description = "Invalid or reused refresh token, or no refresh cookie", body = ErrorBody), (status = 403, description = "A cookie-mode refresh without the CSRF token, or sent cross-site (csrf_failed)", body = ErrorBody), (status = 422, description = "No refresh token (a refresh field, or session cookie)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
#[public]
#[post("/refresh", data = "<body>")]
pub async fn refresh(
    auth: &State<Auth>,
    client: RemoteClient,
    browser: Browser<'_>,
    body: JsonBody<RefreshRequest>,
) -> ApiResult<NoStore<SignedIn>> {
    let body = body.into_inner();
    let token = match (body.refresh, body.session) {
        (Some(token), mode) => {
            browser.check_sign_in(mode)?;
            token
        }
        (None, Some(_)) => browser.refresh_token()?,
        (None, None) => return Err(missing_refresh().into()),
    };
    let pair = auth.sessions().refresh(token.expose(), &client.0).await?;
    Ok(NoStore::ok(browser.signed_in(body.session, pair)))
}

/// The 422 of a body without its refresh token, as a missing field is.
fn missing_refresh() -> AuthError {
    FieldErrors::single("refresh", "missing field `refresh`")
}

#[utoipa::path(tag = "session", request_body = LogoutRequest, security(("bearer" = [])), responses((status = 204, description = "That session is revoked (a browser session's `{}` ends the cookies' session and clears them)"), (status = 401, description = "Missing, invalid, expired or revoked access token, or an invalid refresh token", body = ErrorBody), (status = 403, description = "Another user's refresh token; a cookie-authenticated request without the CSRF token (csrf_failed)", body = ErrorBody), (status = 422, description = "No refresh token from a bearer-authenticated caller", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(authenticated)]
#[post("/logout", data = "<body>")]
pub async fn logout(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    browser: Browser<'_>,
    body: JsonBody<LogoutRequest>,
) -> ApiResult<Status> {
    match body.into_inner().refresh {
        Some(refresh) => auth.sessions().logout(user.claims(), refresh.expose(), &client.0).await?,
        // A browser's refresh cookie never reaches this route: its session is the access token's.
        None if user.is_cookie_session() => auth.sessions().revoke(user.claims(), user.session_id(), &client.0).await?,
        None => return Err(missing_refresh().into()),
    }
    if user.is_cookie_session() {
        browser.clear();
    }
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "session", security(("bearer" = [])), responses((status = 204, description = "Every session is revoked"), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(authenticated)]
#[post("/logout-all")]
pub async fn logout_all(auth: &State<Auth>, user: AuthUser, client: RemoteClient) -> ApiResult<Status> {
    auth.sessions().logout_all(user.claims(), &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "session", security(("bearer" = [])), responses((status = 200, description = "The caller's live sessions", body = Vec<Session>)))]
#[requires(authenticated)]
#[get("/sessions")]
pub async fn sessions(auth: &State<Auth>, user: AuthUser) -> ApiResult<Json<Vec<Session>>> {
    Ok(Json(auth.sessions().list(user.claims()).await?))
}

#[utoipa::path(tag = "session", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Session id")), responses((status = 204, description = "Revoked"), (status = 404, description = "Not one of the caller's sessions", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(authenticated)]
#[delete("/sessions/<id>")]
pub async fn revoke_session(auth: &State<Auth>, user: AuthUser, client: RemoteClient, id: &str) -> ApiResult<Status> {
    let id = id_in_path(id)?;
    auth.sessions().revoke(user.claims(), id, &client.0).await?;
    Ok(Status::NoContent)
}
