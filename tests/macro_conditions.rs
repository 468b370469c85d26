//! `#[requires(...)]` over HTTP: every condition's allow and deny paths on a
//! small host app, the order of guards (the policy answers before the body is
//! parsed), the route listing, and the release check of unmarked routes.
//!
//! Tokens are minted with the app's own key set, so each test states exactly
//! the claims it means (tenant, role, staff, superuser, verified, how and when
//! the user signed in) without walking the account flows, which the
//! conformance suites cover; one test walks a real sign-in through step-up.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use auth_core::{
    Auth, AuthConfig, Clock,
    config::{MailTransport, Secret},
    identity::AccountFlags,
    tokens::{AccessGrant, AccessTokens, AuthMethod},
};
use auth_platform::{Roles, public, requires};
use auth_rocket::{
    AuthFairing, AuthUser,
    policy::{Condition, route_table, unmarked_routes},
};
use common::{Backend, PASSWORD, TestDatabase, figment, quiet, test_config};
use rocket::{
    Build, Rocket, State,
    figment::{Figment, providers::Serialized},
    get,
    http::{ContentType, Header, Method, Status},
    local::asynchronous::{Client, LocalResponse},
    post, routes,
    serde::json::{Json, Value, json},
};
use uuid::Uuid;

/// How many handler bodies of one app ran; a denied request must not add to it.
#[derive(Default)]
struct Ran(AtomicUsize);

impl Ran {
    fn count(&self) -> &'static str {
        self.0.fetch_add(1, Ordering::SeqCst);
        "ok"
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[requires(authenticated)]
#[get("/authenticated")]
fn authenticated(ran: &State<Ran>) -> &'static str {
    ran.count()
}

#[requires(role = "member", tenant)]
#[get("/tenant/<tenant_id>/data")]
fn tenant_data(ran: &State<Ran>, tenant_id: &str) -> &'static str {
    let _ = tenant_id;
    ran.count()
}

#[requires(role = "admin", tenant)]
#[get("/tenant/<tenant_id>/admin")]
fn tenant_admin(ran: &State<Ran>, tenant_id: &str) -> &'static str {
    let _ = tenant_id;
    ran.count()
}

#[requires(tenant = "org_id")]
#[get("/org/<org_id>/data")]
fn org_data(ran: &State<Ran>, org_id: &str) -> &'static str {
    let _ = org_id;
    ran.count()
}

/// `role` without `tenant`: an admin of whichever tenant the token is scoped to.
#[requires(role = "admin")]
#[get("/some-tenant-admin")]
fn some_tenant_admin(ran: &State<Ran>) -> &'static str {
    ran.count()
}

/// Any tenant on purpose: the admin role of whichever tenant the token is
/// scoped to; the path's `<tenant_id>` is not compared with it.
#[requires(role = "admin", any_tenant)]
#[get("/tenant/<tenant_id>/any-tenant-admin")]
fn any_tenant_admin(ran: &State<Ran>, tenant_id: &str) -> &'static str {
    let _ = tenant_id;
    ran.count()
}

#[requires(staff)]
#[get("/staff")]
fn staff(ran: &State<Ran>) -> &'static str {
    ran.count()
}

#[requires(superuser)]
#[get("/superuser")]
fn superuser(ran: &State<Ran>) -> &'static str {
    ran.count()
}

/// The handler still reads the identity: the token is verified once.
#[requires(verified)]
#[get("/verified")]
fn verified(ran: &State<Ran>, user: AuthUser) -> String {
    ran.count();
    user.id().to_string()
}

#[requires(permission = "members.manage", tenant)]
#[get("/tenant/<tenant_id>/members")]
fn manage_members(ran: &State<Ran>, tenant_id: &str) -> &'static str {
    let _ = tenant_id;
    ran.count()
}

#[requires(any(staff, role = "owner"))]
#[get("/support")]
fn support(ran: &State<Ran>) -> &'static str {
    ran.count()
}

#[requires(verified, role = "admin", tenant)]
#[post("/tenant/<tenant_id>/import", data = "<body>")]
fn import(ran: &State<Ran>, tenant_id: &str, body: Json<Vec<u32>>) -> Json<Value> {
    ran.count();
    Json(json!({ "tenant_id": tenant_id, "rows": body.len() }))
}

#[requires(mfa)]
#[get("/mfa")]
fn mfa(ran: &State<Ran>) -> &'static str {
    ran.count()
}

/// A window shorter than an access token's life (5 minutes): a test moves the
/// clock past it and the token is still valid.
#[requires(recent_auth = "2m")]
#[get("/recent")]
fn recent(ran: &State<Ran>) -> &'static str {
    ran.count()
}

/// Step-up beside the other conditions, and a body that is read only once all hold.
#[requires(role = "admin", tenant, mfa, recent_auth = "10m")]
#[post("/tenant/<tenant_id>/close", data = "<body>")]
fn close_tenant(ran: &State<Ran>, tenant_id: &str, body: Json<Value>) -> &'static str {
    let _ = (tenant_id, body);
    ran.count()
}

