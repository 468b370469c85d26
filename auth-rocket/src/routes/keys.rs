//! The public keys that verify access tokens, for services that verify them themselves.

use auth_core::Auth;
use auth_macros::public;
use rocket::{State, get, serde::json::Json};

#[utoipa::path(tag = "keys", responses((status = 200, description = "The public JSON Web Key Set")))]
#[public]
#[get("/jwks.json")]
pub fn jwks(auth: &State<Auth>) -> Json<serde_json::Value> {
    Json(serde_json::json!(auth.jwks()))
}

/// The same set at the well-known location, mounted at `/`.
#[public]
#[get("/.well-known/jwks.json")]
pub fn well_known_jwks(auth: &State<Auth>) -> Json<serde_json::Value> {
    Json(serde_json::json!(auth.jwks()))
}
