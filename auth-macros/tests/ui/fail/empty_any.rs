use auth_macros::requires;
use rocket::get;

#[requires(any())]
#[get("/anything")]
fn anything() {}

fn main() {}
