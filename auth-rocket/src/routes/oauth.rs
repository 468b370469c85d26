//! Sign-in with OpenID Connect providers: `GET /oauth/<provider>/authorize`,
//! `GET /oauth/<provider>/callback`, `POST /oauth/exchange` and the signed-in
//! `POST /oauth/<provider>/link`, part of [`routes()`](crate::routes). The
//! work is done by [`auth_core::OAuth`] (`authorize`, `callback`, `exchange`,
//! `link_start`); this module carries the state cookie and shapes the answers.

use auth_core::{
    Auth, TokenPair,
    contract::{AuthorizeUrl, CodeRequest, ErrorBody, Linked, SignedIn},
    oauth::{OAuthCallback, OAuthDone, STATE_COOKIE, SignInAnswer, StateCookie},
};
use auth_macros::{public, requires};
use rocket::{
    Request, Response, State, get,
    http::{Cookie, CookieJar, Header, SameSite, Status},
    post,
    response::{self, Responder},
};

use super::{ApiResult, NoStore};
use crate::{
    browser::Browser,
    guards::{AuthUser, RemoteClient},
    json::JsonBody,
    secret_query::SecretQuery,
};

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

/// The answer of a successful callback: the tokens as JSON (200), the
/// provider's `success_redirect` with a one-time code in its fragment (303),
/// or, after a deliberate link, `{linked, provider}` (200) or
/// `success_redirect#linked=<provider>` (303).
pub enum Finished {
    Tokens(NoStore<TokenPair>),
    Redirect(Redirect),
    Linked(NoStore<Linked>),
}

impl<'r> Responder<'r, 'static> for Finished {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Self::Redirect(redirect) => redirect.respond_to(request),
            Self::Tokens(tokens) => tokens.respond_to(request),
            Self::Linked(body) => body.respond_to(request),
        }
    }
}

fn see_other(location: String) -> Finished {
    Finished::Redirect(Redirect { status: Status::SeeOther, location })
}

