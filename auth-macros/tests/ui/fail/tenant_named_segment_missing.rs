use auth_macros::requires;
use rocket::get;

#[requires(tenant = "org_id")]
#[get("/tenant/<tenant_id>/reports")]
fn reports(tenant_id: &str) -> &str {
    tenant_id
}

fn main() {}
