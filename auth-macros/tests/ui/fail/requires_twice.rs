use auth_macros::requires;
use rocket::get;

#[requires(staff)]
#[requires(verified)]
#[get("/staff")]
fn staff() {}

fn main() {}
