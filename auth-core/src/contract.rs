//! The HTTP contract's bodies (`../shared/spec/http-api.md`), as types: what
//! each endpoint accepts and answers, and the error body every failure has.
//! A web layer deserializes the request types, calls one operation of
//! [`Auth`](crate::Auth) and serializes the response types; its OpenAPI
//! document is generated from these same types (`utoipa::ToSchema`), so the
//! routes and the document cannot disagree. Where a domain type is already
//! the wire shape ([`Profile`], [`Member`], [`TenantView`], [`Session`],
//! [`TenantMembership`]) it is answered as it is.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    FieldErrors, Secret,
    identity::{Profile, User},
    secret::exposed,
    tenancy::TenantMembership,
};

// ----- errors ----------------------------------------------------------------

/// Every failure's body: `{"error": {"code", "message", "fields"?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_credentials`.
    pub code: String,
    pub message: String,
    /// Per-field messages; present only for validation errors (422).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub fields: Option<FieldErrors>,
}

impl ErrorBody {
    pub fn new(code: &str, message: String, fields: Option<FieldErrors>) -> Self {
        Self { error: ErrorDetail { code: code.to_owned(), message, fields } }
    }

    /// The body of an answer the web framework gives by itself (no route,
    /// wrong method, unsupported media type, …), with `reason` as the message.
    pub fn for_status(status: u16, reason: &str) -> Self {
        let code = match status {
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
        Self::new(code, reason.to_lowercase(), None)
    }

    /// The `WWW-Authenticate` of such an answer: a 401 always challenges.
    pub fn challenge_for_status(status: u16) -> Option<&'static str> {
        (status == 401).then_some(crate::error::BEARER)
    }
}

// ----- requests --------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(format = Email)]
    pub email: String,
    #[schema(format = Password)]
    pub password: String,
    pub full_name: String,
    pub phone: Option<String>,
}

/// An emailed one-time token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailRequest {
    #[schema(format = Email)]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(format = Email)]
    pub email: String,
    #[schema(format = Password)]
    pub password: String,
    /// Sign in straight into this tenant (the caller must be a member).
    pub tenant_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfileRequest {
    pub full_name: Option<String>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    #[schema(format = Password)]
    pub current_password: String,
    #[schema(format = Password)]
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetConfirmRequest {
    pub token: String,
    #[schema(format = Password)]
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TenantRequest {
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberRequest {
    #[schema(format = Email)]
    pub email: String,
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TenantTokenRequest {
    pub tenant_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeRequest {
    /// The `code` of the `success_redirect` fragment.
    pub code: String,
}

// ----- responses -------------------------------------------------------------

/// A new account (`POST /register`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub id: Uuid,
    #[schema(format = Email)]
    pub email: String,
    pub email_verified: bool,
    pub profile: Profile,
}

impl Registered {
    pub fn new(user: &User, profile: Profile) -> Self {
        Self { id: user.id, email: user.email.to_string(), email_verified: user.email_verified(), profile }
    }
}

/// `POST /verify-email`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailVerified {
    /// Always `true`.
    pub email_verified: bool,
}

/// The answer of requests that must not reveal whether an account exists (202).
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub detail: &'static str,
}

impl Default for Accepted {
    fn default() -> Self {
        Self { detail: "if the account exists, an email is on its way" }
    }
}

/// Access and refresh tokens (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    #[serde(serialize_with = "exposed::serialize")]
    #[schema(value_type = String)]
    pub access: Secret,
    #[serde(serialize_with = "exposed::serialize")]
    #[schema(value_type = String)]
    pub refresh: Secret,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// The caller's account (`GET /me`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    #[schema(format = Email)]
    pub email: String,
    pub email_verified: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DateTime<Utc>,
    pub profile: Profile,
    pub memberships: Vec<TenantMembership>,
}

impl From<crate::Account> for AccountView {
    fn from(account: crate::Account) -> Self {
        let user = account.user;
        Self {
            id: user.id,
            email: user.email.to_string(),
            email_verified: user.email_verified(),
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            date_joined: user.date_joined,
            profile: account.profile,
            memberships: account.memberships,
        }
    }
}

/// Where to send the browser to link a provider (`POST /oauth/<provider>/link`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizeUrl {
    pub authorize_url: String,
}

/// A deliberate link made (the callback without a `success_redirect`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Linked {
    /// Always `true`.
    pub linked: bool,
    pub provider: String,
}

impl From<crate::TokenPair> for Tokens {
    fn from(pair: crate::TokenPair) -> Self {
        Self { access: pair.access, refresh: pair.refresh, token_type: pair.token_type, expires_in: pair.expires_in }
    }
}

impl From<RegisterRequest> for crate::identity::Registration {
    fn from(request: RegisterRequest) -> Self {
        let password = Secret::new(request.password);
        Self { email: request.email, password, full_name: request.full_name, phone: request.phone }
    }
}

impl From<ProfileRequest> for crate::identity::ProfileUpdate {
    fn from(request: ProfileRequest) -> Self {
        Self { full_name: request.full_name, phone: request.phone }
    }
}
