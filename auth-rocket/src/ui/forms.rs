//! What the pages' forms post, and who posts them.

use auth_core::{AuthError, Secret};
use rocket::{
    FromForm, Request,
    form::{self, FromFormField, ValueField},
    outcome::Outcome,
    request::{self, FromRequest},
};

use crate::{
    browser::{Browser, is_unsafe},
    guards::{AuthUser, page_user},
};

/// A form field that holds a secret (a password, a code, a token): wiped
/// when dropped, redacted in `Debug`.
#[derive(Debug)]
pub(crate) struct Hidden(pub Secret);

impl<'v> FromFormField<'v> for Hidden {
    fn from_value(field: ValueField<'v>) -> form::Result<'v, Self> {
        Ok(Self(Secret::new(field.value)))
    }

    fn default() -> Option<Self> {
        Some(Self(Secret::new("")))
    }
}

impl Hidden {
    pub(crate) fn expose(&self) -> &str {
        self.0.expose()
    }
}

// Every field has a default: a form short of one is judged by the operation
// (a 422 in the page), never a JSON error in an HTML flow.

#[derive(FromForm)]
pub(crate) struct Csrf {
    #[field(default = String::new())]
    pub csrf: String,
}

#[derive(FromForm)]
pub(crate) struct SignIn {
    #[field(default = String::new())]
    pub csrf: String,
    #[field(default = String::new())]
    pub email: String,
    pub password: Hidden,
    #[field(default = String::new())]
    pub next: String,
}

#[derive(FromForm)]
pub(crate) struct Factor {
    #[field(default = String::new())]
    pub csrf: String,
    pub mfa_token: Hidden,
    pub code: Hidden,
    #[field(default = String::new())]
    pub methods: String,
    #[field(default = String::new())]
    pub next: String,
}

#[derive(FromForm)]
pub(crate) struct SignUp {
    #[field(default = String::new())]
    pub csrf: String,
    #[field(default = String::new())]
    pub full_name: String,
    #[field(default = String::new())]
    pub email: String,
    pub password: Hidden,
}

#[derive(FromForm)]
pub(crate) struct Forgot {
    #[field(default = String::new())]
    pub csrf: String,
    #[field(default = String::new())]
    pub email: String,
}

#[derive(FromForm)]
pub(crate) struct Reset {
    #[field(default = String::new())]
    pub csrf: String,
    pub token: Hidden,
    pub new_password: Hidden,
}

#[derive(FromForm)]
pub(crate) struct Accept {
    #[field(default = String::new())]
    pub csrf: String,
    pub token: Hidden,
}

/// Where a sign-in goes on: a path of this site (`/…`, not `//host` nor
/// `/\host`, which browsers read as another host), else the account page.
pub(crate) fn onward(next: &str, ui_base: &str) -> String {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if local { next.to_owned() } else { format!("{ui_base}/account") }
}

/// The signed-in user of a page, by the browser-session cookie alone.
pub(crate) struct PageUser<'r> {
    user: Option<AuthUser>,
    browser: Browser<'r>,
    unsafe_method: bool,
}

impl PageUser<'_> {
    /// The user a page shows (a GET: nothing changes).
    pub(crate) fn viewing(&self) -> Option<&AuthUser> {
        self.user.as_ref().filter(|_| !self.unsafe_method)
    }

    /// The user a form acts for, once its CSRF field is proved.
    pub(crate) fn acting(&self, csrf: &str) -> Result<&AuthUser, AuthError> {
        self.browser.check_form(csrf)?;
        self.user.as_ref().ok_or(AuthError::MissingToken)
    }

    pub(crate) fn browser(&self) -> &Browser<'_> {
        &self.browser
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PageUser<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let browser = Browser::of(request);
        Outcome::Success(Self { user: page_user(request), browser, unsafe_method: is_unsafe(request.method()) })
    }
}

#[cfg(test)]
mod tests {
    use super::onward;

    #[test]
    fn a_sign_in_goes_on_only_to_this_site() {
        assert_eq!(onward("/dashboard?tab=1", "/ui"), "/dashboard?tab=1");
        for foreign in
            ["https://evil.example", "//evil.example", "/\\evil.example", "/a\\b", "", "javascript:x", "/\n/x"]
        {
            assert_eq!(onward(foreign, "/ui"), "/ui/account", "{foreign:?}");
        }
    }
}
