//! Sign-in with OpenID Connect providers (Google, or any standard provider):
//! the authorization code flow with `state`, `nonce` and PKCE S256, through
//! the `openidconnect` crate.
//!
//! 1. [`crate::OAuth::authorize`] discovers the provider (cached), builds
//!    the authorization URL and seals `state`, `nonce` and the PKCE verifier
//!    into a [`StateCookie`] (AES-256-GCM, five minutes, HttpOnly,
//!    SameSite=Lax) that binds the sign-in to the browser.
//! 2. [`crate::OAuth::callback`] opens the cookie, compares `state`,
//!    exchanges the code with the verifier, and validates the id_token
//!    (signature against the provider's JWKS, `iss`, `aud`, `azp`, `exp`,
//!    `iat`, `nonce`, `at_hash`). Any failure is [`crate::AuthError::OAuthFailed`]
//!    (400) and an `oauth_failed` audit event, never a sign-in.
//! 3. The account is found by the identity link (issuer, subject), never by
//!    email alone. Without a link, a provider-verified email in an allowed
//!    domain creates an active, verified user, or is linked to the existing
//!    account with that email (trusted providers only, see below); an
//!    unverified email is refused (403). Linking
//!    an account whose own email was never verified wipes its password (an
//!    account pre-registered by someone else) and mails a notice. Staff and
//!    superuser accounts are never linked automatically, and a sign-in never
//!    grants staff, superuser or a tenant role.
//!    An existing account is linked by email only for a provider whose
//!    `email_verified` is trusted (`trust_email`, default for the Google
//!    preset only); otherwise the sign-in is refused (`account_exists`) and
//!    the owner links the provider deliberately: signed in, through
//!    [`crate::OAuth::link_start`], whose sealed cookie names their
//!    user and session.
//! 4. The answer is the platform's own token pair, exactly as after a
//!    password login; with `success_redirect`, a one-time code (60 s, stored
//!    hashed) that [`crate::OAuth::exchange`] trades for that pair.

mod http;
mod provider;
mod settings;
mod state;

use std::{collections::BTreeMap, fmt};

use serde::Serialize;
use uuid::Uuid;

use crate::secret::Secret;

pub use http::HttpError;
pub(crate) use provider::{Failure, Provider};
pub use settings::{OAuthPreset, OAuthProvider};
pub(crate) use state::{LinkTarget, PendingLogin, STATE_TTL_SECS};

use crate::{TokenPair, config::ConfigError};

/// The name of the cookie that carries a pending sign-in.
pub const STATE_COOKIE: &str = "auth_oauth_state";

/// A cookie the web layer sets (or, with an empty value and `max_age_secs`
/// 0, removes) exactly as described: HttpOnly and SameSite=Lax always.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCookie {
    pub name: &'static str,
    /// The sealed pending sign-in; empty when the cookie is being removed.
    pub value: Secret,
    /// The path of the provider's `redirect_url`: the browser sends it to
    /// the callback only.
    pub path: String,
    pub max_age_secs: i64,
    /// Set when `redirect_url` is https.
    pub secure: bool,
}

/// The answer to `GET /oauth/<provider>/authorize`: redirect the browser to
/// `location` (302) and set `cookie`.
#[derive(Clone)]
pub struct OAuthStart {
    pub location: String,
    pub cookie: StateCookie,
}

/// The location's query carries `state` and `nonce`: shown without it.
impl fmt::Debug for OAuthStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthStart")
            .field("location", &crate::config::redact_url(&self.location))
            .field("cookie", &self.cookie)
            .finish()
    }
}

/// The query of the provider's redirect to `/oauth/<provider>/callback`.
/// `Debug` hides the code and the state.
#[derive(Clone, Copy, Default)]
pub struct OAuthCallback<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    /// RFC 9207: the issuer that sent the browser back, when the provider says.
    pub iss: Option<&'a str>,
    /// The provider's error code (e.g. `access_denied`) instead of a code.
    pub error: Option<&'a str>,
}

impl fmt::Debug for OAuthCallback<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |value: Option<&str>| value.map(|_| "***");
        f.debug_struct("OAuthCallback")
            .field("code", &hidden(self.code))
            .field("state", &hidden(self.state))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish()
    }
}

/// How the account of a sign-in was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountOrigin {
    /// The identity was already linked to this account.
    Linked,
    /// A new account was created for the identity.
    Created,
    /// The identity was just linked to the existing account with its email
    /// (a provider with `trust_email`).
    NewlyLinked,
}

/// What a valid callback did.
#[derive(Debug, Clone)]
pub enum OAuthDone {
    /// Someone signed in.
    SignedIn(OAuthLogin),
    /// A signed-in user's deliberate link (`POST /oauth/<provider>/link`) was made.
    Linked(OAuthLinked),
}

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct OAuthLogin {
    pub user_id: Uuid,
    pub origin: AccountOrigin,
    pub answer: SignInAnswer,
}

/// How a sign-in is handed to the app.
#[derive(Debug, Clone)]
pub enum SignInAnswer {
    /// The platform's own tokens, as after a password login.
    Tokens(TokenPair),
    /// `success_redirect` with a one-time code (and the app's `app_state`)
    /// in its fragment; no session exists until the code is exchanged.
    Redirect(Secret),
}

/// A deliberate link: no tokens change hands.
#[derive(Debug, Clone)]
pub struct OAuthLinked {
    pub user_id: Uuid,
    pub provider: String,
    /// `success_redirect` with `#linked=<provider>`, when configured.
    pub redirect: Option<String>,
}

/// What a provider vouched for in a validated id_token (or userinfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

/// Every configured provider by name.
#[derive(Default)]
pub(crate) struct Providers(BTreeMap<String, Provider>);

impl Providers {
    pub(crate) fn from_settings(settings: &BTreeMap<String, OAuthProvider>) -> Result<Self, ConfigError> {
        if settings.is_empty() {
            return Ok(Self::default());
        }
        let http = http::ProviderHttp::new()
            .map_err(|error| ConfigError::single("oauth", format!("cannot build the HTTP client: {error}")))?;
        let providers = settings
            .iter()
            .map(|(name, provider)| Ok((name.clone(), Provider::new(name, provider, http.clone())?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self(providers))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Provider> {
        self.0.get(name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl StateCookie {
    pub(crate) fn new(provider: &Provider, value: Secret, max_age_secs: i64) -> Self {
        let redirect = provider.redirect_url();
        let path =
            openidconnect::url::Url::parse(redirect).map(|url| url.path().to_owned()).unwrap_or_else(|_| "/".into());
        Self { name: STATE_COOKIE, value, path, max_age_secs, secure: redirect.starts_with("https://") }
    }
}

/// `target` with `fields` form-encoded in its fragment, which browsers never
/// send to a server (nor in a `Referer`).
pub(crate) fn redirect_with(target: &str, fields: &[(&str, &str)]) -> String {
    let mut fragment = openidconnect::url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        fragment.append_pair(name, value);
    }
    format!("{target}#{}", fragment.finish())
}
