use auth_macros::requires;
use rocket::get;

#[requires(role = "admin", tenant, role = "owner")]
#[get("/tenant/<tenant_id>/billing")]
fn billing(tenant_id: &str) -> &str {
    tenant_id
}

fn main() {}
