//! The pages' routes. A GET renders a page; a POST checks its form's CSRF
//! field and origin, calls one operation of [`Auth`], and answers `303`
//! onward or the page again with what went wrong.
//!
//! They are `#[public]`: each is a page anyone may open. The ones that act
//! for a signed-in user get that user from [`PageUser::acting`], which proves
//! the form's CSRF token first (a form cannot send the `X-CSRF-Token` header
//! that [`AuthUser`](crate::AuthUser) asks of a cookie-authenticated call).

use auth_core::{Auth, AuthError, SecondFactor, contract::SessionMode, identity::Registration};
use auth_macros::public;
use minijinja::{context, value::Serde};
use rocket::{
    State,
    form::Form,
    get,
    http::{ContentType, Header},
    post,
    response::Responder,
};

use super::{
    Answer, Page, Ui,
    forms::{self, Accept, Csrf, Forgot, PageUser, Reset, SignIn, SignUp, onward},
};
use crate::{browser::Browser, guards::RemoteClient, secret_query::SecretQuery};

pub(super) fn all() -> Vec<rocket::Route> {
    rocket::routes![
        login_page,
        sign_in,
        sign_in_second_factor,
        register_page,
        sign_up,
        verify_email_page,
        forgot_password_page,
        forgot_password_form,
        reset_password_page,
        reset_password_form,
        invitation_page,
        accept_invitation_form,
        account_page,
        sign_out,
        sign_out_everywhere,
        ui_stylesheet,
        ui_script,
    ]
}

/// The routes whose query holds a secret (an emailed token; `next`, which may
/// carry one): kept out of the request log like the API's.
pub(crate) fn secret_query_routes() -> Vec<rocket::Route> {
    rocket::routes![login_page, verify_email_page, reset_password_page, invitation_page]
}

#[public]
#[get("/login")]
pub(crate) fn login_page(ui: &State<Ui>, query: SecretQuery) -> Page {
    let next = query.get("next");
    // Sent here from a page that needs a session: the script tries the refresh cookie first.
    let resume = next.is_some();
    Page::new("login.html", context! { next => onward(next.as_deref().unwrap_or(""), &ui.base), resume })
}

#[public]
#[post("/login", data = "<form>")]
pub(crate) async fn sign_in(
    auth: &State<Auth>,
    ui: &State<Ui>,
    client: RemoteClient,
    browser: Browser<'_>,
    form: Form<SignIn>,
) -> Answer {
    let next = onward(&form.next, &ui.base);
    let signed_in = async {
        browser.check_sign_in(Some(SessionMode::Cookie))?;
        browser.check_form(&form.csrf)?;
        auth.sessions().login(&form.email, form.password.expose(), None, &client.0).await
    };
    match signed_in.await {
        Ok(pair) => {
            browser.signed_in(Some(SessionMode::Cookie), pair);
            Answer::SeeOther(next)
        }
        Err(AuthError::SecondFactorRequired { mfa_token, methods }) => {
            let methods: Vec<String> = methods.iter().map(|m| m.as_str().to_owned()).collect();
            second_factor_page(mfa_token.expose(), &methods, &next).into()
        }
        Err(error) => Page::failed("login.html", &error, context! { email => &form.email, next }).into(),
    }
}

fn second_factor_page(mfa_token: &str, methods: &[String], next: &str) -> Page {
    Page::new(
        "login-mfa.html",
        context! { mfa_token, methods => Serde(methods), methods_list => methods.join(","), next },
    )
}

#[public]
#[post("/login/mfa", data = "<form>")]
pub(crate) async fn sign_in_second_factor(
    auth: &State<Auth>,
    ui: &State<Ui>,
    client: RemoteClient,
    browser: Browser<'_>,
    form: Form<forms::Factor>,
) -> Answer {
    let next = onward(&form.next, &ui.base);
    let signed_in = async {
        browser.check_sign_in(Some(SessionMode::Cookie))?;
        browser.check_form(&form.csrf)?;
        let factor = SecondFactor::from_code(form.code.expose());
        auth.sessions().finish_login(form.mfa_token.expose(), factor, &client.0).await
    };
    match signed_in.await {
        Ok(pair) => {
            browser.signed_in(Some(SessionMode::Cookie), pair);
            Answer::SeeOther(next)
        }
        // The same sign-in may try again while its mfa_token lives.
        Err(error @ AuthError::InvalidCode) => {
            let methods: Vec<String> = form.methods.split(',').map(str::to_owned).collect();
            let page = second_factor_page(form.mfa_token.expose(), &methods, &next);
            Page::failed("login-mfa.html", &error, page.context).into()
        }
        Err(error) => Page::failed("login.html", &error, context! { next }).into(),
    }
}

