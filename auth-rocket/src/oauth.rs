//! Sign-in with OpenID Connect providers: `GET /oauth/<provider>/authorize`
//! and `GET /oauth/<provider>/callback`, part of [`routes()`](crate::routes).
//! The work is [`Auth::oauth_authorize`] and [`Auth::oauth_callback`]; this
//! module carries the state cookie and shapes the answers.

use auth_core::{
    Auth, TokenPair,
    oauth::{OAuthCallback, STATE_COOKIE, StateCookie},
    ratelimit::Action,
};
use rocket::{
    Request, Response, State, get,
    http::{Cookie, CookieJar, Header, SameSite, Status},
    response::{self, Responder},
};

use crate::{error::ApiError, guards::Client, secret_query::SecretQuery};

/// A redirect whose answer no cache may keep.
pub struct Redirect {
    status: Status,
    location: String,
}

impl<'r> Responder<'r, 'static> for Redirect {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .status(self.status)
            .header(Header::new("Location", self.location))
            .header(Header::new("Cache-Control", "no-store"))
            .header(Header::new("Referrer-Policy", "no-referrer"))
            .ok()
    }
}

/// The answer of a successful callback: the tokens as JSON (200), or the
/// provider's `success_redirect` with the tokens in its fragment (303).
pub enum SignedIn {
    Tokens(TokenPair),
    Redirect(Redirect),
}

impl<'r> Responder<'r, 'static> for SignedIn {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Self::Redirect(redirect) => redirect.respond_to(request),
            Self::Tokens(tokens) => crate::routes::Tokens(tokens).respond_to(request),
        }
    }
}

fn set_cookie(jar: &CookieJar<'_>, cookie: StateCookie) {
    let builder = Cookie::build((cookie.name, cookie.value))
        .path(cookie.path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(cookie.secure);
    if cookie.max_age_secs > 0 {
        jar.add(builder.max_age(rocket::time::Duration::seconds(cookie.max_age_secs)));
    } else {
        jar.remove(builder);
    }
}

/// Redirects the browser to the provider, with `state`, `nonce` and PKCE S256.
#[utoipa::path(tag = "oauth", params(("provider" = String, Path, description = "A configured provider, e.g. google"), ("login_hint" = Option<String>, Query, description = "Passed on to the provider")), responses((status = 302, description = "To the provider's authorization endpoint; sets the state cookie"), (status = 404, description = "Unknown provider", body = crate::openapi::ErrorBody), (status = 503, description = "The provider cannot be reached", body = crate::openapi::ErrorBody)))]
#[get("/oauth/<provider>/authorize")]
pub async fn oauth_authorize(
    auth: &State<Auth>,
    cookies: &CookieJar<'_>,
    provider: &str,
    query: SecretQuery,
) -> Result<Redirect, ApiError> {
    let start = auth.oauth_authorize(provider, query.get("login_hint").as_deref()).await?;
    set_cookie(cookies, start.cookie);
    Ok(Redirect { status: Status::Found, location: start.location })
}

/// Where the provider sends the browser back: checks the state, exchanges the
/// code, validates the id_token and answers the platform's own tokens.
#[utoipa::path(tag = "oauth", params(("provider" = String, Path), ("code" = Option<String>, Query), ("state" = Option<String>, Query), ("iss" = Option<String>, Query), ("error" = Option<String>, Query)), responses((status = 200, description = "Signed in", body = crate::openapi::TokenPairSchema), (status = 303, description = "To the configured success_redirect, tokens in the fragment"), (status = 400, description = "Bad or missing state, refused code, or an id_token that fails validation", body = crate::openapi::ErrorBody), (status = 403, description = "Unverified provider email, email domain not allowed, or an account that cannot be linked", body = crate::openapi::ErrorBody), (status = 404, description = "Unknown provider", body = crate::openapi::ErrorBody)))]
#[get("/oauth/<provider>/callback")]
pub async fn oauth_callback(
    auth: &State<Auth>,
    client: Client,
    cookies: &CookieJar<'_>,
    provider: &str,
    query: SecretQuery,
) -> Result<SignedIn, ApiError> {
    let state_cookie = cookies.get(STATE_COOKIE).map(|cookie| cookie.value().to_owned());
    // Whatever happens next, this state has been used.
    if let Some(cleared) = auth.oauth_clear_cookie(provider) {
        set_cookie(cookies, cleared);
    }
    auth.rate_limit(Action::Login, &client.0).await?;
    let (code, state, iss, error) = (query.get("code"), query.get("state"), query.get("iss"), query.get("error"));
    let callback =
        OAuthCallback { code: code.as_deref(), state: state.as_deref(), iss: iss.as_deref(), error: error.as_deref() };
    let login = auth.oauth_callback(provider, &callback, state_cookie.as_deref(), &client.0).await?;
    Ok(match login.redirect {
        Some(location) => SignedIn::Redirect(Redirect { status: Status::SeeOther, location }),
        None => SignedIn::Tokens(login.tokens),
    })
}
