use auth_macros::public;
use rocket::{get, routes};

#[get("/health")]
#[public]
fn health() {}

fn main() {
    let _ = routes![health];
}
