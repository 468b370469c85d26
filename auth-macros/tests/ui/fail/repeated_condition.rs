use auth_macros::requires;
use rocket::get;

#[requires(staff, verified, staff)]
#[get("/staff")]
fn staff() {}

fn main() {}
