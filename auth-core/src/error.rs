//! The one error type of the platform. Every variant knows its part of the
//! HTTP contract: a stable [`code`](AuthError::code), the
//! [`status`](AuthError::status), the `WWW-Authenticate`
//! [`challenge`](AuthError::challenge) and the
//! [`retry_after_secs`](AuthError::retry_after_secs); a web layer only copies
//! them into its response, with [`AuthError::body`] as the JSON. Messages are
//! safe to show to clients and reveal no internals.

use std::{borrow::Cow, collections::BTreeMap};

/// Per-field validation messages, rendered as the contract's `fields` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

    /// Every message, field by field in name order.
    pub fn messages(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(|(field, messages)| messages.iter().map(move |m| (field.as_str(), m.as_str())))
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

/// The bare challenge of a 401 that names no error (RFC 6750 §3.1).
pub const BEARER: &str = "Bearer";

/// The challenge of a step-up refusal (RFC 9470 §3): the token is valid, its
/// sign-in is not enough for this route.
const INSUFFICIENT_USER_AUTHENTICATION: &str = r#"Bearer error="insufficient_user_authentication""#;

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
    /// No `Authorization: Bearer` token at all (401 with a bare challenge).
    #[error("an access token is required")]
    MissingToken,
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
    /// A password re-entered to confirm a sensitive change (deleting the
    /// account, changing its email) is wrong (400 `invalid_credentials`).
    #[error("the password is incorrect")]
    ReauthenticationFailed,
    /// The caller's verified email is not the invited address (403).
    #[error("this invitation was sent to another email address")]
    EmailMismatch,
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
    /// The body is not JSON, or not the JSON this endpoint takes (400).
    #[error("the request body is not valid JSON")]
    MalformedRequest,
    /// The body is over `http.max_body_bytes` (413).
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("the user is already a member of this tenant")]
    AlreadyMember,
    #[error("this address already has an open invitation to this tenant")]
    AlreadyInvited,
    #[error("a tenant must keep at least one owner")]
    LastOwner,
    /// The account to delete is the only owner of a tenant that has other
    /// members (409 `last_owner`): it must hand the tenant over first.
    #[error("you are the only owner of a tenant that has other members; make another member an owner first")]
    SoleOwner,
    /// An operator taking their own staff flag or deactivating their own
    /// account (403): the platform would lose the only one who can undo it.
    #[error("operators cannot take their own staff flag or deactivate their own account")]
    OwnAccount,
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
    /// The route needs a second factor, and the token's session has proved
    /// none (403, RFC 9470 `insufficient_user_authentication`).
    #[error("this needs a sign-in with a second factor")]
    MfaRequired,
    /// The route needs a sign-in at most `max_age_secs` old, and the token's
    /// is older (403, RFC 9470 `insufficient_user_authentication` with `max_age`).
    #[error("this needs a sign-in within the last {max_age_secs} seconds: sign in again")]
    ReauthenticationRequired { max_age_secs: u64 },
    /// The password was right and the account has a second factor: the
    /// login finishes at `POST /login/mfa` with `mfa_token` and one of
    /// `methods` (403 `mfa_required`, both inside the error object).
    #[error("the password was right; finish the sign-in with a second factor")]
    SecondFactorRequired { mfa_token: crate::Secret, methods: Vec<crate::mfa::MfaMethod> },
    /// A wrong or replayed TOTP code, recovery code or passkey assertion (400).
    #[error("the code is wrong or was already used")]
    InvalidCode,
    /// Enrolling TOTP while a confirmed TOTP factor exists (409): disable it first.
    #[error("an authenticator app is already set up; disable it first")]
    MfaAlreadyEnabled,
    /// An unsafe request authenticated by the session cookie without a
    /// matching `X-CSRF-Token`, or sent cross-site (403).
    #[error("the request did not prove it comes from this site's pages")]
    CsrfFailed,
    /// A user's eleventh passkey (409).
    #[error("this account has as many passkeys as it may; remove one first")]
    PasskeyLimit,
    /// A credential that is registered already (409).
    #[error("this passkey is registered already")]
    PasskeyExists,
}

