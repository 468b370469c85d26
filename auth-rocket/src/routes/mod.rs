//! The endpoints of the HTTP contract (`../shared/spec/http-api.md`), one
//! module per part of it. Each handler is marked like a host app's
//! (`#[requires(...)]` or `#[public]`), so authorization runs before any body
//! is read; then it deserializes a request type of
//! [`auth_core::contract`], calls one operation of [`Auth`](auth_core::Auth)
//! (which applies its own rate limits and audit) and answers a response type
//! of the same module. The OpenAPI document ([`crate::openapi`]) is generated
//! from these handlers and those types.

pub(crate) mod account;
pub(crate) mod activity;
pub(crate) mod admin;
pub(crate) mod keys;
pub(crate) mod mfa;
pub(crate) mod oauth;
pub(crate) mod passkeys;
pub(crate) mod sessions;
pub(crate) mod tenants;
pub(crate) mod webhooks;

use rocket::{
    Request, Response,
    http::{Header, Status},
    response::{self, Responder},
    serde::json::Json,
};
use serde::Serialize;

use crate::error::ApiError;

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The id in a path segment that names a caller's session or a tenant's
/// member: a malformed one names nothing there, so it is `404` like any other.
pub(crate) fn id_in_path(segment: &str) -> Result<uuid::Uuid, ApiError> {
    segment.parse().map_err(|_| auth_core::AuthError::NotFound.into())
}

/// JSON that no cache may keep (RFC 6749 §5.1 for tokens), with its status.
pub(crate) struct NoStore<T>(pub Status, pub T);

impl<T> NoStore<T> {
    pub(crate) fn ok(body: T) -> Self {
        Self(Status::Ok, body)
    }
}

impl<'r, T: Serialize> Responder<'r, 'static> for NoStore<T> {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        Response::build_from((self.0, Json(self.1)).respond_to(request)?)
            .header(Header::new("Cache-Control", "no-store"))
            .header(Header::new("Pragma", "no-cache"))
            .header(Header::new("Referrer-Policy", "no-referrer"))
            .ok()
    }
}
