use auth_macros::requires;
use rocket::get;

#[requires(any(staff, any(superuser, verified)))]
#[get("/support")]
fn support() {}

fn main() {}
