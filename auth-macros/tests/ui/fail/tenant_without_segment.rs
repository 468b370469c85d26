use auth_macros::requires;
use rocket::get;

#[requires(tenant, role = "member")]
#[get("/reports/<id>")]
fn report(id: u32) -> String {
    id.to_string()
}

fn main() {}
