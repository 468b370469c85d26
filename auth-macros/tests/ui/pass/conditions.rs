//! Every condition, with the default roles (owner > admin > member).

use auth_macros::requires;
use auth_rocket::{AuthUser, TenantScope};
use rocket::serde::json::Json;
use rocket::{get, post, route, routes};

#[requires(authenticated)]
#[get("/me")]
fn me(user: AuthUser) -> String {
    user.id().to_string()
}

/// Doc comments and other attributes may stand between the two.
#[requires(role = "admin", tenant)]
#[doc(alias = "quarterly")]
#[get("/tenant/<tenant_id>/reports")]
fn reports(tenant_id: &str, scope: TenantScope) -> String {
    format!("{tenant_id} {}", scope.role)
}

#[requires(tenant = "org_id", permission = "members.manage")]
#[post("/orgs/<org_id>/invite", data = "<body>")]
fn invite(org_id: &str, body: Json<Vec<String>>) -> String {
    format!("{org_id} {}", body.len())
}

#[requires(staff, verified)]
#[rocket::get("/staff")]
fn staff() {}

#[requires(superuser)]
#[route(DELETE, uri = "/everything")]
fn everything() {}

#[requires(any(staff, role = "owner"), verified)]
#[get("/audit?<page>")]
fn audit(page: Option<u32>) -> String {
    format!("{page:?}")
}

/// `authenticated` inside any() next to stronger alternatives is allowed.
#[requires(any(authenticated, staff))]
#[get("/lenient")]
fn lenient() {}

/// Several permissions all hold; one role.
#[requires(role = "member", permission = "members.manage", tenant)]
#[get("/tenant/<tenant_id>/members")]
pub fn members(tenant_id: &str) -> &str {
    tenant_id
}

/// An async handler, and a tenant alternative.
#[requires(any(tenant, superuser))]
#[get("/tenant/<tenant_id>/usage")]
async fn usage(tenant_id: &str) -> &str {
    tenant_id
}

fn main() {
    let _ = routes![me, reports, invite, staff, everything, audit, lenient, members, usage];
}
