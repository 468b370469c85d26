//! The HTTP contract's bodies (`../shared/spec/http-api.md`), as types: what
//! each endpoint accepts and answers, and the error body every failure has.
//! A web layer deserializes the request types, calls one operation of
//! [`Auth`](crate::Auth) and serializes the response types; its OpenAPI
//! document is generated from these same types (`utoipa::ToSchema`), so the
//! routes and the document cannot disagree. Where a domain type is already
//! the wire shape ([`TokenPair`](crate::TokenPair), [`Profile`],
//! [`Member`](crate::tenancy::Member), [`TenantView`](crate::TenantView),
//! [`Session`](crate::Session), [`TenantMembership`]) it is answered as it is.
//! Passwords and tokens are held as [`Secret`]s from the moment they are read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{
    ToSchema,
    openapi::{
        KnownFormat, Object, ObjectBuilder, SchemaFormat, Type,
        schema::{AnyOfBuilder, Schema, SchemaType},
    },
};
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
    /// With `mfa_required` after a correct password: finishes the login at
    /// `POST /login/mfa` (opaque, 5 minutes, one use).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "exposed::serialize_option")]
    #[schema(value_type = Option<String>)]
    pub mfa_token: Option<Secret>,
    /// With `mfa_token`: the second factors the user has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<crate::mfa::MfaMethod>>,
}

impl ErrorBody {
    pub fn new(code: &str, message: String, fields: Option<FieldErrors>) -> Self {
        Self { error: ErrorDetail { code: code.to_owned(), message, fields, mfa_token: None, methods: None } }
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
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Its length limits are the deployment's `password.min_length` and
    /// `max_length`; it must also not contain the email address.
    #[schema(value_type = String, format = Password)]
    pub password: Secret,
    #[schema(schema_with = name)]
    pub full_name: String,
    #[schema(schema_with = phone, required = false)]
    pub phone: Option<String>,
}

// The request schemas' patterns say what the checks of `identity` and
// `tenancy` say, which trim white space (Unicode `White_Space`, what
// `str::trim` removes) first: the lengths are those of the trimmed value.

/// Control characters (`char::is_control`), for a character class.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// White space that is not a control character, for a character class.
const SPACE: &str = r" \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// Any run of white space, what `str::trim` removes.
fn padding() -> String {
    format!(r"[\t-\r\x85{SPACE}]*")
}

/// A name (`full_name`, a tenant's `name`) as `identity::Profile::new` and
/// `tenancy::validate_tenant_name` check it: 1 to 255 characters once trimmed,
/// none of them a control character.
fn name() -> Object {
    name_builder().build()
}

/// [`name`], or `null` for "unchanged".
fn optional_name() -> Object {
    name_builder().schema_type(SchemaType::from_iter([Type::String, Type::Null])).build()
}

fn name_builder() -> ObjectBuilder {
    let (edge, inner, padding) = (format!("[^{CONTROL}{SPACE}]"), format!("[^{CONTROL}]"), padding());
    let pattern = format!("^{padding}{edge}(?:{inner}{{0,253}}{edge})?{padding}$");
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern))
}

/// A phone number as `identity::Profile::new` checks it: once trimmed, at most
/// 32 of digits, spaces and `+ - ( ) .`, at least 3 of them digits; blank or
/// `null` for none.
fn phone() -> Schema {
    let padding = padding();
    let at_most_32 = format!(r"(?=[+().0-9-](?:[ +().0-9-]{{0,30}}[+().0-9-])?{padding}$)");
    let three_digits = r"(?:[+().-][ +().-]*)?[0-9](?:[ +().0-9-]*[0-9]){2}(?:[ +().-]*[+().-])?";
    let any_of = AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(format!("^{padding}$"))))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!("^{padding}{at_most_32}{three_digits}{padding}$"))),
        );
    Schema::AnyOf(any_of.build())
}

