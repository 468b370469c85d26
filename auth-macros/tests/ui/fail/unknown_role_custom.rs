use auth_macros::{Roles, requires};
use rocket::get;

#[derive(Clone, Copy, PartialEq, Eq, Roles)]
enum Newsroom {
    Editor,
    Writer,
    Reader,
}

#[requires(role = "admin", roles = Newsroom)]
#[get("/drafts")]
fn drafts() {}

fn main() {}
