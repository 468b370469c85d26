use auth_macros::requires;
use rocket::get;

#[requires(authenticate)]
#[get("/me")]
fn me() {}

fn main() {}
