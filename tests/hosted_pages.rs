//! The hosted pages over HTTP (Rocket's local client): their headers (a
//! nonce-based CSP that allows no inline script, no framing, no caching), the
//! forms' CSRF and origin checks, where a sign-in may go on to, where the
//! emailed links land, and what a host can change. The real-browser suite
//! (tests/browser.rs) drives the same pages in Chromium.

mod common;

use auth_rocket::{
    AuthFairing,
    browser::{ACCESS_COOKIE, CSRF_COOKIE},
    ui::Pages,
};
use common::{Backend, DEMO_BASE, MAIL_FROM, TestApp, TestDatabase, figment, test_config};
use rocket::{
    http::{ContentType, Header, Status},
    local::asynchronous::{Client, LocalResponse},
};

const UI: &str = "/api/auth/ui";

fn header(response: &LocalResponse<'_>, name: &str) -> String {
    response.headers().get_one(name).unwrap_or_default().to_owned()
}

/// The value of the page's first `name="csrf"` field.
fn csrf_field(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a csrf field") + r#"name="csrf" value=""#.len();
    html[start..].split('"').next().unwrap_or_default().to_owned()
}

/// The ids of a page's inputs that a person fills in (not hidden ones).
fn visible_input_ids(html: &str) -> Vec<String> {
    html.split("<input ")
        .skip(1)
        .filter(|tag| !tag.starts_with(r#"type="hidden""#))
        .map(|tag| {
            tag.split(r#"id=""#).nth(1).and_then(|r| r.split('"').next()).expect("every input has an id").to_owned()
        })
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&")
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn every_page_is_html_under_a_policy_that_runs_only_its_own_nonced_script() {
    let app = TestApp::demo(Backend::Sqlite).await;
    let mut nonces = Vec::new();
    for page in ["/login", "/register", "/forgot-password", "/reset-password?token=t", "/invitation?token=t"] {
        let response = app.client().get(format!("{UI}{page}")).dispatch().await;
        assert_eq!(response.status(), Status::Ok, "{page}");
        assert_eq!(response.content_type(), Some(ContentType::HTML), "{page}");
        let policy = header(&response, "Content-Security-Policy");
        assert_eq!(header(&response, "Cache-Control"), "no-store", "{page}");
        assert_eq!(header(&response, "Referrer-Policy"), "same-origin", "{page}");
        let html = response.into_string().await.expect("a body");
        for directive in ["default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"] {
            assert!(policy.contains(directive), "{page}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{page}: {policy}");
        let nonce = policy.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).expect("a nonce");
        assert!(html.contains(&format!(r#"nonce="{nonce}""#)), "{page}: the script carries the header's nonce");
        assert_eq!(html.matches("<script").count(), 1, "{page}: one script, and it is a file");
        assert!(html.contains(r#"<script src=""#), "{page}");
        for id in visible_input_ids(&html) {
            assert!(html.contains(&format!(r#"<label for="{id}">"#)), "{page}: the field {id} has a label");
        }
        nonces.push(nonce.to_owned());
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 5, "a fresh nonce on every answer");

    let account = app.client().get(format!("{UI}/account")).dispatch().await;
    assert_eq!(account.status(), Status::SeeOther, "the account page asks for a sign-in");
    assert_eq!(header(&account, "Location"), format!("{UI}/login?next={UI}/account"));
    let link = app.client().get(format!("{UI}/verify-email?token=nothing")).dispatch().await;
    assert_eq!(link.status(), Status::BadRequest, "an invalid emailed link");
}

#[tokio::test]
async fn a_sign_in_form_needs_its_csrf_token_and_this_site_and_goes_on_only_here() {
    let app = TestApp::demo(Backend::Sqlite).await;
    let user = app.kit.verified_user("page").await;
    let page = app.client().get(format!("{UI}/login")).dispatch().await.into_string().await.expect("a page");
    let csrf = csrf_field(&page);
    assert_eq!(app.client().cookies().get(CSRF_COOKIE).map(|c| c.value().to_owned()), Some(csrf.clone()));
    let post = |token: &str, next: &str| {
        let body = form(&[("csrf", token), ("email", &user.email), ("password", &user.password), ("next", next)]);
        app.client().post(format!("{UI}/login")).header(ContentType::Form).body(body)
    };

    for (label, request) in [
        ("no token", post("", "/")),
        ("a wrong token", post("forged", "/")),
        ("sent cross-site", post(&csrf, "/").header(Header::new("Sec-Fetch-Site", "cross-site"))),
        ("from another origin", post(&csrf, "/").header(Header::new("Origin", "https://evil.example"))),
        ("with Origin: null", post(&csrf, "/").header(Header::new("Origin", "null"))),
    ] {
        let response = request.dispatch().await;
        assert_eq!(response.status(), Status::Forbidden, "{label}");
        assert!(app.client().cookies().get(ACCESS_COOKIE).is_none(), "{label}: no session");
    }

    let response = post(&csrf, "//evil.example/phish").dispatch().await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(header(&response, "Location"), format!("{UI}/account"), "never to another host");
    assert!(app.client().cookies().get(ACCESS_COOKIE).is_some(), "signed in by cookie");
    assert_ne!(app.client().cookies().get(CSRF_COOKIE).map(|c| c.value().to_owned()), Some(csrf), "rotated");
    let account = app.client().get(format!("{UI}/account")).dispatch().await;
    assert_eq!(account.status(), Status::Ok);
    assert!(account.into_string().await.unwrap_or_default().contains(&user.email));
}

#[tokio::test]
async fn a_wrong_password_and_a_taken_address_tell_nothing_about_the_account() {
    let app = TestApp::demo(Backend::Sqlite).await;
    let user = app.kit.verified_user("quiet").await;
    let page = app.client().get(format!("{UI}/login")).dispatch().await.into_string().await.expect("a page");
    let csrf = csrf_field(&page);
    let unknown = form(&[("csrf", &csrf), ("email", "nobody@example.com"), ("password", "Wrong-Password-1")]);
    let wrong = form(&[("csrf", &csrf), ("email", &user.email), ("password", "Wrong-Password-1")]);
    let mut answers = Vec::new();
    for body in [unknown, wrong] {
        let response = app.client().post(format!("{UI}/login")).header(ContentType::Form).body(body).dispatch().await;
        assert_eq!(response.status(), Status::Unauthorized);
        let html = response.into_string().await.unwrap_or_default();
        let error = html.split(r#"id="error">"#).nth(1).and_then(|r| r.split('<').next()).expect("an error").to_owned();
        answers.push(error);
    }
    assert_eq!(answers[0], answers[1], "an unknown address and a wrong password read the same");

    let taken =
        form(&[("csrf", &csrf), ("full_name", "Someone"), ("email", &user.email), ("password", "A-Long-Passphrase-7")]);
    let response = app.client().post(format!("{UI}/register")).header(ContentType::Form).body(taken).dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    assert!(
        response.into_string().await.unwrap_or_default().contains(r#"id="done""#),
        "the same page as a new address"
    );
}

/// The minimal host app with `pages`, and `tweak`ed settings.
async fn host(db: &TestDatabase, pages: Pages, tweak: impl FnOnce(&mut auth_core::AuthConfig)) -> Client {
    let mut config = test_config(&db.url);
    tweak(&mut config);
    let mail = auth_core::mail::MemoryMailer::new(MAIL_FROM).expect("a memory mailer");
    let platform =
        AuthFairing::mounted_at(DEMO_BASE).pages(pages).customize(move |b| b.mailer(std::sync::Arc::new(mail.clone())));
    Client::tracked(rocket::custom(figment(&config)).attach(platform)).await.expect("the host ignites")
}

#[tokio::test]
async fn the_emailed_links_land_on_the_pages_unless_set_or_switched_off() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let with_pages = host(&db, Pages::default(), |_| {}).await;
    let config = with_pages.rocket().state::<auth_core::Auth>().expect("managed").config().clone();
    assert_eq!(config.verify_email_link(), format!("{UI}/verify-email"));
    assert_eq!(config.reset_password_link(), format!("{UI}/reset-password"));
    assert_eq!(config.invitation_link(), format!("{UI}/invitation"));
    drop(with_pages);

    let db = TestDatabase::new(Backend::Sqlite).await;
    let set = host(&db, Pages::default(), |c| c.reset_password_path = Some("/app/reset".into())).await;
    let config = set.rocket().state::<auth_core::Auth>().expect("managed").config().clone();
    assert_eq!(config.reset_password_link(), "/app/reset", "a setting wins");
    drop(set);

    let db = TestDatabase::new(Backend::Sqlite).await;
    let off = host(&db, Pages::off(), |_| {}).await;
    assert_eq!(off.get(format!("{UI}/login")).dispatch().await.status(), Status::NotFound);
    let config = off.rocket().state::<auth_core::Auth>().expect("managed").config().clone();
    assert_eq!(config.verify_email_link(), auth_core::AuthConfig::DEFAULT_VERIFY_EMAIL_PATH);
}

#[tokio::test]
async fn a_host_restyles_the_pages_and_replaces_their_templates() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let templates = db.dir().join("templates");
    std::fs::create_dir_all(&templates).expect("a template directory");
    let login = r#"{% extends "base.html" %}{% block title %}Welcome back{% endblock %}{% block content %}<p id="brand">{{ site }}</p>{% endblock %}"#;
    std::fs::write(templates.join("login.html"), login).expect("a template");
    let pages = Pages::default().stylesheet("/static/brand.css").templates(&templates).site_name("Acme");
    let client = host(&db, pages, |_| {}).await;
    let html = client.get(format!("{UI}/login")).dispatch().await.into_string().await.expect("a page");
    let html = html.replace("&#x2f;", "/");
    assert!(
        html.contains("<title>Welcome back · Acme</title>") && html.contains(r#"<p id="brand">Acme</p>"#),
        "{html}"
    );
    assert!(html.contains(r#"href="/static/brand.css""#), "{html}");
    let register = client.get(format!("{UI}/register")).dispatch().await.into_string().await.expect("a page");
    assert!(register.contains("Create an account"), "the other templates stay the platform's");
}
