//! The operators' API, for the platform's staff (`#[requires(staff)]`; the
//! staff flag itself, superusers only): find users, see one, deactivate and
//! reactivate them, end their sessions, read the audit trail. Each goes
//! through [`Operators`](auth_core::Operators) with the caller as the actor,
//! as the CLI does with its own; every change is audited with its actor, the
//! reads (finding users, the audit trail) are not.
//!
//! The queries name people (an address searched for, a user's id), so they
//! are read through [`SecretQuery`] and kept out of the logs.

use auth_core::{
    AuditRecord, Auth, Operator,
    contract::{AuditQuery, ErrorBody, StaffRequest, StaffUserView, UserPage, UserSearch},
};
use auth_macros::requires;
use rocket::{State, get, http::Status, patch, post, serde::json::Json};

use super::{ApiResult, id_in_path};
use crate::{
    guards::{AuthUser, RemoteClient},
    json::JsonBody,
    secret_query::SecretQuery,
};

#[utoipa::path(tag = "operators", security(("bearer" = [])), params(("email" = Option<String>, Query, max_length = 254, description = "Users whose address contains it, ignoring case; none or empty: every user"), ("page" = Option<u32>, Query, minimum = 1, maximum = 100000, description = "Pages of 50 users ordered by email, from 1 (the default)")), responses((status = 200, description = "A page of the users found", body = UserPage), (status = 403, description = "The caller is not staff (forbidden)", body = ErrorBody), (status = 422, description = "An email search over 254 characters, or a page that is not a whole number from 1 to 100000 (validation_error)", body = ErrorBody)))]
#[requires(staff)]
#[get("/admin/users")]
pub async fn admin_find_users(auth: &State<Auth>, query: SecretQuery) -> ApiResult<Json<UserPage>> {
    let search = UserSearch::parse(query.get("email").as_deref(), query.get("page").as_deref())?;
    Ok(Json(auth.operators().find_users(&search).await?))
}

#[utoipa::path(tag = "operators", security(("bearer" = [])), params(("id" = Uuid, Path, description = "404 for an unknown or malformed id")), responses((status = 200, description = "The account as staff see it", body = StaffUserView), (status = 403, description = "The caller is not staff (forbidden)", body = ErrorBody), (status = 404, description = "No such user (not_found)", body = ErrorBody)))]
#[requires(staff)]
#[get("/admin/users/<id>")]
pub async fn admin_user(auth: &State<Auth>, id: &str) -> ApiResult<Json<StaffUserView>> {
    Ok(Json(auth.operators().user(id_in_path(id)?).await?))
}

#[utoipa::path(tag = "operators", security(("bearer" = [])), params(("id" = Uuid, Path, description = "404 for an unknown or malformed id")), responses((status = 200, description = "Deactivated: every session ended at once, access tokens included; its login answers 403 account_disabled", body = StaffUserView), (status = 403, description = "The caller is not staff (forbidden), the account is a superuser's and the caller is not one (forbidden), or it is the caller's own (own_account)", body = ErrorBody), (status = 404, description = "No such user (not_found)", body = ErrorBody)))]
#[requires(staff)]
#[post("/admin/users/<id>/deactivate")]
pub async fn admin_deactivate(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    id: &str,
) -> ApiResult<Json<StaffUserView>> {
    let id = id_in_path(id)?;
    Ok(Json(auth.operators().set_user_active(Operator::Staff(user.id()), id, false, &client.0).await?))
}

#[utoipa::path(tag = "operators", security(("bearer" = [])), params(("id" = Uuid, Path, description = "404 for an unknown or malformed id")), responses((status = 200, description = "Active: it can sign in again", body = StaffUserView), (status = 403, description = "The caller is not staff, or the account is a superuser's and the caller is not one (forbidden)", body = ErrorBody), (status = 404, description = "No such user (not_found)", body = ErrorBody)))]
#[requires(staff)]
#[post("/admin/users/<id>/activate")]
pub async fn admin_activate(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    id: &str,
) -> ApiResult<Json<StaffUserView>> {
    let id = id_in_path(id)?;
    Ok(Json(auth.operators().set_user_active(Operator::Staff(user.id()), id, true, &client.0).await?))
}

#[utoipa::path(tag = "operators", security(("bearer" = [])), params(("id" = Uuid, Path, description = "404 for an unknown or malformed id")), responses((status = 204, description = "Every session of the user ended at once, access tokens included"), (status = 403, description = "The caller is not staff, or the account is a superuser's and the caller is not one (forbidden)", body = ErrorBody), (status = 404, description = "No such user (not_found)", body = ErrorBody)))]
#[requires(staff)]
#[post("/admin/users/<id>/logout-all")]
pub async fn admin_logout_all(auth: &State<Auth>, user: AuthUser, client: RemoteClient, id: &str) -> ApiResult<Status> {
    let id = id_in_path(id)?;
    auth.operators().end_sessions(Operator::Staff(user.id()), id, &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "operators", security(("bearer" = [])), params(("id" = Uuid, Path, description = "404 for an unknown or malformed id")), request_body = StaffRequest, responses((status = 200, description = "The account with the flag as asked; taking it ended the account's sessions", body = StaffUserView), (status = 403, description = "The caller is not a superuser (forbidden), or takes their own flag (own_account)", body = ErrorBody), (status = 404, description = "No such user (not_found)", body = ErrorBody)))]
#[requires(superuser)]
#[patch("/admin/users/<id>", data = "<body>")]
pub async fn admin_set_staff(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    id: &str,
    body: JsonBody<StaffRequest>,
) -> ApiResult<Json<StaffUserView>> {
    let id = id_in_path(id)?;
    Ok(Json(auth.operators().set_staff(Operator::Staff(user.id()), id, body.0.is_staff, &client.0).await?))
}

#[utoipa::path(tag = "operators", security(("bearer" = [])), params(("user_id" = Option<Uuid>, Query, description = "Events of this user"), ("event" = Option<String>, Query, pattern = "^[a-z0-9_]{1,64}$", description = "Events of this kind, e.g. login_failed"), ("since" = Option<String>, Query, format = DateTime, description = "Events at or after this RFC 3339 date-time"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "At most this many events (default 100)")), responses((status = 200, description = "The audit events that match every filter given, newest first", body = Vec<AuditRecord>), (status = 403, description = "The caller is not staff (forbidden)", body = ErrorBody), (status = 422, description = "A filter that is not as documented (validation_error)", body = ErrorBody)))]
#[requires(staff)]
#[get("/admin/audit")]
pub async fn admin_audit(auth: &State<Auth>, query: SecretQuery) -> ApiResult<Json<Vec<AuditRecord>>> {
    let [user_id, event, since, limit] = ["user_id", "event", "since", "limit"].map(|key| query.get(key));
    let query = AuditQuery::parse(user_id.as_deref(), event.as_deref(), since.as_deref(), limit.as_deref())?;
    Ok(Json(auth.operators().search_audit(&query).await?))
}
