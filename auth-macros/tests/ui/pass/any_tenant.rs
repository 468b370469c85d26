//! Routes with a tenant parameter: the role checked in the path's tenant, or
//! in any tenant on purpose; and what the listing says of them.

use auth_macros::requires;
use auth_rocket::{Policy, policy::Condition};
use rocket::{get, routes};

/// Any tenant's admin, on purpose.
#[requires(role = "admin", any_tenant)]
#[get("/tenant/<tenant_id>/status")]
fn status(tenant_id: &str) -> &str {
    tenant_id
}

/// Inside any(...) too.
#[requires(any_tenant, any(staff, role = "owner"))]
#[get("/orgs/<org_id>/support")]
fn support(org_id: &str) -> &str {
    org_id
}

/// Anywhere else `any_tenant` only says what `role` means already.
#[requires(permission = "members.manage", any_tenant)]
#[get("/invitations")]
fn invitations() {}

/// `tenant` beside any(...) checks the role in the path's tenant.
#[requires(any(staff, role = "admin"), tenant)]
#[get("/tenant/<tenant_id>/audit")]
fn audit(tenant_id: &str) -> &str {
    tenant_id
}

/// A tenant path without a role needs neither.
#[requires(any(tenant, superuser))]
#[get("/tenant/<tenant_id>/usage")]
fn usage(tenant_id: &str) -> &str {
    tenant_id
}

/// Not a tenant's parameter: `<orgs>`, `<team_id>`.
#[requires(role = "member")]
#[get("/teams/<team_id>/<orgs>")]
fn team(team_id: &str, orgs: &str) -> String {
    format!("{team_id} {orgs}")
}

fn main() {
    assert_eq!(<__AuthPolicy_status as Policy>::DESCRIPTION, r#"role = "admin", any_tenant"#);
    assert_eq!(__AuthPolicy_status::CONDITIONS, [Condition::Role("admin"), Condition::AnyTenant]);
    assert_eq!(<__AuthPolicy_support as Policy>::DESCRIPTION, r#"any_tenant, any(role = "owner", staff)"#);
    let _ = routes![status, support, invitations, audit, usage, team];
}