#[requires(any(mfa, recent_auth = "2m"))]
#[get("/either-step-up")]
fn either_step_up(ran: &State<Ran>) -> &'static str {
    ran.count()
}

#[requires(any(staff, mfa))]
#[get("/staff-or-mfa")]
fn staff_or_mfa(ran: &State<Ran>) -> &'static str {
    ran.count()
}

#[public]
#[get("/open")]
fn open() -> &'static str {
    "open"
}

#[get("/forgotten")]
fn forgotten() -> &'static str {
    "open by mistake"
}

/// An app's own roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Roles)]
enum Newsroom {
    #[grants("articles.publish")]
    Editor,
    #[role(rename = "author")]
    #[grants("articles.write")]
    Writer,
    #[grants("articles.read")]
    Reader,
}

#[requires(permission = "articles.read", roles = Newsroom)]
#[get("/articles")]
fn articles(ran: &State<Ran>) -> &'static str {
    ran.count()
}

#[requires(role = "author", tenant, roles = Newsroom)]
#[get("/tenant/<tenant_id>/drafts")]
fn drafts(ran: &State<Ran>, tenant_id: &str) -> &'static str {
    let _ = tenant_id;
    ran.count()
}

fn host_routes() -> Vec<rocket::Route> {
    routes![
        authenticated,
        tenant_data,
        tenant_admin,
        org_data,
        some_tenant_admin,
        any_tenant_admin,
        staff,
        superuser,
        verified,
        manage_members,
        support,
        import,
        mfa,
        recent,
        close_tenant,
        either_step_up,
        staff_or_mfa,
        open
    ]
}

fn host(figment: rocket::figment::Figment) -> Rocket<Build> {
    host_with(figment, AuthFairing::default())
}

fn host_with(figment: rocket::figment::Figment, fairing: AuthFairing) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(fairing)
        .mount("/api/auth", auth_rocket::routes())
        .mount("/", auth_rocket::well_known())
        .mount("/api", host_routes())
        .register("/", auth_rocket::catchers())
        .manage(Ran::default())
}

/// An app under test and a way to mint its tokens.
struct App {
    client: Client,
    tokens: AccessTokens,
    clock: Clock,
    _db: TestDatabase,
}

impl App {
    async fn new(build: impl FnOnce(rocket::figment::Figment) -> Rocket<Build>) -> Self {
        Self::start(build, Clock::system()).await
    }

    /// The host app on a manual clock, shared by its engine and the tokens minted here.
    async fn with_clock(clock: Clock) -> Self {
        let engine = clock.clone();
        let fairing = AuthFairing::default().customize(move |builder| builder.clock(engine.clone()));
        Self::start(|figment| host_with(figment, fairing), clock).await
    }

    async fn start(build: impl FnOnce(rocket::figment::Figment) -> Rocket<Build>, clock: Clock) -> Self {
        let db = TestDatabase::new(Backend::Sqlite).await;
        let config = test_config(&db.url);
        let client = Client::tracked(build(figment(&config))).await.expect("the app ignites");
        let auth = client.rocket().state::<Auth>().expect("the app manages an Auth");
        let config = auth.config();
        let tokens =
            AccessTokens::new((*auth.keys()).clone(), &config.issuer, &config.audience, &config.tokens, clock.clone());
        Self { client, tokens, clock, _db: db }
    }

    fn auth(&self) -> &Auth {
        self.client.rocket().state::<Auth>().expect("the app manages an Auth")
    }

    fn token(&self, grant: Grant) -> String {
        let signed_in = self.clock.now().timestamp() - i64::try_from(grant.signed_in_secs_ago).unwrap();
        let grant = AccessGrant {
            user_id: grant.user,
            session_id: Uuid::new_v4(),
            tenant: grant.tenant.map(|(id, role)| (id, role.to_owned())),
            account: AccountFlags { staff: grant.staff, superuser: grant.superuser, email_verified: grant.verified },
            amr: grant.amr.iter().map(|value| (*value).to_owned()).collect(),
            auth_time: signed_in,
        };
        self.tokens.mint(&grant).expect("mint a token").0
    }

