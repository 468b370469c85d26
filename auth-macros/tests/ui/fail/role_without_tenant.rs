//! A role or permission on a route with a tenant parameter must say in which
//! tenant it is checked: an admin of tenant B would pass on tenant A's path.

use auth_macros::requires;
use rocket::get;

#[requires(role = "admin")]
#[get("/tenant/<tenant_id>/reports")]
fn reports(tenant_id: &str) -> &str {
    tenant_id
}

/// Other names of a tenant: the help names the segment.
#[requires(permission = "members.manage", verified)]
#[get("/orgs/<org_id>/invites")]
fn invites(org_id: &str) -> &str {
    org_id
}

/// `tenant` compares path segments only.
#[requires(role = "member")]
#[get("/reports?<tenant_id>")]
fn by_query(tenant_id: &str) -> &str {
    tenant_id
}

fn main() {}