fn set_cookie(jar: &CookieJar<'_>, cookie: StateCookie) {
    let builder = Cookie::build((cookie.name, cookie.value.expose().to_owned()))
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
#[utoipa::path(tag = "oauth", params(("provider" = String, Path, description = "A configured provider, e.g. google"), ("login_hint" = Option<String>, Query, description = "Passed on to the provider"), ("app_state" = Option<String>, Query, description = "The app's own random value (1 to 128 of A-Z a-z 0-9 - . _ ~), returned in the success_redirect fragment so the app can check it started this sign-in")), responses((status = 302, description = "To the provider's authorization endpoint; sets the state cookie"), (status = 404, description = "Unknown provider", body = ErrorBody), (status = 422, description = "Malformed app_state", body = ErrorBody), (status = 503, description = "The provider cannot be reached", body = ErrorBody)))]
#[public]
#[get("/oauth/<provider>/authorize")]
pub async fn oauth_authorize(
    auth: &State<Auth>,
    cookies: &CookieJar<'_>,
    provider: &str,
    query: SecretQuery,
) -> ApiResult<Redirect> {
    let (login_hint, app_state) = (query.get("login_hint"), query.get("app_state"));
    let start = auth.oauth().authorize(provider, login_hint.as_deref(), app_state.as_deref()).await?;
    set_cookie(cookies, start.cookie);
    Ok(Redirect { status: Status::Found, location: start.location })
}

/// Starts a deliberate link of the provider to the caller's account: the
/// URL to send the browser to, and the state cookie (set on this answer, so
/// call it from the app's own origin) with the caller's user and session
/// sealed inside. The callback then links, and answers no tokens.
#[utoipa::path(tag = "oauth", security(("bearer" = [])), params(("provider" = String, Path, description = "A configured provider")), responses((status = 200, description = "Send the browser to authorize_url; sets the state cookie", body = AuthorizeUrl), (status = 403, description = "No sign-in or second factor in the last 10 minutes (reauthentication_required)", body = ErrorBody), (status = 404, description = "Unknown provider", body = ErrorBody), (status = 409, description = "This account already has a link for this provider", body = ErrorBody), (status = 503, description = "The provider cannot be reached", body = ErrorBody)))]
// Linking adds a way to sign in: a recent sign-in, as for a passkey.
#[requires(recent_auth = "10m")]
#[post("/oauth/<provider>/link")]
pub async fn oauth_link(
    auth: &State<Auth>,
    user: AuthUser,
    cookies: &CookieJar<'_>,
    provider: &str,
) -> ApiResult<NoStore<AuthorizeUrl>> {
    let start = auth.oauth().link_start(provider, user.claims()).await?;
    set_cookie(cookies, start.cookie);
    Ok(NoStore::ok(AuthorizeUrl { authorize_url: start.location }))
}

/// Trades the one-time code of `success_redirect` (60 s, single use) for the
/// platform's tokens.
#[utoipa::path(tag = "oauth", request_body = CodeRequest, responses((status = 200, description = "Signed in: the pair, or with session cookie the cookies", body = SignedIn), (status = 400, description = "Unknown, used or expired code", body = ErrorBody), (status = 403, description = "Account disabled; mfa_required (with mfa_token and methods) when the account has a second factor; a cookie-mode sign-in sent cross-site (csrf_failed)", body = ErrorBody), (status = 429, description = "Rate limited (the login quota)", body = ErrorBody)))]
#[public]
#[post("/oauth/exchange", data = "<body>")]
pub async fn oauth_exchange(
    auth: &State<Auth>,
    client: RemoteClient,
    browser: Browser<'_>,
    body: JsonBody<CodeRequest>,
) -> ApiResult<NoStore<SignedIn>> {
    let body = body.into_inner();
    browser.check_sign_in(body.session)?;
    let pair = auth.oauth().exchange(body.code.expose(), &client.0).await?;
    Ok(NoStore::ok(browser.signed_in(body.session, pair)))
}

/// Where the provider sends the browser back: checks the state, exchanges the
/// code, validates the id_token and answers the platform's own tokens (or
/// finishes a deliberate link).
#[utoipa::path(tag = "oauth", params(("provider" = String, Path), ("code" = Option<String>, Query), ("state" = Option<String>, Query), ("iss" = Option<String>, Query), ("error" = Option<String>, Query)), responses((status = 200, description = "Signed in (the tokens), or a deliberate link made ({linked: true, provider})", body = TokenPair), (status = 303, description = "To the configured success_redirect: #code=… (and app_state=…) to POST to /oauth/exchange, or #linked=<provider> after a deliberate link"), (status = 400, description = "Bad or missing state, refused code, an id_token that fails validation, or a link whose session has ended", body = ErrorBody), (status = 403, description = "Unverified provider email (email_not_verified), email domain not allowed, an existing account with this email at a provider not trusted for email (account_exists), or an account that cannot be linked", body = ErrorBody), (status = 404, description = "Unknown provider", body = ErrorBody), (status = 409, description = "Deliberate link: this identity or this account's slot for the provider is already taken (already_linked)", body = ErrorBody), (status = 429, description = "Rate limited (the login quota)", body = ErrorBody)))]
#[public]
#[get("/oauth/<provider>/callback")]
pub async fn oauth_callback(
    auth: &State<Auth>,
    client: RemoteClient,
    cookies: &CookieJar<'_>,
    provider: &str,
    query: SecretQuery,
) -> ApiResult<Finished> {
    let state_cookie = cookies.get(STATE_COOKIE).map(|cookie| cookie.value().to_owned());
    // Whatever happens next, this state has been used.
    if let Some(cleared) = auth.oauth().clear_cookie(provider) {
        set_cookie(cookies, cleared);
    }
    let (code, state, iss, error) = (query.get("code"), query.get("state"), query.get("iss"), query.get("error"));
    let callback =
        OAuthCallback { code: code.as_deref(), state: state.as_deref(), iss: iss.as_deref(), error: error.as_deref() };
    Ok(match auth.oauth().callback(provider, &callback, state_cookie.as_deref(), &client.0).await? {
        OAuthDone::SignedIn(login) => match login.answer {
            SignInAnswer::Tokens(tokens) => Finished::Tokens(NoStore::ok(tokens)),
            SignInAnswer::Redirect(location) => see_other(location.expose().to_owned()),
        },
        OAuthDone::Linked(linked) => match linked.redirect {
            Some(location) => see_other(location),
            None => Finished::Linked(NoStore::ok(Linked { linked: true, provider: linked.provider })),
        },
    })
}