/// A UUID as serde reads it (`Uuid::parse_str` also takes the braced and
/// `urn:uuid:` forms, which the document leaves out).
fn uuid() -> Object {
    uuid_builder().build()
}

/// [`uuid`], or `null` for none.
fn optional_uuid() -> Object {
    uuid_builder().schema_type(SchemaType::from_iter([Type::String, Type::Null])).build()
}

fn uuid_builder() -> ObjectBuilder {
    let hex = |n: usize| format!("[0-9A-Fa-f]{{{n}}}");
    let hyphenated = [8, 4, 4, 4, 12].map(hex).join("-");
    let pattern = format!("^(?:{hyphenated}|{})$", hex(32));
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .pattern(Some(pattern))
}

/// An emailed one-time token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    #[schema(value_type = String)]
    pub token: Secret,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: Secret,
    /// Sign in straight into this tenant (the caller must be a member).
    #[schema(schema_with = optional_uuid, required = false)]
    pub tenant_id: Option<Uuid>,
    #[serde(default)]
    pub session: Option<SessionMode>,
}

/// `session` of a sign-in or refresh: `"cookie"` keeps the tokens in
/// HttpOnly cookies instead of the answer's body (a browser session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    Cookie,
}

/// `POST /refresh`: the refresh token, or `session: "cookie"` to use (and
/// rotate) the browser session's cookies.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub refresh: Option<Secret>,
    #[serde(default)]
    pub session: Option<SessionMode>,
}

/// `POST /logout`: the refresh token of the session to end; a browser
/// session sends `{}` (its refresh cookie never reaches this route).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LogoutRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub refresh: Option<Secret>,
}

/// The answer to a sign-in or refresh in cookie mode: the tokens are in
/// the cookies, never in the body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CookieSession {
    /// Always `cookie`.
    pub token_type: &'static str,
    /// Seconds until the access cookie expires.
    pub expires_in: u64,
}

/// The body of a successful sign-in or refresh: the pair, or in cookie mode
/// only its lifetime.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignedIn {
    Tokens(crate::TokenPair),
    Cookie(CookieSession),
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfileRequest {
    #[schema(schema_with = optional_name, required = false)]
    pub full_name: Option<String>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = phone, required = false)]
    pub phone: Option<Option<String>>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: Secret,
    /// Its length limits are the deployment's `password.min_length` and `max_length`.
    #[schema(value_type = String, format = Password)]
    pub new_password: Secret,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetConfirmRequest {
    #[schema(value_type = String)]
    pub token: Secret,
    /// Its length limits are the deployment's `password.min_length` and `max_length`.
    #[schema(value_type = String, format = Password)]
    pub new_password: Secret,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TenantRequest {
    #[schema(schema_with = name)]
    pub name: String,
}

/// Who to invite, with which role (`POST /tenants/<tenant_id>/invitations`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct InvitationRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    pub role: String,
}

/// `POST /me/email`: the new address, confirmed with the password.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailChangeRequest {
    #[schema(format = Email, max_length = 254)]
    pub new_email: String,
    #[schema(value_type = String, format = Password)]
    pub password: Secret,
}

/// The password, re-entered to confirm a sensitive change (`DELETE /me`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub password: Secret,
}

/// `DELETE /me`: the password, and a second factor when the account has one
/// (a TOTP code or a recovery code).
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteAccountRequest {
    #[schema(value_type = String, format = Password)]
    pub password: Secret,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub code: Option<Secret>,
}

// ----- second factors --------------------------------------------------------

/// `POST /mfa/totp/enroll`: the secret for an authenticator app, typed
/// (base32) or scanned (the URI as a QR code). Shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrollment {
    #[serde(serialize_with = "exposed::serialize")]
    #[schema(value_type = String, example = "JBSWY3DPEHPK3PXP")]
    pub secret: Secret,
    #[serde(serialize_with = "exposed::serialize")]
    #[schema(value_type = String, example = "otpauth://totp/Auth%20Platform:ada%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Auth%20Platform")]
    pub otpauth_uri: Secret,
}

