//! Request guards any host handler can use: [`AuthUser`] (a verified access
//! token), [`TenantScope`] (its tenant and role), [`Authorized<P>`] (a
//! [`Policy`]), and [`RemoteClient`] (who is asking, for rate limits and audit).
//!
//! The access token is read from the `Authorization` header or, when there is
//! none, from a browser session's cookie ([`crate::browser`]; an unsafe
//! request must then pass the CSRF checks), and verified once per request
//! (cached in the request's local cache), without touching the database.
//! Guards run before the data guard, so an unauthorised caller gets 401/403
//! and never a 400/422 from body parsing.

use std::marker::PhantomData;
use std::sync::Arc;

use auth_core::{Auth, AuthError, ClientInfo, forwarded, tenancy::RoleSet, tokens::AccessClaims};
use rocket::{
    Request,
    http::Status,
    outcome::{Outcome, try_outcome},
    request::{self, FromRequest},
};
use uuid::Uuid;

use crate::{
    browser::{ACCESS_COOKIE, BrowserSessions, is_unsafe},
    error::{ApiError, stash},
};

/// The caller, proven by a valid access token.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthUser {
    /// Shared with the verified-token cache and the request's other guards.
    claims: Arc<AccessClaims>,
    by_cookie: bool,
}

impl AuthUser {
    pub fn id(&self) -> Uuid {
        self.claims.sub
    }

    /// The login session (refresh family) the token belongs to.
    pub fn session_id(&self) -> Uuid {
        self.claims.sid
    }

    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }

    pub fn is_staff(&self) -> bool {
        self.claims.staff
    }

    pub fn is_superuser(&self) -> bool {
        self.claims.superuser
    }

    pub fn email_verified(&self) -> bool {
        self.claims.email_verified
    }

    /// The tenant and role the token is scoped to, if any.
    pub fn tenant(&self) -> Option<(Uuid, &str)> {
        self.claims.tenant_id.zip(self.claims.role.as_deref())
    }

    /// How the user signed in to this session: RFC 8176 values (`pwd`, `fed`;
    /// after a second factor also `otp`, `hwk` or `swk`, and `mfa`). Empty
    /// for a session that predates them.
    pub fn amr(&self) -> &[String] {
        &self.claims.amr
    }

    /// When the session's user signed in (or last proved a second factor),
    /// in Unix seconds; a refresh never moves it.
    pub fn auth_time(&self) -> i64 {
        self.claims.auth_time
    }

    /// Whether the token came in the browser session's cookie rather than an
    /// `Authorization` header.
    pub fn is_cookie_session(&self) -> bool {
        self.by_cookie
    }

    /// Whether the session has proved more than one factor (`#[requires(mfa)]`).
    pub fn is_multi_factor(&self) -> bool {
        auth_core::tokens::is_multi_factor(&self.claims.amr)
    }
}

/// Why no [`AuthUser`] could be had; cached with the verification result.
#[derive(Debug, Clone, Copy)]
enum Rejection {
    Missing,
    Invalid,
    /// A cookie-authenticated unsafe request that failed the CSRF checks.
    Csrf,
}

/// The token after `Bearer `, if the request carries exactly one such header.
fn bearer<'r>(request: &'r Request<'_>) -> Result<&'r str, Rejection> {
    let mut values = request.headers().get("Authorization");
    let value = values.next().ok_or(Rejection::Missing)?;
    if values.next().is_some() {
        return Err(Rejection::Invalid);
    }
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            // HTTP's optional whitespace is ASCII; anything else stays in the token
            // and fails verification. Bytes, not chars: decoding ~600 bytes as
            // UTF-8 on every request showed in the guard's profile (BENCHMARKS.md).
            let token = token.trim_ascii();
            if token.is_empty() || token.bytes().any(|b| b.is_ascii_whitespace()) {
                Err(Rejection::Invalid)
            } else {
                Ok(token)
            }
        }
        // Another scheme (Basic, …) is no bearer token at all.
        _ => Err(Rejection::Missing),
    }
}

/// The access token of a browser session, if the request carries its cookie;
/// an unsafe request must also pass the CSRF checks.
fn cookie<'r>(request: &'r Request<'_>) -> Result<&'r str, Rejection> {
    let token = access_cookie(request).ok_or(Rejection::Missing)?;
    if is_unsafe(request.method()) {
        let sessions = request.rocket().state::<BrowserSessions>().ok_or(Rejection::Csrf)?;
        if !sessions.allows_unsafe(request) {
            return Err(Rejection::Csrf);
        }
    }
    Ok(token)
}

/// The access token in the browser session's cookie, if there is one.
fn access_cookie<'r>(request: &'r Request<'_>) -> Option<&'r str> {
    request.cookies().get(ACCESS_COOKIE).map(|cookie| cookie.value()).filter(|token| !token.is_empty())
}

fn authenticate(request: &Request<'_>) -> Result<AuthUser, Rejection> {
    // A header wins: cookies are looked at only when there is none.
    let (token, by_cookie) = match bearer(request) {
        Err(Rejection::Missing) => (cookie(request)?, true),
        header => (header?, false),
    };
    let auth = request.rocket().state::<Auth>().ok_or(Rejection::Invalid)?;
    auth.verify_access(token).map(|claims| AuthUser { claims, by_cookie }).map_err(|_| Rejection::Invalid)
}

