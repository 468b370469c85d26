use auth_macros::requires;
use rocket::get;

#[requires(admin)]
#[get("/admin")]
fn admin() {}

fn main() {}