/// A six-digit code of the authenticator app (`POST /mfa/totp/confirm`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TotpCodeRequest {
    #[schema(value_type = String, pattern = "^[0-9]{6}$")]
    pub code: Secret,
}

/// `DELETE /mfa/totp`: the password and a current code (or a recovery code).
#[derive(Debug, Deserialize, ToSchema)]
pub struct DisableTotpRequest {
    #[schema(value_type = String, format = Password)]
    pub password: Secret,
    #[schema(value_type = String)]
    pub code: Secret,
}

/// Ten single-use recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    #[serde(serialize_with = "exposed::serialize_all")]
    #[schema(value_type = Vec<String>, example = json!(["abcd-efgh-ijkl-mnop"]))]
    pub recovery_codes: Vec<Secret>,
}

/// `POST /login/mfa`: the `mfa_token` of the `403 mfa_required` and exactly
/// one second factor.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MfaLoginRequest {
    #[schema(value_type = String)]
    pub mfa_token: Secret,
    /// A six-digit code of the authenticator app.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub code: Option<Secret>,
    /// One of the recovery codes.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub recovery_code: Option<Secret>,
    /// A passkey's assertion (`PublicKeyCredential` JSON) for the challenge
    /// of `POST /login/mfa/webauthn/start`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credential: Option<serde_json::Value>,
    #[serde(default)]
    pub session: Option<SessionMode>,
}

/// `PATCH /tenants/<tenant_id>`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TenantSettingsRequest {
    /// Whether members must sign in with a second factor to use the tenant.
    pub require_mfa: bool,
}

/// A tenant's settings, as its owner set them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TenantSettings {
    pub id: Uuid,
    pub require_mfa: bool,
}

/// A member's new role (`PATCH /tenants/<tenant_id>/members/<user_id>`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleRequest {
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TenantTokenRequest {
    #[schema(schema_with = uuid)]
    pub tenant_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeRequest {
    /// The `code` of the `success_redirect` fragment.
    #[schema(value_type = String)]
    pub code: Secret,
    #[serde(default)]
    pub session: Option<SessionMode>,
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

/// An invitation as its sender sees it (`POST /tenants/<tenant_id>/invitations`):
/// the same shape whether or not the address has an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationSent {
    pub id: Uuid,
    #[schema(format = Email)]
    pub email: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
}

impl From<crate::tenancy::Invitation> for InvitationSent {
    fn from(invitation: crate::tenancy::Invitation) -> Self {
        Self { id: invitation.id, email: invitation.email, role: invitation.role, expires_at: invitation.expires_at }
    }
}

/// The account's address after a confirmed change (`POST /me/email/confirm`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailChanged {
    #[schema(format = Email)]
    pub email: String,
    /// Always `true`.
    pub email_verified: bool,
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

/// Everything the platform holds about the caller (`GET /me/export`):
/// no secret and no hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountExport {
    pub account: AccountView,
    /// The live sessions (logins), the current one marked.
    pub sessions: Vec<crate::Session>,
    /// The external identities linked to the account.
    pub identity_links: Vec<crate::IdentityLink>,
    /// The second factors the account has (no secrets).
    pub mfa_methods: Vec<crate::mfa::MfaMethod>,
    /// The account's passkeys (names and times; no key material).
    pub passkeys: Vec<PasskeyView>,
    /// The caller's own audit events, newest first.
    pub audit_events: Vec<crate::AuditRecord>,
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

impl From<RegisterRequest> for crate::identity::Registration {
    fn from(request: RegisterRequest) -> Self {
        Self { email: request.email, password: request.password, full_name: request.full_name, phone: request.phone }
    }
}

impl From<ProfileRequest> for crate::identity::ProfileUpdate {
    fn from(request: ProfileRequest) -> Self {
        Self { full_name: request.full_name, phone: request.phone }
    }
}

// ----- operators ---------------------------------------------------------------
//
// The queries of the operators' routes are read here too, once for HTTP and
// the CLI: each from its parameters as sent, every bad one a field error.

/// Users per page of `GET /admin/users`.
pub const USERS_PAGE_SIZE: u32 = 50;
/// The last page `GET /admin/users` serves: beyond any deployment's users.
pub const MAX_USERS_PAGE: u32 = 100_000;
/// Events answered by `GET /admin/audit` without a `limit`, and at most.
pub const DEFAULT_AUDIT_LIMIT: u32 = 100;
pub const MAX_AUDIT_LIMIT: u32 = 500;
/// The longest `email` search: the longest address.
const MAX_SEARCH_CHARS: usize = 254;

/// A search of the users (`GET /admin/users`, the CLI's `find-user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSearch {
    /// Matches the addresses that contain it, ignoring case (trimmed and
    /// lower-cased here, as addresses are stored); empty matches every one.
    pub email: String,
    /// From 1, of [`USERS_PAGE_SIZE`] users ordered by email.
    pub page: u32,
}