#[public]
#[get("/register")]
pub(crate) fn register_page() -> Page {
    Page::new("register.html", context! {})
}

#[public]
#[post("/register", data = "<form>")]
pub(crate) async fn sign_up(
    auth: &State<Auth>,
    client: RemoteClient,
    browser: Browser<'_>,
    form: Form<SignUp>,
) -> Page {
    let form = form.into_inner();
    let (email, full_name) = (form.email.clone(), form.full_name.clone());
    let registered = async {
        browser.check_form(&form.csrf)?;
        let registration =
            Registration { email: form.email, password: form.password.0, full_name: form.full_name, phone: None };
        auth.accounts().register(&registration, &client.0).await
    };
    match registered.await {
        // A taken address gets the same page: the form tells no one who has an account.
        Ok(_) | Err(AuthError::EmailTaken) => Page::new("register.html", context! { done => true }),
        Err(error) => Page::failed("register.html", &error, context! { email, full_name }),
    }
}

#[public]
#[get("/verify-email")]
pub(crate) async fn verify_email_page(
    auth: &State<Auth>,
    ui: &State<Ui>,
    client: RemoteClient,
    query: SecretQuery,
) -> Page {
    let sign_in = (format!("{}/login", ui.base), "Sign in");
    let verified = match query.get("token") {
        Some(token) => auth.accounts().verify_email(&token, &client.0).await,
        None => Err(AuthError::InvalidOneTimeToken),
    };
    match verified {
        Ok(()) => Page::message(
            "Email verified",
            "Your email address is verified. You can sign in now.",
            (&sign_in.0, sign_in.1),
        ),
        Err(error) => link_failed(&error, sign_in),
    }
}

/// The page of an emailed link that did not work.
fn link_failed(error: &AuthError, onward: (String, &str)) -> Page {
    let heading = match error {
        AuthError::InvalidOneTimeToken => "Link invalid",
        _ => "Try again later",
    };
    let body = match error {
        AuthError::InvalidOneTimeToken => "This link is invalid, already used or expired. Ask for a new one.",
        _ => "",
    };
    let page = Page::message(heading, body, (&onward.0, onward.1));
    Page::failed("message.html", error, page.context)
}

#[public]
#[get("/forgot-password")]
pub(crate) fn forgot_password_page() -> Page {
    Page::new("forgot-password.html", context! {})
}

#[public]
#[post("/forgot-password", data = "<form>")]
pub(crate) async fn forgot_password_form(
    auth: &State<Auth>,
    client: RemoteClient,
    browser: Browser<'_>,
    form: Form<Forgot>,
) -> Page {
    let requested = async {
        browser.check_form(&form.csrf)?;
        auth.accounts().request_password_reset(&form.email, &client.0).await
    };
    match requested.await {
        Ok(()) => Page::new("forgot-password.html", context! { done => true }),
        Err(error) => Page::failed("forgot-password.html", &error, context! {}),
    }
}

#[public]
#[get("/reset-password")]
pub(crate) fn reset_password_page(query: SecretQuery) -> Page {
    Page::new("reset-password.html", context! { token => query.get("token") })
}

#[public]
#[post("/reset-password", data = "<form>")]
pub(crate) async fn reset_password_form(
    auth: &State<Auth>,
    ui: &State<Ui>,
    client: RemoteClient,
    browser: Browser<'_>,
    form: Form<Reset>,
) -> Page {
    let sign_in = (format!("{}/login", ui.base), "Sign in");
    let reset = async {
        browser.check_form(&form.csrf)?;
        auth.accounts().confirm_password_reset(form.token.expose(), form.new_password.expose(), &client.0).await
    };
    match reset.await {
        Ok(()) => {
            Page::message("Password changed", "Your new password is set. Sign in with it.", (&sign_in.0, sign_in.1))
        }
        Err(error @ (AuthError::Validation(_) | AuthError::CsrfFailed)) => {
            Page::failed("reset-password.html", &error, context! { token => form.token.expose() })
        }
        Err(error) => link_failed(&error, sign_in),
    }
}

#[public]
#[get("/invitation")]
pub(crate) async fn invitation_page(
    auth: &State<Auth>,
    ui: &State<Ui>,
    page: PageUser<'_>,
    query: SecretQuery,
) -> Result<Page, Page> {
    let token = query.get("token").unwrap_or_default();
    let here = format!("{}/invitation?token={token}", ui.base);
    let Some(user) = page.viewing() else {
        return Ok(Page::new("invitation.html", context! { signed_in => false, here }));
    };
    let account = auth.accounts().account(user.id()).await.map_err(|e| failed(&e, ui))?;
    Ok(Page::new("invitation.html", context! { signed_in => true, email => account.user.email.as_str(), token }))
}