    async fn get(&self, path: &str, token: Option<&str>) -> LocalResponse<'_> {
        let mut request = self.client.get(path.to_owned());
        if let Some(token) = token {
            request.add_header(Header::new("Authorization", format!("Bearer {token}")));
        }
        request.dispatch().await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &str) -> LocalResponse<'_> {
        let mut request = self.client.post(path.to_owned()).header(ContentType::JSON).body(body);
        if let Some(token) = token {
            request.add_header(Header::new("Authorization", format!("Bearer {token}")));
        }
        request.dispatch().await
    }

    /// `POST /api/auth/refresh`: the new access and refresh tokens.
    async fn refresh(&self, refresh: &str) -> (String, String) {
        let answer = self.post("/api/auth/refresh", None, &json!({ "refresh": refresh }).to_string()).await;
        assert_eq!(answer.status(), Status::Ok);
        let pair: Value = answer.into_json().await.expect("tokens");
        let token = |name: &str| pair[name].as_str().unwrap_or_else(|| panic!("no {name}: {pair}")).to_owned();
        (token("access"), token("refresh"))
    }

    fn ran(&self) -> usize {
        self.client.rocket().state::<Ran>().expect("the app counts its handlers").get()
    }

    /// `GET path` with `token` answers `status` (and for errors, `code`),
    /// and a denied request never runs the handler. Returns the answer's
    /// `WWW-Authenticate`.
    async fn expect(&self, path: &str, token: Option<&str>, status: u16, code: Option<&str>) -> Option<String> {
        let before = self.ran();
        let response = self.get(path, token).await;
        let answered = response.status().code;
        let challenge = response.headers().get_one("WWW-Authenticate").map(str::to_owned);
        let body = response.into_string().await.unwrap_or_default();
        assert_eq!(answered, status, "GET {path}: {body}");
        if let Some(code) = code {
            let body: Value = serde_json::from_str(&body).expect("a JSON error body");
            assert_eq!(body["error"]["code"], code, "GET {path}");
        }
        if status == 401 {
            let bearer = challenge.as_deref().is_some_and(|c| c.starts_with("Bearer"));
            assert!(bearer, "GET {path}: 401 without WWW-Authenticate");
        }
        if status >= 400 {
            assert_eq!(self.ran(), before, "GET {path}: the handler ran although denied");
        }
        challenge
    }
}

/// The claims of a minted token.
#[derive(Clone, Copy)]
struct Grant {
    user: Uuid,
    tenant: Option<(Uuid, &'static str)>,
    staff: bool,
    superuser: bool,
    verified: bool,
    /// How the user signed in.
    amr: &'static [&'static str],
    /// How long before the token (by the app's clock) the user signed in.
    signed_in_secs_ago: u64,
}

impl Grant {
    /// Signed in with a password just now.
    fn user() -> Self {
        Self {
            user: Uuid::new_v4(),
            tenant: None,
            staff: false,
            superuser: false,
            verified: true,
            amr: &["pwd"],
            signed_in_secs_ago: 0,
        }
    }

    fn scoped(tenant: Uuid, role: &'static str) -> Self {
        Self { tenant: Some((tenant, role)), ..Self::user() }
    }
}

#[tokio::test]
async fn a_missing_or_bad_token_is_401_with_a_challenge() {
    let app = App::new(host).await;
    let tenant = Uuid::new_v4();
    let paths = [
        "/api/authenticated".to_owned(),
        format!("/api/tenant/{tenant}/data"),
        "/api/staff".to_owned(),
        "/api/support".to_owned(),
    ];
    for path in &paths {
        app.expect(path, None, 401, Some("missing_token")).await;
        app.expect(path, Some("not.a.jwt"), 401, Some("invalid_token")).await;
    }
    let forged = app.token(Grant::scoped(tenant, "owner")) + "x";
    app.expect(&format!("/api/tenant/{tenant}/data"), Some(&forged), 401, Some("invalid_token")).await;
}

#[tokio::test]
async fn authenticated_admits_any_valid_token() {
    let app = App::new(host).await;
    let unverified = Grant { verified: false, ..Grant::user() };
    app.expect("/api/authenticated", Some(&app.token(unverified)), 200, None).await;
    app.expect("/api/authenticated", Some(&app.token(Grant::scoped(Uuid::new_v4(), "member"))), 200, None).await;
}

#[tokio::test]
async fn tenant_and_role_compare_the_path_with_the_token() {
    let app = App::new(host).await;
    let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
    let member = app.token(Grant::scoped(tenant, "member"));
    let admin = app.token(Grant::scoped(tenant, "admin"));
    let owner = app.token(Grant::scoped(tenant, "owner"));
    let unscoped = app.token(Grant::user());

    app.expect(&format!("/api/tenant/{tenant}/data"), Some(&member), 200, None).await;
    // Another tenant's path, or a token scoped to none: not a member here.
    app.expect(&format!("/api/tenant/{other}/data"), Some(&member), 403, Some("not_a_member")).await;
    app.expect(&format!("/api/tenant/{tenant}/data"), Some(&unscoped), 403, Some("not_a_member")).await;
    // The tenant is checked before the role: a foreign token learns nothing of its role.
    app.expect(&format!("/api/tenant/{other}/admin"), Some(&member), 403, Some("not_a_member")).await;

    // Roles are ordered: owner > admin > member.
    app.expect(&format!("/api/tenant/{tenant}/admin"), Some(&member), 403, Some("insufficient_role")).await;
    app.expect(&format!("/api/tenant/{tenant}/admin"), Some(&admin), 200, None).await;
    app.expect(&format!("/api/tenant/{tenant}/admin"), Some(&owner), 200, None).await;

    // A role outside the set never qualifies.
    let unknown = app.token(Grant::scoped(tenant, "root"));
    app.expect(&format!("/api/tenant/{tenant}/data"), Some(&unknown), 403, Some("insufficient_role")).await;
}

