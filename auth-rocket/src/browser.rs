//! Browser sessions (the contract's "Browser sessions"): a sign-in with
//! `{"session": "cookie"}` keeps its tokens in cookies that scripts cannot
//! read, and every unsafe request those cookies authenticate must show it
//! comes from the site's own pages: the double-submitted CSRF token, no
//! `Sec-Fetch-Site: cross-site`, and an `Origin`, when sent, of this site.
//! The checks run in request guards, before any body is read.

use auth_core::{
    AuthConfig, AuthError, FieldErrors, Secret, TokenPair,
    contract::{CookieSession, SessionMode, SignedIn},
    tokens,
};
use rocket::{
    Build, Request, Rocket,
    http::{Cookie, Method, SameSite, uri::Absolute},
    outcome::Outcome,
    request::{self, FromRequest},
    time::Duration,
};

/// The access token: sent with every request to the host (`__Host-`: Secure, `Path=/`, no Domain).
pub const ACCESS_COOKIE: &str = "__Host-access";
/// The refresh token: sent only to the refresh route, never cross-site.
pub const REFRESH_COOKIE: &str = "__Secure-refresh";
/// The CSRF token, readable by the site's scripts, echoed in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "__Host-csrf";
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// What the deployment's `public_url` and mounted routes say about cookies;
/// managed by the fairing.
#[derive(Debug)]
pub(crate) struct BrowserSessions {
    /// Secure cookies reach the server: https, or a loopback host over http
    /// (browsers treat `localhost` as secure).
    available: bool,
    /// The mounted path of `POST /refresh`: the refresh cookie's `Path`.
    refresh_path: String,
    /// Origins whose pages may send cookie-authenticated requests: the
    /// public URL's and those CORS allows.
    origins: Vec<String>,
}

impl BrowserSessions {
    pub(crate) fn of(rocket: &Rocket<Build>, config: &AuthConfig) -> Self {
        let public = Absolute::parse(&config.public_url).ok();
        let secure = public.as_ref().is_some_and(|url| match (url.scheme(), url.authority()) {
            ("https", Some(_)) => true,
            ("http", Some(authority)) => is_loopback(authority.host()),
            _ => false,
        });
        let own_origin = public.as_ref().and_then(|url| Some(format!("{}://{}", url.scheme(), url.authority()?)));
        let refresh = rocket::routes![crate::routes::sessions::refresh];
        let refresh_path = crate::mounted::mounts_of(rocket, &refresh)
            .next()
            .map_or_else(|| "/refresh".to_owned(), |route| route.uri.path().to_string());
        let origins = own_origin.into_iter().chain(config.http.cors_allowed_origins.iter().cloned()).collect();
        Self { available: secure, refresh_path, origins }
    }

    /// Whether a request comes from this site: not `Sec-Fetch-Site:
    /// cross-site`, and its `Origin`, when present, one of this site's.
    fn same_site(&self, request: &Request<'_>) -> bool {
        let headers = request.headers();
        let cross_site = headers.get_one("Sec-Fetch-Site").is_some_and(|site| site.eq_ignore_ascii_case("cross-site"));
        let foreign = headers.get_one("Origin").is_some_and(|origin| !self.origins.iter().any(|own| own == origin));
        !cross_site && !foreign
    }

    /// Whether an unsafe request that a cookie authenticates may go on:
    /// same-site, and `X-CSRF-Token` equal to the CSRF cookie.
    pub(crate) fn allows_unsafe(&self, request: &Request<'_>) -> bool {
        self.proves_origin(request, request.headers().get_one(CSRF_HEADER))
    }

    /// Whether `token` (a header's, or a hosted page form's field) equals
    /// the CSRF cookie, compared in constant time, and the request is same-site.
    fn proves_origin(&self, request: &Request<'_>, token: Option<&str>) -> bool {
        let cookie = request.cookies().get(CSRF_COOKIE).map(Cookie::value);
        let token_matches = match (token, cookie) {
            (Some(token), Some(cookie)) if !cookie.is_empty() => Secret::new(token) == Secret::new(cookie),
            _ => false,
        };
        token_matches && self.same_site(request)
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `method` can change state (RFC 9110 §9.2.1: all but GET, HEAD, OPTIONS).
pub(crate) fn is_unsafe(method: Method) -> bool {
    !matches!(method, Method::Get | Method::Head | Method::Options)
}

/// The browser side of a sign-in, refresh or sign-out route: decides, before
/// the body is read, what the request's cookies may do, and sets or clears
/// them on the answer.
pub(crate) struct Browser<'r> {
    sessions: &'r BrowserSessions,
    request: &'r Request<'r>,
}

impl<'r> Browser<'r> {
    pub(crate) fn of(request: &'r Request<'_>) -> Self {
        static UNAVAILABLE: BrowserSessions =
            BrowserSessions { available: false, refresh_path: String::new(), origins: Vec::new() };
        let sessions = request.rocket().state::<BrowserSessions>().unwrap_or(&UNAVAILABLE);
        Browser { sessions, request }
    }

