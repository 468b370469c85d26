//! Keeps the secrets of query strings out of every log.
//!
//! Rocket logs each request's method and URI, query included, before routing
//! it, and some of the platform's links carry a secret there: the emailed
//! `/verify-email?token=…`, the OpenID Connect callback's `code` and `state`,
//! the `login_hint` (an email address) of `/oauth/<provider>/authorize`. So
//! the fairing's request hook, which runs before that log line, moves the
//! query of these routes into the request's local cache and leaves the keys
//! alone in the URI (`?token=***`); their handlers read the real values with
//! the [`SecretQuery`] guard. Other routes, the host app's included, are
//! left as they are.

use rocket::{
    Request, Rocket,
    http::{ext::IntoOwned, uri::Origin},
    request::{FromRequest, Outcome},
};

use crate::policy::PLATFORM_PREFIX;

/// The platform's handlers whose query strings hold secrets.
const HANDLERS: &[&str] = &["verify_email_link", "oauth_authorize", "oauth_callback"];

/// What stands for each value in the URI that Rocket logs.
const REDACTED: &str = "***";

/// The mounted paths of [`HANDLERS`], as segment patterns (`None`: a dynamic segment).
#[derive(Debug, Default)]
pub(crate) struct SecretQueryRoutes(Vec<Vec<Option<String>>>);

impl SecretQueryRoutes {
    pub(crate) fn of<P: rocket::Phase>(rocket: &Rocket<P>) -> Self {
        let is_secret = |name: &str| name.strip_prefix(PLATFORM_PREFIX).is_some_and(|h| HANDLERS.contains(&h));
        let patterns = rocket
            .routes()
            .filter(|route| route.name.as_deref().is_some_and(is_secret))
            .map(|route| {
                let segments = route.uri.path().split('/').filter(|s| !s.is_empty());
                segments.map(|s| (!(s.starts_with('<') && s.ends_with('>'))).then(|| s.to_owned())).collect()
            })
            .collect();
        Self(patterns)
    }

    fn matches(&self, request: &Request<'_>) -> bool {
        let path: Vec<&str> = request.uri().path().segments().collect();
        self.0.iter().any(|pattern| {
            pattern.len() == path.len()
                && pattern.iter().zip(&path).all(|(want, got)| want.as_deref().is_none_or(|w| w == *got))
        })
    }

    /// Moves the query of a secret-carrying route out of the URI that is logged.
    pub(crate) fn redact(&self, request: &mut Request<'_>) {
        let Some(query) = request.uri().query() else { return };
        if !self.matches(request) {
            return;
        }
        let redacted: Vec<String> = query
            .as_str()
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => format!("{key}={REDACTED}"),
                None => REDACTED.to_owned(),
            })
            .collect();
        let uri = format!("{}?{}", request.uri().path(), redacted.join("&"));
        let Ok(uri) = Origin::parse_owned(uri) else { return };
        let original = request.uri().clone().into_owned();
        request.local_cache(|| Stashed(Some(original)));
        request.set_uri(uri);
    }
}

/// The original URI of a redacted request.
struct Stashed(Option<Origin<'static>>);

/// The real query string of a route whose query holds secrets (see the
/// module's documentation), percent-decoded.
#[derive(Debug)]
pub struct SecretQuery(Option<Origin<'static>>);

impl SecretQuery {
    /// The value of `key`, if the query has it.
    pub fn get(&self, key: &str) -> Option<String> {
        let query = self.0.as_ref()?.query()?;
        query.segments().find(|(name, _)| *name == key).map(|(_, value)| value.to_owned())
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SecretQuery {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        // Without the fairing's hook (or on another route) the URI was not redacted.
        let stashed = request.local_cache(|| Stashed(None));
        Outcome::Success(Self(stashed.0.clone().or_else(|| Some(request.uri().clone().into_owned()))))
    }
}
