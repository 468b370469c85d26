use auth_macros::requires;
use rocket::get;

#[requires(mfa = true)]
#[get("/value")]
fn value() {}

#[requires(any(mfa, mfa))]
#[get("/twice")]
fn twice() {}

#[requires(recent_auht = "5m")]
#[get("/misspelt")]
fn misspelt() {}

fn main() {}