/// The user whose browser-session cookie a hosted page's request carries
/// (never a bearer header). The CSRF proof of an unsafe one is the page form's
/// field: [`crate::ui`] hands the user out only after checking it.
pub(crate) fn page_user(request: &Request<'_>) -> Option<AuthUser> {
    let token = access_cookie(request)?;
    let auth = request.rocket().state::<Auth>()?;
    auth.verify_access(token).ok().map(|claims| AuthUser { claims, by_cookie: true })
}

/// Verifies the request's token once; every guard of the request shares the result.
fn cached<'r>(request: &'r Request<'_>) -> &'r Result<AuthUser, Rejection> {
    request.local_cache(|| authenticate(request))
}

pub(crate) fn reject<T>(request: &Request<'_>, error: ApiError) -> request::Outcome<T, ApiError> {
    let status = error.status();
    stash(request, error);
    Outcome::Error((status, ApiError::Status(status)))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match cached(request) {
            Ok(user) => Outcome::Success(user.clone()),
            Err(Rejection::Missing) => reject(request, ApiError::Auth(AuthError::MissingToken)),
            Err(Rejection::Csrf) => {
                let ip = RemoteClient::resolve(request).0.ip;
                tracing::warn!(target: "auth::audit", event = "access_denied", reason = "csrf_failed", ?ip, path = %request.uri().path());
                reject(request, ApiError::Auth(AuthError::CsrfFailed))
            }
            Err(Rejection::Invalid) => {
                // Logged, not stored: a flood of forged tokens must not become database writes.
                let ip = RemoteClient::resolve(request).0.ip;
                tracing::warn!(target: "auth::audit", event = "access_denied", reason = "invalid_token", ?ip, path = %request.uri().path());
                reject(request, ApiError::Auth(AuthError::InvalidToken))
            }
        }
    }
}

/// A token scoped to a tenant: its tenant id and the caller's role there.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantScope {
    pub tenant_id: Uuid,
    pub role: String,
    pub user: AuthUser,
}

impl TenantScope {
    /// Whether the scope is `tenant_id` with `required` or a higher role.
    pub fn allows(&self, tenant_id: Uuid, required: &str, roles: &RoleSet) -> bool {
        self.tenant_id == tenant_id && roles.at_least(&self.role, required)
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for TenantScope {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let user = try_outcome!(AuthUser::from_request(request).await);
        match user.tenant() {
            Some((tenant_id, role)) => {
                let role = role.to_owned();
                Outcome::Success(TenantScope { tenant_id, role, user })
            }
            None => {
                deny(request, &user, "tenant_scope_required");
                reject(request, ApiError::Auth(AuthError::NotAMember))
            }
        }
    }
}

/// An authorization rule, checked by [`Authorized<P>`] before the handler runs.
/// `#[requires(...)]` generates these; they can also be written by hand.
pub trait Policy: Send + Sync + 'static {
    /// What the policy requires, for route listings (e.g. `role = "admin", tenant`).
    const DESCRIPTION: &'static str;

    /// `Ok` to let the request through; otherwise the error to answer (403).
    fn check(user: &AuthUser, request: &Request<'_>, roles: &RoleSet) -> Result<(), AuthError>;
}

/// Proof that the caller satisfies policy `P`.
#[derive(Debug)]
pub struct Authorized<P: Policy> {
    pub user: AuthUser,
    policy: PhantomData<P>,
}

#[rocket::async_trait]
impl<'r, P: Policy> FromRequest<'r> for Authorized<P> {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let user = try_outcome!(AuthUser::from_request(request).await);
        let Some(auth) = request.rocket().state::<Auth>() else {
            return reject(request, ApiError::Status(Status::InternalServerError));
        };
        match P::check(&user, request, auth.roles()) {
            Ok(()) => Outcome::Success(Authorized { user, policy: PhantomData }),
            Err(error) => {
                deny(request, &user, P::DESCRIPTION);
                reject(request, ApiError::Auth(error))
            }
        }
    }
}

/// Audits a 403 of an authenticated caller (coalesced, never waited for).
fn deny(request: &Request<'_>, user: &AuthUser, reason: &str) {
    let Some(auth) = request.rocket().state::<Auth>() else { return };
    let client = RemoteClient::resolve(request).0;
    let path = request.uri().path().to_string();
    auth.record_denied(Some(user.id()), &client, reason, serde_json::json!({ "path": path }));
}

/// The value of the dynamic segment `<name>` of the matched route, if present.
pub(crate) fn path_segment<'r>(request: &'r Request<'_>, name: &str) -> Option<&'r str> {
    let route = request.route()?;
    let pattern = format!("<{name}>");
    let position = route.uri.path().split('/').filter(|s| !s.is_empty()).position(|s| s == pattern)?;
    request.uri().path().segments().get(position)
}

/// Who is asking, for rate limits and audit: the client IP (through trusted
/// proxies only, see [`forwarded::client_ip`]; `None` when unknown) and user agent.
#[derive(Debug, Clone)]
pub struct RemoteClient(pub ClientInfo);

impl RemoteClient {
    fn resolve(request: &Request<'_>) -> Self {
        let trusted = request.rocket().state::<Auth>().map(|auth| auth.config().http.trusted_proxies.as_slice());
        let headers = request.headers();
        let ip = forwarded::client_ip(
            request.remote().map(|addr| addr.ip()),
            headers.get("X-Forwarded-For"),
            headers.get("Forwarded"),
            trusted.unwrap_or_default(),
        );
        Self(ClientInfo::new(ip, headers.get_one("User-Agent")))
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RemoteClient {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        Outcome::Success(Self::resolve(request))
    }
}
