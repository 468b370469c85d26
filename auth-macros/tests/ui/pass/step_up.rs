//! Step-up conditions: a second factor, a recent sign-in, alone, together,
//! beside the other conditions and inside any(...).

use auth_macros::requires;
use auth_rocket::AuthUser;
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes};

#[requires(mfa)]
#[get("/me/factors")]
fn factors(user: AuthUser) -> String {
    format!("{:?} at {}", user.amr(), user.auth_time())
}

#[requires(recent_auth = "10m")]
#[post("/me/email", data = "<body>")]
fn email(body: Json<String>) -> String {
    body.into_inner()
}

/// Each unit, the bounds, and the order they are written in does not matter.
#[requires(recent_auth = "30s", mfa, verified)]
#[delete("/me")]
fn delete_me() {}

#[requires(recent_auth = "1h")]
#[get("/hourly")]
fn hourly() {}

#[requires(recent_auth = "24h")]
#[get("/daily")]
fn daily() {}

#[requires(recent_auth = "1s")]
#[get("/now")]
fn now() {}

#[requires(role = "admin", tenant, mfa, recent_auth = "5m")]
#[delete("/tenant/<tenant_id>")]
fn close(tenant_id: &str) -> &str {
    tenant_id
}

#[requires(any(mfa, recent_auth = "5m"))]
#[get("/either")]
fn either() {}

#[requires(any(staff, mfa), recent_auth = "15m")]
#[get("/support")]
fn support() {}

fn main() {
    let _ = routes![factors, email, delete_me, hourly, daily, now, close, either, support];
}