#[public]
#[post("/invitation", data = "<form>")]
pub(crate) async fn accept_invitation_form(
    auth: &State<Auth>,
    ui: &State<Ui>,
    client: RemoteClient,
    page: PageUser<'_>,
    form: Form<Accept>,
) -> Page {
    let account = (format!("{}/account", ui.base), "Your account");
    let accepted = async {
        let user = page.acting(&form.csrf)?;
        auth.tenants().accept_invitation(user.id(), form.token.expose(), &client.0).await
    };
    match accepted.await {
        Ok(joined) => Page::message(&format!("You joined {}", joined.tenant_name), "", (&account.0, account.1)),
        Err(error) => link_failed(&error, account),
    }
}

#[public]
#[get("/account")]
pub(crate) async fn account_page(auth: &State<Auth>, ui: &State<Ui>, page: PageUser<'_>) -> Answer {
    let Some(user) = page.viewing() else {
        return Answer::SeeOther(format!("{0}/login?next={0}/account", ui.base));
    };
    let shown = async {
        let account = auth.accounts().account(user.id()).await?;
        let sessions = auth.sessions().list(user.claims()).await?;
        let factors = auth.mfa().factors(user.id()).await?;
        let passkeys = if ui.passkeys { auth.passkeys().list(user.claims()).await? } else { Vec::new() };
        Ok::<_, AuthError>(context! {
            email => account.user.email.as_str(),
            sessions => Serde(&sessions),
            factors => context! { totp => factors.totp, recovery_codes_left => factors.recovery_codes_left },
            passkey_list => Serde(&passkeys),
        })
    };
    match shown.await {
        Ok(context) => Page::new("account.html", context).into(),
        Err(error) => failed(&error, ui).into(),
    }
}

#[public]
#[post("/logout", data = "<form>")]
pub(crate) async fn sign_out(
    auth: &State<Auth>,
    ui: &State<Ui>,
    client: RemoteClient,
    page: PageUser<'_>,
    form: Form<Csrf>,
) -> Answer {
    let ended = match page.acting(&form.csrf) {
        Ok(user) => auth.sessions().revoke(user.claims(), user.session_id(), &client.0).await,
        // The access cookie expired: there is nothing left to end but the cookies.
        Err(AuthError::MissingToken) => Ok(()),
        Err(error) => Err(error),
    };
    signed_out(ended, &page, ui)
}

#[public]
#[post("/logout-all", data = "<form>")]
pub(crate) async fn sign_out_everywhere(
    auth: &State<Auth>,
    ui: &State<Ui>,
    client: RemoteClient,
    page: PageUser<'_>,
    form: Form<Csrf>,
) -> Answer {
    let ended = match page.acting(&form.csrf) {
        Ok(user) => auth.sessions().logout_all(user.claims(), &client.0).await,
        Err(error) => Err(error),
    };
    signed_out(ended, &page, ui)
}

fn signed_out(ended: Result<(), AuthError>, page: &PageUser<'_>, ui: &Ui) -> Answer {
    match ended {
        Ok(()) => {
            page.browser().clear();
            Answer::SeeOther(format!("{}/login", ui.base))
        }
        Err(error) => failed(&error, ui).into(),
    }
}

/// A page that could not be shown or an action that failed: what went wrong,
/// and the way back to signing in.
fn failed(error: &AuthError, ui: &Ui) -> Page {
    let page = Page::message("Something went wrong", "", (&format!("{}/login", ui.base), "Sign in"));
    Page::failed("message.html", error, page.context)
}

/// The pages' own files, served with their type (Rocket's Shield adds `nosniff`).
pub(crate) struct Asset(ContentType, &'static str);

impl<'r> Responder<'r, 'static> for Asset {
    fn respond_to(self, request: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        rocket::Response::build_from((self.0, self.1).respond_to(request)?)
            .header(Header::new("Cache-Control", "no-cache"))
            .ok()
    }
}

#[public]
#[get("/assets/ui.css")]
pub(crate) fn ui_stylesheet() -> Asset {
    Asset(ContentType::CSS, include_str!("../../ui/assets/ui.css"))
}

#[public]
#[get("/assets/ui.js")]
pub(crate) fn ui_script() -> Asset {
    Asset(ContentType::JavaScript, include_str!("../../ui/assets/ui.js"))
}
