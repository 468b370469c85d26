use auth_macros::requires;
use rocket::get;

#[requires(role = "admin", roles = String)]
#[get("/admin")]
fn admin() {}

fn main() {}
