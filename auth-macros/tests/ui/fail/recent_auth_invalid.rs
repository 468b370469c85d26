//! Every way to get a `recent_auth` window wrong; each is reported on its literal.

use auth_macros::requires;
use rocket::get;

#[requires(recent_auth = "10")]
#[get("/no-unit")]
fn no_unit() {}

#[requires(recent_auth = "1.5h")]
#[get("/fraction")]
fn fraction() {}

#[requires(recent_auth = "1d")]
#[get("/days")]
fn days() {}

#[requires(recent_auth = "0m")]
#[get("/zero")]
fn zero() {}

#[requires(recent_auth = "25h")]
#[get("/too-long")]
fn too_long() {}

#[requires(recent_auth = 600)]
#[get("/not-a-string")]
fn not_a_string() {}

#[requires(recent_auth)]
#[get("/no-window")]
fn no_window() {}

fn main() {}