impl UserSearch {
    /// Reads `email` (at most 254 characters) and `page` (1 to
    /// [`MAX_USERS_PAGE`], default 1).
    pub fn parse(email: Option<&str>, page: Option<&str>) -> Result<Self, crate::AuthError> {
        let mut errors = FieldErrors::new();
        let email = email.unwrap_or_default();
        if email.chars().count() > MAX_SEARCH_CHARS {
            errors.add("email", "use at most 254 characters");
        }
        let page = page.map_or(Some(1), |page| whole_number(page, 1..=MAX_USERS_PAGE));
        if page.is_none() {
            errors.add("page", format!("a whole number from 1 to {MAX_USERS_PAGE}"));
        }
        errors.into_result()?;
        Ok(Self { email: email.trim().to_lowercase(), page: page.unwrap_or(1) })
    }
}

/// A search of the audit trail (`GET /admin/audit`, the CLI's `audit`):
/// every filter given must hold; newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub user_id: Option<Uuid>,
    /// An event's name, e.g. `login_failed`.
    pub event: Option<String>,
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many events (1 to [`MAX_AUDIT_LIMIT`]).
    pub limit: u32,
}

impl AuditQuery {
    /// Reads `user_id` (a UUID), `event` (1 to 64 of `a-z`, `0-9`, `_`),
    /// `since` (an RFC 3339 date-time) and `limit` (1 to [`MAX_AUDIT_LIMIT`],
    /// default [`DEFAULT_AUDIT_LIMIT`]).
    pub fn parse(
        user_id: Option<&str>,
        event: Option<&str>,
        since: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Self, crate::AuthError> {
        let mut errors = FieldErrors::new();
        let mut check = |field: &str, valid: bool, message: &str| {
            if !valid {
                errors.add(field, message);
            }
        };
        let user_id_parsed = user_id.map(|id| Uuid::try_parse(id).ok());
        check("user_id", !matches!(user_id_parsed, Some(None)), "a UUID");
        let event_ok = event.is_none_or(|e| {
            (1..=64).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
        check("event", event_ok, "an event name: 1 to 64 of a-z, 0-9 and _");
        let since_parsed = since.map(rfc3339);
        check("since", !matches!(since_parsed, Some(None)), "an RFC 3339 date-time, e.g. 2025-01-31T08:00:00Z");
        let limit_parsed = limit.map_or(Some(DEFAULT_AUDIT_LIMIT), |l| whole_number(l, 1..=MAX_AUDIT_LIMIT));
        check("limit", limit_parsed.is_some(), &format!("a whole number from 1 to {MAX_AUDIT_LIMIT}"));
        errors.into_result()?;
        Ok(Self {
            user_id: user_id_parsed.flatten(),
            event: event.map(str::to_owned),
            since: since_parsed.flatten(),
            limit: limit_parsed.unwrap_or(DEFAULT_AUDIT_LIMIT),
        })
    }
}

/// Decimal digits only (no sign, no space) within `range`.
fn whole_number(text: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten().filter(|n| range.contains(n))
}

/// An RFC 3339 `date-time`: chrono's parser also takes a space for the `T`.
fn rfc3339(text: &str) -> Option<DateTime<Utc>> {
    let separator = text.as_bytes().get(10).is_some_and(|b| b.eq_ignore_ascii_case(&b'T'));
    let parsed = DateTime::parse_from_rfc3339(text).ok().filter(|_| separator);
    parsed.map(|time| time.with_timezone(&Utc))
}

/// An account as the platform's staff see it, in a page of `GET /admin/users`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: Uuid,
    #[schema(format = Email)]
    pub email: String,
    pub email_verified: bool,
    /// False once deactivated: it cannot sign in, and its sessions ended.
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

impl From<&User> for UserSummary {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.to_string(),
            email_verified: user.email_verified(),
            is_active: user.is_active,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            date_joined: user.date_joined,
            last_login: user.last_login,
        }
    }
}

/// One page of `GET /admin/users`: at most 50 users (`page_size`), ordered by
/// email (unique, so the pages neither overlap nor skip anyone).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<UserSummary>,
    pub page: u32,
    pub page_size: u32,
    /// Whether the next page has users.
    pub has_more: bool,
}

