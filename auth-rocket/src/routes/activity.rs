//! The caller's own recent security events.

use auth_core::{Auth, contract::ActivityEvent};
use auth_macros::requires;
use rocket::{State, get, serde::json::Json};

use super::ApiResult;
use crate::guards::AuthUser;

#[utoipa::path(tag = "account", security(("bearer" = [])), responses((status = 200, description = "The caller's own security events, newest first, at most 50: sign-ins with their address and device, refused sign-ins, ended sessions, password and email changes, what operators did to the account", body = Vec<ActivityEvent>)))]
#[requires(authenticated)]
#[get("/me/activity")]
pub async fn me_activity(auth: &State<Auth>, user: AuthUser) -> ApiResult<Json<Vec<ActivityEvent>>> {
    Ok(Json(auth.accounts().activity(user.id()).await?))
}