impl AuthError {
    /// The stable machine-readable code of the contract's error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_error",
            Self::EmailTaken => "email_taken",
            Self::InvalidCredentials | Self::ReauthenticationFailed => "invalid_credentials",
            Self::EmailMismatch => "email_mismatch",
            Self::AlreadyInvited => "already_invited",
            Self::EmailNotVerified => "email_not_verified",
            Self::AccountDisabled => "account_disabled",
            Self::NotAMember => "not_a_member",
            Self::InsufficientRole => "insufficient_role",
            Self::Forbidden => "forbidden",
            Self::MissingToken => "missing_token",
            Self::InvalidToken | Self::InvalidOneTimeToken => "invalid_token",
            Self::TokenReused => "token_reused",
            Self::WrongPassword => "invalid_password",
            Self::OAuthFailed => "oauth_failed",
            Self::EmailDomainNotAllowed => "email_domain_not_allowed",
            Self::AccountExists => "account_exists",
            Self::AlreadyLinked => "already_linked",
            Self::NotFound => "not_found",
            Self::MalformedRequest => "malformed_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::AlreadyMember => "already_member",
            Self::LastOwner | Self::SoleOwner => "last_owner",
            Self::OwnAccount => "own_account",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal_error",
            Self::MfaRequired => "mfa_required",
            Self::CsrfFailed => "csrf_failed",
            Self::ReauthenticationRequired { .. } => "reauthentication_required",
            Self::SecondFactorRequired { .. } => "mfa_required",
            Self::InvalidCode => "invalid_code",
            Self::MfaAlreadyEnabled => "mfa_already_enabled",
            Self::PasskeyLimit => "passkey_limit",
            Self::PasskeyExists => "passkey_exists",
        }
    }

    /// The HTTP status of the contract.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidOneTimeToken
            | Self::WrongPassword
            | Self::ReauthenticationFailed
            | Self::OAuthFailed
            | Self::InvalidCode
            | Self::MalformedRequest => 400,
            Self::MissingToken | Self::InvalidCredentials | Self::InvalidToken | Self::TokenReused => 401,
            Self::EmailNotVerified
            | Self::AccountDisabled
            | Self::NotAMember
            | Self::InsufficientRole
            | Self::Forbidden
            | Self::LastOwner
            | Self::EmailMismatch
            | Self::OwnAccount
            | Self::EmailDomainNotAllowed
            | Self::AccountExists => 403,
            Self::NotFound => 404,
            Self::EmailTaken
            | Self::AlreadyMember
            | Self::AlreadyInvited
            | Self::AlreadyLinked
            | Self::SoleOwner
            | Self::MfaAlreadyEnabled
            | Self::PasskeyLimit
            | Self::PasskeyExists => 409,
            Self::PayloadTooLarge => 413,
            Self::Validation(_) => 422,
            Self::RateLimited { .. } => 429,
            Self::Internal(_) => 500,
            Self::Overloaded | Self::Unavailable => 503,
            Self::MfaRequired
            | Self::ReauthenticationRequired { .. }
            | Self::SecondFactorRequired { .. }
            | Self::CsrfFailed => 403,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3, RFC 9470 §3) the contract answers with.
    pub fn challenge(&self) -> Option<Cow<'static, str>> {
        match self {
            Self::MissingToken | Self::InvalidCredentials => Some(BEARER.into()),
            Self::InvalidToken | Self::TokenReused => Some(r#"Bearer error="invalid_token""#.into()),
            Self::InsufficientRole => Some(r#"Bearer error="insufficient_scope""#.into()),
            Self::MfaRequired => Some(INSUFFICIENT_USER_AUTHENTICATION.into()),
            Self::ReauthenticationRequired { max_age_secs } => {
                Some(format!(r#"{INSUFFICIENT_USER_AUTHENTICATION}, max_age="{max_age_secs}""#).into())
            }
            _ => None,
        }
    }

    /// The `Retry-After` seconds the contract answers with (never 0).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } => Some((*retry_after_secs).max(1)),
            Self::Overloaded => Some(1),
            Self::Unavailable => Some(5),
            _ => None,
        }
    }

    /// The contract's error body.
    pub fn body(&self) -> crate::contract::ErrorBody {
        let fields = match self {
            Self::Validation(fields) => Some(fields.clone()),
            _ => None,
        };
        let mut body = crate::contract::ErrorBody::new(self.code(), self.to_string(), fields);
        if let Self::SecondFactorRequired { mfa_token, methods } = self {
            body.error.mfa_token = Some(mfa_token.clone());
            body.error.methods = Some(methods.clone());
        }
        body
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
