use auth_macros::requires;
use rocket::get;

#[requires(tenant = "a", tenant = "b")]
#[get("/move/<a>/<b>")]
fn transfer(a: &str, b: &str) -> String {
    format!("{a} {b}")
}

fn main() {}
