//! #[public] marks routes that are open on purpose.

use auth_macros::public;
use rocket::{get, post, routes};

#[public]
#[get("/health")]
fn health() -> &'static str {
    "ok"
}

#[public]
#[post("/hooks/<name>", data = "<body>")]
async fn hook(name: &str, body: String) -> String {
    format!("{name}: {}", body.len())
}

fn main() {
    let _ = routes![health, hook];
}
