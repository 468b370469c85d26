use auth_macros::requires;
use rocket::get;

#[requires(tenant = "<org_id>")]
#[get("/orgs/<org_id>")]
fn org(org_id: &str) -> &str {
    org_id
}

fn main() {}
