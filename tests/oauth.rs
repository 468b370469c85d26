//! Sign-in with OpenID Connect, end to end, against a real OpenID Provider:
//! `oidc-provider` (OpenID Certified, from npm) started by this harness on
//! 127.0.0.1 (`tests/oidc/provider.mjs`). The demo app runs in Rocket's local
//! client; the test is the browser: it follows every redirect by hand with
//! reqwest (the provider's cookies kept), and carries the platform's state
//! cookie itself so it can drop or swap it.
//!
//! Nothing is mocked: discovery, JWKS, PKCE, the code exchange and every
//! signature are real. The negative cases use the provider itself: a URL the
//! browser tampers with (state, nonce, code, client), or a provider started
//! with `OIDC_TAMPER`, whose token endpoint then returns an id_token with a
//! wrong audience, issuer, lifetime, `azp`, or one signed by a key it never
//! published (same or unknown `kid`), unsigned (`alg: none`) or HMAC-signed
//! with the client secret. Each must be refused by the platform's own checks.
//!
//! These tests need Node.js; the harness runs `npm ci --prefix tests/oidc`
//! once when `tests/oidc/node_modules` is missing. They are ignored by a plain
//! `cargo test`; run them with `cargo test --test oauth -- --ignored`.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, mpsc},
    time::Duration,
};

use auth_core::{
    Auth, AuthConfig, Clock,
    config::{MailTransport, OAuthProvider, Secret},
    identity::Email,
    ratelimit::Quota,
};
use common::{
    Backend, TestDatabase,
    testing::{Answer, Conformance},
};
use rocket::{
    http::{Cookie, Method},
    local::asynchronous::Client,
};
use serde_json::{Value, json};

const PROVIDER: &str = "test";
const CLIENT_ID: &str = "platform-client";
const CLIENT_SECRET: &str = "platform-client-secret-0123456789";
const ORIGIN: &str = "http://localhost:8000";
const CALLBACK_PATH: &str = "/api/auth/oauth/test/callback";
const STATE_COOKIE: &str = "auth_oauth_state";

// ----- the provider ------------------------------------------------------------

fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// `npm ci` once per test binary, when the package is not installed yet.
fn install_provider() {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if *installed || oidc_dir().join("node_modules/oidc-provider/package.json").exists() {
        *installed = true;
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(oidc_dir())
        .status()
        .expect("run npm (Node.js is needed for the OIDC tests)");
    assert!(status.success(), "npm ci --prefix tests/oidc failed: {status}");
    *installed = true;
}

/// One `node tests/oidc/provider.mjs` process, killed when dropped.
struct OidcProvider {
    child: Child,
    issuer: String,
    port: u16,
    tamper: Option<&'static str>,
    claims_in_id_token: bool,
    log: tempfile::NamedTempFile,
}

impl OidcProvider {
    async fn start(tamper: Option<&'static str>) -> Self {
        Self::start_on(0, tamper, true).await
    }

    async fn start_on(port: u16, tamper: Option<&'static str>, claims_in_id_token: bool) -> Self {
        install_provider();
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut command = Command::new("node");
        command
            .arg(oidc_dir().join("provider.mjs"))
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
            .env("OIDC_REDIRECT_URI", format!("{ORIGIN}{CALLBACK_PATH}"))
            .env("OIDC_CLAIMS_IN_ID_TOKEN", claims_in_id_token.to_string())
            .env("OIDC_TAMPER", tamper.unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("the log file"));
        let mut child = command.spawn().expect("start node (Node.js is needed for the OIDC tests)");
        let stdout = child.stdout.take().expect("the provider's stdout");
        let (tx, rx) = mpsc::channel();
        // Sends the first line, then keeps draining stdout: a closed pipe
        // would kill the provider at its next log line.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            lines.for_each(drop);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let mut provider = Self { child, issuer: String::new(), port: 0, tamper, claims_in_id_token, log };
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the provider did not start: {line:?}\n{}", provider.logged()));
        provider.issuer = started["issuer"].as_str().expect("issuer").to_owned();
        provider.port = provider.issuer.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        provider.wait_for_discovery().await;
        provider
    }

    async fn wait_for_discovery(&self) {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        for _ in 0..100 {
            if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no discovery document at {url}\n{}", self.logged());
    }

    /// Stops the provider and starts a new one on the same port: the same
    /// issuer with a new signing key (a key rotation).
    async fn restart(&mut self) {
        self.stop();
        let next = Self::start_on(self.port, self.tamper, self.claims_in_id_token).await;
        assert_eq!(next.issuer, self.issuer);
        *self = next;
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn logged(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- oidc-provider log ---\n{}", self.logged());
        }
    }
}

// ----- the platform --------------------------------------------------------------

fn provider_settings(issuer: &str) -> OAuthProvider {
    OAuthProvider {
        issuer_url: issuer.to_owned(),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        redirect_url: format!("{ORIGIN}{CALLBACK_PATH}"),
        ..OAuthProvider::default()
    }
}

/// The demo app with the provider configured as `test`, mail in an outbox.
struct App {
    kit: Conformance,
    _db: TestDatabase,
}

impl App {
    async fn new(backend: Backend, issuer: &str, tweak: impl FnOnce(&mut OAuthProvider)) -> Self {
        Self::custom(backend, issuer, tweak, |_| {}, None).await
    }

    /// With settings of the platform adjusted too; with `clock`, the
    /// platform's routes alone (no demo routes) on that clock.
    async fn custom(
        backend: Backend,
        issuer: &str,
        tweak: impl FnOnce(&mut OAuthProvider),
        tweak_config: impl FnOnce(&mut AuthConfig),
        clock: Option<Clock>,
    ) -> Self {
        let db = TestDatabase::new(backend).await;
        let outbox = db.dir().join("outbox");
        let mut config = common::test_config(&db.url);
        config.mail.transport = MailTransport::Outbox { dir: outbox.clone() };
        let mut provider = provider_settings(issuer);
        tweak(&mut provider);
        config.oauth.insert(PROVIDER.into(), provider);
        tweak_config(&mut config);
        let figment = common::figment(&config);
        let rocket = match clock {
            None => auth_demo::rocket(figment),
            Some(clock) => rocket::custom(figment)
                .attach(auth_platform::rocket::AuthFairing::default().customize(move |b| b.clock(clock.clone())))
                .mount(common::DEMO_BASE, auth_platform::rocket::routes())
                .mount("/", auth_platform::rocket::well_known())
                .register("/", auth_platform::rocket::catchers()),
        };
        // Untracked: the test carries the state cookie itself.
        let client = Client::untracked(rocket).await.expect("the app ignites");
        Self { kit: Conformance::with_outbox(client, common::DEMO_BASE, outbox), _db: db }
    }

    fn auth(&self) -> &Auth {
        self.kit.client().rocket().state::<Auth>().expect("the app manages an Auth")
    }

    /// A raw GET, with the state cookie when given.
    async fn get(&self, uri: &str, cookie: Option<&str>) -> Raw {
        self.request(Method::Get, uri, None, cookie, None).await
    }

    /// A raw request, with a bearer token, the state cookie and a JSON body when given.
    async fn request(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        cookie: Option<&str>,
        body: Option<&Value>,
    ) -> Raw {
        // A known client address, so the per-IP quotas count.
        let remote: std::net::SocketAddr = "203.0.113.7:40000".parse().expect("an address");
        let mut request = self.kit.client().req(method, uri.to_owned()).remote(remote);
        if let Some(value) = cookie {
            request = request.cookie(Cookie::new(STATE_COOKIE, value.to_owned()));
        }
        if let Some(token) = bearer {
            request = request.header(rocket::http::Header::new("Authorization", format!("Bearer {token}")));
        }
        if let Some(body) = body {
            request = request.header(rocket::http::ContentType::JSON).body(body.to_string());
        }
        let response = request.dispatch().await;
        let headers =
            response.headers().iter().map(|h| (h.name().as_str().to_lowercase(), h.value().to_owned())).collect();
        let status = response.status().code;
        let content_type = response.content_type().map(|ct| ct.to_string());
        let text = response.into_string().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        let answer = Answer {
            method,
            uri: uri.to_owned(),
            status,
            content_type,
            www_authenticate: None,
            retry_after: None,
            cache_control: None,
            allow: None,
            text,
            json,
        };
        if status >= 400 {
            answer.assert_error_body();
        }
        Raw { answer, headers }
    }

    async fn authorize(&self, account: &Value) -> Started {
        self.authorize_with(account, &[]).await
    }

    /// `authorize` with more query parameters (`app_state`).
    async fn authorize_with(&self, account: &Value, extra: &[(&str, &str)]) -> Started {
        let mut params = vec![("login_hint", account.to_string())];
        params.extend(extra.iter().map(|(name, value)| (*name, (*value).to_owned())));
        let query: String =
            reqwest::Url::parse_with_params("http://x/", params).expect("a URL").query().expect("a query").to_owned();
        let raw = self.get(&format!("/api/auth/oauth/{PROVIDER}/authorize?{query}"), None).await;
        raw.answer.expect(302);
        Started::from(&raw, "location")
    }

    /// `POST /oauth/<provider>/link` as the holder of `access`: the provider
    /// URL (with `account` as its login hint) and the state cookie.
    async fn start_link(&self, access: &str, account: &Value) -> Started {
        let uri = format!("/api/auth/oauth/{PROVIDER}/link");
        let raw = self.request(Method::Post, &uri, Some(access), None, None).await;
        raw.answer.expect(200);
        assert_eq!(raw.header("cache-control"), Some("no-store"));
        let mut started = Started::from(&raw, "");
        let mut url = reqwest::Url::parse(raw.answer.str("/authorize_url")).expect("a URL");
        url.query_pairs_mut().append_pair("login_hint", &account.to_string());
        started.location = url.to_string();
        started
    }

    /// `POST /oauth/exchange {code}`.
    async fn exchange(&self, code: &str) -> Raw {
        let body = json!({ "code": code });
        self.request(Method::Post, "/api/auth/oauth/exchange", None, None, Some(&body)).await
    }

    async fn callback(&self, callback_url: &str, cookie: Option<&str>) -> Raw {
        let path = callback_url.strip_prefix(ORIGIN).expect("the callback is on the app's origin");
        self.get(path, cookie).await
    }

    /// authorize → provider → callback with the right cookie.
    async fn sign_in(&self, account: &Value) -> Raw {
        let started = self.authorize(account).await;
        let callback = Browser::new().visit(&started.location).await;
        self.callback(&callback, Some(&started.cookie)).await
    }

    async fn audit_reasons(&self) -> Vec<String> {
        let trail = self.auth().operators().audit_trail(None, 200).await.expect("the audit trail");
        trail
            .into_iter()
            .filter(|r| r.event == "oauth_failed")
            .filter_map(|r| r.detail["reason"].as_str().map(str::to_owned))
            .collect()
    }

    async fn assert_refused_for(&self, reason: &str) {
        let reasons = self.audit_reasons().await;
        assert!(reasons.iter().any(|r| r == reason), "no oauth_failed {reason:?} in {reasons:?}");
    }

    /// The identity links of the user with id `user`.
    async fn links(&self, user: &str) -> Vec<auth_core::store::IdentityLink> {
        auth_core::testing::store(self.auth()).identity_links(user.parse().expect("a uuid")).await.expect("the store")
    }

    async fn user_exists(&self, email: &str) -> bool {
        let email = Email::parse("email", email).expect("an email");
        auth_core::testing::store(self.auth()).user_by_email(&email).await.expect("the store").is_some()
    }
}

struct Raw {
    answer: Answer,
    headers: Vec<(String, String)>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.headers.iter().find(|(n, v)| n == "set-cookie" && v.starts_with(&prefix)).map(|(_, v)| v.clone())
    }
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie.split(';').next().and_then(|pair| pair.split_once('=')).map(|(_, v)| v).expect("name=value")
}

struct Started {
    /// The provider's authorization URL.
    location: String,
    /// The state cookie's value.
    cookie: String,
    set_cookie: String,
}

impl Started {
    /// From an answer that sets the state cookie; `location` from that header, if named.
    fn from(raw: &Raw, location_header: &str) -> Self {
        let location = raw.header(location_header).unwrap_or_default().to_owned();
        let set_cookie = raw.set_cookie(STATE_COOKIE).expect("the state cookie");
        let cookie = cookie_value(&set_cookie).to_owned();
        Self { location, cookie, set_cookie }
    }
}

/// The browser at the provider: keeps its cookies, follows redirects by hand.
struct Browser(reqwest::Client);

impl Browser {
    fn new() -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client");
        Self(client)
    }

    /// Follows the provider's redirects from `url` until one points at the
    /// app's callback, and returns that URL.
    async fn visit(&self, url: &str) -> String {
        let mut url = reqwest::Url::parse(url).expect("a URL");
        for _ in 0..10 {
            let response = self.0.get(url.clone()).send().await.expect("the provider answers");
            let status = response.status();
            let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
            let Some(location) = location.filter(|_| status.is_redirection()) else {
                panic!("the provider answered {status} at {url}: {}", response.text().await.unwrap_or_default());
            };
            let next = url.join(&location).expect("a Location URL");
            if next.as_str().starts_with(&format!("{ORIGIN}{CALLBACK_PATH}")) {
                return next.to_string();
            }
            url = next;
        }
        panic!("the provider never redirected back to the app");
    }
}

