//! Keeps the secrets of query strings out of every log.
//!
//! Rocket logs each request's method and URI, query included, before routing
//! it, and some of the platform's links carry a secret there: the emailed
//! `/verify-email?token=…`, the OpenID Connect callback's `code` and `state`,
//! the `login_hint` (an email address) of `/oauth/<provider>/authorize`. So
//! the fairing's request hook, which runs before that log line, moves the
//! query of these routes into the request's local cache and leaves the keys
//! alone in the URI (`?token=***`); their handlers read the real values with
//! the [`SecretQuery`] guard. The operators' searches are kept out too: they
//! name people (`GET /admin/users?email=…`, `/admin/audit?user_id=…`).
//! Other routes, the host app's included, are left as they are.

use crate::mounted::{PathPattern, mounts_of};
use rocket::{
    Request, Rocket,
    http::{ext::IntoOwned, uri::Origin},
    request::{FromRequest, Outcome},
};

/// What stands for each value in the URI that Rocket logs.
const REDACTED: &str = "***";

/// Where the platform's handlers that read their query through
/// [`SecretQuery`] are mounted.
#[derive(Debug, Default)]
pub(crate) struct SecretQueryRoutes(Vec<PathPattern>);

impl SecretQueryRoutes {
    pub(crate) fn of<P: rocket::Phase>(rocket: &Rocket<P>) -> Self {
        use crate::routes::{
            account::verify_email_link,
            admin::{admin_audit, admin_find_users},
            oauth::{oauth_authorize, oauth_callback},
        };
        let mut secret =
            rocket::routes![verify_email_link, oauth_authorize, oauth_callback, admin_find_users, admin_audit];
        secret.extend(crate::ui::secret_query_routes());
        Self(mounts_of(rocket, &secret).map(PathPattern::of).collect())
    }

    fn matches(&self, request: &Request<'_>) -> bool {
        self.0.iter().any(|pattern| pattern.matches(request))
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
/// module's documentation), percent-decoded. Its `Debug` shows the path only.
pub struct SecretQuery(Option<Origin<'static>>);

impl std::fmt::Debug for SecretQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.0.as_ref().map(|uri| uri.path().as_str());
        f.debug_struct("SecretQuery").field("path", &path).finish_non_exhaustive()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_query_value() {
        let query = SecretQuery(Some(Origin::parse_owned("/verify-email?token=emailed-secret-1".into()).unwrap()));
        for rendered in [format!("{query:?}"), format!("{query:#?}")] {
            assert!(!rendered.contains("emailed-secret-1") && rendered.contains("/verify-email"), "{rendered}");
        }
        assert_eq!(query.get("token").as_deref(), Some("emailed-secret-1"));
    }
}
