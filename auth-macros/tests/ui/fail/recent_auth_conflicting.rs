use auth_macros::requires;
use rocket::get;

#[requires(mfa, recent_auth = "10m", recent_auth = "5m")]
#[get("/settings")]
fn settings() {}

#[requires(recent_auth = "10m", recent_auth = "600s")]
#[get("/same")]
fn same() {}

fn main() {}
