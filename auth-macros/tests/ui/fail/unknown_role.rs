use auth_macros::requires;
use rocket::get;

#[requires(role = "admni", tenant)]
#[get("/tenant/<tenant_id>/reports")]
fn reports(tenant_id: &str) -> &str {
    tenant_id
}

fn main() {}
