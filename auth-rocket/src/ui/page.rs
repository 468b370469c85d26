//! A rendered page and its headers: the nonce-based CSP, no framing, no
//! caching, no referrer to other sites (a page's URL may hold an emailed token).

use auth_core::{AuthError, tokens};
use minijinja::{Value, context};
use rocket::{
    Request, Response,
    http::{ContentType, Header, Status},
    response::{self, Redirect, Responder},
};

use super::Ui;

/// A template and its context, answered with `status`.
pub(crate) struct Page {
    status: Status,
    template: &'static str,
    pub(super) context: Value,
}

impl Page {
    pub(crate) fn new(template: &'static str, context: Value) -> Self {
        Self { status: Status::Ok, template, context }
    }

    /// `template` again, saying what went wrong with the contract's status.
    pub(crate) fn failed(template: &'static str, error: &AuthError, context: Value) -> Self {
        let status = Status::from_code(error.status()).unwrap_or(Status::InternalServerError);
        Self { status, template, context: context! { error => message(error), ..context } }
    }

    /// A page with one message and a link onward.
    pub(crate) fn message(heading: &str, body: &str, link: (&str, &str)) -> Self {
        let (link_href, link_text) = link;
        Self::new("message.html", context! { heading, body, link_href, link_text })
    }
}

/// What a page says of an error: the contract's message, which names no
/// account and no secret; field by field for a validation error; nothing of
/// an internal one.
fn message(error: &AuthError) -> String {
    let text = match error {
        AuthError::Validation(fields) => fields.messages().map(|(_, message)| message).collect::<Vec<_>>().join(". "),
        AuthError::Internal(_) => "Something went wrong on our side. Try again later.".into(),
        AuthError::CsrfFailed => "This form was open too long or came from another site. Reload the page.".into(),
        other => other.to_string(),
    };
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

impl<'r> Responder<'r, 'static> for Page {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let ui = request.rocket().state::<Ui>().ok_or(Status::NotFound)?;
        let nonce = tokens::random_secret().expose().to_owned();
        let context = context! {
            nonce => &nonce,
            csrf => crate::browser::Browser::of(request).form_token(),
            ui => &ui.base,
            api => &ui.api,
            stylesheet => &ui.stylesheet,
            site => &ui.site,
            passkeys => ui.passkeys,
            min_length => ui.min_password_length,
            ..self.context
        };
        let html = ui.templates.get_template(self.template).and_then(|template| template.render(context));
        let html = html.map_err(|error| {
            tracing::error!(template = self.template, %error, "a hosted page failed to render");
            Status::InternalServerError
        })?;
        let policy = format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
        Response::build_from((self.status, (ContentType::HTML, html)).respond_to(request)?)
            .header(Header::new("Content-Security-Policy", policy))
            // `X-Frame-Options` and `nosniff` are Rocket's Shield's (on by
            // default); `frame-ancestors 'none'` is the stricter word on framing.
            // Not `no-referrer`: with it a browser sends `Origin: null` on the
            // page's own form posts, which the origin check must refuse.
            .header(Header::new("Referrer-Policy", "same-origin"))
            .header(Header::new("Cache-Control", "no-store"))
            .header(Header::new("Cross-Origin-Opener-Policy", "same-origin"))
            .ok()
    }
}

/// What a form route answers: a page, or `303 See Other` onward.
pub(crate) enum Answer {
    Page(Page),
    SeeOther(String),
}

impl From<Page> for Answer {
    fn from(page: Page) -> Self {
        Self::Page(page)
    }
}

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Self::Page(page) => page.respond_to(request),
            Self::SeeOther(to) => Response::build_from(Redirect::to(to).respond_to(request)?)
                .header(Header::new("Cache-Control", "no-store"))
                .ok(),
        }
    }
}
