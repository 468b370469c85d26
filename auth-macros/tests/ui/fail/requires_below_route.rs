use auth_macros::requires;
use rocket::{get, routes};

#[get("/staff")]
#[requires(staff)]
fn staff() {}

fn main() {
    let _ = routes![staff];
}
