//! The one error type of the platform. Every variant has a stable `code` from the
//! HTTP contract; messages are safe to show to clients and reveal no internals.

use std::collections::BTreeMap;

/// Per-field validation messages, rendered as the contract's `fields` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_owned()).or_default().push(message.into());
    }

    /// A single-field error, already wrapped as [`AuthError::Validation`].
    pub fn single(field: &str, message: impl Into<String>) -> AuthError {
        let mut errors = Self::new();
        errors.add(field, message);
        AuthError::Validation(errors)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.0.get(field).map(Vec::as_slice)
    }

    pub fn merge(&mut self, other: FieldErrors) {
        for (field, messages) in other.0 {
            self.0.entry(field).or_default().extend(messages);
        }
    }

    /// `Ok(())` when nothing was added, the validation error otherwise.
    pub fn into_result(self) -> Result<(), AuthError> {
        if self.is_empty() { Ok(()) } else { Err(AuthError::Validation(self)) }
    }
}

/// What went wrong, from the caller's point of view.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the request has invalid fields")]
    Validation(FieldErrors),
    #[error("this email address is already registered")]
    EmailTaken,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("the email address has not been verified")]
    EmailNotVerified,
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("not a member of this tenant")]
    NotAMember,
    #[error("your role does not allow this")]
    InsufficientRole,
    #[error("you are not allowed to do this")]
    Forbidden,
    /// A missing, malformed, expired or revoked access or refresh token (401).
    #[error("the token is invalid or expired")]
    InvalidToken,
    #[error("this refresh token was already used; the session has been revoked")]
    TokenReused,
    /// An unknown, expired or used one-time link token (400).
    #[error("this link is invalid or has expired")]
    InvalidOneTimeToken,
    #[error("the current password is incorrect")]
    WrongPassword,
    /// A sign-in with an external identity provider failed: a missing, bad or
    /// expired state, a refused or replayed code, an id_token that fails
    /// validation (400). The audit trail has the reason.
    #[error("the sign-in with the identity provider failed; start again")]
    OAuthFailed,
    /// The identity provider's email address is outside `allowed_email_domains` (403).
    #[error("accounts with this email domain cannot sign in with this provider")]
    EmailDomainNotAllowed,
    /// A provider not trusted for email vouched for the address of an
    /// existing account it is not linked to (403): nothing was linked.
    #[error("an account with this email address already exists; sign in to it and link this provider from the account")]
    AccountExists,
    /// A deliberate link of a provider identity already linked to an
    /// account, or to an account that already has one for this provider (409).
    #[error("this provider account is already linked, or this account already has one for this provider")]
    AlreadyLinked,
    #[error("not found")]
    NotFound,
    #[error("the user is already a member of this tenant")]
    AlreadyMember,
    #[error("a tenant must keep at least one owner")]
    LastOwner,
    /// A rate limit or a login back-off (429); retry after this many seconds.
    #[error("too many requests; try again later")]
    RateLimited { retry_after_secs: u64 },
    /// The password hashing pool stayed saturated for the configured wait.
    #[error("the server is busy; try again shortly")]
    Overloaded,
    /// A backing store cannot be reached.
    #[error("a backing service is temporarily unavailable")]
    Unavailable,
    /// A bug or an unexpected failure; logged, never detailed to clients.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AuthError {
    /// The stable machine-readable code of the contract's error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_error",
            Self::EmailTaken => "email_taken",
            Self::InvalidCredentials => "invalid_credentials",
            Self::EmailNotVerified => "email_not_verified",
            Self::AccountDisabled => "account_disabled",
            Self::NotAMember => "not_a_member",
            Self::InsufficientRole => "insufficient_role",
            Self::Forbidden => "forbidden",
            Self::InvalidToken | Self::InvalidOneTimeToken => "invalid_token",
            Self::TokenReused => "token_reused",
            Self::WrongPassword => "invalid_password",
            Self::OAuthFailed => "oauth_failed",
            Self::EmailDomainNotAllowed => "email_domain_not_allowed",
            Self::AccountExists => "account_exists",
            Self::AlreadyLinked => "already_linked",
            Self::NotFound => "not_found",
            Self::AlreadyMember => "already_member",
            Self::LastOwner => "last_owner",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => {
                tracing::warn!(error = %error, "database unavailable");
                Self::Unavailable
            }
            // SQLite reports a busy database as an error code, not an I/O failure.
            sqlx::Error::Database(ref db) if db.code().as_deref() == Some("5") => Self::Unavailable,
            other => Self::internal(other),
        }
    }
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;
