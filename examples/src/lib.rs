//! The demo host app: the platform mounted at `/api/auth` plus the contract's
//! demo routes, each protected by a request guard.

use auth_platform::core::{AuthError, tenancy::RoleSet};
use auth_platform::rocket::{AuthFairing, AuthUser, Authorized, Policy, check_tenant_role};
use rocket::{Build, Request, Rocket, get, routes, serde::json::Json};
use serde_json::{Value, json};

/// Any valid access token.
#[get("/protected")]
fn protected(user: AuthUser) -> Json<Value> {
    Json(json!({ "user_id": user.id() }))
}

/// A token scoped to the path's tenant with at least `member`.
pub struct TenantMember;

impl Policy for TenantMember {
    const DESCRIPTION: &'static str = r#"role = "member", tenant"#;
    fn check(user: &AuthUser, request: &Request<'_>, roles: &RoleSet) -> Result<(), AuthError> {
        check_tenant_role(user, request, "tenant_id", Some("member"), roles)
    }
}

/// A token scoped to the path's tenant with at least `admin`.
pub struct TenantAdmin;

impl Policy for TenantAdmin {
    const DESCRIPTION: &'static str = r#"role = "admin", tenant"#;
    fn check(user: &AuthUser, request: &Request<'_>, roles: &RoleSet) -> Result<(), AuthError> {
        check_tenant_role(user, request, "tenant_id", Some("admin"), roles)
    }
}

/// Platform staff.
pub struct Staff;

impl Policy for Staff {
    const DESCRIPTION: &'static str = "staff";
    fn check(user: &AuthUser, _: &Request<'_>, _: &RoleSet) -> Result<(), AuthError> {
        if user.is_staff() { Ok(()) } else { Err(AuthError::Forbidden) }
    }
}

#[get("/tenant/<tenant_id>/data")]
fn tenant_data(access: Authorized<TenantMember>, tenant_id: &str) -> Json<Value> {
    let role = access.user.tenant().map(|(_, role)| role.to_owned());
    Json(json!({ "tenant_id": tenant_id, "role": role, "data": ["report-1", "report-2"] }))
}

#[get("/tenant/<tenant_id>/admin")]
fn tenant_admin(access: Authorized<TenantAdmin>, tenant_id: &str) -> Json<Value> {
    Json(json!({ "tenant_id": tenant_id, "admin": true, "user_id": access.user.id() }))
}

#[get("/staff")]
fn staff(access: Authorized<Staff>) -> Json<Value> {
    Json(json!({ "staff": true, "user_id": access.user.id() }))
}

/// The demo app on `figment` (tests pass their own; `main` uses Rocket's default).
pub fn rocket(figment: rocket::figment::Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(AuthFairing::default())
        .mount("/api/auth", auth_platform::rocket::routes())
        .mount("/", auth_platform::rocket::well_known())
        .mount("/api", routes![protected, tenant_data, tenant_admin, staff])
        .register("/", auth_platform::rocket::catchers())
}