    /// Checks a sign-in's `session` before any credential is: cookie mode
    /// needs a deployment that can set secure cookies, and a same-site
    /// request (a cross-site form must not sign a browser into an account).
    pub(crate) fn check_sign_in(&self, mode: Option<SessionMode>) -> Result<(), AuthError> {
        match mode {
            None => Ok(()),
            Some(SessionMode::Cookie) if !self.sessions.available => {
                Err(FieldErrors::single("session", "cookie sessions need an https public_url (or a loopback one)"))
            }
            Some(SessionMode::Cookie) if !self.sessions.same_site(self.request) => Err(AuthError::CsrfFailed),
            Some(SessionMode::Cookie) => Ok(()),
        }
    }

    /// The refresh token of a cookie-mode refresh: the refresh cookie, which
    /// an unsafe request may use only with the CSRF token.
    pub(crate) fn refresh_token(&self) -> Result<Secret, AuthError> {
        self.check_sign_in(Some(SessionMode::Cookie))?;
        let cookie = self.request.cookies().get(REFRESH_COOKIE).ok_or(AuthError::MissingToken)?;
        if !self.sessions.allows_unsafe(self.request) {
            return Err(AuthError::CsrfFailed);
        }
        Ok(Secret::new(cookie.value()))
    }

    /// Checks a hosted page's form: its `csrf` field must be the CSRF cookie,
    /// and the post must come from this site.
    pub(crate) fn check_form(&self, csrf: &str) -> Result<(), AuthError> {
        if self.sessions.proves_origin(self.request, Some(csrf)) { Ok(()) } else { Err(AuthError::CsrfFailed) }
    }

    /// The answer to a sign-in or refresh: the pair in the body, or, in cookie
    /// mode, in three fresh cookies (a new CSRF token each time) and
    /// `{token_type: "cookie", expires_in}`.
    pub(crate) fn signed_in(&self, mode: Option<SessionMode>, pair: TokenPair) -> SignedIn {
        let Some(SessionMode::Cookie) = mode else { return SignedIn::Tokens(pair) };
        let refresh_age = Duration::seconds(i64::try_from(pair.refresh_expires_in).unwrap_or(i64::MAX));
        let access_age = Duration::seconds(i64::try_from(pair.expires_in).unwrap_or(i64::MAX));
        let csrf = tokens::random_secret();
        self.set(ACCESS_COOKIE, pair.access.expose(), "/", SameSite::Lax, true, access_age);
        self.set(
            REFRESH_COOKIE,
            pair.refresh.expose(),
            &self.sessions.refresh_path,
            SameSite::Strict,
            true,
            refresh_age,
        );
        self.set(CSRF_COOKIE, csrf.expose(), "/", SameSite::Strict, false, refresh_age);
        SignedIn::Cookie(CookieSession { token_type: "cookie", expires_in: pair.expires_in })
    }

    /// Ends the browser's copy of a session: the three cookies expire.
    pub(crate) fn clear(&self) {
        self.set(ACCESS_COOKIE, "", "/", SameSite::Lax, true, Duration::ZERO);
        self.set(REFRESH_COOKIE, "", &self.sessions.refresh_path, SameSite::Strict, true, Duration::ZERO);
        self.set(CSRF_COOKIE, "", "/", SameSite::Strict, false, Duration::ZERO);
    }

    /// The CSRF token a hosted page's forms carry: the `__Host-csrf` cookie's,
    /// or a new one set for the browser session (a sign-in rotates it).
    pub(crate) fn form_token(&self) -> String {
        if let Some(cookie) = self.request.cookies().get(CSRF_COOKIE).filter(|c| !c.value().is_empty()) {
            return cookie.value().to_owned();
        }
        let token = tokens::random_secret().expose().to_owned();
        self.request.cookies().add(cookie(CSRF_COOKIE, &token, "/", SameSite::Strict, false));
        token
    }

    fn set(&self, name: &'static str, value: &str, path: &str, same_site: SameSite, http_only: bool, age: Duration) {
        let mut cookie = cookie(name, value, path, same_site, http_only);
        cookie.set_max_age(age);
        self.request.cookies().add(cookie);
    }
}

/// A cookie of the browser session: always `Secure` (the `__Host-`/`__Secure-` prefixes need it).
fn cookie(name: &'static str, value: &str, path: &str, same_site: SameSite, http_only: bool) -> Cookie<'static> {
    Cookie::build((name, value.to_owned()))
        .path(path.to_owned())
        .secure(true)
        .http_only(http_only)
        .same_site(same_site)
        .build()
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Browser<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        Outcome::Success(Browser::of(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_may_have_cookies_over_plain_http() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.3.4.5", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["example.com", "localhost.example.com", "10.0.0.1", "[::2]", "0.0.0.0"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
