use auth_macros::requires;
use rocket::get;

#[requires(staff = true)]
#[get("/staff")]
fn staff() {}

fn main() {}
