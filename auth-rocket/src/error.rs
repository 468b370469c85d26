//! Rendering of failures. The contract (status, code, `WWW-Authenticate`,
//! `Retry-After`, body) is decided by [`AuthError`] in auth-core; this module
//! only copies it into a Rocket response. Guards and data guards cannot hand a
//! value to Rocket's catchers, so they [`stash`] their [`ApiError`] in the
//! request and the catcher renders it.

use std::{io::Cursor, sync::Mutex};

use auth_core::{AuthError, contract::ErrorBody};
use rocket::{
    Request, Response,
    http::{ContentType, Header, Status},
    response::{self, Responder},
};

/// An error answer of the HTTP contract.
#[derive(Debug)]
pub enum ApiError {
    /// A failure of the platform's operations or of its guards.
    Auth(AuthError),
    /// An answer Rocket gives by itself (no route, wrong method, …).
    Status(Status),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        Self::Auth(error)
    }
}

impl ApiError {
    pub fn status(&self) -> Status {
        match self {
            Self::Auth(error) => Status::new(error.status()),
            Self::Status(status) => *status,
        }
    }

    /// The contract's body: `{"error": {"code", "message", "fields"?}}`.
    pub fn body(&self) -> ErrorBody {
        match self {
            Self::Auth(error) => error.body(),
            Self::Status(status) => ErrorBody::for_status(status.code, status.reason_lossy()),
        }
    }

    fn headers(&self) -> impl Iterator<Item = Header<'static>> {
        let (challenge, retry_after) = match self {
            Self::Auth(error) => (error.challenge(), error.retry_after_secs()),
            Self::Status(status) => (ErrorBody::challenge_for_status(status.code).map(Into::into), None),
        };
        let challenge = challenge.map(|value| Header::new("WWW-Authenticate", value));
        let retry_after = retry_after.map(|secs| Header::new("Retry-After", secs.to_string()));
        challenge.into_iter().chain(retry_after)
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        if let Self::Auth(AuthError::Internal(source)) = &self {
            // The only place an internal error's detail goes: the server log.
            tracing::error!(error = %source, "internal error");
        }
        let body = serde_json::to_string(&self.body()).map_err(|_| Status::InternalServerError)?;
        let mut response = Response::build();
        response.status(self.status()).header(ContentType::JSON).sized_body(body.len(), Cursor::new(body));
        for header in self.headers() {
            response.header(header);
        }
        response.ok()
    }
}

/// Where a failing guard leaves its error for the catcher.
#[derive(Default)]
struct Stash(Mutex<Option<ApiError>>);

/// Leaves `error` for the catcher of this request; the first one stays.
pub(crate) fn stash(request: &Request<'_>, error: ApiError) {
    let slot = request.local_cache(Stash::default);
    let mut slot = slot.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    slot.get_or_insert(error);
}

/// The stashed error if it matches `status`, else a plain one for `status`.
pub(crate) fn take_stashed(request: &Request<'_>, status: Status) -> ApiError {
    let slot = request.local_cache(Stash::default);
    let stashed = slot.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    match stashed {
        Some(error) if error.status() == status => error,
        _ => ApiError::Status(status),
    }
}
