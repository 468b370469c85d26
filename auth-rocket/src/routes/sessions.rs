//! Sign-in with a password, refresh, sign-out and the caller's sessions.

use auth_core::{
    Auth, Session, TokenPair,
    contract::{ErrorBody, LoginRequest, RefreshRequest},
};
use auth_macros::{public, requires};
use rocket::{State, delete, get, http::Status, post, serde::json::Json};

use super::{ApiResult, NoStore, id_in_path};
use crate::{
    guards::{AuthUser, RemoteClient},
    json::JsonBody,
};

#[utoipa::path(tag = "session", request_body = LoginRequest, responses((status = 200, description = "Signed in", body = TokenPair), (status = 401, description = "Invalid credentials", body = ErrorBody), (status = 403, description = "Email not verified, account disabled, or not a member of tenant_id; or, after a correct password, mfa_required: with `mfa_token` and `methods` inside the error object when the account has a second factor (finish at POST /login/mfa), without them when tenant_id requires a second factor the account lacks", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
#[public]
#[post("/login", data = "<body>")]
pub async fn login(
    auth: &State<Auth>,
    client: RemoteClient,
    body: JsonBody<LoginRequest>,
) -> ApiResult<NoStore<TokenPair>> {
    let body = body.into_inner();
    Ok(NoStore::ok(auth.sessions().login(&body.email, body.password.expose(), body.tenant_id, &client.0).await?))
}

#[utoipa::path(tag = "session", request_body = RefreshRequest, responses((status = 200, description = "Rotated: a new pair", body = TokenPair), (status = 401, description = "Invalid or reused refresh token", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
#[public]
#[post("/refresh", data = "<body>")]
pub async fn refresh(
    auth: &State<Auth>,
    client: RemoteClient,
    body: JsonBody<RefreshRequest>,
) -> ApiResult<NoStore<TokenPair>> {
    Ok(NoStore::ok(auth.sessions().refresh(body.0.refresh.expose(), &client.0).await?))
}

#[utoipa::path(tag = "session", request_body = RefreshRequest, security(("bearer" = [])), responses((status = 204, description = "That session is revoked"), (status = 401, description = "Missing, invalid, expired or revoked access token, or an invalid refresh token", body = ErrorBody), (status = 403, description = "Another user's refresh token", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(authenticated)]
#[post("/logout", data = "<body>")]
pub async fn logout(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<RefreshRequest>,
) -> ApiResult<Status> {
    auth.sessions().logout(user.claims(), body.0.refresh.expose(), &client.0).await?;
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