fn account(sub: &str, email: &str, verified: bool) -> Value {
    json!({ "sub": sub, "email": email, "email_verified": verified, "name": "Ada Lovelace" })
}

fn unique(label: &str) -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (format!("{label}-{id}"), format!("{label}-{id}@example.com"))
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).expect("a URL");
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = reqwest::Url::parse(url).expect("a URL");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name { value.to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

// ----- the whole flow --------------------------------------------------------------

async fn full_flow(backend: Backend) {
    let provider = OidcProvider::start(None).await;
    let app = App::new(backend, &provider.issuer, |_| {}).await;
    let (sub, email) = unique("ada");

    let started = app.authorize(&account(&sub, &email, true)).await;
    assert!(started.location.starts_with(&format!("{}/auth?", provider.issuer)), "{}", started.location);
    for (name, expected) in [
        ("response_type", Some("code")),
        ("client_id", Some(CLIENT_ID)),
        ("code_challenge_method", Some("S256")),
        ("redirect_uri", Some("http://localhost:8000/api/auth/oauth/test/callback")),
        ("scope", Some("openid email profile")),
    ] {
        assert_eq!(query_param(&started.location, name).as_deref(), expected, "{name} in {}", started.location);
    }
    for name in ["state", "nonce", "code_challenge"] {
        assert!(query_param(&started.location, name).is_some_and(|v| v.len() >= 22), "{name} in {}", started.location);
    }
    let set_cookie = started.set_cookie.to_lowercase();
    for attribute in ["httponly", "samesite=lax", "path=/api/auth/oauth/test/callback", "max-age=300"] {
        assert!(set_cookie.contains(attribute), "{attribute} missing from {}", started.set_cookie);
    }
    assert!(!set_cookie.contains("secure"), "not Secure on an http redirect_url: {}", started.set_cookie);

    let callback = Browser::new().visit(&started.location).await;
    let signed_in = app.callback(&callback, Some(&started.cookie)).await;
    signed_in.answer.expect(200);
    assert_eq!(signed_in.header("cache-control"), Some("no-store"));
    let removal = signed_in.set_cookie(STATE_COOKIE).expect("the state cookie is removed");
    assert!(removal.to_lowercase().contains("max-age=0"), "{removal}");
    let body = &signed_in.answer;
    assert_eq!(body.str("/token_type"), "Bearer");
    let access = body.str("/access").to_owned();
    let refresh = body.str("/refresh").to_owned();

    // The platform's own tokens: every guard works as after a password login.
    let protected = app.kit.send(Method::Get, "/api/protected", Some(&access), None, &[]).await;
    protected.expect(200);
    let user_id = protected.str("/user_id").to_owned();
    let claims = app.kit.verify_with_jwks(&access).await.expect("verifies with the JWKS");
    assert_eq!(claims["sub"], json!(user_id));
    assert!(claims.get("tenant_id").is_none() && claims.get("role").is_none(), "{claims}");
    assert_eq!(claims["amr"], json!(["fed"]), "a federated sign-in (RFC 8176): {claims}");
    assert!(claims["auth_time"].as_i64().is_some_and(|t| t <= claims["iat"].as_i64().unwrap_or(0)), "{claims}");
    let me = app.kit.get("/me", Some(&access)).await;
    me.expect(200);
    assert_eq!(me.str("/email"), email);
    assert_eq!(me.get("/email_verified"), &json!(true));
    assert_eq!((me.get("/is_staff"), me.get("/is_superuser")), (&json!(false), &json!(false)));
    assert_eq!(me.get("/memberships"), &json!([]));
    assert_eq!(me.str("/profile/full_name"), "Ada Lovelace");
    app.kit.send(Method::Get, "/api/staff", Some(&access), None, &[]).await.expect(403);
    let tenant = uuid::Uuid::new_v4();
    let data = app.kit.send(Method::Get, &format!("/api/tenant/{tenant}/data"), Some(&access), None, &[]).await;
    data.expect(403);
    app.kit.post("/refresh", None, &json!({ "refresh": refresh })).await.expect(200);

    // Signing in again finds the same account through the identity link.
    let again = app.sign_in(&account(&sub, &email, true)).await;
    again.answer.expect(200);
    let second = app.kit.send(Method::Get, "/api/protected", Some(again.answer.str("/access")), None, &[]).await;
    assert_eq!(second.str("/user_id"), user_id);
    let user = user_id.parse().expect("a uuid");
    let links = auth_core::testing::store(app.auth()).identity_links(user).await.expect("links");
    assert_eq!(links.len(), 1);
    assert_eq!((links[0].issuer.as_str(), links[0].subject.as_str()), (provider.issuer.as_str(), sub.as_str()));
    let trail = app.auth().operators().audit_trail(Some(user), 50).await.expect("audit");
    assert!(trail.iter().any(|r| r.event == "registered" && r.detail["method"] == "oauth"), "{trail:?}");
    assert!(trail.iter().any(|r| r.event == "login_succeeded" && r.detail["provider"] == PROVIDER), "{trail:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_sign_in_reaches_a_protected_route() {
    full_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js, the oidc-provider package and PostgreSQL (TEST_DATABASE_URL): pass --ignored"]
async fn oidc_sign_in_reaches_a_protected_route_on_postgres() {
    full_flow(Backend::Postgres).await;
}

/// The fields of a `success_redirect` Location, which must have no query.
fn fragment_fields(location: &str, target: &str) -> std::collections::BTreeMap<String, String> {
    let (before, fragment) = location.split_once('#').expect("a fragment");
    assert_eq!(before, target, "nothing added to the URL but its fragment");
    reqwest::Url::parse(&format!("http://x/?{fragment}")).expect("a URL").query_pairs().into_owned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_success_redirect_carries_a_one_time_code_and_no_token() {
    let provider = OidcProvider::start(None).await;
    let clock = Clock::manual();
    let target = "http://localhost:3000/signed-in";
    let app = App::custom(
        Backend::Sqlite,
        &provider.issuer,
        |p| p.success_redirect = Some(target.into()),
        |_| {},
        Some(clock.clone()),
    )
    .await;
    let (sub, email) = unique("redirect");
    let started = app.authorize_with(&account(&sub, &email, true), &[("app_state", "app-chosen.state_42~")]).await;
    let callback = Browser::new().visit(&started.location).await;
    let signed_in = app.callback(&callback, Some(&started.cookie)).await;
    signed_in.answer.expect(303);
    let location = signed_in.header("location").expect("a Location");
    let fields = fragment_fields(location, target);
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["app_state", "code"], "only a code and the app's state: {location}");
    assert_eq!(fields["app_state"], "app-chosen.state_42~");
    let code = fields["code"].clone();
    // No session exists until the code is exchanged.
    let user = auth_core::testing::store(app.auth())
        .user_by_email(&Email::parse("e", &email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .0;
    let now = clock.now().timestamp_millis();
    assert!(auth_core::testing::store(app.auth()).live_sessions(user.id, now, i64::MAX / 2).await.unwrap().is_empty());

    let exchanged = app.exchange(&code).await;
    exchanged.answer.expect(200);
    assert_eq!(exchanged.header("cache-control"), Some("no-store"));
    assert_eq!(exchanged.answer.str("/token_type"), "Bearer");
    let me = app.kit.get("/me", Some(exchanged.answer.str("/access"))).await;
    me.expect(200);
    assert_eq!(me.str("/email"), email);
    let claims = app.auth().verify_access(exchanged.answer.str("/access")).expect("a valid token");
    assert_eq!(claims.amr, ["fed"], "the session of an exchanged code is a federated sign-in");
    app.kit.post("/refresh", None, &json!({ "refresh": exchanged.answer.str("/refresh") })).await.expect(200);
    // Single use; junk is refused the same way.
    app.exchange(&code).await.answer.expect_error(400, "invalid_token");
    app.exchange("not-a-code").await.answer.expect_error(400, "invalid_token");
    let body = json!({ "code": exchanged.answer.str("/refresh") });
    let with_refresh = app.request(Method::Post, "/api/auth/oauth/exchange", None, None, Some(&body)).await;
    with_refresh.answer.expect_error(400, "invalid_token");

    // A code not exchanged within 60 s is dead.
    let started = app.authorize(&account(&sub, &email, true)).await;
    let callback = Browser::new().visit(&started.location).await;
    let signed_in = app.callback(&callback, Some(&started.cookie)).await;
    let late = fragment_fields(signed_in.header("location").expect("a Location"), target)["code"].clone();
    clock.advance(Duration::from_secs(61));
    app.exchange(&late).await.answer.expect_error(400, "invalid_token");

    // A browser app keeps the session in cookies: the same exchange with `session: "cookie"`.
    let started = app.authorize(&account(&sub, &email, true)).await;
    let callback = Browser::new().visit(&started.location).await;
    let signed_in = app.callback(&callback, Some(&started.cookie)).await;
    let code = fragment_fields(signed_in.header("location").expect("a Location"), target)["code"].clone();
    let body = json!({ "code": code, "session": "cookie" });
    let in_cookies = app.request(Method::Post, "/api/auth/oauth/exchange", None, None, Some(&body)).await;
    in_cookies.answer.expect(200);
    assert_eq!(in_cookies.answer.str("/token_type"), "cookie");
    assert!(!in_cookies.answer.has("/access") && !in_cookies.answer.has("/refresh"), "no token in the body");
    let access = in_cookies.set_cookie("__Host-access").expect("the access cookie");
    assert!(access.contains("HttpOnly") && access.contains("Secure"), "{access}");
    let claims = app.auth().verify_access(cookie_value(&access)).expect("a valid token");
    assert_eq!(claims.amr, ["fed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_exchange_code_works_within_its_minute() {
    // The counterpart of the expiry above: the same wait short of 60 s passes.
    let provider = OidcProvider::start(None).await;
    let clock = Clock::manual();
    let target = "http://localhost:3000/signed-in";
    let app = App::custom(
        Backend::Sqlite,
        &provider.issuer,
        |p| p.success_redirect = Some(target.into()),
        |_| {},
        Some(clock.clone()),
    )
    .await;
    let (sub, email) = unique("in-time");
    let signed_in = app.sign_in(&account(&sub, &email, true)).await;
    let code = fragment_fields(signed_in.header("location").expect("a Location"), target)["code"].clone();
    clock.advance(Duration::from_secs(55));
    app.exchange(&code).await.answer.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_email_claims_may_come_from_userinfo() {
    let provider = OidcProvider::start_on(0, None, false).await;
    let app = App::new(Backend::Sqlite, &provider.issuer, |_| {}).await;
    let (sub, email) = unique("userinfo");
    let signed_in = app.sign_in(&account(&sub, &email, true)).await;
    signed_in.answer.expect(200);
    let me = app.kit.get("/me", Some(signed_in.answer.str("/access"))).await;
    assert_eq!(me.str("/email"), email);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_provider_key_rotation_is_followed_through_the_jwks() {
    let mut provider = OidcProvider::start(None).await;
    let app = App::new(Backend::Sqlite, &provider.issuer, |_| {}).await;
    let (sub, email) = unique("rotation");
    app.sign_in(&account(&sub, &email, true)).await.answer.expect(200);
    // Same issuer, new signing key: the cached JWKS does not know its kid.
    provider.restart().await;
    app.sign_in(&account(&sub, &email, true)).await.answer.expect(200);
}

// ----- state, nonce and code ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_tampered_or_missing_state_is_refused() {
    let provider = OidcProvider::start(None).await;
    let app = App::new(Backend::Sqlite, &provider.issuer, |_| {}).await;
    let (sub, email) = unique("state");
    let started = app.authorize(&account(&sub, &email, true)).await;
    let callback = Browser::new().visit(&started.location).await;

    let forged = with_param(&callback, "state", "forged-state-value-0123456789");
    app.callback(&forged, Some(&started.cookie)).await.answer.expect_error(400, "oauth_failed");
    app.assert_refused_for("state_mismatch").await;
    let without_state = callback.replace("state=", "ignored=");
    app.callback(&without_state, Some(&started.cookie)).await.answer.expect_error(400, "oauth_failed");

    app.callback(&callback, None).await.answer.expect_error(400, "oauth_failed");
    app.assert_refused_for("missing_state_cookie").await;

    let mut forged_cookie = started.cookie.clone().into_bytes();
    let middle = forged_cookie.len() / 2;
    forged_cookie[middle] = if forged_cookie[middle] == b'A' { b'B' } else { b'A' };
    let forged_cookie = String::from_utf8(forged_cookie).expect("ASCII");
    app.callback(&callback, Some(&forged_cookie)).await.answer.expect_error(400, "oauth_failed");
    app.assert_refused_for("invalid_state_cookie").await;

    assert!(!app.user_exists(&email).await, "no account from a refused callback");
    // The untouched callback still works: the refusals above consumed nothing.
    app.callback(&callback, Some(&started.cookie)).await.answer.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_replayed_and_bogus_codes_are_refused() {
    let provider = OidcProvider::start(None).await;
    let app = App::new(Backend::Sqlite, &provider.issuer, |_| {}).await;
    let (sub, email) = unique("replay");
    let started = app.authorize(&account(&sub, &email, true)).await;
    let callback = Browser::new().visit(&started.location).await;
    app.callback(&callback, Some(&started.cookie)).await.answer.expect(200);
    // The browser dropped the cookie; an attacker who kept it replays the code.
    app.callback(&callback, None).await.answer.expect_error(400, "oauth_failed");
    app.callback(&callback, Some(&started.cookie)).await.answer.expect_error(400, "oauth_failed");
    app.assert_refused_for("code_rejected").await;

    let started = app.authorize(&account(&sub, &email, true)).await;
    let callback = Browser::new().visit(&started.location).await;
    let bogus = with_param(&callback, "code", "bogus-code");
    app.callback(&bogus, Some(&started.cookie)).await.answer.expect_error(400, "oauth_failed");
    let without_code = callback.replace("code=", "ignored=");
    app.callback(&without_code, Some(&started.cookie)).await.answer.expect_error(400, "oauth_failed");
    app.assert_refused_for("missing_code").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_nonce_mismatch_is_refused() {
    let provider = OidcProvider::start(None).await;
    let app = App::new(Backend::Sqlite, &provider.issuer, |_| {}).await;
    let (sub, email) = unique("nonce");
    let started = app.authorize(&account(&sub, &email, true)).await;
    // The browser asks the provider for a code bound to another nonce (as an
    // attacker injecting a code from their own sign-in would); the exchange
    // succeeds, the id_token's nonce is not this sign-in's.
    let other_nonce = with_param(&started.location, "nonce", "attacker-chosen-nonce-0123456789");
    let callback = Browser::new().visit(&other_nonce).await;
    app.callback(&callback, Some(&started.cookie)).await.answer.expect_error(400, "oauth_failed");
    app.assert_refused_for("nonce_mismatch").await;
    assert!(!app.user_exists(&email).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_mixed_sign_ins_and_foreign_codes_are_refused() {
    let provider = OidcProvider::start(None).await;
    let app = App::new(Backend::Sqlite, &provider.issuer, |_| {}).await;
    let (sub, email) = unique("mixed");
    let first = app.authorize(&account(&sub, &email, true)).await;
    let second = app.authorize(&account(&sub, &email, true)).await;
    let second_callback = Browser::new().visit(&second.location).await;
    // The second sign-in's callback with the first one's cookie.
    app.callback(&second_callback, Some(&first.cookie)).await.answer.expect_error(400, "oauth_failed");
    app.assert_refused_for("state_mismatch").await;
    // …with the first one's state too: the code is bound to the second PKCE challenge.
    let first_state = query_param(&first.location, "state").expect("state");
    let spliced = with_param(&second_callback, "state", &first_state);
    app.callback(&spliced, Some(&first.cookie)).await.answer.expect_error(400, "oauth_failed");
    app.assert_refused_for("code_rejected").await;

    // A code the provider issued to another client.
    let third = app.authorize(&account(&sub, &email, true)).await;
    let other_client = with_param(&third.location, "client_id", "other-client");
    let callback = Browser::new().visit(&other_client).await;
    app.callback(&callback, Some(&third.cookie)).await.answer.expect_error(400, "oauth_failed");
    assert!(!app.user_exists(&email).await);
}

// ----- id_tokens the platform must refuse --------------------------------------------

async fn refused_id_token(tamper: &'static str, reason: &str) {
    let provider = OidcProvider::start(Some(tamper)).await;
    let app = App::new(Backend::Sqlite, &provider.issuer, |_| {}).await;
    let (sub, email) = unique(tamper);
    let answer = app.sign_in(&account(&sub, &email, true)).await.answer;
    answer.expect_error(400, "oauth_failed");
    app.assert_refused_for(reason).await;
    assert!(!app.user_exists(&email).await, "no account from a refused id_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_id_token_for_another_audience_is_refused() {
    refused_id_token("audience", "audience_mismatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_id_token_authorized_for_another_party_is_refused() {
    refused_id_token("azp", "azp_mismatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_id_token_from_another_issuer_is_refused() {
    refused_id_token("issuer", "issuer_mismatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_expired_id_token_is_refused() {
    refused_id_token("expired", "expired_or_not_yet_valid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_id_token_issued_in_the_future_is_refused() {
    refused_id_token("issued_in_future", "expired_or_not_yet_valid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_id_token_with_a_bad_signature_is_refused() {
    refused_id_token("signature", "bad_signature").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_id_token_signed_by_an_unpublished_key_is_refused() {
    refused_id_token("unknown_kid", "unknown_signing_key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_unsigned_id_token_is_refused() {
    refused_id_token("alg_none", "bad_signature").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_id_token_signed_with_the_client_secret_is_refused() {
    refused_id_token("hs256", "bad_signature").await;
}

// ----- accounts --------------------------------------------------------------------------

async fn unverified_collision(backend: Backend) {
    let provider = OidcProvider::start(None).await;
    let app = App::new(backend, &provider.issuer, |_| {}).await;
    let local = app.kit.verified_user("local").await;
    let (sub, _) = unique("collide");
    let answer = app.sign_in(&account(&sub, &local.email, false)).await.answer;
    answer.expect_error(403, "email_not_verified");
    app.assert_refused_for("unverified_email_collision").await;
    let user = local.id.parse().expect("a uuid");
    assert!(
        auth_core::testing::store(app.auth()).identity_links(user).await.expect("links").is_empty(),
        "nothing linked"
    );
    app.kit.sign_in(&local).await; // the owner's password still works
    // An unverified email without a local account creates nothing either.
    let (sub, email) = unique("unverified");
    app.sign_in(&account(&sub, &email, false)).await.answer.expect_error(403, "email_not_verified");
    assert!(!app.user_exists(&email).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_unverified_email_colliding_with_an_account_is_refused() {
    unverified_collision(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js, the oidc-provider package and PostgreSQL (TEST_DATABASE_URL): pass --ignored"]
async fn oidc_unverified_email_colliding_with_an_account_is_refused_on_postgres() {
    unverified_collision(Backend::Postgres).await;
}

async fn pre_registered_takeover(backend: Backend) {
    let provider = OidcProvider::start(None).await;
    // Trusted for email, as the Google preset is by default.
    let app = App::new(backend, &provider.issuer, |p| p.trust_email = Some(true)).await;
    // Someone registered the victim's address and never verified it.
    let squatter = app.kit.register("victim").await;
    let (sub, _) = unique("owner");
    let signed_in = app.sign_in(&account(&sub, &squatter.email, true)).await;
    signed_in.answer.expect(200);
    let access = signed_in.answer.str("/access").to_owned();
    let me = app.kit.get("/me", Some(&access)).await;
    assert_eq!(me.str("/id"), squatter.id, "linked to the existing account");
    assert_eq!(me.get("/email_verified"), &json!(true));
    // The squatter's password is gone.
    let login = app.kit.post("/login", None, &json!({ "email": squatter.email, "password": squatter.password })).await;
    login.expect_error(401, "invalid_credentials");
    let notice = app.kit.wait_for_mail(&squatter.email, 1).await;
    assert!(notice.subject.contains("Security notice"), "{notice:?}");
    assert!(notice.text.contains("password has been removed"), "{notice:?}");
    let user = squatter.id.parse().expect("a uuid");
    let trail = app.auth().operators().audit_trail(Some(user), 50).await.expect("audit");
    let linked = trail.iter().find(|r| r.event == "identity_linked").expect("an identity_linked event");
    assert_eq!(linked.detail["password_wiped"], json!(true));
    assert_eq!(linked.detail["subject"], json!(sub));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_verified_email_takes_over_an_unverified_account_and_wipes_its_password() {
    pre_registered_takeover(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js, the oidc-provider package and PostgreSQL (TEST_DATABASE_URL): pass --ignored"]
async fn oidc_verified_email_takes_over_an_unverified_account_on_postgres() {
    pre_registered_takeover(Backend::Postgres).await;
}

/// A provider sign-in is only the first step for an account with a second
/// factor: `403 mfa_required` with an `mfa_token`, finished at `POST /login/mfa`,
/// and the session says `fed otp mfa`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_sign_in_of_an_account_with_a_second_factor_asks_for_it() {
    use auth_core::mfa::totp::TotpSecret;
    let provider = OidcProvider::start(None).await;
    let app = App::new(Backend::Sqlite, &provider.issuer, |p| p.trust_email = Some(true)).await;
    let user = app.kit.verified_user("oidc-mfa").await;
    let tokens = app.kit.sign_in(&user).await;
    let claims = app.auth().verify_access(&tokens.access).expect("a valid token");
    let client = auth_core::ClientInfo::default();
    let enrollment = app.auth().mfa().enroll_totp(&claims, &user.password, &client).await.expect("enrol");
    let secret = TotpSecret::from_base32(enrollment.secret.expose()).expect("a base32 secret");
    let now = || u64::try_from(app.auth().now().timestamp()).expect("after 1970");
    app.auth().mfa().confirm_totp(&claims, &secret.code_at(now()), &client).await.expect("confirm");

    let (sub, _) = unique("oidc-mfa");
    let first_step = app.sign_in(&account(&sub, &user.email, true)).await;
    first_step.answer.expect_error(403, "mfa_required");
    assert_eq!(first_step.answer.get("/error/methods"), &json!(["totp", "recovery_code"]), "{}", first_step.answer);
    let mfa_token = first_step.answer.str("/error/mfa_token").to_owned();
    let second_step = json!({ "mfa_token": mfa_token, "code": secret.code_at(now() + 30) });
    let finished = app.kit.post("/login/mfa", None, &second_step).await;
    finished.expect(200);
    let signed_in = app.kit.verify_with_jwks(finished.str("/access")).await.expect("verifies with the JWKS");
    assert_eq!(signed_in["amr"], json!(["fed", "otp", "mfa"]), "{signed_in}");
    assert_eq!(signed_in["sub"], json!(user.id));
}

async fn untrusted_provider_and_existing_account(backend: Backend) {
    let provider = OidcProvider::start(None).await;
    let app = App::new(backend, &provider.issuer, |_| {}).await; // not trusted for email: the default
    let owner = app.kit.verified_user("owner").await;
    let (sub, _) = unique("claimant");
    let answer = app.sign_in(&account(&sub, &owner.email, true)).await.answer;
    answer.expect_error(403, "account_exists");
    assert!(answer.str("/error/message").contains("link"), "says what to do: {answer}");
    app.assert_refused_for("account_exists_untrusted_provider").await;
    let owner_id = owner.id.parse().expect("a uuid");
    assert!(
        auth_core::testing::store(app.auth()).identity_links(owner_id).await.expect("links").is_empty(),
        "nothing linked"
    );
    app.kit.sign_in(&owner).await; // the owner's password still works

    // An account that never verified its address is not taken over either:
    // its password stays, nothing is linked.
    let squatted = app.kit.register("squatted").await;
    let (sub, _) = unique("claimant");
    app.sign_in(&account(&sub, &squatted.email, true)).await.answer.expect_error(403, "account_exists");
    let email = Email::parse("email", &squatted.email).expect("an email");
    let (user, hash) =
        auth_core::testing::store(app.auth()).user_by_email(&email).await.expect("the store").expect("the account");
    assert!(hash.is_some() && !user.email_verified(), "untouched");
    assert!(auth_core::testing::store(app.auth()).identity_links(user.id).await.expect("links").is_empty());

    // A new address is a new account, from any provider.
    let (sub, email) = unique("newcomer");
    app.sign_in(&account(&sub, &email, true)).await.answer.expect(200);
    assert!(app.user_exists(&email).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_untrusted_provider_cannot_sign_in_to_an_existing_account_by_email() {
    untrusted_provider_and_existing_account(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js, the oidc-provider package and PostgreSQL (TEST_DATABASE_URL): pass --ignored"]
async fn oidc_untrusted_provider_cannot_sign_in_to_an_existing_account_by_email_on_postgres() {
    untrusted_provider_and_existing_account(Backend::Postgres).await;
}

async fn deliberate_link(backend: Backend) {
    let provider = OidcProvider::start(None).await;
    let app = App::new(backend, &provider.issuer, |_| {}).await;
    let link_uri = format!("/api/auth/oauth/{PROVIDER}/link");
    let alice = app.kit.verified_user("alice").await;
    let alice_tokens = app.kit.sign_in(&alice).await;
    let bob = app.kit.verified_user("bob").await;
    let bob_tokens = app.kit.sign_in(&bob).await;
    let (sub, _) = unique("alice-at-idp");
    let identity = account(&sub, &alice.email, true);
    // Not trusted for email: signing in does not reach Alice's account…
    app.sign_in(&identity).await.answer.expect_error(403, "account_exists");
    // …and starting a link needs a signed-in user.
    app.request(Method::Post, &link_uri, None, None, None).await.answer.expect_error(401, "missing_token");

    let for_alice = app.start_link(&alice_tokens.access, &identity).await;
    let set_cookie = for_alice.set_cookie.to_lowercase();
    assert!(set_cookie.contains("httponly") && set_cookie.contains("path=/api/auth/oauth/test/callback"));
    let for_bob = app.start_link(&bob_tokens.access, &identity).await;
    let alice_callback = Browser::new().visit(&for_alice.location).await;
    // Alice's provider answer with Bob's state cookie links nothing anywhere.
    app.callback(&alice_callback, Some(&for_bob.cookie)).await.answer.expect_error(400, "oauth_failed");
    app.assert_refused_for("state_mismatch").await;
    assert!(app.links(&alice.id).await.is_empty() && app.links(&bob.id).await.is_empty());

    // With her own cookie, the identity is linked to Alice: no tokens.
    let linked = app.callback(&alice_callback, Some(&for_alice.cookie)).await;
    linked.answer.expect(200);
    assert_eq!(linked.answer.json, json!({ "linked": true, "provider": PROVIDER }));
    assert_eq!(linked.header("cache-control"), Some("no-store"));
    assert_eq!(app.links(&alice.id).await.len(), 1);
    assert!(app.links(&bob.id).await.is_empty());
    let trail = app.auth().operators().audit_trail(Some(alice.id.parse().expect("a uuid")), 50).await.expect("audit");
    let event = trail.iter().find(|r| r.event == "identity_linked").expect("an identity_linked event");
    assert_eq!((&event.detail["subject"], &event.detail["deliberate"]), (&json!(sub), &json!(true)));
    let notice = app.kit.wait_for_mail(&alice.email, 1).await;
    assert!(notice.text.contains("was linked to your account"), "{notice:?}");
    // From now on the provider signs Alice in.
    let signed_in = app.sign_in(&identity).await;
    signed_in.answer.expect(200);
    assert_eq!(app.kit.get("/me", Some(signed_in.answer.str("/access"))).await.str("/id"), alice.id);

    // Bob's own flow with Alice's provider account: already linked elsewhere.
    let bob_callback = Browser::new().visit(&for_bob.location).await;
    app.callback(&bob_callback, Some(&for_bob.cookie)).await.answer.expect_error(409, "already_linked");
    app.assert_refused_for("identity_linked_to_another_user").await;
    assert!(app.links(&bob.id).await.is_empty());
    // Alice already has a link for this provider.
    let again = app.request(Method::Post, &link_uri, Some(&alice_tokens.access), None, None).await;
    again.answer.expect_error(409, "already_linked");

    // A link started by a session that has ended since is refused.
    let carol = app.kit.verified_user("carol").await;
    let carol_tokens = app.kit.sign_in(&carol).await;
    let (sub, _) = unique("carol-at-idp");
    let for_carol = app.start_link(&carol_tokens.access, &account(&sub, &carol.email, true)).await;
    app.kit.post_empty("/logout-all", Some(&carol_tokens.access)).await.expect(204);
    let carol_callback = Browser::new().visit(&for_carol.location).await;
    app.callback(&carol_callback, Some(&for_carol.cookie)).await.answer.expect_error(400, "oauth_failed");
    app.assert_refused_for("link_session_ended").await;
    assert!(app.links(&carol.id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_signed_in_user_links_a_provider_and_a_state_cookie_links_only_its_user() {
    deliberate_link(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js, the oidc-provider package and PostgreSQL (TEST_DATABASE_URL): pass --ignored"]
async fn oidc_signed_in_user_links_a_provider_on_postgres() {
    deliberate_link(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and the oidc-provider package: pass --ignored"]
async fn oidc_email_domains_outside_the_allowed_list_are_refused() {
    let provider = OidcProvider::start(None).await;
    let app = App::new(Backend::Sqlite, &provider.issuer, |p| {
        p.allowed_email_domains = vec!["example.com".into()];
    })
    .await;
    let (sub, _) = unique("eve");
    let answer = app.sign_in(&account(&sub, "eve@elsewhere.example.org", true)).await.answer;
    answer.expect_error(403, "email_domain_not_allowed");
    assert!(!app.user_exists("eve@elsewhere.example.org").await);
    let (sub, email) = unique("allowed");
    app.sign_in(&account(&sub, &email, true)).await.answer.expect(200);
}

// ----- without a provider -----------------------------------------------------------------

#[tokio::test]
async fn oidc_unknown_provider_is_404_and_an_unreachable_one_503() {
    // Nothing listens on port 9 of the loopback: discovery fails at once.
    let app = App::new(Backend::Sqlite, "http://127.0.0.1:9", |_| {}).await;
    let unknown = app.get("/api/auth/oauth/nope/authorize", None).await;
    unknown.answer.expect_error(404, "not_found");
    let callback = app.get("/api/auth/oauth/nope/callback?code=x&state=y", None).await;
    callback.answer.expect_error(404, "not_found");
    let unreachable = app.get(&format!("/api/auth/oauth/{PROVIDER}/authorize"), None).await;
    unreachable.answer.expect_error(503, "unavailable");
    assert!(unreachable.set_cookie(STATE_COOKIE).is_none());
    // A callback without the state cookie is refused before any request.
    let callback = app.get(&format!("{CALLBACK_PATH}?code=x&state=y"), None).await;
    callback.answer.expect_error(400, "oauth_failed");
}

#[tokio::test]
async fn oidc_link_and_exchange_routes_are_marked_documented_and_limited() {
    let app = App::custom(
        Backend::Sqlite,
        "http://127.0.0.1:9",
        |_| {},
        |config| config.rate_limits.login = Quota::new(2, 60),
        None,
    )
    .await;
    let table = auth_platform::rocket::policy::route_table(app.kit.client().rocket());
    let policy = |method: Method, path: &str| {
        let route = table.iter().find(|r| r.method == method && r.path == path);
        route.unwrap_or_else(|| panic!("{method} {path} is not listed")).policy
    };
    assert_eq!(policy(Method::Post, "/api/auth/oauth/<provider>/link"), Some("recent_auth = \"10m\""));
    assert_eq!(policy(Method::Post, "/api/auth/oauth/exchange"), Some("public"));
    let doc = app.kit.get("/openapi.json", None).await;
    assert!(doc.get("/paths/~1api~1auth~1oauth~1{provider}~1link/post/security").is_array(), "{doc}");
    assert!(doc.get("/paths/~1api~1auth~1oauth~1exchange/post/requestBody").is_object(), "{doc}");
    // The exchange counts against the per-IP login quota.
    app.exchange("not-a-code").await.answer.expect_error(400, "invalid_token");
    app.exchange("not-a-code").await.answer.expect_error(400, "invalid_token");
    app.exchange("not-a-code").await.answer.expect_error(429, "rate_limited");
}
