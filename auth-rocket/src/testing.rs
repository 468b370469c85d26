//! A conformance kit: the HTTP contract (`../shared/spec/http-api.md`) as
//! checks a host app runs in its own test suite, against its own mounted
//! platform, unchanged. Enable it with the `testing` feature:
//!
//! ```toml
//! [dev-dependencies]
//! auth-rocket = { version = "…", features = ["testing"] }
//! ```
//!
//! Each check is a `pub async fn` of [`Conformance`] that registers fresh users
//! (unique emails), talks to the app only through HTTP (Rocket's local client:
//! real routing, real argon2, real signatures, the app's real database) and
//! reads one-time tokens only from the mail the platform sent. A violation
//! panics with the request, the answer and what was expected, like a failed
//! assertion. The checks are independent, so they can share one app, and
//! [`Conformance::run_all`] runs every one of them.
//!
//! The host app builds its Rocket as in production, with a test configuration
//! (a throwaway database, cheap argon2, a test signing key) and a
//! [`MemoryMailer`] handed to the platform through [`AuthFairing::customize`]:
//!
//! ```no_run
//! // tests/auth_conformance.rs of the host app
//! use std::sync::Arc;
//!
//! use auth_core::{SigningAlgorithm, mail::MemoryMailer, tokens::KeySet};
//! use auth_rocket::{AuthFairing, testing::Conformance};
//! use rocket::local::asynchronous::Client;
//! use serde_json::json;
//!
//! #[rocket::async_test]
//! async fn the_auth_platform_conforms() {
//!     // A throwaway database (or a PostgreSQL schema of the test's own).
//!     let db = std::env::temp_dir().join(format!("auth-conformance-{}.db", uuid::Uuid::new_v4()));
//!     let key = KeySet::generate(SigningAlgorithm::Rs256, "test-key").unwrap();
//!     let settings = json!({
//!         "database_url": format!("sqlite://{}?mode=rwc", db.display()),
//!         "password": { "argon2_memory_kib": 1024, "argon2_iterations": 1 },
//!         "tokens": { "signing_key": key },
//!         "mail": { "transport": { "kind": "memory" } },
//!     });
//!     let figment = rocket::Config::figment().merge(("auth", settings));
//!
//!     // Every email the platform sends lands here; the kit reads the tokens from it.
//!     let mail = MemoryMailer::new("Tests <no-reply@example.com>").unwrap();
//!     let platform_mail = mail.clone();
//!     let platform = AuthFairing::mounted_at("/api/auth").customize(move |b| b.mailer(Arc::new(platform_mail.clone())));
//!     let rocket = rocket::custom(figment).attach(platform);
//!     let client = Client::tracked(rocket).await.expect("the app ignites");
//!
//!     Conformance::new(client, "/api/auth", mail).run_all().await;
//! }
//! # fn main() {}
//! ```
//!
//! A suite that wants one test per check calls the checks one by one
//! (`registration`, `login`, `refresh_rotation`, …) instead of `run_all`.
//!
//! What the checks assume about the app: the defaults the contract describes
//! (`require_verified_email = true`; the roles owner > admin > member, or
//! three roles named with [`Conformance::with_roles`], the middle one able to
//! manage members), and rate limits that a few dozen requests do not reach
//! (each request of the kit comes from an address of its own in
//! 198.18.0.0/15, the benchmarking range, so the per-IP quotas do not add up
//! across checks). An app whose tests use the file outbox instead of a memory
//! mailer uses [`Conformance::with_outbox`].
//!
//! [`AuthFairing::customize`]: crate::AuthFairing::customize

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use auth_core::mail::MemoryMailer;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use rocket::{
    http::{ContentType, Header as HttpHeader, Method},
    local::asynchronous::Client,
};
use serde_json::{Value, json};
use uuid::Uuid;

/// A password the default policy accepts, unrelated to any email or name the kit uses.
pub const PASSWORD: &str = "Tangerine-Vortex-Quill-9284";
/// Another accepted password, for changes and resets.
pub const NEW_PASSWORD: &str = "Marble-Cascade-Lantern-7731";
/// Long enough, but far too guessable for the policy.
pub const WEAK_PASSWORD: &str = "password123";
/// The full name of every user the kit registers.
pub const FULL_NAME: &str = "Conformance Tester";

/// How long to wait for an email sent after the answer (resets, resends).
const MAIL_WAIT: Duration = Duration::from_secs(10);
const MAIL_POLL: Duration = Duration::from_millis(20);
/// Over the largest `http.max_body_bytes` the platform accepts (1 MiB).
const OVERSIZED_BODY_BYTES: usize = 1024 * 1024 + 4096;
/// Substrings that would reveal internals in an error answer.
const LEAKS: [&str; 8] = ["sqlx", "sqlite", "postgres", "select ", "panicked", "backtrace", "-----begin", "src/"];

/// Where the app's emails can be read.
enum Mailbox {
    Memory(MemoryMailer),
    Outbox(PathBuf),
}

/// One email, as far as the checks need it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    pub text: String,
}

impl Mail {
    /// The one-time token of the email: the value of `token=` in its link.
    pub fn token(&self) -> String {
        token_in(&self.text)
            .unwrap_or_else(|| panic!("no `token=` link in the email {:?}:\n{}", self.subject, self.text))
    }
}

/// The value of the first `token=` in `text` (URL-safe base64 characters).
fn token_in(text: &str) -> Option<String> {
    let start = text.find("token=")? + "token=".len();
    let token: String =
        text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    (!token.is_empty()).then_some(token)
}

/// A fresh client address for each request of the kit, in 198.18.0.0/15
/// (RFC 2544, for benchmarks): the app's per-IP quotas never add the kit's
/// requests up, as they would in the one quota of requests without an address.
fn next_client_address() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let host = NEXT.fetch_add(1, Ordering::Relaxed) % (1 << 17);
    SocketAddr::from((Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + host), 40000))
}

impl Mailbox {
    /// Every email sent to `to` so far, oldest first.
    fn to(&self, to: &str) -> Vec<Mail> {
        match self {
            Self::Memory(mailer) => mailer
                .sent()
                .into_iter()
                .filter(|email| email.to.eq_ignore_ascii_case(to))
                .map(|email| Mail { subject: email.subject, text: email.text })
                .collect(),
            Self::Outbox(dir) => outbox_mail(dir, to),
        }
    }
}

/// Reads the `.eml` files of an outbox (named so that they sort by time).
fn outbox_mail(dir: &std::path::Path, to: &str) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            name.ends_with(".eml") && !name.starts_with('.')
        })
        .collect();
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let Ok(content) = std::fs::read_to_string(&file) else { continue };
        let (head, body) = content.split_once("\r\n\r\n").unwrap_or((content.as_str(), ""));
        let header = |name: &str| {
            head.split("\r\n").find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
            })
        };
        let recipient = header("to").unwrap_or_default();
        let recipient = recipient.rsplit('<').next().unwrap_or_default().trim_end_matches('>');
        if recipient.eq_ignore_ascii_case(to) {
            let text = body.replace("\r\n", "\n");
            found.push(Mail { subject: header("subject").unwrap_or_default(), text });
        }
    }
    found
}

/// One HTTP answer, with what the checks look at.
#[derive(Debug, Clone)]
pub struct Answer {
    pub method: Method,
    pub uri: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
    pub cache_control: Option<String>,
    /// `Allow`, on a 405.
    pub allow: Option<String>,
    pub text: String,
    /// The body as JSON; `Value::Null` when it is not JSON.
    pub json: Value,
}

impl Answer {
    /// Reads a local client's response (for tests that send their own requests).
    pub async fn read(method: Method, uri: String, response: rocket::local::asynchronous::LocalResponse<'_>) -> Self {
        let status = response.status().code;
        let header = |name: &str| response.headers().get_one(name).map(str::to_owned);
        let (www_authenticate, retry_after) = (header("WWW-Authenticate"), header("Retry-After"));
        let (cache_control, allow) = (header("Cache-Control"), header("Allow"));
        let content_type = response.content_type().map(|ct| ct.to_string());
        let text = response.into_string().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { method, uri, status, content_type, www_authenticate, retry_after, cache_control, allow, text, json }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.text.clone();
        if text.len() > 600 {
            let mut end = 600;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        write!(f, "{} {} answered {}", self.method, self.uri, self.status)?;
        if let Some(challenge) = &self.www_authenticate {
            write!(f, " (WWW-Authenticate: {challenge})")?;
        }
        write!(f, ": {text}")
    }
}

impl Answer {
    /// `error.code` of an error body.
    pub fn code(&self) -> Option<&str> {
        self.json.pointer("/error/code").and_then(Value::as_str)
    }

    /// The names in `error.fields`.
    pub fn fields(&self) -> Vec<String> {
        self.json
            .pointer("/error/fields")
            .and_then(Value::as_object)
            .map_or_else(Vec::new, |f| f.keys().cloned().collect())
    }

    pub fn is_html(&self) -> bool {
        self.content_type.as_deref().is_some_and(|ct| ct.starts_with("text/html"))
    }