#[tokio::test]
async fn an_insufficient_role_is_challenged_for_scope() {
    let app = App::new(host).await;
    let tenant = Uuid::new_v4();
    let member = app.token(Grant::scoped(tenant, "member"));
    let response = app.get(&format!("/api/tenant/{tenant}/admin"), Some(&member)).await;
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(response.headers().get_one("WWW-Authenticate"), Some(r#"Bearer error="insufficient_scope""#));
}

#[tokio::test]
async fn a_malformed_tenant_segment_is_403_never_500() {
    let app = App::new(host).await;
    let tenant = Uuid::new_v4();
    let member = app.token(Grant::scoped(tenant, "admin"));
    for segment in ["not-a-uuid", "0", &format!("{tenant}x")] {
        app.expect(&format!("/api/tenant/{segment}/data"), Some(&member), 403, Some("not_a_member")).await;
        app.expect(&format!("/api/tenant/{segment}/admin"), Some(&member), 403, Some("not_a_member")).await;
    }
    // Without a token it is still a 401, not a parse error.
    app.expect("/api/tenant/not-a-uuid/admin", None, 401, Some("missing_token")).await;
}

#[tokio::test]
async fn a_named_tenant_segment_is_compared() {
    let app = App::new(host).await;
    let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
    let token = app.token(Grant::scoped(tenant, "member"));
    app.expect(&format!("/api/org/{tenant}/data"), Some(&token), 200, None).await;
    app.expect(&format!("/api/org/{other}/data"), Some(&token), 403, Some("not_a_member")).await;
    app.expect(&format!("/api/org/{tenant}/data"), Some(&app.token(Grant::user())), 403, Some("not_a_member")).await;
}

#[tokio::test]
async fn role_without_tenant_needs_a_scoped_token_with_that_role() {
    let app = App::new(host).await;
    let tenant = Uuid::new_v4();
    app.expect("/api/some-tenant-admin", Some(&app.token(Grant::scoped(tenant, "admin"))), 200, None).await;
    app.expect("/api/some-tenant-admin", Some(&app.token(Grant::scoped(tenant, "owner"))), 200, None).await;
    let member = app.token(Grant::scoped(tenant, "member"));
    app.expect("/api/some-tenant-admin", Some(&member), 403, Some("insufficient_role")).await;
    app.expect("/api/some-tenant-admin", Some(&app.token(Grant::user())), 403, Some("not_a_member")).await;
}

#[tokio::test]
async fn any_tenant_admits_another_tenants_admin_where_tenant_refuses() {
    let app = App::new(host).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let b_admin = app.token(Grant::scoped(b, "admin"));
    // The documented meaning: B's admin passes on A's path, because the route said any tenant will do.
    app.expect(&format!("/api/tenant/{a}/any-tenant-admin"), Some(&b_admin), 200, None).await;
    // With `tenant`, the same token on the same tenant's path is refused.
    app.expect(&format!("/api/tenant/{a}/admin"), Some(&b_admin), 403, Some("not_a_member")).await;
    app.expect(&format!("/api/tenant/{b}/admin"), Some(&b_admin), 200, None).await;
    // The role is still checked, in the token's tenant.
    let b_member = app.token(Grant::scoped(b, "member"));
    app.expect(&format!("/api/tenant/{a}/any-tenant-admin"), Some(&b_member), 403, Some("insufficient_role")).await;
    let unscoped = app.token(Grant::user());
    app.expect(&format!("/api/tenant/{a}/any-tenant-admin"), Some(&unscoped), 403, Some("not_a_member")).await;
}

#[tokio::test]
async fn staff_superuser_and_verified_read_the_token_flags() {
    let app = App::new(host).await;
    let plain = app.token(Grant::user());
    let staff = app.token(Grant { staff: true, ..Grant::user() });
    let superuser = app.token(Grant { superuser: true, ..Grant::user() });

    app.expect("/api/staff", Some(&staff), 200, None).await;
    app.expect("/api/staff", Some(&plain), 403, Some("forbidden")).await;
    app.expect("/api/staff", Some(&superuser), 403, Some("forbidden")).await;

    app.expect("/api/superuser", Some(&superuser), 200, None).await;
    app.expect("/api/superuser", Some(&staff), 403, Some("forbidden")).await;

    app.expect("/api/verified", Some(&plain), 200, None).await;
    let unverified = Grant { verified: false, ..Grant::user() };
    app.expect("/api/verified", Some(&app.token(unverified)), 403, Some("email_not_verified")).await;
}

#[tokio::test]
async fn the_handler_reads_the_identity_the_policy_checked() {
    let app = App::new(host).await;
    let grant = Grant::user();
    let response = app.get("/api/verified", Some(&app.token(grant))).await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_string().await.as_deref(), Some(grant.user.to_string().as_str()));
}

#[tokio::test]
async fn permission_is_granted_by_the_role_or_one_below_it() {
    let app = App::new(host).await;
    let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
    let path = format!("/api/tenant/{tenant}/members");
    // Admins are granted members.manage; owners inherit it; members lack it.
    app.expect(&path, Some(&app.token(Grant::scoped(tenant, "admin"))), 200, None).await;
    app.expect(&path, Some(&app.token(Grant::scoped(tenant, "owner"))), 200, None).await;
    app.expect(&path, Some(&app.token(Grant::scoped(tenant, "member"))), 403, Some("insufficient_role")).await;
    app.expect(&path, Some(&app.token(Grant::scoped(other, "owner"))), 403, Some("not_a_member")).await;
    app.expect(&path, Some(&app.token(Grant::user())), 403, Some("not_a_member")).await;
}

#[tokio::test]
async fn any_admits_one_alternative() {
    let app = App::new(host).await;
    let tenant = Uuid::new_v4();
    app.expect("/api/support", Some(&app.token(Grant { staff: true, ..Grant::user() })), 200, None).await;
    app.expect("/api/support", Some(&app.token(Grant::scoped(tenant, "owner"))), 200, None).await;
    // Both alternatives fail, for different reasons: a plain 403.
    app.expect("/api/support", Some(&app.token(Grant::scoped(tenant, "admin"))), 403, Some("forbidden")).await;
    app.expect("/api/support", Some(&app.token(Grant::user())), 403, Some("forbidden")).await;
}

#[tokio::test]
async fn the_policy_answers_before_the_body_is_parsed() {
    let app = App::new(host).await;
    let tenant = Uuid::new_v4();
    let path = format!("/api/tenant/{tenant}/import");
    let malformed = "{ not json";
    let before = app.ran();

    assert_eq!(app.post(&path, None, malformed).await.status(), Status::Unauthorized);
    let member = app.token(Grant::scoped(tenant, "member"));
    assert_eq!(app.post(&path, Some(&member), malformed).await.status(), Status::Forbidden);
    let unverified = app.token(Grant { verified: false, ..Grant::scoped(tenant, "admin") });
    assert_eq!(app.post(&path, Some(&unverified), "[1, 2]").await.status(), Status::Forbidden);
    assert_eq!(app.ran(), before, "no handler ran");

    // Allowed: now the body is parsed, and a malformed one is the data guard's error.
    let admin = app.token(Grant::scoped(tenant, "admin"));
    let rejected = app.post(&path, Some(&admin), malformed).await.status();
    assert!(matches!(rejected.code, 400 | 422), "{rejected}");
    let accepted = app.post(&path, Some(&admin), "[1, 2, 3]").await;
    assert_eq!(accepted.status(), Status::Ok);
    assert_eq!(accepted.into_json::<Value>().await.unwrap()["rows"], 3);
}

#[tokio::test]
async fn public_routes_need_no_token() {
    let app = App::new(host).await;
    app.expect("/api/open", None, 200, None).await;
}

/// RFC 9470's challenge of a step-up refusal.
const STEP_UP: &str = r#"Bearer error="insufficient_user_authentication""#;

#[tokio::test]
async fn mfa_needs_a_second_factor_in_the_token() {
    let app = App::new(host).await;
    for one_factor in [&["pwd"][..], &["fed"], &[]] {
        let token = app.token(Grant { amr: one_factor, ..Grant::user() });
        let challenge = app.expect("/api/mfa", Some(&token), 403, Some("mfa_required")).await;
        assert_eq!(challenge.as_deref(), Some(STEP_UP), "{one_factor:?}");
    }
    // A second factor after the password; a passkey, two factors in one.
    for two_factors in [&["pwd", "otp", "mfa"][..], &["hwk"], &["fed", "swk", "mfa"]] {
        app.expect("/api/mfa", Some(&app.token(Grant { amr: two_factors, ..Grant::user() })), 200, None).await;
    }
    // A token is still needed first.
    app.expect("/api/mfa", None, 401, Some("missing_token")).await;
}

#[tokio::test]
async fn recent_auth_admits_a_sign_in_within_its_window_only() {
    let app = App::new(host).await;
    for fresh in [0, 100] {
        let token = app.token(Grant { signed_in_secs_ago: fresh, ..Grant::user() });
        app.expect("/api/recent", Some(&token), 200, None).await;
    }
    // However many factors: the sign-in is too old.
    let stale = app.token(Grant { signed_in_secs_ago: 121, amr: &["pwd", "otp", "mfa"], ..Grant::user() });
    let challenge = app.expect("/api/recent", Some(&stale), 403, Some("reauthentication_required")).await;
    assert_eq!(challenge.as_deref(), Some(r#"Bearer error="insufficient_user_authentication", max_age="120""#));
}

#[tokio::test]
async fn step_up_is_checked_after_the_other_conditions_and_before_the_body() {
    let app = App::new(host).await;
    let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
    let path = format!("/api/tenant/{tenant}/close");
    let stepped_up = Grant { amr: &["pwd", "otp", "mfa"], ..Grant::scoped(tenant, "admin") };
    let before = app.ran();
    // (token, code): a foreign or too low token learns nothing of step-up; then mfa; then the sign-in's age.
    let refused = [
        (Grant { tenant: Some((other, "admin")), ..stepped_up }, "not_a_member"),
        (Grant { tenant: Some((tenant, "member")), ..stepped_up }, "insufficient_role"),
        (Grant::scoped(tenant, "admin"), "mfa_required"),
        (Grant { signed_in_secs_ago: 601, ..stepped_up }, "reauthentication_required"),
    ];
    for (grant, code) in refused {
        let answer = app.post(&path, Some(&app.token(grant)), "{ not json").await;
        assert_eq!(answer.status(), Status::Forbidden, "{code}");
        let challenge = answer.headers().get_one("WWW-Authenticate").map(str::to_owned);
        let body: Value = answer.into_json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], code, "{body}");
        if code == "reauthentication_required" {
            assert_eq!(challenge.as_deref(), Some(r#"Bearer error="insufficient_user_authentication", max_age="600""#));
        }
    }
    assert_eq!(app.ran(), before, "no handler ran, no body was read");
    let allowed = app.post(&path, Some(&app.token(stepped_up)), "{}").await;
    assert_eq!(allowed.status(), Status::Ok);
}

#[tokio::test]
async fn any_of_two_step_ups_asks_for_a_fresh_sign_in() {
    let app = App::new(host).await;
    let old = 600;
    app.expect("/api/either-step-up", Some(&app.token(Grant::user())), 200, None).await;
    let old_mfa = Grant { amr: &["pwd", "otp", "mfa"], signed_in_secs_ago: old, ..Grant::user() };
    app.expect("/api/either-step-up", Some(&app.token(old_mfa)), 200, None).await;
    // Neither: a fresh sign-in satisfies the route, so that is what the client is told.
    let old_password = app.token(Grant { signed_in_secs_ago: old, ..Grant::user() });
    let challenge =
        app.expect("/api/either-step-up", Some(&old_password), 403, Some("reauthentication_required")).await;
    assert_eq!(challenge.as_deref(), Some(r#"Bearer error="insufficient_user_authentication", max_age="120""#));

    // Beside another kind of reason, a plain refusal.
    app.expect("/api/staff-or-mfa", Some(&app.token(Grant { staff: true, ..Grant::user() })), 200, None).await;
    app.expect("/api/staff-or-mfa", Some(&app.token(Grant { amr: &["hwk"], ..Grant::user() })), 200, None).await;
    let challenge = app.expect("/api/staff-or-mfa", Some(&app.token(Grant::user())), 403, Some("forbidden")).await;
    assert_eq!(challenge, None);
}

/// A real password sign-in through the platform's routes: refused where a
/// second factor is required, admitted once the session records one (as the
/// factors of issue #12 will), and refused by `recent_auth` once the engine's
/// clock passes the window, however often the session is refreshed.
#[tokio::test]
async fn a_password_session_steps_up_and_refreshing_never_makes_it_recent() {
    let clock = Clock::manual();
    let app = App::with_clock(clock.clone()).await;
    let email = "step-up@example.com";
    app.auth().operators().create_superuser(email, PASSWORD, "Step Up").await.expect("an account");
    let login = app.post("/api/auth/login", None, &json!({ "email": email, "password": PASSWORD }).to_string()).await;
    assert_eq!(login.status(), Status::Ok);
    let pair: Value = login.into_json().await.expect("tokens");
    let access = pair["access"].as_str().expect("an access token").to_owned();

    let challenge = app.expect("/api/mfa", Some(&access), 403, Some("mfa_required")).await;
    assert_eq!(challenge.as_deref(), Some(STEP_UP));
    app.expect("/api/recent", Some(&access), 200, None).await;

    let claims = app.auth().verify_access(&access).expect("a valid token");
    auth_core::testing::record_second_factor(app.auth(), &claims, AuthMethod::OneTimeCode).await.expect("recorded");
    // The token in hand says what the session was when it was minted.
    app.expect("/api/mfa", Some(&access), 403, Some("mfa_required")).await;
    let (access, next) = app.refresh(pair["refresh"].as_str().expect("a refresh token")).await;
    app.expect("/api/mfa", Some(&access), 200, None).await;
    app.expect("/api/recent", Some(&access), 200, None).await;

    // Three minutes on, the token is still valid, its sign-in too old for the route.
    clock.advance(Duration::from_secs(180));
    let challenge = app.expect("/api/recent", Some(&access), 403, Some("reauthentication_required")).await;
    assert_eq!(challenge.as_deref(), Some(r#"Bearer error="insufficient_user_authentication", max_age="120""#));
    let (refreshed, _) = app.refresh(&next).await;
    app.expect("/api/recent", Some(&refreshed), 403, Some("reauthentication_required")).await;
    app.expect("/api/mfa", Some(&refreshed), 200, None).await;
}

/// The platform's own sensitive routes step up like a host's: removing the
/// authenticator app and new recovery codes need a second factor, deleting
/// the account and changing its email a sign-in within 10 minutes; refused
/// before the body is read (a malformed one here).
#[tokio::test]
async fn the_platforms_sensitive_routes_ask_to_step_up() {
    let app = App::new(host).await;
    let password_only = app.token(Grant::user());
    let stale = app.token(Grant { signed_in_secs_ago: 601, amr: &["pwd", "otp", "mfa"], ..Grant::user() });
    let max_age = r#"Bearer error="insufficient_user_authentication", max_age="600""#;
    let refusals = [
        (Method::Delete, "/api/auth/mfa/totp", &password_only, "mfa_required", STEP_UP),
        (Method::Post, "/api/auth/mfa/recovery-codes", &password_only, "mfa_required", STEP_UP),
        (Method::Delete, "/api/auth/me", &stale, "reauthentication_required", max_age),
        (Method::Post, "/api/auth/me/email", &stale, "reauthentication_required", max_age),
        // A new way to sign in: a stolen access token alone leaves none behind.
        (Method::Post, "/api/auth/webauthn/register/start", &stale, "reauthentication_required", max_age),
        (Method::Post, "/api/auth/webauthn/register/finish", &stale, "reauthentication_required", max_age),
        (Method::Post, "/api/auth/oauth/google/link", &stale, "reauthentication_required", max_age),
    ];
    for (method, path, token, code, challenge) in refusals {
        let request = app.client.req(method, path).header(ContentType::JSON).body("{ not json");
        let answer = request.header(Header::new("Authorization", format!("Bearer {token}"))).dispatch().await;
        assert_eq!(answer.status(), Status::Forbidden, "{method} {path}");
        assert_eq!(answer.headers().get_one("WWW-Authenticate"), Some(challenge), "{method} {path}");
        let body: Value = answer.into_json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
    }
}

fn newsroom(figment: rocket::figment::Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(AuthFairing::with_roles::<Newsroom>())
        .mount("/api", routes![articles, drafts])
        .register("/", auth_rocket::catchers())
        .manage(Ran::default())
}

#[tokio::test]
async fn an_apps_own_roles_are_ordered_and_grant_permissions() {
    let app = App::new(newsroom).await;
    let tenant = Uuid::new_v4();
    // Editors inherit what readers are granted; a name outside the set never qualifies.
    for role in ["reader", "author", "editor"] {
        app.expect("/api/articles", Some(&app.token(Grant::scoped(tenant, role))), 200, None).await;
    }
    app.expect("/api/articles", Some(&app.token(Grant::scoped(tenant, "admin"))), 403, Some("insufficient_role")).await;
    app.expect("/api/articles", Some(&app.token(Grant::user())), 403, Some("not_a_member")).await;

    // `author` is the renamed `Writer`.
    let drafts = format!("/api/tenant/{tenant}/drafts");
    app.expect(&drafts, Some(&app.token(Grant::scoped(tenant, "author"))), 200, None).await;
    app.expect(&drafts, Some(&app.token(Grant::scoped(tenant, "editor"))), 200, None).await;
    app.expect(&drafts, Some(&app.token(Grant::scoped(tenant, "reader"))), 403, Some("insufficient_role")).await;
}

#[tokio::test]
async fn routes_checked_against_other_roles_do_not_ignite() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    // `drafts` names Newsroom's roles, but the platform runs with owner > admin > member.
    let rocket = rocket::custom(figment(&test_config(&db.url)))
        .attach(AuthFairing::default())
        .mount("/api", routes![drafts])
        .manage(Ran::default());
    assert!(refused(rocket).await);
}

/// The platform's member routes require `members.manage` in whichever role
/// set the platform runs with (`roles = PlatformPermissions`), so an app's own
/// roles do not stop it from mounting the platform.
#[tokio::test]
async fn the_platform_mounts_beside_an_apps_own_roles() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let rocket = rocket::custom(figment(&test_config(&db.url)))
        .attach(AuthFairing::with_roles::<Newsroom>().mount_at("/api/auth"))
        .mount("/api", routes![articles, drafts])
        .manage(Ran::default());
    assert!(!refused(rocket).await);
}

/// Whether the fairing refuses to ignite `rocket` (the error is handled here,
/// or Rocket would panic when dropping it).
async fn refused(rocket: Rocket<Build>) -> bool {
    match Client::tracked(rocket).await {
        Ok(_) => false,
        Err(error) => matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
    }
}

#[tokio::test]
async fn every_mounted_route_is_listed_with_its_policy() {
    let app = App::new(host).await;
    let table = route_table(app.client.rocket());
    let policy = |method: Method, path: &str| {
        let route = table.iter().find(|r| r.method == method && r.path == path);
        route.unwrap_or_else(|| panic!("{method} {path} is not listed")).policy
    };
    assert_eq!(policy(Method::Get, "/api/authenticated"), Some("authenticated"));
    assert_eq!(policy(Method::Get, "/api/tenant/<tenant_id>/data"), Some(r#"role = "member", tenant"#));
    assert_eq!(policy(Method::Get, "/api/org/<org_id>/data"), Some(r#"tenant = "org_id""#));
    let any_tenant = r#"role = "admin", any_tenant"#;
    assert_eq!(policy(Method::Get, "/api/tenant/<tenant_id>/any-tenant-admin"), Some(any_tenant));
    // Normalised: inside any(...) too, conditions are listed in a fixed order.
    assert_eq!(policy(Method::Get, "/api/support"), Some(r#"any(role = "owner", staff)"#));
    assert_eq!(policy(Method::Post, "/api/tenant/<tenant_id>/import"), Some(r#"role = "admin", tenant, verified"#));
    assert_eq!(policy(Method::Get, "/api/mfa"), Some("mfa"));
    assert_eq!(policy(Method::Get, "/api/recent"), Some(r#"recent_auth = "2m""#));
    let close = r#"role = "admin", tenant, mfa, recent_auth = "10m""#;
    assert_eq!(policy(Method::Post, "/api/tenant/<tenant_id>/close"), Some(close));
    assert_eq!(policy(Method::Get, "/api/either-step-up"), Some(r#"any(mfa, recent_auth = "2m")"#));
    assert_eq!(policy(Method::Get, "/api/open"), Some("public"));
    // The platform's own routes are listed too.
    assert_eq!(policy(Method::Post, "/api/auth/login"), Some("public"));
    assert_eq!(policy(Method::Get, "/api/auth/me"), Some("authenticated"));
    assert_eq!(policy(Method::Get, "/api/auth/tenants/<tenant_id>/members"), Some("tenant"));
    assert_eq!(policy(Method::Get, "/.well-known/jwks.json"), Some("public"));
    assert!(unmarked_routes(app.client.rocket()).is_empty(), "{:?}", unmarked_routes(app.client.rocket()));

    for route in &table {
        // The listing's text is its conditions', as `Condition` writes them.
        if let (Some(policy), false) = (route.policy, route.public) {
            let listed: Vec<String> = route.conditions.iter().map(ToString::to_string).collect();
            assert_eq!(listed.join(", "), policy, "{route}");
        }
    }
    let import = table.iter().find(|r| r.path == "/api/tenant/<tenant_id>/import").unwrap();
    assert_eq!(
        import.conditions,
        [Condition::Role("admin"), Condition::Tenant("tenant_id"), Condition::Verified].as_slice()
    );
    let close = table.iter().find(|r| r.path == "/api/tenant/<tenant_id>/close").unwrap();
    assert!(close.requires("mfa") && close.conditions.contains(&Condition::RecentAuth(600)), "{close}");
}

/// What a host app can assert about its own authorization table.
#[tokio::test]
async fn a_host_asserts_its_authorization_table() {
    let app = App::new(host).await;
    // The routes that let a token scoped to any tenant through, on purpose.
    let any_tenant = ["/api/tenant/<tenant_id>/any-tenant-admin"];
    for route in route_table(app.client.rocket()) {
        if any_tenant.contains(&route.path.as_str()) {
            assert!(route.requires("any_tenant") && !route.requires("tenant"), "{route}");
        } else if route.path.starts_with("/api/tenant/") {
            assert!(route.requires("tenant"), "{route} does not require the path's tenant");
        } else {
            assert!(!route.requires("any_tenant"), "{route} lets any tenant through");
        }
        if route.path.starts_with("/api/") && !route.path.starts_with("/api/auth/") && route.path != "/api/open" {
            assert!(route.requires("authenticated"), "{route} is open");
        }
    }
}

/// Production settings (the release profile enforces the checklist).
fn release_config(db: &TestDatabase) -> AuthConfig {
    let mut config = test_config(&db.url);
    config.issuer = "https://auth.example.com".into();
    config.public_url = "https://app.example.com".into();
    config.password.argon2_memory_kib = 19456;
    config.password.argon2_iterations = 2;
    config.mail.transport = MailTransport::Smtp {
        host: "localhost".into(),
        port: 2525,
        username: Some("mailer".into()),
        password: Some(Secret::new("not-used")),
        insecure: false,
    };
    config
}

/// Rocket's release defaults (without the demo's `Rocket.toml`) and `config`.
fn release(config: &AuthConfig) -> rocket::figment::Figment {
    let figment = Figment::from(rocket::Config::release_default()).merge(Serialized::global("auth", config));
    quiet(figment).select(rocket::Config::RELEASE_PROFILE)
}

#[tokio::test]
async fn release_refuses_to_launch_with_an_unmarked_route() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let config = release_config(&db);
    let with = |extra: Vec<rocket::Route>, fairing: AuthFairing| {
        rocket::custom(release(&config))
            .attach(fairing)
            .mount("/api", host_routes())
            .mount("/", extra)
            .manage(Ran::default())
    };

    let unmarked = with(routes![forgotten], AuthFairing::default());
    let listed = unmarked_routes(&unmarked);
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].method, listed[0].path.as_str()), (Method::Get, "/forgotten"));
    assert!(refused(unmarked).await, "ignited with an unmarked route");

    // Deliberately allowed, or marked public: it launches.
    let allowed = with(routes![forgotten], AuthFairing::default().allow_unmarked_routes());
    Client::tracked(allowed).await.expect("ignites when unmarked routes are allowed");
    let marked = with(auth_rocket::policy::public(routes![forgotten]), AuthFairing::default());
    assert_eq!(route_table(&marked).iter().find(|r| r.path == "/forgotten").unwrap().policy, Some("public"));
    Client::tracked(marked).await.expect("ignites when every route is marked");
}

#[tokio::test]
async fn debug_launches_with_an_unmarked_route() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let rocket = host(figment(&test_config(&db.url))).mount("/", routes![forgotten]);
    let client = Client::tracked(rocket).await.expect("debug only warns");
    assert_eq!(client.get("/forgotten").dispatch().await.status(), Status::Ok);
}
