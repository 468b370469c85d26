use auth_macros::requires;
use rocket::get;

#[requires(role = admin)]
#[get("/admin")]
fn admin() {}

fn main() {}