    /// Panics unless the status is `status`.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "expected status {status}: {self}");
        self
    }

    /// Panics unless this is an error answer with `status` and `error.code == code`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        self.assert_error_body();
        assert_eq!(self.code(), Some(code), "expected error code {code:?}: {self}");
        self
    }

    /// Panics unless this is a 422 whose `error.fields` names `field`.
    #[track_caller]
    pub fn expect_invalid(&self, field: &str) -> &Self {
        self.expect(422);
        self.assert_error_body();
        assert!(self.fields().iter().any(|f| f == field), "expected `fields` to name {field:?}: {self}");
        self
    }

    /// Panics unless the body is the contract's error body:
    /// `{"error": {"code", "message", "fields"?}}` as JSON, `fields` only on a
    /// 422, no other member, nothing that looks like internals, and no 500.
    #[track_caller]
    pub fn assert_error_body(&self) {
        assert!(self.status >= 400, "expected an error answer: {self}");
        assert_ne!(self.status, 500, "a client's request must never cause a 500: {self}");
        let json_type = self.content_type.as_deref().is_some_and(|ct| ct.starts_with("application/json"));
        assert!(json_type, "an error body must be JSON (Content-Type {:?}): {self}", self.content_type);
        let top = self.json.as_object().unwrap_or_else(|| panic!("an error body must be a JSON object: {self}"));
        assert!(top.len() == 1 && top.contains_key("error"), "an error body has exactly one member, `error`: {self}");
        let error = top["error"].as_object().unwrap_or_else(|| panic!("`error` must be an object: {self}"));
        let code = error.get("code").and_then(Value::as_str).unwrap_or_default();
        assert!(!code.is_empty(), "`error.code` must be a non-empty string: {self}");
        assert!(error.get("message").is_some_and(Value::is_string), "`error.message` must be a string: {self}");
        for key in error.keys() {
            assert!(["code", "message", "fields"].contains(&key.as_str()), "unexpected member error.{key}: {self}");
        }
        if let Some(fields) = error.get("fields") {
            assert_eq!(self.status, 422, "`fields` belongs to validation errors (422) only: {self}");
            let fields = fields.as_object().unwrap_or_else(|| panic!("`error.fields` must be an object: {self}"));
            assert!(!fields.is_empty(), "`error.fields` must not be empty: {self}");
            for (name, messages) in fields {
                let ok = messages.as_array().is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_string));
                assert!(ok, "error.fields.{name} must be a non-empty list of strings: {self}");
            }
        }
        let lower = self.text.to_lowercase();
        for leak in LEAKS {
            assert!(!lower.contains(leak), "the error body looks like it reveals internals ({leak:?}): {self}");
        }
    }

    /// A member of the JSON body, or a panic naming it.
    #[track_caller]
    pub fn get(&self, pointer: &str) -> &Value {
        self.json.pointer(pointer).unwrap_or_else(|| panic!("no {pointer} in the body: {self}"))
    }

    /// A string member of the JSON body, or a panic naming it.
    #[track_caller]
    pub fn str(&self, pointer: &str) -> &str {
        self.get(pointer).as_str().unwrap_or_else(|| panic!("{pointer} must be a string: {self}"))
    }
}

/// A user the kit registered.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
}

/// A token pair from login, refresh or `/token/tenant`.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    /// The access token's claims, read without verification.
    pub fn claims(&self) -> Value {
        jwt_part(&self.access, 1)
    }

    /// The access token's header, read without verification.
    pub fn header(&self) -> Value {
        jwt_part(&self.access, 0)
    }
}

