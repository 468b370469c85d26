//! The demo host app: the platform mounted at `/api/auth` plus the contract's
//! demo routes, each guarded by `#[requires(...)]` (a request guard the macro
//! adds, run before the handler and before any body is parsed).

use auth_platform::requires;
use auth_platform::rocket::{AuthFairing, AuthUser, TenantScope};
use rocket::{Build, Rocket, get, routes, serde::json::Json};
use serde_json::{Value, json};
use uuid::Uuid;

/// Any valid access token.
#[requires(authenticated)]
#[get("/protected")]
fn protected(user: AuthUser) -> Json<Value> {
    Json(json!({ "user_id": user.id() }))
}

/// A token scoped to the path's tenant with at least `member`.
#[requires(role = "member", tenant)]
#[get("/tenant/<tenant_id>/data")]
fn tenant_data(tenant_id: Uuid, scope: TenantScope) -> Json<Value> {
    Json(json!({ "tenant_id": tenant_id, "role": scope.role, "data": ["report-1", "report-2"] }))
}

/// A token scoped to the path's tenant with at least `admin`.
#[requires(role = "admin", tenant)]
#[get("/tenant/<tenant_id>/admin")]
fn tenant_admin(tenant_id: Uuid, user: AuthUser) -> Json<Value> {
    Json(json!({ "tenant_id": tenant_id, "admin": true, "user_id": user.id() }))
}

/// Platform staff.
#[requires(staff)]
#[get("/staff")]
fn staff(user: AuthUser) -> Json<Value> {
    Json(json!({ "staff": true, "user_id": user.id() }))
}

/// The demo app on `figment` (tests pass their own; `main` uses Rocket's default).
pub fn rocket(figment: rocket::figment::Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(AuthFairing::mounted_at("/api/auth"))
        .mount("/api", routes![protected, tenant_data, tenant_admin, staff])
        // An API-only app: the contract's error bodies everywhere, not only under /api/auth.
        .register("/", auth_platform::rocket::catchers())
}
