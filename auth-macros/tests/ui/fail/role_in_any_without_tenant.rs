//! A role inside any(...) on a tenant path is checked in the path's tenant
//! only with `tenant` beside the any(...): a `tenant` alternative inside it
//! does not hold for the other alternatives.

use auth_macros::requires;
use rocket::get;

#[requires(any(staff, role = "admin"))]
#[get("/tenant/<tenant_id>/support")]
fn support(tenant_id: &str) -> &str {
    tenant_id
}

#[requires(any(tenant, permission = "members.manage"))]
#[get("/tenant/<tenant_id>/members")]
fn members(tenant_id: &str) -> &str {
    tenant_id
}

fn main() {}
