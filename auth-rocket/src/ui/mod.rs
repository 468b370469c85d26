//! The hosted pages (`<mount>/ui/…`, the contract's "Browser sessions"):
//! sign-in (password, passkey, second factor), sign-up, the emailed links'
//! landing pages and a small account page, for apps that want them rather
//! than their own.
//!
//! They are server-rendered (minijinja templates, HTML autoescaping) and their
//! forms work without script, posting to the `ui` routes, which call the same
//! operations of [`Auth`](auth_core::Auth) as the JSON routes and keep the
//! session in the browser-session cookies ([`crate::browser`]). Every form
//! carries the CSRF token of the `__Host-csrf` cookie and must come from this
//! site (the same Fetch-Metadata and `Origin` checks as a cookie-authenticated
//! API call). One script, `ui.js`, adds what needs script (passkeys; a silent
//! refresh), under a Content-Security-Policy that lets run only scripts
//! carrying the answer's nonce, in no frame.
//!
//! A host restyles them with [`Pages::stylesheet`], replaces any template by
//! name with [`Pages::templates`], or switches them off with [`Pages::off`].

mod forms;
mod page;
mod routes;

use std::path::PathBuf;

use auth_core::Auth;
use minijinja::Environment;
use rocket::{Build, Rocket};

pub(crate) use page::{Answer, Page};

/// The templates a host may replace, each with its default.
const TEMPLATES: [(&str, &str); 9] = [
    ("base.html", include_str!("../../ui/templates/base.html")),
    ("login.html", include_str!("../../ui/templates/login.html")),
    ("login-mfa.html", include_str!("../../ui/templates/login-mfa.html")),
    ("register.html", include_str!("../../ui/templates/register.html")),
    ("message.html", include_str!("../../ui/templates/message.html")),
    ("forgot-password.html", include_str!("../../ui/templates/forgot-password.html")),
    ("reset-password.html", include_str!("../../ui/templates/reset-password.html")),
    ("invitation.html", include_str!("../../ui/templates/invitation.html")),
    ("account.html", include_str!("../../ui/templates/account.html")),
];

/// How the hosted pages look, or that there are none. On by default under
/// `<mount>/ui` when the fairing mounts the platform.
///
/// ```no_run
/// use auth_rocket::{AuthFairing, ui::Pages};
/// let fairing = AuthFairing::mounted_at("/api/auth")
///     .pages(Pages::default().stylesheet("/static/brand.css").templates("templates/auth"));
/// ```
#[derive(Debug, Clone)]
pub struct Pages {
    enabled: bool,
    stylesheet: Option<String>,
    templates: Option<PathBuf>,
    site_name: String,
}

impl Default for Pages {
    fn default() -> Self {
        Self { enabled: true, stylesheet: None, templates: None, site_name: "Sign in".into() }
    }
}

impl Pages {
    /// No hosted pages: nothing is mounted under `ui`, and the emailed links
    /// keep their configured paths.
    pub fn off() -> Self {
        Self { enabled: false, ..Self::default() }
    }

    /// The stylesheet every page links instead of the platform's; a path on
    /// this site (the pages' CSP allows styles from `'self'` only).
    pub fn stylesheet(mut self, href: impl Into<String>) -> Self {
        self.stylesheet = Some(href.into());
        self
    }

    /// A directory of templates read at launch: a file there named like one
    /// of the platform's (`login.html`, `base.html`, …) replaces it.
    pub fn templates(mut self, dir: impl Into<PathBuf>) -> Self {
        self.templates = Some(dir.into());
        self
    }

    /// The name after each page's title (`Sign in · <name>`).
    pub fn site_name(mut self, name: impl Into<String>) -> Self {
        self.site_name = name.into();
        self
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The templates, with the host's replacements; an error names the file.
    fn environment(&self) -> Result<Environment<'static>, String> {
        let mut environment = Environment::new();
        for (name, default) in TEMPLATES {
            let replacement = self.templates.as_ref().map(|dir| dir.join(name)).filter(|path| path.is_file());
            let source = match replacement {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
                None => default.to_owned(),
            };
            environment.add_template_owned(name, source).map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(environment)
    }
}

/// The hosted pages' routes, to mount under `<mount>/ui` (the fairing does).
pub fn routes() -> Vec<rocket::Route> {
    routes::all()
}

pub(crate) use routes::secret_query_routes;

/// Everything a page needs to render, managed by the fairing.
pub(crate) struct Ui {
    templates: Environment<'static>,
    stylesheet: String,
    site: String,
    /// Where the pages are mounted (`/api/auth/ui`).
    base: String,
    /// Where the JSON routes are mounted (`/api/auth`), for `ui.js`.
    api: String,
    passkeys: bool,
    min_password_length: usize,
}

impl Ui {
    pub(crate) fn of(rocket: &Rocket<Build>, pages: &Pages, auth: &Auth) -> Result<Self, String> {
        let base = mounted_base(rocket).unwrap_or_else(|| "/ui".into());
        let api = base_of(rocket, rocket::routes![crate::routes::sessions::login]).unwrap_or_default();
        Ok(Self {
            templates: pages.environment()?,
            stylesheet: pages.stylesheet.clone().unwrap_or_else(|| format!("{base}/assets/ui.css")),
            site: pages.site_name.clone(),
            base,
            api,
            passkeys: auth.passkeys().enabled(),
            min_password_length: auth.config().password.min_length,
        })
    }
}

/// Where the pages are mounted, if they are: the sign-in page's path without `/login`.
pub(crate) fn mounted_base<P: rocket::Phase>(rocket: &Rocket<P>) -> Option<String> {
    base_of(rocket, rocket::routes![routes::login_page])
}

/// The mount point of a `/login` route (the pages' or the JSON API's).
fn base_of<P: rocket::Phase>(rocket: &Rocket<P>, login: Vec<rocket::Route>) -> Option<String> {
    let route = crate::mounted::mounts_of(rocket, &login).next()?;
    Some(route.uri.path().trim_end_matches("/login").to_owned())
}

/// The emailed links' paths the settings leave unset: the hosted pages
/// under `base`.
pub(crate) fn link_paths(config: &mut auth_core::AuthConfig, base: &str) {
    for (path, page) in [
        (&mut config.verify_email_path, "verify-email"),
        (&mut config.reset_password_path, "reset-password"),
        (&mut config.invitation_path, "invitation"),
    ] {
        path.get_or_insert_with(|| format!("{base}/{page}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn every_template_renders_and_escapes_what_it_is_given() {
        let environment = Pages::default().environment().expect("the templates parse");
        let hostile = "<script>alert(1)</script>";
        let sessions = vec![
            context! { user_agent => hostile, ip => "127.0.0.1", last_used_at => "2026-12-02T10:00:00Z", current => true },
        ];
        let context = context! {
            ui => "/api/auth/ui", api => "/api/auth", nonce => "n0nce", csrf => "t0ken", email => hostile,
            error => hostile, sessions, methods => vec!["totp", "webauthn"], passkeys => true,
            passkey_list => vec![context! { name => hostile, created_at => "2026-12-02T10:00:00Z" }],
            factors => context! { totp => true, recovery_codes_left => 10 }, signed_in => true,
        };
        for (name, _) in TEMPLATES {
            let html = environment
                .get_template(name)
                .and_then(|t| t.render(&context))
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(!html.contains(hostile), "{name} escapes what it shows: {html}");
        }
    }
}