/// A segment of a compact JWS decoded as JSON, without verification.
fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap_or_else(|| panic!("not a compact JWS: {token}"));
    let bytes =
        URL_SAFE_NO_PAD.decode(part).unwrap_or_else(|e| panic!("segment {index} is not base64url ({e}): {token}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("segment {index} is not JSON ({e}): {token}"))
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The kit, bound to one app: its local client, the mount point of the auth
/// routes (`/api/auth` in the demo) and where its mail goes.
pub struct Conformance {
    client: Client,
    base: String,
    mail: Mailbox,
    /// The three roles the tenant checks use, highest first.
    roles: [String; 3],
}

/// A request to send: method, URI, bearer token, body and extra headers.
struct Request<'a> {
    method: Method,
    uri: String,
    bearer: Option<&'a str>,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
}

impl Conformance {
    /// The kit for an app whose platform sends mail through `mail` (handed to
    /// the platform with `AuthFairing::default().customize(…)`), with the
    /// auth routes mounted at `base`, e.g. `"/api/auth"`.
    pub fn new(client: Client, base: impl Into<String>, mail: MemoryMailer) -> Self {
        Self::with_mailbox(client, base.into(), Mailbox::Memory(mail))
    }

    /// The kit for an app whose tests configure the file outbox
    /// (`mail.transport = { kind = "outbox", dir }`): emails are read from `dir`.
    pub fn with_outbox(client: Client, base: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Self::with_mailbox(client, base.into(), Mailbox::Outbox(dir.into()))
    }

    fn with_mailbox(client: Client, base: String, mail: Mailbox) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        let roles = ["owner".to_owned(), "admin".to_owned(), "member".to_owned()];
        Self { client, base, mail, roles }
    }

    /// For an app with its own ordered roles: three of them, highest first,
    /// where `manager` may add and remove members and `member` may not.
    pub fn with_roles(mut self, highest: &str, manager: &str, member: &str) -> Self {
        self.roles = [highest.to_owned(), manager.to_owned(), member.to_owned()];
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The mount point of the auth routes, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` under the mount point.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    // ----- requests ----------------------------------------------------------

    async fn dispatch(&self, request: Request<'_>) -> Answer {
        let Request { method, uri, bearer, body, headers } = request;
        let mut local = self.client.req(method, uri.clone()).remote(next_client_address());
        if let Some(token) = bearer {
            local.add_header(HttpHeader::new("Authorization", format!("Bearer {token}")));
        }
        for (name, value) in headers {
            local.add_header(HttpHeader::new(name, value));
        }
        if let Some(body) = body {
            local.add_header(ContentType::JSON);
            local.set_body(body);
        }
        let answer = Answer::read(method, uri, local.dispatch().await).await;
        // Checked on every answer of every check. The one HTML error is the
        // page behind the emailed verification link.
        assert_ne!(answer.status, 500, "a client's request must never cause a 500: {answer}");
        let path = answer.uri.split('?').next().unwrap_or_default().trim_end_matches('/');
        let link_page = answer.method == Method::Get && path == self.at("/verify-email");
        if answer.status >= 400 && !link_page {
            answer.assert_error_body();
        }
        answer
    }

    /// Sends a request to an absolute `uri` (e.g. `/.well-known/jwks.json`),
    /// with a raw body sent as JSON and extra headers. Every answer is checked:
    /// never a 500, and every error has the contract's body.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        body: Option<String>,
        headers: &[(&'static str, &str)],
    ) -> Answer {
        let headers = headers.iter().map(|(name, value)| (*name, (*value).to_owned())).collect();
        self.dispatch(Request { method, uri: uri.to_owned(), bearer, body, headers }).await
    }

    /// `GET <base><path>`.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.send(Method::Get, &self.at(path), bearer, None, &[]).await
    }

    /// `POST <base><path>` with a JSON body.
    pub async fn post(&self, path: &str, bearer: Option<&str>, body: &Value) -> Answer {
        self.send(Method::Post, &self.at(path), bearer, Some(body.to_string()), &[]).await
    }

    /// `POST <base><path>` without a body.
    pub async fn post_empty(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.send(Method::Post, &self.at(path), bearer, None, &[]).await
    }

    /// `POST <base><path>` with a raw body sent as JSON (malformed on purpose).
    pub async fn post_raw(&self, path: &str, bearer: Option<&str>, body: &str) -> Answer {
        self.send(Method::Post, &self.at(path), bearer, Some(body.to_owned()), &[]).await
    }

    /// `PATCH <base><path>` with a JSON body.
    pub async fn patch(&self, path: &str, bearer: Option<&str>, body: &Value) -> Answer {
        self.send(Method::Patch, &self.at(path), bearer, Some(body.to_string()), &[]).await
    }

    /// `DELETE <base><path>`.
    pub async fn delete(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.send(Method::Delete, &self.at(path), bearer, None, &[]).await
    }

    // ----- mail ----------------------------------------------------------------

    /// Every email sent to `email` so far, oldest first.
    pub fn mail_to(&self, email: &str) -> Vec<Mail> {
        self.mail.to(email)
    }

    /// The email number `index` (0 is the first) sent to `email`, waiting for
    /// it: some emails are sent after the answer.
    pub async fn wait_for_mail(&self, email: &str, index: usize) -> Mail {
        let mut waited = Duration::ZERO;
        loop {
            if let Some(mail) = self.mail.to(email).into_iter().nth(index) {
                return mail;
            }
            assert!(waited < MAIL_WAIT, "email number {} to {email} never arrived (waited {MAIL_WAIT:?})", index + 1);
            tokio::time::sleep(MAIL_POLL).await;
            waited += MAIL_POLL;
        }
    }

    // ----- users and tokens --------------------------------------------------------

    /// A fresh address no other check uses: `<label>-<uuid>@example.com`.
    pub fn unique_email(&self, label: &str) -> String {
        format!("{label}-{}@example.com", Uuid::new_v4().simple())
    }

    /// Registers a fresh user with [`PASSWORD`] (not verified yet).
    pub async fn register(&self, label: &str) -> TestUser {
        let email = self.unique_email(label);
        let answer = self
            .post("/register", None, &json!({ "email": email, "password": PASSWORD, "full_name": FULL_NAME }))
            .await;
        answer.expect(201);
        TestUser { id: answer.str("/id").to_owned(), email, password: PASSWORD.to_owned() }
    }

    /// Verifies `user`'s email with the token of the first email they got.
    pub async fn verify(&self, user: &TestUser) {
        let token = self.wait_for_mail(&user.email, 0).await.token();
        let answer = self.post("/verify-email", None, &json!({ "token": token })).await;
        answer.expect(200);
        assert_eq!(answer.json, json!({ "email_verified": true }), "{answer}");
    }

    /// Registers a fresh user and verifies their email through the mailed token.
    pub async fn verified_user(&self, label: &str) -> TestUser {
        let user = self.register(label).await;
        self.verify(&user).await;
        user
    }

    /// Logs `user` in; panics unless that succeeds.
    pub async fn sign_in(&self, user: &TestUser) -> Tokens {
        let answer = self.post("/login", None, &json!({ "email": user.email, "password": user.password })).await;
        answer.expect(200);
        Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() }
    }

    /// Rotates `refresh`; panics unless that succeeds.
    pub async fn refreshed(&self, refresh: &str) -> Tokens {
        let answer = self.post("/refresh", None, &json!({ "refresh": refresh })).await;
        answer.expect(200);
        Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() }
    }

    /// Creates a tenant owned by the caller of `access`; returns its id.
    pub async fn create_tenant(&self, access: &str) -> String {
        let name = format!("Tenant {}", Uuid::new_v4().simple());
        let answer = self.post("/tenants", Some(access), &json!({ "name": name })).await;
        answer.expect(201);
        answer.str("/id").to_owned()
    }

    /// Tokens of the caller of `access` scoped to `tenant_id`; panics unless granted.
    pub async fn scoped(&self, access: &str, tenant_id: &str) -> Tokens {
        let answer = self.post("/token/tenant", Some(access), &json!({ "tenant_id": tenant_id })).await;
        answer.expect(200);
        Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() }
    }

    /// Whether `access` is accepted by a protected route (`GET <base>/me`).
    pub async fn access_works(&self, access: &str) -> bool {
        let answer = self.get("/me", Some(access)).await;
        match answer.status {
            200 => true,
            401 => {
                assert_bearer_challenge(&answer, Some("invalid_token"));
                false
            }
            _ => panic!("expected 200 or 401: {answer}"),
        }
    }

    /// Whether `refresh` can still be rotated (it is consumed if it can).
    pub async fn refresh_works(&self, refresh: &str) -> bool {
        let answer = self.post("/refresh", None, &json!({ "refresh": refresh })).await;
        match answer.status {
            200 => true,
            401 => false,
            _ => panic!("expected 200 or 401: {answer}"),
        }
    }

    /// The id of the session (`sid`) a token pair belongs to, from `GET /sessions`.
    async fn current_session(&self, access: &str) -> String {
        let answer = self.get("/sessions", Some(access)).await;
        answer.expect(200);
        let sessions = answer.get("").as_array().unwrap_or_else(|| panic!("expected a list: {answer}"));
        let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == json!(true)).collect();
        assert_eq!(current.len(), 1, "exactly one session is `current`: {answer}");
        current[0]["id"].as_str().unwrap_or_else(|| panic!("a session id is a string: {answer}")).to_owned()
    }

    /// Verifies `token` with nothing but the JWKS document and a stock JWT
    /// library (`jsonwebtoken`), the way a third-party service would; returns
    /// its claims or why it failed.
    pub async fn verify_with_jwks(&self, token: &str) -> Result<Value, String> {
        let answer = self.get("/jwks.json", None).await;
        answer.expect(200);
        let jwks: JwkSet = serde_json::from_value(answer.json.clone()).map_err(|e| format!("not a JWKS: {e}"))?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("bad header: {e}"))?;
        let kid = header.kid.ok_or("the token has no kid")?;
        let jwk = jwks.find(&kid).ok_or_else(|| format!("kid {kid:?} is not in the JWKS"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable JWK: {e}"))?;
        // Issuer and audience are the deployment's: taken from the token, then
        // checked by the library like every other claim.
        let unverified: Value = jsonwebtoken::dangerous::insecure_decode(token)
            .map(|data: jsonwebtoken::TokenData<Value>| data.claims)
            .map_err(|e| format!("bad claims: {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        if let Some(aud) = unverified["aud"].as_str() {
            validation.set_audience(&[aud]);
        }
        if let Some(iss) = unverified["iss"].as_str() {
            validation.set_issuer(&[iss]);
        }
        jsonwebtoken::decode::<Value>(token, &key, &validation).map(|data| data.claims).map_err(|e| e.to_string())
    }

    // ----- the checks ----------------------------------------------------------------

    /// Runs every check, one after the other.
    pub async fn run_all(&self) {
        self.registration().await;
        self.email_verification().await;
        self.login().await;
        self.bearer_tokens().await;
        self.refresh_rotation().await;
        self.concurrent_refresh().await;
        self.logout().await;
        self.logout_all().await;
        self.sessions().await;
        self.profile().await;
        self.password_change().await;
        self.password_reset().await;
        self.tenants().await;
        self.tenant_members().await;
        self.tenant_token().await;
        self.jwks().await;
        self.openapi().await;
        self.error_bodies().await;
        self.method_not_allowed().await;
        self.trailing_slashes().await;
    }

    /// `POST /register`: 201 with the contract's shape and a normalised email,
    /// a verification email, 409 for the same address in another case, 422
    /// with `fields` for a bad email, a weak password or a missing field, 400
    /// for malformed JSON and 413 for a body over the limit.
    pub async fn registration(&self) {
        let email = self.unique_email("register");
        let shouted = format!("  {}  ", email.to_uppercase());
        let body =
            json!({ "email": shouted, "password": PASSWORD, "full_name": FULL_NAME, "phone": "+1 415 555 0100" });
        let answer = self.post("/register", None, &body).await;
        answer.expect(201);
        assert!(answer.str("/id").parse::<Uuid>().is_ok(), "`id` is a UUID: {answer}");
        assert_eq!(answer.str("/email"), email, "the email is trimmed and lower-cased: {answer}");
        assert_eq!(answer.get("/email_verified"), &json!(false), "{answer}");
        assert_eq!(answer.str("/profile/full_name"), FULL_NAME, "{answer}");
        assert_eq!(answer.str("/profile/phone"), "+1 415 555 0100", "{answer}");
        let lower = answer.text.to_lowercase();
        assert!(!answer.text.contains(PASSWORD) && !lower.contains("hash"), "no password material: {answer}");
        let mail = self.wait_for_mail(&email, 0).await;
        assert!(mail.token().len() >= 16, "the verification email carries a token: {mail:?}");

        let again = json!({ "email": email.to_uppercase(), "password": NEW_PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &again).await.expect_error(409, "email_taken");

        let bad_email = json!({ "email": "not-an-email", "password": PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &bad_email).await.expect_invalid("email");

        let weak_email = self.unique_email("weak");
        let weak = json!({ "email": weak_email, "password": WEAK_PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &weak).await.expect_invalid("password");
        // Nothing was stored for the refused registration.
        let fixed = json!({ "email": weak_email, "password": PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &fixed).await.expect(201);

        let missing = json!({ "email": self.unique_email("missing"), "password": PASSWORD });
        self.post("/register", None, &missing).await.expect_invalid("full_name");
        let wrong_type = json!({ "email": 42, "password": PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &wrong_type).await.expect_invalid("email");

        for malformed in [r#"{"email": "#, "not json at all", r#"{"email": "a@example.com",}"#] {
            let answer = self.post_raw("/register", None, malformed).await;
            answer.expect(400);
            answer.assert_error_body();
        }

        let huge = format!(
            r#"{{"email": "{}", "password": "{}", "full_name": "{FULL_NAME}"}}"#,
            self.unique_email("huge"),
            "x".repeat(OVERSIZED_BODY_BYTES)
        );
        let answer = self.post_raw("/register", None, &huge).await;
        answer.expect(413);
        answer.assert_error_body();
    }

    /// Email verification through the token actually mailed: POST and the GET
    /// link page, single use, resend, links not built from the request's
    /// `Host`; an unverified account gets 403 `email_not_verified` only after a
    /// correct password.
    pub async fn email_verification(&self) {
        // Registered through a request that lies about the host.
        let email = self.unique_email("verify");
        let body = json!({ "email": email, "password": PASSWORD, "full_name": FULL_NAME });
        let headers = [("Host", "evil.example"), ("X-Forwarded-Host", "evil.example")];
        self.send(Method::Post, &self.at("/register"), None, Some(body.to_string()), &headers).await.expect(201);
        let user = TestUser { id: String::new(), email: email.clone(), password: PASSWORD.to_owned() };
        let first = self.wait_for_mail(&email, 0).await;
        assert!(
            !first.text.contains("evil.example"),
            "email links must come from the configured public URL: {first:?}"
        );

        let wrong = self.post("/login", None, &json!({ "email": email, "password": NEW_PASSWORD })).await;
        wrong.expect_error(401, "invalid_credentials");
        let right = self.post("/login", None, &json!({ "email": email, "password": PASSWORD })).await;
        right.expect_error(403, "email_not_verified");

        // A resend answers the same whether or not the account exists, and mails a new link.
        let known = self.post("/verify-email/resend", None, &json!({ "email": email })).await;
        known.expect(202);
        let unknown = self.post("/verify-email/resend", None, &json!({ "email": self.unique_email("nobody") })).await;
        unknown.expect(202);
        assert_eq!(known.text, unknown.text, "resend must not reveal whether an account exists");
        let token = self.wait_for_mail(&email, 1).await.token();

        let answer = self.post("/verify-email", None, &json!({ "token": token })).await;
        answer.expect(200);
        assert_eq!(answer.json, json!({ "email_verified": true }), "{answer}");
        self.post("/verify-email", None, &json!({ "token": token })).await.expect_error(400, "invalid_token");
        self.post("/verify-email", None, &json!({ "token": "not-a-real-token" }))
            .await
            .expect_error(400, "invalid_token");
        self.post("/verify-email", None, &json!({})).await.expect_invalid("token");
        self.sign_in(&user).await;

        // The link page, as opened from the email.
        let linked = self.register("verify-link").await;
        let token = self.wait_for_mail(&linked.email, 0).await.token();
        let page = self.get(&format!("/verify-email?token={token}"), None).await;
        page.expect(200);
        assert!(page.is_html(), "the link answers an HTML page: {page}");
        let again = self.get(&format!("/verify-email?token={token}"), None).await;
        again.expect(400);
        assert!(again.is_html(), "a used link answers an HTML page: {again}");
        assert!(!again.text.contains(&token), "the page does not echo the token: {again}");
        self.get("/verify-email?token=garbage", None).await.expect(400);
        self.get("/verify-email", None).await.expect(400);
        self.sign_in(&linked).await;
    }

    /// `POST /login`: 200 `{access, refresh, token_type: "Bearer", expires_in}`
    /// with an RFC 9068 access token without PII; an unknown email and a wrong
    /// password get identical 401 answers.
    pub async fn login(&self) {
        let user = self.verified_user("login").await;
        let answer = self.post("/login", None, &json!({ "email": user.email, "password": user.password })).await;
        answer.expect(200);
        assert_eq!(answer.cache_control.as_deref(), Some("no-store"), "token answers are never cached (RFC 6749 5.1)");
        assert_eq!(answer.str("/token_type"), "Bearer", "{answer}");
        let expires_in = answer.get("/expires_in").as_u64().unwrap_or_else(|| panic!("expires_in: {answer}"));
        assert!((1..=900).contains(&expires_in), "access tokens live at most 15 minutes: {answer}");
        let tokens = Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() };
        assert_ne!(tokens.access, tokens.refresh, "{answer}");
        let header = tokens.header();
        assert_eq!(header["typ"], json!("at+jwt"), "typ of an access token (RFC 9068): {header}");
        assert!(header["kid"].is_string(), "a kid: {header}");
        assert!(!matches!(header["alg"].as_str(), None | Some("none")), "a real alg: {header}");
        let claims = tokens.claims();
        assert_eq!(claims["sub"], json!(user.id), "sub is the user id: {claims}");
        for claim in ["iss", "aud", "iat", "exp", "jti", "sid"] {
            assert!(!claims[claim].is_null(), "claim {claim} missing: {claims}");
        }
        let payload = claims.to_string();
        assert!(!payload.contains(&user.email) && !payload.contains(FULL_NAME), "no PII in tokens: {claims}");

        // The address is matched case-insensitively.
        let upper = json!({ "email": user.email.to_uppercase(), "password": user.password });
        self.post("/login", None, &upper).await.expect(200);

        let wrong = self.post("/login", None, &json!({ "email": user.email, "password": NEW_PASSWORD })).await;
        wrong.expect_error(401, "invalid_credentials");
        let unknown_email = self.unique_email("unknown");
        let unknown = self.post("/login", None, &json!({ "email": unknown_email, "password": NEW_PASSWORD })).await;
        unknown.expect_error(401, "invalid_credentials");
        assert_eq!(wrong.json, unknown.json, "unknown email and wrong password must look the same");
        assert_eq!(wrong.www_authenticate, unknown.www_authenticate, "same headers too");

        self.post("/login", None, &json!({ "email": user.email })).await.expect_invalid("password");
        let bad_tenant = json!({ "email": user.email, "password": user.password, "tenant_id": "not-a-uuid" });
        self.post("/login", None, &bad_tenant).await.expect(422);
        self.post_raw("/login", None, "{").await.expect(400);
    }

    /// Bearer handling (RFC 6750): a missing token is 401 with
    /// `WWW-Authenticate: Bearer`; garbage, tampered, `alg: none` and
    /// algorithm-confused tokens and refresh tokens are 401 with
    /// `Bearer error="invalid_token"`; a token in the query string is ignored.
    pub async fn bearer_tokens(&self) {
        let user = self.verified_user("bearer").await;
        let tokens = self.sign_in(&user).await;
        assert!(self.access_works(&tokens.access).await);

        let missing = self.get("/me", None).await;
        missing.expect(401);
        assert_bearer_challenge(&missing, None);
        let basic =
            self.send(Method::Get, &self.at("/me"), None, None, &[("Authorization", "Basic dXNlcjpwYXNz")]).await;
        basic.expect(401);
        assert_bearer_challenge(&basic, None);

        for (label, token) in self.forged_tokens(&tokens.access).await {
            let answer = self.get("/me", Some(&token)).await;
            assert_eq!(answer.status, 401, "a {label} access token must be refused: {answer}");
            assert_bearer_challenge(&answer, Some("invalid_token"));
        }
        let refresh_as_bearer = self.get("/me", Some(&tokens.refresh)).await;
        refresh_as_bearer.expect(401);
        assert_bearer_challenge(&refresh_as_bearer, Some("invalid_token"));
        let empty = self.send(Method::Get, &self.at("/me"), None, None, &[("Authorization", "Bearer ")]).await;
        empty.expect(401);
        // Exactly one token: a genuine one split by a space, followed by a
        // non-ASCII space, or sent twice is refused.
        let (head, tail) = tokens.access.split_at(20);
        let bearer = format!("Bearer {}", tokens.access);
        for headers in [
            vec![("Authorization", format!("Bearer {head} {tail}"))],
            vec![("Authorization", format!("{bearer}\u{a0}"))],
            vec![("Authorization", bearer.clone()), ("Authorization", bearer.clone())],
        ] {
            let headers: Vec<(&'static str, &str)> =
                headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
            let answer = self.send(Method::Get, &self.at("/me"), None, None, &headers).await;
            assert_eq!(answer.status, 401, "{headers:?} must be refused: {answer}");
            assert_bearer_challenge(&answer, Some("invalid_token"));
        }

        for parameter in ["access_token", "token", "access", "jwt"] {
            let uri = self.at(&format!("/me?{parameter}={}", tokens.access));
            let answer = self.send(Method::Get, &uri, None, None, &[]).await;
            assert_eq!(answer.status, 401, "a token in the query string must be ignored: {answer}");
            assert_bearer_challenge(&answer, None);
        }

        // A refused token changes nothing; the real one still works.
        let forged_logout = self.post_empty("/logout-all", Some("garbage")).await;
        forged_logout.expect(401);
        assert_bearer_challenge(&forged_logout, Some("invalid_token"));
        assert!(self.access_works(&tokens.access).await, "the genuine token still works");
        assert!(self.refresh_works(&tokens.refresh).await, "the genuine session still works");
    }

    /// Variants of a genuine access token that a verifier must refuse.
    async fn forged_tokens(&self, access: &str) -> Vec<(&'static str, String)> {
        let parts: Vec<&str> = access.split('.').collect();
        assert_eq!(parts.len(), 3, "an access token is a compact JWS: {access}");
        let header = jwt_part(access, 0);
        let mut claims = jwt_part(access, 1);
        let kid = header["kid"].as_str().unwrap_or_default().to_owned();

        let mut elevated = claims.clone();
        elevated["sub"] = json!(Uuid::new_v4().to_string());
        elevated["staff"] = json!(true);
        elevated["superuser"] = json!(true);
        let tampered = format!("{}.{}.{}", parts[0], b64_json(&elevated), parts[2]);

        let none_header = json!({ "alg": "none", "typ": "at+jwt", "kid": kid });
        let alg_none = format!("{}.{}.", b64_json(&none_header), parts[1]);
        let none_signed = format!("{}.{}.{}", b64_json(&none_header), parts[1], parts[2]);

        // HS256 keyed with public key material: the classic algorithm confusion.
        let jwks = self.get("/jwks.json", None).await;
        let public = jwks.json.pointer("/keys/0/n").or_else(|| jwks.json.pointer("/keys/0/x")).cloned();
        let secret = public.and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "public".into());
        let mut hs_header = Header::new(Algorithm::HS256);
        hs_header.kid = Some(kid.clone());
        hs_header.typ = Some("at+jwt".into());
        let confused = jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(secret.as_bytes()))
            .expect("sign a forged HS256 token");

        // Signed by a key the platform never issued, under its kid.
        let mut stranger = Header::new(Algorithm::HS256);
        stranger.kid = Some(kid.clone());
        let foreign = jsonwebtoken::encode(&stranger, &claims, &EncodingKey::from_secret(b"an attacker's own secret"))
            .expect("sign a foreign token");

        // A `jwk` header pointing at the attacker's key must not be consulted.
        let mut embedded = header.clone();
        embedded["jwk"] = json!({ "kty": "oct", "k": URL_SAFE_NO_PAD.encode("attacker") });
        embedded["jku"] = json!("https://evil.example/jwks.json");
        let with_jku = format!("{}.{}.{}", b64_json(&embedded), parts[1], parts[2]);

        let unknown_kid = {
            let mut h = header.clone();
            h["kid"] = json!("no-such-key");
            format!("{}.{}.{}", b64_json(&h), parts[1], parts[2])
        };
        claims["exp"] = json!(1);
        let expired = format!("{}.{}.{}", parts[0], b64_json(&claims), parts[2]);
        vec![
            ("garbage", "garbage".to_owned()),
            ("truncated", access[..access.len() - 8].to_owned()),
            ("two-part", format!("{}.{}", parts[0], parts[1])),
            ("tampered", tampered),
            ("alg-none", alg_none),
            ("alg-none with a signature", none_signed),
            ("HS256 with the public key", confused),
            ("foreign-key", foreign),
            ("jwk/jku header", with_jku),
            ("unknown-kid", unknown_kid),
            ("tampered-exp", expired),
        ]
    }

    /// `POST /refresh` rotates: a new pair, the old refresh token consumed;
    /// presenting it again is 401 `token_reused` and kills its successor; an
    /// access token is never a refresh token.
    pub async fn refresh_rotation(&self) {
        let user = self.verified_user("refresh").await;
        let first = self.sign_in(&user).await;
        let answer = self.post("/refresh", None, &json!({ "refresh": first.refresh })).await;
        answer.expect(200);
        assert_eq!(answer.str("/token_type"), "Bearer", "{answer}");
        assert!(answer.get("/expires_in").is_u64(), "{answer}");
        let second = Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() };
        assert_ne!(second.refresh, first.refresh, "rotation returns a new refresh token");
        assert_eq!(second.claims()["sid"], first.claims()["sid"], "the same session (token family)");
        assert!(self.access_works(&second.access).await);
        let third = self.refreshed(&second.refresh).await;

        let reuse = self.post("/refresh", None, &json!({ "refresh": first.refresh })).await;
        reuse.expect_error(401, "token_reused");
        let successor = self.post("/refresh", None, &json!({ "refresh": third.refresh })).await;
        assert_eq!(successor.status, 401, "reuse revokes the whole family, successor included: {successor}");

        self.post("/refresh", None, &json!({ "refresh": "not-a-refresh-token" }))
            .await
            .expect_error(401, "invalid_token");
        let fresh = self.sign_in(&user).await;
        let access_as_refresh = self.post("/refresh", None, &json!({ "refresh": fresh.access })).await;
        access_as_refresh.expect_error(401, "invalid_token");
        self.post("/refresh", None, &json!({})).await.expect_invalid("refresh");
    }

    /// Two concurrent refreshes with the same token: exactly one succeeds,
    /// the other is refused (the contract's rotation rule).
    pub async fn concurrent_refresh(&self) {
        let user = self.verified_user("race").await;
        for _ in 0..3 {
            let tokens = self.sign_in(&user).await;
            let body = json!({ "refresh": tokens.refresh });
            let (a, b) = tokio::join!(self.post("/refresh", None, &body), self.post("/refresh", None, &body));
            if a.status == 200 && b.status == 200 {
                let how = if a.str("/refresh") == b.str("/refresh") {
                    "both got the same successor, as if a reuse grace window applied"
                } else {
                    "with different successors: two live branches of one family"
                };
                panic!("two concurrent refreshes with one token both succeeded, {how}:\n{a}\n{b}");
            }
            let wins = [&a, &b].iter().filter(|answer| answer.status == 200).count();
            assert_eq!(wins, 1, "of two concurrent refreshes exactly one succeeds:\n{a}\n{b}");
            let loser = if a.status == 200 { &b } else { &a };
            assert_eq!(loser.status, 401, "the other one is refused: {loser}");
        }
    }

    /// `POST /logout`: 204, that session's refresh and access tokens die;
    /// another user's refresh token is 403 and stays alive; no bearer is 401.
    pub async fn logout(&self) {
        let user = self.verified_user("logout").await;
        let kept = self.sign_in(&user).await;
        let ended = self.sign_in(&user).await;
        let answer = self.post("/logout", Some(&ended.access), &json!({ "refresh": ended.refresh })).await;
        answer.expect(204);
        assert!(!self.refresh_works(&ended.refresh).await, "the logged-out refresh token is dead");
        assert!(!self.access_works(&ended.access).await, "the logged-out session's access token is dead");
        assert!(self.access_works(&kept.access).await, "another session of the user is untouched");

        let other = self.verified_user("logout-other").await;
        let theirs = self.sign_in(&other).await;
        let foreign = self.post("/logout", Some(&kept.access), &json!({ "refresh": theirs.refresh })).await;
        foreign.expect(403);
        assert!(self.access_works(&theirs.access).await, "another user's session is not revoked");
        assert!(self.refresh_works(&theirs.refresh).await, "another user's refresh token is not revoked");

        let anonymous = self.post("/logout", None, &json!({ "refresh": kept.refresh })).await;
        anonymous.expect(401);
        assert_bearer_challenge(&anonymous, None);
        assert!(self.refresh_works(&kept.refresh).await, "an anonymous logout revokes nothing");
    }

    /// `POST /logout-all`: 204, and the access and refresh tokens of every
    /// session of the user die.
    pub async fn logout_all(&self) {
        let user = self.verified_user("logout-all").await;
        let sessions = [self.sign_in(&user).await, self.sign_in(&user).await, self.sign_in(&user).await];
        let bystander = self.verified_user("logout-all-other").await;
        let theirs = self.sign_in(&bystander).await;

        self.post_empty("/logout-all", Some(&sessions[1].access)).await.expect(204);
        for (i, session) in sessions.iter().enumerate() {
            assert!(!self.access_works(&session.access).await, "session {i}'s access token still works");
            assert!(!self.refresh_works(&session.refresh).await, "session {i}'s refresh token still works");
        }
        assert!(self.access_works(&theirs.access).await, "other users are untouched");
        self.sign_in(&user).await; // logging in again works
        self.post_empty("/logout-all", None).await.expect(401);
    }

    /// `GET /sessions` lists the caller's live sessions, the current one
    /// marked; `DELETE /sessions/<id>` revokes one (204); someone else's id,
    /// an unknown id and a malformed id are 404.
    pub async fn sessions(&self) {
        let user = self.verified_user("sessions").await;
        let mine = self.sign_in(&user).await;
        let other_device = self.sign_in(&user).await;
        let answer = self.get("/sessions", Some(&mine.access)).await;
        answer.expect(200);
        let sessions = answer.get("").as_array().unwrap_or_else(|| panic!("a list: {answer}")).clone();
        assert_eq!(sessions.len(), 2, "both sessions are listed: {answer}");
        for session in &sessions {
            for key in ["id", "created_at", "last_used_at", "ip", "user_agent", "current"] {
                assert!(session.get(key).is_some(), "session member {key} missing: {answer}");
            }
        }
        let current = self.current_session(&mine.access).await;
        assert_eq!(json!(current), mine.claims()["sid"], "`current` marks the caller's session: {answer}");
        let other_id = sessions
            .iter()
            .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
            .find(|id| *id != current)
            .unwrap_or_else(|| panic!("two distinct session ids: {answer}"));

        let stranger = self.verified_user("sessions-stranger").await;
        let theirs = self.sign_in(&stranger).await;
        let their_id = self.current_session(&theirs.access).await;
        self.delete(&format!("/sessions/{their_id}"), Some(&mine.access)).await.expect(404);
        assert!(self.access_works(&theirs.access).await, "someone else's session is not revoked");
        self.delete(&format!("/sessions/{}", Uuid::new_v4()), Some(&mine.access)).await.expect(404);
        self.delete("/sessions/not-a-session-id", Some(&mine.access)).await.expect(404);
        self.delete(&format!("/sessions/{other_id}"), None).await.expect(401);

        self.delete(&format!("/sessions/{other_id}"), Some(&mine.access)).await.expect(204);
        assert!(!self.access_works(&other_device.access).await, "the revoked session's access token is dead");
        assert!(!self.refresh_works(&other_device.refresh).await, "the revoked session's refresh token is dead");
        let after = self.get("/sessions", Some(&mine.access)).await;
        after.expect(200);
        assert_eq!(after.get("").as_array().map(Vec::len), Some(1), "one session left: {after}");
        self.delete(&format!("/sessions/{other_id}"), Some(&mine.access)).await.expect(404);
        self.get("/sessions", None).await.expect(401);
    }

    /// `GET /me` has the contract's shape; `PATCH /me/profile` updates and
    /// answers the profile, 422 on a bad phone number.
    pub async fn profile(&self) {
        let user = self.verified_user("me").await;
        let tokens = self.sign_in(&user).await;
        let me = self.get("/me", Some(&tokens.access)).await;
        me.expect(200);
        assert_eq!(me.str("/id"), user.id, "{me}");
        assert_eq!(me.str("/email"), user.email, "{me}");
        assert_eq!(me.get("/email_verified"), &json!(true), "{me}");
        assert_eq!(me.get("/is_staff"), &json!(false), "{me}");
        assert_eq!(me.get("/is_superuser"), &json!(false), "{me}");
        assert!(me.get("/date_joined").is_string(), "{me}");
        assert_eq!(me.str("/profile/full_name"), FULL_NAME, "{me}");
        assert!(me.get("/profile/phone").is_null(), "{me}");
        assert_eq!(me.get("/memberships"), &json!([]), "{me}");
        assert!(!me.text.contains(PASSWORD) && !me.text.to_lowercase().contains("hash"), "no password material: {me}");

        let update = json!({ "full_name": "Renamed Tester", "phone": "+44 20 7946 0958" });
        let answer = self.patch("/me/profile", Some(&tokens.access), &update).await;
        answer.expect(200);
        assert_eq!(answer.json, update, "the answer is the new profile: {answer}");
        let me = self.get("/me", Some(&tokens.access)).await;
        assert_eq!(me.get("/profile"), &update, "{me}");

        let partial = self.patch("/me/profile", Some(&tokens.access), &json!({ "phone": null })).await;
        partial.expect(200);
        assert_eq!(partial.json, json!({ "full_name": "Renamed Tester", "phone": null }), "{partial}");

        let bad = self.patch("/me/profile", Some(&tokens.access), &json!({ "phone": "call me maybe" })).await;
        bad.expect_invalid("phone");
        let me = self.get("/me", Some(&tokens.access)).await;
        assert!(me.get("/profile/phone").is_null(), "a refused update changes nothing: {me}");
        self.patch("/me/profile", None, &json!({ "full_name": "Nobody" })).await.expect(401);
        self.get("/me", None).await.expect(401);
    }

    /// `POST /password/change`: 400 for a wrong current password, 422 for a
    /// weak new one; 204 then, every other session revoked, the old password
    /// refused.
    pub async fn password_change(&self) {
        let user = self.verified_user("change").await;
        let current = self.sign_in(&user).await;
        let other = self.sign_in(&user).await;

        let wrong = json!({ "current_password": NEW_PASSWORD, "new_password": NEW_PASSWORD });
        self.post("/password/change", Some(&current.access), &wrong).await.expect(400);
        let weak = json!({ "current_password": PASSWORD, "new_password": WEAK_PASSWORD });
        self.post("/password/change", Some(&current.access), &weak).await.expect_invalid("new_password");
        assert!(self.access_works(&other.access).await, "refused changes revoke nothing");
        let change = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
        self.post("/password/change", None, &change).await.expect(401);

        self.post("/password/change", Some(&current.access), &change).await.expect(204);
        assert!(!self.access_works(&other.access).await, "other sessions' access tokens are revoked");
        assert!(!self.refresh_works(&other.refresh).await, "other sessions' refresh tokens are revoked");
        assert!(self.access_works(&current.access).await, "the session that changed it continues");

        let old = self.post("/login", None, &json!({ "email": user.email, "password": PASSWORD })).await;
        old.expect_error(401, "invalid_credentials");
        self.sign_in(&TestUser { password: NEW_PASSWORD.to_owned(), ..user }).await;
    }

    /// Password reset through the mailed token: 202 with the same answer for
    /// an unknown email; confirm 422 for a weak password, 204 then; the token
    /// works once; the old password and every session are dead.
    pub async fn password_reset(&self) {
        let user = self.verified_user("reset").await;
        let before = self.sign_in(&user).await;
        let mails = self.mail_to(&user.email).len();

        let known = self.post("/password/reset", None, &json!({ "email": user.email })).await;
        known.expect(202);
        let unknown = self.post("/password/reset", None, &json!({ "email": self.unique_email("nobody") })).await;
        unknown.expect(202);
        assert_eq!(known.text, unknown.text, "the answer must not reveal whether the account exists");
        let token = self.wait_for_mail(&user.email, mails).await.token();

        let weak = json!({ "token": token, "new_password": WEAK_PASSWORD });
        self.post("/password/reset/confirm", None, &weak).await.expect_invalid("new_password");
        let garbage = json!({ "token": "not-a-reset-token", "new_password": NEW_PASSWORD });
        self.post("/password/reset/confirm", None, &garbage).await.expect_error(400, "invalid_token");
        assert!(self.access_works(&before.access).await, "nothing changed yet");

        let confirm = json!({ "token": token, "new_password": NEW_PASSWORD });
        self.post("/password/reset/confirm", None, &confirm).await.expect(204);
        let reuse = json!({ "token": token, "new_password": "Another-Quite-Long-Passphrase-31" });
        self.post("/password/reset/confirm", None, &reuse).await.expect_error(400, "invalid_token");

        let old = self.post("/login", None, &json!({ "email": user.email, "password": PASSWORD })).await;
        old.expect_error(401, "invalid_credentials");
        assert!(!self.access_works(&before.access).await, "every session's access token is revoked");
        assert!(!self.refresh_works(&before.refresh).await, "every session's refresh token is revoked");
        self.sign_in(&TestUser { password: NEW_PASSWORD.to_owned(), ..user }).await;
    }

    /// `POST /tenants` (201, the caller its highest role), `GET /tenants`
    /// (only the caller's), 422 on a bad name, 401 without a token.
    pub async fn tenants(&self) {
        let [owner_role, _, _] = &self.roles;
        let user = self.verified_user("tenants").await;
        let tokens = self.sign_in(&user).await;
        let name = format!("Acme {}", Uuid::new_v4().simple());
        let answer = self.post("/tenants", Some(&tokens.access), &json!({ "name": name })).await;
        answer.expect(201);
        let id = answer.str("/id").to_owned();
        assert!(id.parse::<Uuid>().is_ok(), "{answer}");
        assert_eq!(answer.str("/name"), name, "{answer}");
        assert_eq!(answer.str("/role"), owner_role, "the creator is the owner: {answer}");

        let list = self.get("/tenants", Some(&tokens.access)).await;
        list.expect(200);
        assert_eq!(list.json, json!([{ "id": id, "name": name, "role": owner_role }]), "{list}");
        let me = self.get("/me", Some(&tokens.access)).await;
        assert_eq!(me.str("/memberships/0/tenant_id"), id, "{me}");
        assert_eq!(me.str("/memberships/0/role"), owner_role, "{me}");

        let stranger = self.verified_user("tenants-stranger").await;
        let theirs = self.sign_in(&stranger).await;
        let their_list = self.get("/tenants", Some(&theirs.access)).await;
        assert_eq!(their_list.json, json!([]), "tenants are private to their members: {their_list}");

        self.post("/tenants", Some(&tokens.access), &json!({ "name": "   " })).await.expect_invalid("name");
        self.post("/tenants", Some(&tokens.access), &json!({})).await.expect_invalid("name");
        self.post("/tenants", None, &json!({ "name": "Anonymous" })).await.expect(401);
        self.get("/tenants", None).await.expect(401);
    }

    /// Tenant members: listing needs a token scoped to that tenant; adding is
    /// 201, 409 again, 404 for an unknown user, 422 for an unknown role, 403
    /// for a role above the actor's own or an actor without the right;
    /// removing is 204, and the last owner cannot be removed (403).
    pub async fn tenant_members(&self) {
        let [owner_role, admin_role, member_role] = &self.roles;
        let owner = self.verified_user("owner").await;
        let owner_tokens = self.sign_in(&owner).await;
        let tenant = self.create_tenant(&owner_tokens.access).await;
        let members = format!("/tenants/{tenant}/members");

        self.get(&members, Some(&owner_tokens.access)).await.expect(403);
        let owner_scoped = self.scoped(&owner_tokens.access, &tenant).await;
        let list = self.get(&members, Some(&owner_scoped.access)).await;
        list.expect(200);
        assert_eq!(list.json, json!([{ "user_id": owner.id, "email": owner.email, "role": owner_role }]), "{list}");

        let member = self.verified_user("member").await;
        let admin = self.verified_user("admin").await;
        let newcomer = self.verified_user("newcomer").await;
        let add = |email: &str, role: &str| json!({ "email": email, "role": role });

        let added = self.post(&members, Some(&owner_scoped.access), &add(&member.email, member_role)).await;
        added.expect(201);
        assert_eq!(added.json, json!({ "user_id": member.id, "email": member.email, "role": member_role }), "{added}");
        let again = self.post(&members, Some(&owner_scoped.access), &add(&member.email, admin_role)).await;
        again.expect(409);
        let nobody = self.unique_email("nobody");
        self.post(&members, Some(&owner_scoped.access), &add(&nobody, member_role)).await.expect(404);
        let emperor = self.post(&members, Some(&owner_scoped.access), &add(&newcomer.email, "emperor")).await;
        emperor.expect_invalid("role");
        self.post(&members, Some(&owner_scoped.access), &add(&admin.email, admin_role)).await.expect(201);
        self.post(&members, Some(&owner_tokens.access), &add(&newcomer.email, member_role)).await.expect(403);
        self.post(&members, None, &add(&newcomer.email, member_role)).await.expect(401);
        // Who is asking is checked before the body is read: a token of no tenant is refused, not parsed.
        self.post_raw(&members, Some(&owner_tokens.access), "{ not json").await.expect_error(403, "not_a_member");
        self.post_raw(&members, None, "{ not json").await.expect_error(401, "missing_token");

        // A member may look but not manage.
        let member_scoped = self.scoped(&self.sign_in(&member).await.access, &tenant).await;
        let list = self.get(&members, Some(&member_scoped.access)).await;
        list.expect(200);
        assert_eq!(list.json.as_array().map(Vec::len), Some(3), "{list}");
        self.post(&members, Some(&member_scoped.access), &add(&newcomer.email, member_role)).await.expect(403);
        let refused = self.post_raw(&members, Some(&member_scoped.access), r#"{"email": 7}"#).await;
        refused.expect_error(403, "insufficient_role");
        let remove_admin = format!("{members}/{}", admin.id);
        self.delete(&remove_admin, Some(&member_scoped.access)).await.expect(403);

        // An admin manages, but grants nothing above their own role.
        let admin_scoped = self.scoped(&self.sign_in(&admin).await.access, &tenant).await;
        self.post(&members, Some(&admin_scoped.access), &add(&newcomer.email, owner_role)).await.expect(403);
        let granted = self.post(&members, Some(&admin_scoped.access), &add(&newcomer.email, member_role)).await;
        granted.expect(201);
        self.delete(&format!("{members}/{}", newcomer.id), Some(&admin_scoped.access)).await.expect(204);
        let list = self.get(&members, Some(&owner_scoped.access)).await;
        let ids: Vec<&str> = list.json.as_array().into_iter().flatten().filter_map(|m| m["user_id"].as_str()).collect();
        assert!(!ids.contains(&newcomer.id.as_str()) && ids.len() == 3, "the removed member is gone: {list}");

        // Another tenant is out of reach of this tenant's tokens.
        let other_tenant = self.create_tenant(&owner_tokens.access).await;
        let other_members = format!("/tenants/{other_tenant}/members");
        self.get(&other_members, Some(&owner_scoped.access)).await.expect(403);
        self.post(&other_members, Some(&owner_scoped.access), &add(&newcomer.email, member_role)).await.expect(403);
        let intruder = self.verified_user("intruder").await;
        let intruder_tokens = self.sign_in(&intruder).await;
        let intruder_tenant = self.create_tenant(&intruder_tokens.access).await;
        let intruder_scoped = self.scoped(&intruder_tokens.access, &intruder_tenant).await;
        self.get(&members, Some(&intruder_scoped.access)).await.expect(403);
        self.post_raw(&members, Some(&intruder_scoped.access), "[1, 2]").await.expect_error(403, "not_a_member");
        self.delete(&format!("{members}/{}", member.id), Some(&intruder_scoped.access)).await.expect(403);

        // The last owner stays.
        let last = self.delete(&format!("{members}/{}", owner.id), Some(&owner_scoped.access)).await;
        last.expect(403);
        let list = self.get(&members, Some(&owner_scoped.access)).await;
        assert!(list.text.contains(&owner.id), "the last owner is still a member: {list}");
        self.delete(&format!("{members}/{}", member.id), Some(&owner_scoped.access)).await.expect(204);
        self.delete(&format!("{members}/not-a-user-id"), Some(&owner_scoped.access)).await.expect(404);
    }

    /// `POST /token/tenant` and `login` with `tenant_id`: scoped tokens whose
    /// role comes from the membership, never from the request; 403 for a
    /// non-member; scoped sessions stay scoped across refresh; the scoped
    /// tokens belong to the caller's login (one session, ended by its logout).
    pub async fn tenant_token(&self) {
        let [owner_role, _, member_role] = &self.roles;
        let owner = self.verified_user("scope-owner").await;
        let owner_tokens = self.sign_in(&owner).await;
        let tenant = self.create_tenant(&owner_tokens.access).await;

        let answer = self.post("/token/tenant", Some(&owner_tokens.access), &json!({ "tenant_id": tenant })).await;
        answer.expect(200);
        assert_eq!(answer.str("/token_type"), "Bearer", "{answer}");
        let scoped = Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() };
        let claims = scoped.claims();
        assert_eq!(claims["tenant_id"], json!(tenant), "{claims}");
        assert_eq!(claims["role"], json!(owner_role), "{claims}");
        assert_eq!(claims["sub"], json!(owner.id), "{claims}");
        let rotated = self.refreshed(&scoped.refresh).await;
        let rotated_claims = rotated.claims();
        assert_eq!(
            (&rotated_claims["tenant_id"], &rotated_claims["role"]),
            (&json!(tenant), &json!(owner_role)),
            "{rotated_claims}"
        );
        // The scoped tokens belong to the caller's login: listed once, ended with it.
        assert_eq!(claims["sid"], owner_tokens.claims()["sid"], "scoped tokens carry the login's sid: {claims}");
        let sessions = self.get("/sessions", Some(&owner_tokens.access)).await;
        assert_eq!(sessions.get("").as_array().map(Vec::len), Some(1), "the login is listed once: {sessions}");
        let logout = json!({ "refresh": owner_tokens.refresh });
        self.post("/logout", Some(&owner_tokens.access), &logout).await.expect(204);
        assert!(!self.access_works(&rotated.access).await, "the login's logout ends its tenant-scoped access token");
        assert!(!self.refresh_works(&rotated.refresh).await, "the login's logout ends its tenant-scoped refresh token");
        let owner_tokens = self.sign_in(&owner).await;

        let member = self.verified_user("scope-member").await;
        let owner_scoped = self.scoped(&owner_tokens.access, &tenant).await;
        let add = json!({ "email": member.email, "role": member_role });
        self.post(&format!("/tenants/{tenant}/members"), Some(&owner_scoped.access), &add).await.expect(201);
        let member_tokens = self.sign_in(&member).await;
        let greedy = json!({ "tenant_id": tenant, "role": owner_role });
        let answer = self.post("/token/tenant", Some(&member_tokens.access), &greedy).await;
        answer.expect(200);
        let claims = jwt_part(answer.str("/access"), 1);
        assert_eq!(claims["role"], json!(member_role), "the role comes from the membership: {claims}");

        let login = json!({ "email": member.email, "password": member.password, "tenant_id": tenant });
        let answer = self.post("/login", None, &login).await;
        answer.expect(200);
        let claims = jwt_part(answer.str("/access"), 1);
        assert_eq!((&claims["tenant_id"], &claims["role"]), (&json!(tenant), &json!(member_role)), "{claims}");

        let outsider = self.verified_user("scope-outsider").await;
        let outsider_tokens = self.sign_in(&outsider).await;
        self.post("/token/tenant", Some(&outsider_tokens.access), &json!({ "tenant_id": tenant })).await.expect(403);
        let unknown = json!({ "tenant_id": Uuid::new_v4().to_string() });
        self.post("/token/tenant", Some(&outsider_tokens.access), &unknown).await.expect(403);
        let login = json!({ "email": outsider.email, "password": outsider.password, "tenant_id": tenant });
        self.post("/login", None, &login).await.expect(403);
        let malformed = json!({ "tenant_id": "not-a-tenant" });
        self.post("/token/tenant", Some(&outsider_tokens.access), &malformed).await.expect_invalid("tenant_id");
        self.post("/token/tenant", None, &json!({ "tenant_id": tenant })).await.expect(401);
    }

    /// `<base>/jwks.json` and `/.well-known/jwks.json` publish the same public
    /// keys (`kid`, `alg`, `use: "sig"`, no private members), and a stock JWT
    /// library verifies an issued access token with them alone.
    pub async fn jwks(&self) {
        let mounted = self.get("/jwks.json", None).await;
        mounted.expect(200);
        let well_known = self.send(Method::Get, "/.well-known/jwks.json", None, None, &[]).await;
        well_known.expect(200);
        assert_eq!(mounted.json, well_known.json, "both JWKS documents are the same");
        let keys = mounted.get("/keys").as_array().unwrap_or_else(|| panic!("`keys` is a list: {mounted}"));
        assert!(!keys.is_empty(), "at least one public key: {mounted}");
        for key in keys {
            assert!(key["kid"].is_string() && key["alg"].is_string(), "each key has kid and alg: {key}");
            assert_eq!(key["use"], json!("sig"), "{key}");
            for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
                assert!(key.get(private).is_none(), "private member {private:?} published: {key}");
            }
        }

        let user = self.verified_user("jwks").await;
        let tokens = self.sign_in(&user).await;
        let claims = self
            .verify_with_jwks(&tokens.access)
            .await
            .unwrap_or_else(|e| panic!("a stock JWT library must verify an access token with the JWKS alone: {e}"));
        assert_eq!(claims["sub"], json!(user.id), "{claims}");
        let header = tokens.header();
        let published = keys.iter().find(|k| k["kid"] == header["kid"]).expect("the signing key is published");
        assert_eq!(published["alg"], header["alg"], "the JWK's alg is the token's: {published}");
        for (label, forged) in self.forged_tokens(&tokens.access).await {
            assert!(self.verify_with_jwks(&forged).await.is_err(), "a {label} token must not verify");
        }
    }

    /// `<base>/openapi.json` is an OpenAPI 3 document listing `<base>/login`.
    pub async fn openapi(&self) {
        let answer = self.get("/openapi.json", None).await;
        answer.expect(200);
        assert!(answer.str("/openapi").starts_with("3."), "OpenAPI 3.x: {answer}");
        let paths = answer.get("/paths").as_object().unwrap_or_else(|| panic!("`paths` is an object: {answer}"));
        let login =
            paths.get(&self.at("/login")).unwrap_or_else(|| panic!("{} is listed: {answer}", self.at("/login")));
        assert!(login.get("post").is_some(), "POST {} is described: {login}", self.at("/login"));
        for path in ["/register", "/refresh", "/me", "/jwks.json"] {
            assert!(paths.contains_key(&self.at(path)), "{} is listed", self.at(path));
        }
    }

    /// Every error answer, whatever the client sends, has the contract's body
    /// and is never a 500.
    pub async fn error_bodies(&self) {
        let user = self.verified_user("errors").await;
        let tokens = self.sign_in(&user).await;
        let bearer = Some(tokens.access.as_str());
        let uuid = Uuid::new_v4().to_string();
        let oversized_token = "x".repeat(8000);
        let requests: Vec<(Method, String, Option<&str>, Option<String>)> = vec![
            (Method::Get, self.at("/no-such-endpoint"), None, None),
            (Method::Get, self.at("/login"), None, None),
            (Method::Delete, self.at("/register"), bearer, None),
            (Method::Post, self.at("/login"), None, None),
            (Method::Post, self.at("/login"), None, Some("[]".into())),
            (Method::Post, self.at("/login"), None, Some("null".into())),
            (Method::Post, self.at("/login"), None, Some(r#"{"email": ["a"], "password": {}}"#.into())),
            (Method::Post, self.at("/login"), None, Some("\u{0}\u{1}binary".into())),
            (
                Method::Post,
                self.at("/login"),
                None,
                Some(format!(r#"{{"email": "{}", "password": "x"}}"#, "a".repeat(5000))),
            ),
            (
                Method::Post,
                self.at("/login"),
                None,
                Some(format!(r#"{{"email": "a@example.com", "password": "{}"}}"#, "p".repeat(4000))),
            ),
            (Method::Post, self.at("/refresh"), None, Some(r#"{"refresh": 12}"#.into())),
            (Method::Post, self.at("/refresh"), None, Some(format!(r#"{{"refresh": "{}"}}"#, "r".repeat(10_000)))),
            (Method::Post, self.at("/verify-email"), None, Some(r#"{"token": ""}"#.into())),
            (Method::Post, self.at("/password/reset"), None, Some(r#"{"email": "not an email"}"#.into())),
            (Method::Post, self.at("/password/reset/confirm"), None, Some(r#"{"token": "x"}"#.into())),
            (Method::Patch, self.at("/me/profile"), bearer, Some(r#"{"full_name": 7}"#.into())),
            (
                Method::Patch,
                self.at("/me/profile"),
                bearer,
                Some(format!(r#"{{"full_name": "{}"}}"#, "n".repeat(5000))),
            ),
            (Method::Post, self.at("/tenants"), bearer, Some(format!(r#"{{"name": "{}"}}"#, "t".repeat(5000)))),
            (Method::Get, self.at(&format!("/tenants/{uuid}/members")), bearer, None),
            (Method::Get, self.at("/tenants/%00%ff/members"), bearer, None),
            (Method::Delete, self.at(&format!("/tenants/{uuid}/members/{uuid}")), bearer, None),
            (Method::Delete, self.at("/sessions/%27%20OR%201=1--"), bearer, None),
            (Method::Post, self.at("/token/tenant"), bearer, Some(r#"{"tenant_id": null}"#.into())),
            (Method::Get, self.at("/me"), Some("a.b.c"), None),
            (Method::Get, self.at("/me"), Some(&oversized_token), None),
        ];
        for (method, uri, bearer, body) in requests {
            let answer = self.send(method, &uri, bearer, body, &[]).await;
            // `send` has checked the body of every error; these must all be errors.
            assert!(answer.status >= 400, "expected an error answer: {answer}");
        }
    }

    /// A path of the contract asked with a method it does not take: `405`
    /// with the contract's body and `Allow` listing the methods it takes;
    /// an unknown path stays `404`, and so does a route's own 404.
    pub async fn method_not_allowed(&self) {
        let session = format!("/sessions/{}", Uuid::new_v4());
        let members = format!("/tenants/{}/members", Uuid::new_v4());
        let cases = [
            (Method::Put, "/login", "POST"),
            (Method::Get, "/login", "POST"),
            (Method::Delete, "/me", "GET, HEAD"),
            (Method::Post, "/me", "GET, HEAD"),
            (Method::Post, "/me/profile", "PATCH"),
            (Method::Get, session.as_str(), "DELETE"),
            (Method::Put, members.as_str(), "GET, HEAD, POST"),
            (Method::Patch, "/verify-email", "GET, HEAD, POST"),
        ];
        for (method, path, allow) in cases {
            let answer = self.send(method, &self.at(path), None, None, &[]).await;
            answer.expect_error(405, "method_not_allowed");
            assert_eq!(answer.allow.as_deref(), Some(allow), "{answer}");
        }
        self.send(Method::Put, &self.at("/no-such-endpoint"), None, None, &[]).await.expect_error(404, "not_found");
        let unknown_provider = self.at("/oauth/no-such-provider/authorize");
        self.send(Method::Get, &unknown_provider, None, None, &[]).await.expect_error(404, "not_found");
    }

    /// The seed's paths end in a slash: `<base>/register/`, `<base>/login/`,
    /// … behave like their slash-less forms.
    pub async fn trailing_slashes(&self) {
        let email = self.unique_email("slash");
        let body = json!({ "email": email, "password": PASSWORD, "full_name": FULL_NAME });
        let registered = self.post("/register/", None, &body).await;
        registered.expect(201);
        let user =
            TestUser { id: registered.str("/id").to_owned(), email: email.clone(), password: PASSWORD.to_owned() };
        let token = self.wait_for_mail(&email, 0).await.token();
        self.post("/verify-email/", None, &json!({ "token": token })).await.expect(200);
        let login = self.post("/login/", None, &json!({ "email": email, "password": PASSWORD })).await;
        login.expect(200);
        let access = login.str("/access").to_owned();
        let refresh = login.str("/refresh").to_owned();
        let me = self.get("/me/", Some(&access)).await;
        me.expect(200);
        assert_eq!(me.str("/id"), user.id, "{me}");
        self.get("/sessions/", Some(&access)).await.expect(200);
        self.get("/tenants/", Some(&access)).await.expect(200);
        self.get("/jwks.json/", None).await.expect(200);
        self.get("/me/", None).await.expect(401);
        let rotated = self.post("/refresh/", None, &json!({ "refresh": refresh })).await;
        rotated.expect(200);
        self.post_empty("/logout-all/", Some(rotated.str("/access"))).await.expect(204);
    }
}

/// Panics unless `answer` carries an RFC 6750 challenge: `Bearer` alone for a
/// missing token (`error == None`), `Bearer error="<error>"` otherwise.
#[track_caller]
pub fn assert_bearer_challenge(answer: &Answer, error: Option<&str>) {
    let challenge = answer.www_authenticate.as_deref().unwrap_or_else(|| panic!("no WWW-Authenticate: {answer}"));
    assert!(challenge.starts_with("Bearer"), "the challenge is a Bearer one: {answer}");
    match error {
        None => assert!(!challenge.contains("error="), "a missing token carries no error code: {answer}"),
        Some(error) => {
            let expected = format!("error=\"{error}\"");
            assert!(challenge.contains(&expected), "expected {expected} in WWW-Authenticate: {answer}");
        }
    }
}