/// The account as staff see it (`GET /admin/users/<id>`, and the answer of
/// each change an operator makes): its flags and memberships, no profile.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StaffUserView {
    #[serde(flatten)]
    pub user: UserSummary,
    pub memberships: Vec<TenantMembership>,
}

/// Grants or takes the staff flag (`PATCH /admin/users/<id>`, superusers only).
#[derive(Debug, Deserialize, ToSchema)]
pub struct StaffRequest {
    pub is_staff: bool,
}

/// One of the caller's own security events (`GET /me/activity`); the event
/// names are the audit trail's.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityEvent {
    pub at: DateTime<Utc>,
    /// e.g. `login_succeeded`, `login_failed`, `password_changed`, `user_deactivated`.
    pub event: String,
    /// The address the request came from; `null` when unknown, or when an operator acted.
    pub ip: Option<String>,
    /// The device's user agent; `null` when unknown, or when an operator acted.
    pub user_agent: Option<String>,
    /// Whether the platform's operators did this (deactivation, ending sessions, staff).
    pub by_operator: bool,
}

impl From<crate::AuditRecord> for ActivityEvent {
    fn from(record: crate::AuditRecord) -> Self {
        // An operator's address and device are theirs, not the account's.
        let by_operator = crate::Operator::acted_in(&record.detail);
        let (ip, user_agent) = if by_operator { (None, None) } else { (record.ip, record.user_agent) };
        Self { at: record.at, event: record.event, ip, user_agent, by_operator }
    }
}

#[cfg(test)]
mod operator_queries {
    use super::*;

    #[test]
    fn user_searches_are_trimmed_lower_cased_and_bounded() {
        let search = UserSearch::parse(Some("  Ada@Example.COM "), None).unwrap();
        assert_eq!(search, UserSearch { email: "ada@example.com".into(), page: 1 });
        assert_eq!(UserSearch::parse(None, Some("100000")).unwrap().page, MAX_USERS_PAGE);
        for page in ["0", "100001", "+1", " 1", "1.0", "", "4294967296"] {
            let Err(crate::AuthError::Validation(fields)) = UserSearch::parse(None, Some(page)) else {
                panic!("page {page:?} was accepted");
            };
            assert!(fields.get("page").is_some());
        }
        assert!(UserSearch::parse(Some(&"é".repeat(254)), None).is_ok(), "characters, not bytes");
        assert!(UserSearch::parse(Some(&"a".repeat(255)), None).is_err());
    }

