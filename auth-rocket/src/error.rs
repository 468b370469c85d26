//! Every failure as the contract's error body, with the right status and
//! headers. Guards and data guards cannot hand a value to Rocket's catchers,
//! so they [`stash`] their [`ApiError`] in the request and the catcher renders it.

use std::{io::Cursor, sync::Mutex};

use auth_core::{AuthError, FieldErrors};
use rocket::{
    Request, Response,
    http::{ContentType, Header, Status},
    response::{self, Responder},
};
use serde_json::json;

/// An error answer of the HTTP contract.
#[derive(Debug)]
pub enum ApiError {
    /// A failure of the platform's operations.
    Auth(AuthError),
    /// No `Authorization: Bearer` header (401 with a bare `WWW-Authenticate: Bearer`).
    MissingToken,
    /// The body is not JSON, or not the JSON this endpoint takes (400).
    MalformedBody,
    /// The body is over `http.max_body_bytes` (413).
    BodyTooLarge,
    /// Any other status without a more specific cause (Rocket's own 404, 405, …).
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
            Self::Auth(error) => auth_status(error),
            Self::MissingToken => Status::Unauthorized,
            Self::MalformedBody => Status::BadRequest,
            Self::BodyTooLarge => Status::PayloadTooLarge,
            Self::Status(status) => *status,
        }
    }

    fn code_and_message(&self) -> (&'static str, String) {
        match self {
            Self::Auth(error) => (error.code(), error.to_string()),
            Self::MissingToken => ("missing_token", "an access token is required".into()),
            Self::MalformedBody => ("malformed_request", "the request body is not valid JSON".into()),
            Self::BodyTooLarge => ("payload_too_large", "the request body is too large".into()),
            Self::Status(status) => status_code_and_message(*status),
        }
    }

    fn fields(&self) -> Option<&FieldErrors> {
        match self {
            Self::Auth(AuthError::Validation(fields)) => Some(fields),
            _ => None,
        }
    }

    /// `WWW-Authenticate` (RFC 6750 §3) and `Retry-After` where the contract wants them.
    fn headers(&self) -> Vec<Header<'static>> {
        let mut headers = Vec::new();
        let challenge = match self {
            Self::MissingToken => Some("Bearer"),
            Self::Status(status) if *status == Status::Unauthorized => Some("Bearer"),
            Self::Auth(AuthError::InvalidToken | AuthError::TokenReused) => Some(r#"Bearer error="invalid_token""#),
            Self::Auth(AuthError::InsufficientRole) => Some(r#"Bearer error="insufficient_scope""#),
            Self::Auth(AuthError::InvalidCredentials) => Some("Bearer"),
            _ => None,
        };
        if let Some(challenge) = challenge {
            headers.push(Header::new("WWW-Authenticate", challenge));
        }
        let retry_after = match self {
            Self::Auth(AuthError::RateLimited { retry_after_secs }) => Some(retry_after_secs.max(&1).to_string()),
            Self::Auth(AuthError::Overloaded) => Some("1".into()),
            Self::Auth(AuthError::Unavailable) => Some("5".into()),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            headers.push(Header::new("Retry-After", seconds));
        }
        headers
    }

    /// The contract's body: `{"error": {"code", "message", "fields"?}}`.
    pub fn body(&self) -> serde_json::Value {
        let (code, message) = self.code_and_message();
        let mut error = json!({ "code": code, "message": message });
        if let Some(fields) = self.fields() {
            error["fields"] = json!(fields);
        }
        json!({ "error": error })
    }
}

fn auth_status(error: &AuthError) -> Status {
    match error {
        AuthError::Validation(_) => Status::UnprocessableEntity,
        AuthError::EmailTaken | AuthError::AlreadyMember | AuthError::AlreadyLinked => Status::Conflict,
        AuthError::InvalidCredentials | AuthError::InvalidToken | AuthError::TokenReused => Status::Unauthorized,
        AuthError::EmailNotVerified
        | AuthError::AccountDisabled
        | AuthError::NotAMember
        | AuthError::InsufficientRole
        | AuthError::Forbidden
        | AuthError::LastOwner
        | AuthError::EmailDomainNotAllowed
        | AuthError::AccountExists => Status::Forbidden,
        AuthError::InvalidOneTimeToken | AuthError::WrongPassword | AuthError::OAuthFailed => Status::BadRequest,
        AuthError::NotFound => Status::NotFound,
        AuthError::RateLimited { .. } => Status::TooManyRequests,
        AuthError::Overloaded | AuthError::Unavailable => Status::ServiceUnavailable,
        AuthError::Internal(_) => Status::InternalServerError,
    }
}

fn status_code_and_message(status: Status) -> (&'static str, String) {
    let code = match status.code {
        400 => "bad_request",
        401 => "missing_token",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_error",
        429 => "rate_limited",
        503 => "unavailable",
        500..=599 => "internal_error",
        _ => "error",
    };
    (code, status.reason_lossy().to_lowercase())
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        if let Self::Auth(AuthError::Internal(source)) = &self {
            // The only place an internal error's detail goes: the server log.
            tracing::error!(error = %source, "internal error");
        }
        let body = self.body().to_string();
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
