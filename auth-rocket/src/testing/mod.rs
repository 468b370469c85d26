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
//! mailer uses [`Conformance::with_outbox`]. The operators' check makes its
//! superusers through the app's [`Auth`](auth_core::Auth), as the CLI's
//! `create-superuser` does (no route makes one), and registers a page of users
//! of its own.
//!
//! [`AuthFairing::customize`]: crate::AuthFairing::customize

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use auth_core::mail::MemoryMailer;
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use rocket::{
    http::{ContentType, Header as HttpHeader, Method},
    local::asynchronous::Client,
};
use serde_json::{Value, json};
use uuid::Uuid;

mod answer;
mod checks;
mod mail;
mod tokens;

pub use answer::{Answer, assert_bearer_challenge};
use mail::Mailbox;
pub use mail::{Mail, outbox_mail};
pub use tokens::Tokens;

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
/// A fresh client address for each request of the kit, in 198.18.0.0/15
/// (RFC 2544, for benchmarks): the app's per-IP quotas never add the kit's
/// requests up, as they would in the one quota of requests without an address.
fn next_client_address() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let host = NEXT.fetch_add(1, Ordering::Relaxed) % (1 << 17);
    SocketAddr::from((Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + host), 40000))
}

/// A user the kit registered.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
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

    /// Brings `user` into `tenant` with `role` the only way there is: invited
    /// through `manager_access` (a token of that tenant with the right to
    /// manage members), the link read from the mail, accepted by `user`.
    pub async fn join(&self, manager_access: &str, tenant: &str, user: &TestUser, role: &str) {
        let before = self.mail_to(&user.email).len();
        let invite = json!({ "email": user.email, "role": role });
        self.post(&format!("/tenants/{tenant}/invitations"), Some(manager_access), &invite).await.expect(202);
        let token = self.wait_for_mail(&user.email, before).await.token();
        let access = self.sign_in(user).await.access;
        self.post("/invitations/accept", Some(&access), &json!({ "token": token })).await.expect(201);
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
        // Each check on the heap: their futures, and the in-process server's under them, do not add up on
        // the test thread's stack (a debug build's futures are large).
        Box::pin(self.registration()).await;
        Box::pin(self.email_verification()).await;
        Box::pin(self.login()).await;
        Box::pin(self.bearer_tokens()).await;
        Box::pin(self.refresh_rotation()).await;
        Box::pin(self.concurrent_refresh()).await;
        Box::pin(self.logout()).await;
        Box::pin(self.logout_all()).await;
        Box::pin(self.sessions()).await;
        Box::pin(self.profile()).await;
        Box::pin(self.account_export()).await;
        Box::pin(self.email_change()).await;
        Box::pin(self.account_deletion()).await;
        Box::pin(self.password_change()).await;
        Box::pin(self.password_reset()).await;
        Box::pin(self.tenants()).await;
        Box::pin(self.tenant_members()).await;
        Box::pin(self.invitations()).await;
        Box::pin(self.member_roles_and_leaving()).await;
        Box::pin(self.tenant_token()).await;
        Box::pin(self.jwks()).await;
        Box::pin(self.openapi()).await;
        Box::pin(self.error_bodies()).await;
        Box::pin(self.method_not_allowed()).await;
        Box::pin(self.trailing_slashes()).await;
        Box::pin(self.operators()).await;
        Box::pin(self.activity()).await;
        Box::pin(self.mfa()).await;
        Box::pin(self.tenant_mfa()).await;
        Box::pin(self.passkeys()).await;
    }
}
