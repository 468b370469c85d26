//! The hosted pages and browser sessions in a real browser: Debian's
//! `chromium`, driven through `chromedriver` (WebDriver), against the demo
//! app listening on a loopback socket. Nothing is simulated but the user:
//! real cookies with their prefixes, SameSite and Max-Age, the pages' CSP,
//! Fetch Metadata, and passkeys made by Chromium's virtual authenticator.
//!
//! Ignored by default like the PostgreSQL suite (it needs Chromium); `.ci/run`
//! installs `chromium` and `chromium-driver` and runs it with `--ignored`.
//! Each page it visits is saved to `target/ui-screenshots/`.

mod common;

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use auth_core::{config::MailTransport, mfa::totp::TotpSecret};
use auth_rocket::testing::{PASSWORD, outbox_mail};
use common::{Backend, TestDatabase, figment, test_config};
use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};

/// One flow at a time: each has its own browser, and two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Seconds an access token (and its cookie) lives here: short, so a flow
/// sees one expire.
const ACCESS_SECS: u64 = 3;

/// The demo app on `http://localhost:<port>`, its mail in a file outbox.
struct Site {
    origin: String,
    outbox: PathBuf,
    shutdown: rocket::Shutdown,
    _db: TestDatabase,
}

impl Site {
    async fn start() -> Self {
        let db = TestDatabase::new(Backend::Sqlite).await;
        let port = free_port();
        let origin = format!("http://localhost:{port}");
        let outbox = db.dir().join("outbox");
        let mut config = test_config(&db.url);
        config.public_url = origin.clone();
        config.mail.transport = MailTransport::Outbox { dir: outbox.clone() };
        config.tokens.access_ttl_secs = ACCESS_SECS;
        config.tokens.leeway_secs = 0;
        let figment = figment(&config).merge(("port", port)).merge(("address", "127.0.0.1"));
        let rocket = auth_demo::rocket(figment).ignite().await.expect("the demo ignites");
        let shutdown = rocket.shutdown();
        tokio::spawn(rocket.launch());
        wait_for_port(port).await;
        Self { origin, outbox, shutdown, _db: db }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// The link of the newest email to `to`, once it has arrived.
    async fn link_to(&self, to: &str, subject_has: &str) -> String {
        let newest = || async {
            let mail = outbox_mail(&self.outbox, to);
            mail.iter().rev().find(|m| m.subject.contains(subject_has)).map(|m| m.link())
        };
        eventually(100, Duration::from_millis(50), newest)
            .await
            .unwrap_or_else(|| panic!("no email {subject_has:?} to {to}"))
    }

    /// A verified account made through the JSON API (for flows that start signed up).
    async fn account(&self, label: &str) -> String {
        let email = format!("{label}-{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({ "email": email, "password": PASSWORD, "full_name": "Browser User" });
        let http = reqwest::Client::new();
        let answer = http.post(self.url("/api/auth/register")).json(&body).send().await.expect("register");
        assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap_or_default());
        let link = self.link_to(&email, "Verify").await;
        let token = link.rsplit("token=").next().expect("a token");
        let answer = http.post(self.url("/api/auth/verify-email")).json(&json!({ "token": token })).send().await;
        assert!(answer.expect("verify").status().is_success());
        email
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

async fn wait_for_port(port: u16) {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let listening = || async { TcpStream::connect_timeout(&address, Duration::from_millis(100)).ok() };
    if eventually(200, Duration::from_millis(50), listening).await.is_none() {
        panic!("nothing listens on {address}");
    }
}

/// What `probe` finds within `tries` tries, `pause` apart: the pages and the
/// outbox are asynchronous, so each check of this suite waits for its state.
async fn eventually<T, F, Found>(tries: usize, pause: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Found,
    Found: Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(found) = probe().await {
            return Some(found);
        }
        tokio::time::sleep(pause).await;
    }
    None
}

/// Chromium under chromedriver, closed (and killed) at the end of the flow.
struct Browser {
    client: Client,
    driver: Child,
    webdriver: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{chromedriver}: {e} (apt-get install chromium chromium-driver)"));
        wait_for_port(port).await;
        let profile = tempfile::tempdir().expect("a profile directory");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=900,900",
        ];
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({ "goog:chromeOptions": { "binary": chromium, "args": args } });
        let Value::Object(capabilities) = capabilities else { unreachable!("an object literal") };
        let webdriver = format!("http://127.0.0.1:{port}");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("a WebDriver session");
        Self { client, driver, webdriver, _profile: profile }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    async fn find(&self, css: &str) -> Element {
        self.client.wait().for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// Waits until the element's text contains `expected`.
    async fn wait_text(&self, css: &str, expected: &str) {
        let says = || async {
            let text = self.client.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
            text.contains(expected).then_some(())
        };
        if eventually(100, Duration::from_millis(100), says).await.is_some() {
            return;
        }
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let source = self.client.source().await.unwrap_or_default();
        panic!("{css} never said {expected:?} on {url}:\n{source}");
    }

    async fn path(&self) -> String {
        self.client.current_url().await.expect("a URL").path().to_owned()
    }

    async fn cookie(&self, name: &str) -> Option<String> {
        self.client.get_named_cookie(name).await.ok().map(|c| c.value().to_owned())
    }

    /// The cookie `name` once the browser has it: a page's call may still be
    /// on its way when the page already shows what it showed before.
    async fn wait_cookie(&self, name: &str) -> String {
        let set = || self.cookie(name);
        eventually(100, Duration::from_millis(100), set)
            .await
            .unwrap_or_else(|| panic!("the browser never got the cookie {name}"))
    }

    /// Saves what the browser shows to `target/ui-screenshots/<name>.png`.
    async fn screenshot(&self, name: &str) {
        let dir = target_dir().join("ui-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }

    /// Chromium's virtual authenticator (WebDriver's WebAuthn extension): a
    /// platform authenticator with resident keys that verifies its user.
    async fn add_virtual_authenticator(&self) {
        let session = self.client.session_id().await.expect("a session id").expect("a session");
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
            "automaticPresenceSimulation": true,
        });
        let url = format!("{}/session/{session}/webauthn/authenticator", self.webdriver);
        let answer = reqwest::Client::new().post(url).json(&options).send().await.expect("chromedriver answers");
        assert!(answer.status().is_success(), "{}", answer.text().await.unwrap_or_default());
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Signs in on the hosted page with a password, going on to `next`, with the
/// keyboard alone: typing, Tab to the next field, Enter to send.
async fn sign_in(browser: &Browser, site: &Site, email: &str, password: &str, next: &str) {
    const TAB: &str = "\u{E004}";
    const ENTER: &str = "\u{E007}";
    browser.goto(&site.url(&format!("/api/auth/ui/login?next={next}"))).await;
    let field = browser.find("#email").await;
    field.clear().await.expect("clear");
    field.send_keys(&format!("{email}{TAB}")).await.expect("type the email");
    let focused = browser.client.active_element().await.expect("a focused element");
    assert_eq!(focused.attr("id").await.expect("an id").as_deref(), Some("password"), "Tab goes to the password");
    focused.send_keys(&format!("{password}{ENTER}")).await.expect("type the password");
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver (.ci/run installs them)"]
async fn sign_up_verify_sign_in_refresh_and_sign_out_in_a_real_browser() {
    let _one = ONE_AT_A_TIME.lock().await;
    let site = Site::start().await;
    let browser = Browser::start().await;
    let email = format!("ada-{}@example.com", uuid::Uuid::new_v4().simple());

    browser.goto(&site.url("/api/auth/ui/register")).await;
    browser.screenshot("register").await;
    browser.fill("#full_name", "Ada Lovelace").await;
    browser.fill("#email", &email).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("#register button[type=submit]").await;
    browser.wait_text("#done", "We sent a link").await;
    browser.screenshot("register-done").await;

    let link = site.link_to(&email, "Verify").await;
    assert!(link.starts_with(&site.url("/api/auth/ui/verify-email?token=")), "the email links the page: {link}");
    browser.goto(&link).await;
    browser.wait_text("h1", "Email verified").await;
    browser.screenshot("verify-email").await;
    browser.goto(&link).await;
    browser.wait_text("h1", "Link invalid").await;

    // A wrong password says so and names nothing else.
    sign_in(&browser, &site, &email, "Not-The-Password-9", "/").await;
    browser.wait_text("#error", "").await;
    let error = browser.text("#error").await;
    assert!(!error.to_lowercase().contains(&email), "{error}");
    browser.screenshot("login-error").await;

    sign_in(&browser, &site, &email, PASSWORD, "/").await;
    browser.wait_text("#whoami", "Signed in as user").await;
    assert_eq!(browser.path().await, "/", "the sign-in went on to `next`");
    let access = browser.cookie("__Host-access").await.expect("the access cookie");
    let all = browser.client.get_all_cookies().await.expect("cookies");
    let access_cookie = all.iter().find(|c| c.name() == "__Host-access").expect("listed");
    assert_eq!(access_cookie.http_only(), Some(true), "no script reads the access token");
    let visible = browser.client.execute("return document.cookie", vec![]).await.expect("script runs");
    let visible = visible.as_str().unwrap_or_default();
    assert!(visible.contains("__Host-csrf=") && !visible.contains("__Host-access") && !visible.contains("refresh"));
    browser.screenshot("demo-signed-in").await;

    // The access cookie expires; the page's next call refreshes and goes on.
    tokio::time::sleep(Duration::from_secs(ACCESS_SECS + 1)).await;
    assert_eq!(browser.cookie("__Host-access").await, None, "the browser dropped the expired access cookie");
    browser.click("#check").await;
    // #whoami still says what it said before the click: wait for the cookie the refresh sets.
    let renewed = browser.wait_cookie("__Host-access").await;
    browser.wait_text("#whoami", "Signed in as user").await;
    assert_ne!(renewed, access, "the refresh rotated the session");

    // A hosted page that needs the session, opened after the access cookie
    // expired, sends the browser to sign in, whose script refreshes and comes back.
    tokio::time::sleep(Duration::from_secs(ACCESS_SECS + 1)).await;
    browser.goto(&site.url("/api/auth/ui/account")).await;
    browser.wait_text("#account-email", &email).await;
    assert_eq!(browser.path().await, "/api/auth/ui/account");
    browser.screenshot("account").await;

    browser.goto(&site.url("/")).await;
    browser.wait_text("#whoami", "Signed in as user").await;
    browser.click("#sign-out").await;
    browser.wait_text("#whoami", "Not signed in").await;
    assert_eq!(browser.cookie("__Host-access").await, None);
    // Signed out for good: the expired access cookie cannot be refreshed either.
    browser.goto(&site.url("/api/auth/ui/account")).await;
    browser.wait_text("h1", "Sign in").await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver (.ci/run installs them)"]
async fn a_cross_site_form_post_is_refused_even_with_the_csrf_token() {
    let _one = ONE_AT_A_TIME.lock().await;
    let site = Site::start().await;
    let browser = Browser::start().await;
    let email = site.account("csrf").await;
    sign_in(&browser, &site, &email, PASSWORD, "/api/auth/ui/account").await;
    browser.wait_text("#account-email", &email).await;
    let csrf = browser.cookie("__Host-csrf").await.expect("the CSRF cookie");

    // Another site's page (here a data: URL, an opaque origin) that posts the
    // account's "sign out everywhere" form, with the right token even.
    let action = site.url("/api/auth/ui/logout-all");
    let attack = format!(
        "data:text/html,<form method=post action=\"{action}\"><input name=csrf value=\"{csrf}\">\
         <button id=go>Win a prize</button></form>"
    );
    browser.goto(&attack).await;
    browser.click("#go").await;
    browser.wait_text("#error", "another site").await;
    browser.screenshot("cross-site-refused").await;

    browser.goto(&site.url("/api/auth/ui/account")).await;
    browser.wait_text("#account-email", &email).await;

    // The same form on the site's own page works, even once the access cookie
    // has expired (the page's script refreshes first).
    tokio::time::sleep(Duration::from_secs(ACCESS_SECS + 1)).await;
    browser.click("#sign-out-everywhere").await;
    browser.wait_text("h1", "Sign in").await;
    assert_eq!(browser.cookie("__Host-access").await, None);
    browser.goto(&site.url("/api/auth/ui/account")).await;
    browser.wait_text("h1", "Sign in").await;
    assert_eq!(browser.cookie("__Host-access").await, None, "the session is over: no refresh brings it back");
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver (.ci/run installs them)"]
async fn a_forgotten_password_is_reset_from_the_emailed_link() {
    let _one = ONE_AT_A_TIME.lock().await;
    let site = Site::start().await;
    let browser = Browser::start().await;
    let email = site.account("reset").await;

    browser.goto(&site.url("/api/auth/ui/login")).await;
    browser.screenshot("login").await;
    browser.click("a[href$='/forgot-password']").await;
    browser.fill("#email", &email).await;
    browser.screenshot("forgot-password").await;
    browser.click("#forgot button[type=submit]").await;
    browser.wait_text("#done", "If an account uses that address").await;

    let link = site.link_to(&email, "Reset").await;
    assert!(link.starts_with(&site.url("/api/auth/ui/reset-password?token=")), "{link}");
    browser.goto(&link).await;
    browser.screenshot("reset-password").await;
    let new_password = "Another-Long-Passphrase-42";
    browser.fill("#new_password", new_password).await;
    browser.click("#reset button[type=submit]").await;
    browser.wait_text("h1", "Password changed").await;

    sign_in(&browser, &site, &email, PASSWORD, "/api/auth/ui/account").await;
    browser.wait_text("#error", "").await;
    sign_in(&browser, &site, &email, new_password, "/api/auth/ui/account").await;
    browser.wait_text("#account-email", &email).await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver (.ci/run installs them)"]
async fn a_passkey_made_on_the_account_page_signs_in_without_a_password() {
    let _one = ONE_AT_A_TIME.lock().await;
    let site = Site::start().await;
    let browser = Browser::start().await;
    browser.add_virtual_authenticator().await;
    let email = site.account("passkey").await;
    sign_in(&browser, &site, &email, PASSWORD, "/api/auth/ui/account").await;
    browser.wait_text("#account-email", &email).await;

    browser.fill("#passkey-name", "Virtual key").await;
    browser.click("#add-passkey button[type=submit]").await;
    browser.wait_text("#passkeys", "Virtual key").await;
    browser.screenshot("account-with-passkey").await;
    browser.click("#sign-out").await;
    browser.wait_text("h1", "Sign in").await;

    browser.click("#passkey-sign-in").await;
    browser.wait_text("#account-email", &email).await;
    assert!(browser.cookie("__Host-access").await.is_some());
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver (.ci/run installs them)"]
async fn a_second_factor_is_asked_for_after_the_password() {
    let _one = ONE_AT_A_TIME.lock().await;
    let site = Site::start().await;
    let browser = Browser::start().await;
    let email = site.account("totp").await;
    let secret = enable_totp(&site, &email).await;

    sign_in(&browser, &site, &email, PASSWORD, "/api/auth/ui/account").await;
    browser.wait_text("h1", "Second factor").await;
    browser.screenshot("login-mfa").await;
    browser.fill("#code", "000000").await;
    browser.click("#mfa button[type=submit]").await;
    browser.wait_text("#error", "").await;
    // The next step's code: the current one confirmed the enrolment, and a code counts once.
    browser.fill("#code", &secret.code_at(unix_now() + 30)).await;
    browser.click("#mfa button[type=submit]").await;
    browser.wait_text("#factors", "Authenticator app: on").await;

    // The invitation page of a signed-in user offers to accept.
    browser.goto(&site.url("/api/auth/ui/invitation?token=not-a-real-one")).await;
    browser.wait_text("#signed-in-as", &email).await;
    browser.screenshot("invitation").await;
    browser.click("#accept button[type=submit]").await;
    browser.wait_text("h1", "Link invalid").await;
    browser.close().await;
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// Turns TOTP on through the JSON API: the secret, to make codes with.
async fn enable_totp(site: &Site, email: &str) -> TotpSecret {
    let http = reqwest::Client::new();
    let login: Value = http
        .post(site.url("/api/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("login")
        .json()
        .await
        .expect("a pair");
    let access = login["access"].as_str().expect("an access token");
    let enrollment: Value = http
        .post(site.url("/api/auth/mfa/totp/enroll"))
        .bearer_auth(access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("enrol")
        .json()
        .await
        .expect("the enrolment");
    let secret = TotpSecret::from_base32(enrollment["secret"].as_str().expect("a secret")).expect("base32");
    http.post(site.url("/api/auth/mfa/totp/confirm"))
        .bearer_auth(access)
        .json(&json!({ "code": secret.code_at(unix_now()) }))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("confirm");
    secret
}
