use auth_macros::requires;
use rocket::get;

#[requires()]
#[get("/anything")]
fn anything() {}

fn main() {}
