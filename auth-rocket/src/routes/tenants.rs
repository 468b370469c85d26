//! Tenants, their members, and tokens scoped to a tenant.

use auth_core::{
    Auth, TenantView, TokenPair,
    contract::{
        ErrorBody, InvitationRequest, InvitationSent, RoleRequest, TenantRequest, TenantSettings,
        TenantSettingsRequest, TenantTokenRequest, TokenRequest,
    },
    tenancy::{Invitation, Member, TenantMembership},
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

// The token's role gates member changes and invitations; the operation
// re-checks the current membership in the same transaction as the change.
#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = InvitationRequest, responses((status = 202, description = "Invited: a one-time accept link is mailed to the address; the same answer whether or not it has an account", body = InvitationSent), (status = 403, description = "Token not scoped to this tenant, a role without members.manage, or a role above the caller's", body = ErrorBody), (status = 409, description = "Already a member, or already invited", body = ErrorBody), (status = 422, description = "Invalid email or unknown role", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(permission = "members.manage", tenant, roles = PlatformPermissions)]
#[post("/tenants/<tenant_id>/invitations", data = "<body>")]
pub async fn invite(
    auth: &State<Auth>,
    scope: TenantScope,
    client: RemoteClient,
    tenant_id: Uuid,
    body: JsonBody<InvitationRequest>,
) -> ApiResult<(Status, Json<InvitationSent>)> {
    let body = body.into_inner();
    let invitation = auth.tenants().invite(scope.user.id(), tenant_id, &body.email, &body.role, &client.0).await?;
    Ok((Status::Accepted, Json(invitation.into())))
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), responses((status = 200, description = "The open invitations, newest first", body = Vec<Invitation>), (status = 403, description = "Token not scoped to this tenant, or a role without members.manage", body = ErrorBody)))]
#[requires(permission = "members.manage", tenant, roles = PlatformPermissions)]
#[get("/tenants/<tenant_id>/invitations")]
pub async fn invitations(auth: &State<Auth>, scope: TenantScope, tenant_id: Uuid) -> ApiResult<Json<Vec<Invitation>>> {
    Ok(Json(auth.tenants().invitations(scope.user.id(), tenant_id).await?))
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("invitation_id" = Uuid, Path, description = "404 for an invitation that is not open")), responses((status = 204, description = "Revoked; its link stops working"), (status = 403, description = "Token not scoped to this tenant, a role without members.manage, or an invitation to a role above the caller's", body = ErrorBody), (status = 404, description = "No open invitation of this tenant with this id", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(permission = "members.manage", tenant, roles = PlatformPermissions)]
#[delete("/tenants/<tenant_id>/invitations/<invitation_id>")]
pub async fn revoke_invitation(
    auth: &State<Auth>,
    scope: TenantScope,
    client: RemoteClient,
    tenant_id: Uuid,
    invitation_id: &str,
) -> ApiResult<Status> {
    let invitation_id = id_in_path(invitation_id)?;
    auth.tenants().revoke_invitation(scope.user.id(), tenant_id, invitation_id, &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "tenants", security(("bearer" = [])), request_body = TokenRequest, responses((status = 201, description = "Joined; the invitation is consumed", body = TenantMembership), (status = 400, description = "Unknown, expired, used or revoked invitation", body = ErrorBody), (status = 403, description = "The caller's email is not verified, or is not the invited address", body = ErrorBody), (status = 409, description = "Already a member", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(authenticated)]
#[post("/invitations/accept", data = "<body>")]
pub async fn accept_invitation(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<TokenRequest>,
) -> ApiResult<(Status, Json<TenantMembership>)> {
    let joined = auth.tenants().accept_invitation(user.id(), body.0.token.expose(), &client.0).await?;
    Ok((Status::Created, Json(joined)))
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

#[utoipa::path(tag = "tenants", security(("bearer" = [])), request_body = TenantTokenRequest, responses((status = 200, description = "Tokens scoped to the tenant, in the caller's login", body = TokenPair), (status = 403, description = "Not a member (not_a_member), or the tenant requires a second factor and the session has none (mfa_required, with WWW-Authenticate: Bearer error=\"insufficient_user_authentication\")", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
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

#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = TenantSettingsRequest, responses((status = 200, description = "The tenant's settings as set", body = TenantSettings), (status = 403, description = "Token not scoped to this tenant, or not its owner (the highest role); or turning require_mfa on from a session without a second factor (mfa_required, with WWW-Authenticate: Bearer error=\"insufficient_user_authentication\")", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(tenant)]
#[patch("/tenants/<tenant_id>", data = "<body>")]
pub async fn tenant_settings(
    auth: &State<Auth>,
    scope: TenantScope,
    client: RemoteClient,
    tenant_id: Uuid,
    body: JsonBody<TenantSettingsRequest>,
) -> ApiResult<Json<TenantSettings>> {
    let settings =
        auth.tenants().set_require_mfa(scope.user.claims(), tenant_id, body.0.require_mfa, &client.0).await?;
    Ok(Json(settings))
}
