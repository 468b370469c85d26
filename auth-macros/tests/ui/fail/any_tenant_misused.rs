use auth_macros::requires;
use rocket::get;

#[requires(role = "admin", tenant, any_tenant)]
#[get("/tenant/<tenant_id>/both")]
fn both(tenant_id: &str) -> &str {
    tenant_id
}

#[requires(any(staff, any_tenant), role = "admin")]
#[get("/tenant/<tenant_id>/alternative")]
fn alternative(tenant_id: &str) -> &str {
    tenant_id
}

#[requires(any_tenant, verified)]
#[get("/tenant/<tenant_id>/nothing")]
fn nothing(tenant_id: &str) -> &str {
    tenant_id
}

#[requires(role = "admin", any_tenant = "yes")]
#[get("/tenant/<tenant_id>/valued")]
fn valued(tenant_id: &str) -> &str {
    tenant_id
}

fn main() {}
