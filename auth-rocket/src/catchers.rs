//! One catcher for every status: the contract's error body, using the error a
//! guard stashed when there is one.

use rocket::{Request, catch, http::Status};

use crate::error::{ApiError, take_stashed};

#[catch(default)]
pub fn default_catcher(status: Status, request: &Request<'_>) -> ApiError {
    take_stashed(request, status)
}