    #[test]
    fn audit_queries_report_every_bad_filter_at_once() {
        let id = Uuid::now_v7();
        let query =
            AuditQuery::parse(Some(&id.to_string()), Some("login_failed"), Some("2025-01-31t08:00:00+01:00"), None);
        let query = query.unwrap();
        assert_eq!((query.user_id, query.event.as_deref(), query.limit), (Some(id), Some("login_failed"), 100));
        assert_eq!(query.since.unwrap().to_rfc3339(), "2025-01-31T07:00:00+00:00");
        let Err(crate::AuthError::Validation(fields)) =
            AuditQuery::parse(Some("nobody"), Some("Login"), Some("2025-01-31 08:00:00Z"), Some("0"))
        else {
            panic!("bad filters were accepted");
        };
        for field in ["user_id", "event", "since", "limit"] {
            assert!(fields.get(field).is_some(), "{field} is not reported");
        }
        assert!(AuditQuery::parse(None, Some(""), None, None).is_err(), "an empty event names none");
        assert!(AuditQuery::parse(None, Some(&"a".repeat(65)), None, None).is_err());
    }
}

/// A passkey as its owner sees it (`GET /webauthn/credentials`; `201` of
/// `POST /webauthn/register/finish`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// WebAuthn request options and the challenge that finishes them
/// (`POST /webauthn/login/start`, `POST /login/mfa/webauthn/start`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PasskeyChallenge {
    pub challenge_id: Uuid,
    /// `PublicKeyCredentialRequestOptions` for `navigator.credentials.get({publicKey})`.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// `POST /webauthn/register/finish`: the `PublicKeyCredential` that
/// `navigator.credentials.create` answered, and a name for it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasskeyRegistrationRequest {
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
    /// Trimmed: 1 to 64 characters, not only spaces.
    #[schema(min_length = 1, max_length = 64, pattern = "\\S")]
    pub name: String,
}

/// `POST /webauthn/login/start`: `{}`, or the email whose passkey alone is accepted.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PasskeySignInStartRequest {
    #[serde(default)]
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
}

/// `POST /webauthn/login/finish`: the challenge and the `PublicKeyCredential`
/// that `navigator.credentials.get` answered.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasskeySignInRequest {
    pub challenge_id: Uuid,
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
    #[serde(default)]
    pub session: Option<SessionMode>,
}

/// `POST /login/mfa/webauthn/start`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MfaTokenRequest {
    #[schema(value_type = String)]
    pub mfa_token: Secret,
}

/// WebAuthn creation options (`POST /webauthn/register/start`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PasskeyCreationOptions {
    /// `PublicKeyCredentialCreationOptions` for `navigator.credentials.create({publicKey})`.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// `DELETE /webauthn/credentials/<id>`: the password, or `{}` from a session
/// that proved a second factor in the last ten minutes.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PasskeyRemovalRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
}

/// `POST /admin/webhooks`: an endpoint and the audit event types it gets
/// (`*`: every event).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// An https URL (http only where `webhooks.allow_http`); at most 2048 characters.
    #[schema(max_length = 2048)]
    pub url: String,
    /// Audit event names (`session_revoked`, `logged_out_everywhere`, …), or `*`.
    #[schema(min_items = 1, max_items = 64)]
    pub events: Vec<String>,
}

/// A subscribed endpoint as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEndpointView {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// `201` of `POST /admin/webhooks`: the endpoint, and its signing secret,
/// shown this once (`whsec_…`, Standard Webhooks).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub endpoint: WebhookEndpointView,
    #[serde(serialize_with = "exposed::serialize")]
    #[schema(value_type = String)]
    pub secret: Secret,
}

/// One message to one endpoint, and how its delivery stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDeliveryView {
    /// The `webhook-id` header: receivers deduplicate by it.
    pub id: Uuid,
    pub event: String,
    /// `pending`, `delivered` or `failed` (every attempt made).
    pub state: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<i64>,
    /// Why the last attempt failed, if it did without an answer.
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}
