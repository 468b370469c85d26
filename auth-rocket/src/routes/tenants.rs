//! Tenants, their members, and tokens scoped to a tenant.

use auth_core::{
    Auth, TenantView, TokenPair,
    contract::{ErrorBody, MemberRequest, RoleRequest, TenantRequest, TenantTokenRequest},
    tenancy::Member,
};
use auth_macros::requires;
use rocket::{State, delete, get, http::Status, patch, post, serde::json::Json};
use uuid::Uuid;

use super::{ApiResult, NoStore, id_in_path};
use crate::{
    guards::{AuthUser, RemoteClient, TenantScope},
    json::JsonBody,
    policy::PlatformPermissions,
};

#[utoipa::path(tag = "tenants", security(("bearer" = [])), request_body = TenantRequest, responses((status = 201, description = "Created; the caller is its owner", body = TenantView), (status = 422, description = "Invalid name", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(authenticated)]
#[post("/tenants", data = "<body>")]
pub async fn create_tenant(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<TenantRequest>,
) -> ApiResult<(Status, Json<TenantView>)> {
    Ok((Status::Created, Json(auth.tenants().create(user.id(), &body.0.name, &client.0).await?)))
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), responses((status = 200, description = "The caller's tenants", body = Vec<TenantView>)))]
#[requires(authenticated)]
#[get("/tenants")]
pub async fn tenants(auth: &State<Auth>, user: AuthUser) -> ApiResult<Json<Vec<TenantView>>> {
    Ok(Json(auth.tenants().list(user.id()).await?))
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), responses((status = 200, description = "The tenant's members", body = Vec<Member>), (status = 403, description = "Token not scoped to this tenant", body = ErrorBody)))]
#[requires(tenant)]
#[get("/tenants/<tenant_id>/members")]
pub async fn members(auth: &State<Auth>, scope: TenantScope, tenant_id: Uuid) -> ApiResult<Json<Vec<Member>>> {
    Ok(Json(auth.tenants().members(scope.user.id(), tenant_id).await?))
}

// The token's role gates member changes; the operation re-checks the current
// membership in the same transaction as the change.
#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = MemberRequest, responses((status = 201, description = "Added", body = Member), (status = 403, description = "Token not scoped to this tenant, a role without members.manage, or a role above the caller's", body = ErrorBody), (status = 404, description = "Unknown user", body = ErrorBody), (status = 409, description = "Already a member", body = ErrorBody), (status = 422, description = "Unknown role", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(permission = "members.manage", tenant, roles = PlatformPermissions)]
#[post("/tenants/<tenant_id>/members", data = "<body>")]
pub async fn add_member(
    auth: &State<Auth>,
    scope: TenantScope,
    client: RemoteClient,
    tenant_id: Uuid,
    body: JsonBody<MemberRequest>,
) -> ApiResult<(Status, Json<Member>)> {
    let body = body.into_inner();
    let member = auth.tenants().add_member(scope.user.id(), tenant_id, &body.email, &body.role, &client.0).await?;
    Ok((Status::Created, Json(member)))
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path, description = "404 for a user who is not a member")), responses((status = 204, description = "Removed, or the caller left"), (status = 403, description = "Not allowed (removing another member needs members.manage and a role at least theirs), or the last owner", body = ErrorBody), (status = 404, description = "Not a member of this tenant", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
// Any member may leave, so the route asks only for the tenant; removing
// someone else needs `members.manage`, which the operation checks against the
// current membership (there is no body to read first).
#[requires(tenant)]
#[delete("/tenants/<tenant_id>/members/<user_id>")]
pub async fn remove_member(
    auth: &State<Auth>,
    scope: TenantScope,
    client: RemoteClient,
    tenant_id: Uuid,
    user_id: &str,
) -> ApiResult<Status> {
    let user_id = id_in_path(user_id)?;
    auth.tenants().remove_member(scope.user.id(), tenant_id, user_id, &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path, description = "404 for a user who is not a member")), request_body = RoleRequest, responses((status = 200, description = "The member with the new role; their next refresh carries it", body = Member), (status = 403, description = "Token not scoped to this tenant, a role without members.manage, a role above the caller's, or demoting the last owner", body = ErrorBody), (status = 404, description = "Not a member of this tenant", body = ErrorBody), (status = 422, description = "Unknown role", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(permission = "members.manage", tenant, roles = PlatformPermissions)]
#[patch("/tenants/<tenant_id>/members/<user_id>", data = "<body>")]
pub async fn change_member_role(
    auth: &State<Auth>,
    scope: TenantScope,
    client: RemoteClient,
    tenant_id: Uuid,
    user_id: &str,
    body: JsonBody<RoleRequest>,
) -> ApiResult<Json<Member>> {
    let user_id = id_in_path(user_id)?;
    let member = auth.tenants().set_member_role(scope.user.id(), tenant_id, user_id, &body.0.role, &client.0).await?;
    Ok(Json(member))
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), request_body = TenantTokenRequest, responses((status = 200, description = "Tokens scoped to the tenant, in the caller's login", body = TokenPair), (status = 403, description = "Not a member", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(authenticated)]
#[post("/token/tenant", data = "<body>")]
pub async fn tenant_token(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<TenantTokenRequest>,
) -> ApiResult<NoStore<TokenPair>> {
    Ok(NoStore::ok(auth.tenants().token(user.claims(), body.0.tenant_id, &client.0).await?))
}
