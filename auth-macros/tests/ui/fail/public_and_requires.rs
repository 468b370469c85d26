use auth_macros::{public, requires};
use rocket::get;

#[public]
#[requires(staff)]
#[get("/staff")]
fn staff() {}

fn main() {}
