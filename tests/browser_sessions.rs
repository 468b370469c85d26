//! Browser sessions over HTTP (the contract's "Browser sessions"): a cookie
//! sign-in, the guards and `#[requires]` on the access cookie, the CSRF
//! checks before any body, refresh and sign-out from cookies, and a bearer
//! header that wins over them. Cookies are sent by hand (an untracked
//! client), so each test says exactly what the browser would send.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use auth_core::{AuthConfig, mail::MemoryMailer};
use auth_platform::requires;
use auth_rocket::{
    AuthFairing, AuthUser, TenantScope,
    browser::{ACCESS_COOKIE, CSRF_COOKIE, CSRF_HEADER, REFRESH_COOKIE},
    testing::Conformance,
};
use common::{Backend, HOST_BASE, MAIL_FROM, TestDatabase, TestUser, figment, test_config};
use rocket::{
    State, get,
    http::{ContentType, Cookie, Header, SameSite, Status},
    local::asynchronous::{Client, LocalResponse},
    post, routes,
    serde::json::{Value, json},
};

/// How many bodies of the host's unsafe route ran: a refused request adds none.
#[derive(Default)]
struct Ran(AtomicUsize);

#[requires(authenticated)]
#[get("/whoami")]
fn whoami(user: AuthUser) -> String {
    format!("{} {}", user.id(), user.is_cookie_session())
}

#[requires(authenticated)]
#[post("/notes", data = "<body>")]
fn notes(ran: &State<Ran>, body: String) -> String {
    ran.0.fetch_add(1, Ordering::SeqCst);
    body
}

/// A tenant admin's unsafe route: `#[requires(role, tenant)]` on a cookie session.
#[requires(role = "admin", tenant)]
#[post("/tenant/<tenant_id>/settings", data = "<body>")]
fn tenant_settings(ran: &State<Ran>, tenant_id: uuid::Uuid, scope: TenantScope, body: String) -> String {
    ran.0.fetch_add(1, Ordering::SeqCst);
    format!("{tenant_id} {} {}", scope.role, body.len())
}

struct App {
    kit: Conformance,
    _db: TestDatabase,
}

impl App {
    async fn start(backend: Backend, tweak: impl FnOnce(&mut AuthConfig)) -> Self {
        let db = TestDatabase::new(backend).await;
        let mut config = test_config(&db.url);
        tweak(&mut config);
        let mail = MemoryMailer::new(MAIL_FROM).expect("a memory mailer");
        let platform_mail = mail.clone();
        let platform = AuthFairing::mounted_at(HOST_BASE).customize(move |b| b.mailer(Arc::new(platform_mail.clone())));
        let rocket = rocket::custom(figment(&config))
            .attach(platform)
            .manage(Ran::default())
            .mount("/", routes![whoami, notes, tenant_settings])
            .register("/", auth_rocket::catchers());
        let client = Client::untracked(rocket).await.expect("the host app ignites");
        Self { kit: Conformance::new(client, HOST_BASE, mail), _db: db }
    }

    fn client(&self) -> &Client {
        self.kit.client()
    }

    fn ran(&self) -> usize {
        self.client().rocket().state::<Ran>().expect("managed").0.load(Ordering::SeqCst)
    }

    /// A verified user signed in with `{"session": "cookie"}`: the cookies it was given.
    async fn cookie_sign_in(&self, label: &str) -> (TestUser, Jar) {
        let user = self.kit.verified_user(label).await;
        let body = json!({ "email": user.email, "password": user.password, "session": "cookie" });
        let response = self.post(&format!("{HOST_BASE}/login"), &Jar::default(), &[], body).await;
        assert_eq!(response.status(), Status::Ok);
        let jar = Jar::from(&response);
        (user, jar)
    }

    async fn post(&self, uri: &str, jar: &Jar, headers: &[(&'static str, &str)], body: Value) -> LocalResponse<'_> {
        let mut request = self.client().post(uri.to_owned()).header(ContentType::JSON).body(body.to_string());
        for cookie in jar.all() {
            request = request.cookie(cookie);
        }
        for (name, value) in headers {
            request = request.header(Header::new(*name, value.to_string()));
        }
        request.dispatch().await
    }

    async fn get(&self, uri: &str, jar: &Jar) -> LocalResponse<'_> {
        let mut request = self.client().get(uri.to_owned());
        for cookie in jar.all() {
            request = request.cookie(cookie);
        }
        request.dispatch().await
    }
}

/// What a browser keeps: the three cookies' values.
#[derive(Debug, Default, Clone)]
struct Jar {
    access: Option<String>,
    refresh: Option<String>,
    csrf: Option<String>,
}

impl Jar {
    fn from(response: &LocalResponse<'_>) -> Self {
        let value = |name| response.cookies().get(name).map(|c| c.value().to_owned());
        Self { access: value(ACCESS_COOKIE), refresh: value(REFRESH_COOKIE), csrf: value(CSRF_COOKIE) }
    }

    fn all(&self) -> Vec<Cookie<'static>> {
        [(ACCESS_COOKIE, &self.access), (REFRESH_COOKIE, &self.refresh), (CSRF_COOKIE, &self.csrf)]
            .into_iter()
            .filter_map(|(name, value)| value.clone().map(|v| Cookie::new(name, v)))
            .collect()
    }

    fn csrf(&self) -> &str {
        self.csrf.as_deref().expect("a CSRF cookie")
    }
}

async fn error_code(response: LocalResponse<'_>) -> String {
    let body: Value = response.into_json().await.expect("a JSON error body");
    body["error"]["code"].as_str().unwrap_or_default().to_owned()
}

async fn a_cookie_sign_in_keeps_the_tokens_out_of_scripts_reach(backend: Backend) {
    let app = App::start(backend, |_| {}).await;
    let user = app.kit.verified_user("cookie").await;
    let body = json!({ "email": user.email, "password": user.password, "session": "cookie" });
    let response = app.post(&format!("{HOST_BASE}/login"), &Jar::default(), &[], body).await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    let cookies = response.cookies();
    let access = cookies.get(ACCESS_COOKIE).expect("the access cookie");
    assert_eq!(
        (access.http_only(), access.secure(), access.same_site(), access.path()),
        (Some(true), Some(true), Some(SameSite::Lax), Some("/"))
    );
    assert_eq!(access.max_age().map(|age| age.whole_seconds()), Some(300));
    let refresh = cookies.get(REFRESH_COOKIE).expect("the refresh cookie");
    assert_eq!(
        (refresh.http_only(), refresh.secure(), refresh.same_site(), refresh.path()),
        (Some(true), Some(true), Some(SameSite::Strict), Some(format!("{HOST_BASE}/refresh").as_str()))
    );
    let idle = AuthConfig::default().tokens.refresh_idle_ttl_secs;
    assert_eq!(refresh.max_age().map(|age| age.whole_seconds()), Some(i64::try_from(idle).unwrap()));
    let csrf = cookies.get(CSRF_COOKIE).expect("the CSRF cookie");
    assert_ne!(csrf.http_only(), Some(true), "the site's scripts read it");
    assert_eq!((csrf.secure(), csrf.path()), (Some(true), Some("/")));
    assert!(csrf.value().len() >= 43, "256 bits");
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body, json!({ "token_type": "cookie", "expires_in": 300 }), "no token in the body");

    // The guards and #[requires] take the access cookie.
    let (_, jar) = app.cookie_sign_in("cookie-2").await;
    let response = app.get("/whoami", &jar).await;
    assert_eq!(response.status(), Status::Ok);
    assert!(response.into_string().await.unwrap().ends_with(" true"));
    assert_eq!(app.get("/whoami", &Jar::default()).await.status(), Status::Unauthorized);
}

async fn an_unsafe_cookie_request_needs_the_csrf_token_before_its_body(backend: Backend) {
    let app = App::start(backend, |_| {}).await;
    let (_, jar) = app.cookie_sign_in("csrf").await;
    let csrf = jar.csrf().to_owned();
    let own_origin = "http://localhost:8000";
    let refused: [&[(&'static str, &str)]; 5] = [
        &[],
        &[(CSRF_HEADER, "not-the-cookie")],
        &[(CSRF_HEADER, &csrf), ("Sec-Fetch-Site", "cross-site")],
        &[(CSRF_HEADER, &csrf), ("Origin", "https://evil.example")],
        &[(CSRF_HEADER, &csrf), ("Origin", "null")],
    ];
    for headers in refused {
        let response = app.post("/notes", &jar, headers, json!("hello")).await;
        assert_eq!(response.status(), Status::Forbidden, "{headers:?}");
        assert_eq!(error_code(response).await, "csrf_failed");
    }
    // Refused before the body: a body over the limit is not even a 413.
    let huge = json!("x".repeat(64 * 1024));
    assert_eq!(app.post("/notes", &jar, &[], huge).await.status(), Status::Forbidden);
    // The header without the cookie is no proof either.
    let no_csrf_cookie = Jar { csrf: None, ..jar.clone() };
    assert_eq!(
        app.post("/notes", &no_csrf_cookie, &[(CSRF_HEADER, &csrf)], json!("hello")).await.status(),
        Status::Forbidden
    );
    assert_eq!(app.ran(), 0, "no refused request reached the handler");

    let allowed: [&[(&'static str, &str)]; 3] = [
        &[(CSRF_HEADER, &csrf)],
        &[(CSRF_HEADER, &csrf), ("Sec-Fetch-Site", "same-origin"), ("Origin", own_origin)],
        &[(CSRF_HEADER, &csrf), ("Sec-Fetch-Site", "same-site")],
    ];
    for headers in allowed {
        assert_eq!(app.post("/notes", &jar, headers, json!("hello")).await.status(), Status::Ok, "{headers:?}");
    }
    assert_eq!(app.ran(), 3);
    // A safe request needs no token.
    assert_eq!(app.get("/whoami", &jar).await.status(), Status::Ok);
}

async fn a_bearer_header_wins_over_cookies(backend: Backend) {
    let app = App::start(backend, |_| {}).await;
    let (_, jar) = app.cookie_sign_in("header").await;
    let user = app.kit.verified_user("bearer").await;
    let tokens = app.kit.sign_in(&user).await;
    let bearer = format!("Bearer {}", tokens.access);
    // Judged by the header: no CSRF token needed, and it is the header's user.
    let response = app.post("/notes", &jar, &[("Authorization", &bearer)], json!("by header")).await;
    assert_eq!(response.status(), Status::Ok);
    let mut request = app.client().get("/whoami").header(Header::new("Authorization", bearer));
    for cookie in jar.all() {
        request = request.cookie(cookie);
    }
    assert_eq!(request.dispatch().await.into_string().await.unwrap(), format!("{} false", user.id));
    // A bad header is not rescued by a good cookie.
    let response =
        app.post("/notes", &jar, &[("Authorization", "Bearer forged"), (CSRF_HEADER, jar.csrf())], json!("x")).await;
    assert_eq!(response.status(), Status::Unauthorized);
}

async fn refresh_and_sign_out_work_from_the_cookies(backend: Backend) {
    let app = App::start(backend, |_| {}).await;
    let (_, jar) = app.cookie_sign_in("refresh").await;
    let refresh = format!("{HOST_BASE}/refresh");
    let cookie_mode = json!({ "session": "cookie" });

    // Without the CSRF token, or without the cookie, nothing rotates.
    let response = app.post(&refresh, &jar, &[], cookie_mode.clone()).await;
    assert_eq!((response.status(), error_code(response).await.as_str()), (Status::Forbidden, "csrf_failed"));
    let no_refresh = Jar { refresh: None, ..jar.clone() };
    let response = app.post(&refresh, &no_refresh, &[(CSRF_HEADER, jar.csrf())], cookie_mode.clone()).await;
    assert_eq!(response.status(), Status::Unauthorized);
    let response = app.post(&refresh, &jar, &[(CSRF_HEADER, jar.csrf())], json!({})).await;
    assert_eq!(response.status(), Status::UnprocessableEntity, "no refresh field and no cookie mode");

    let response = app.post(&refresh, &jar, &[(CSRF_HEADER, jar.csrf())], cookie_mode.clone()).await;
    assert_eq!(response.status(), Status::Ok);
    let rotated = Jar::from(&response);
    assert!(rotated.access.is_some() && rotated.access != jar.access);
    assert!(rotated.refresh.is_some() && rotated.refresh != jar.refresh);
    assert!(rotated.csrf.is_some() && rotated.csrf != jar.csrf, "a new CSRF token too");
    assert_eq!(response.into_json::<Value>().await.unwrap()["token_type"], "cookie");
    assert_eq!(app.get("/whoami", &rotated).await.status(), Status::Ok);

    // Sign-out from a cookie session: `{}` ends it and clears the cookies.
    let logout = format!("{HOST_BASE}/logout");
    assert_eq!(app.post(&logout, &rotated, &[], json!({})).await.status(), Status::Forbidden, "CSRF");
    let response = app.post(&logout, &rotated, &[(CSRF_HEADER, rotated.csrf())], json!({})).await;
    assert_eq!(response.status(), Status::NoContent);
    for name in [ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE] {
        let cleared = response.cookies().get(name).unwrap_or_else(|| panic!("{name} is cleared"));
        assert_eq!((cleared.value(), cleared.max_age().map(|a| a.whole_seconds())), ("", Some(0)), "{name}");
        assert_eq!(cleared.secure(), Some(true), "a __Host- cookie is only replaced by a Secure one");
    }
    assert_eq!(app.get("/whoami", &rotated).await.status(), Status::Unauthorized, "the session is revoked");
    let response = app.post(&refresh, &rotated, &[(CSRF_HEADER, rotated.csrf())], cookie_mode).await;
    assert_eq!(response.status(), Status::Unauthorized);

    // A bearer caller still names the refresh token it ends.
    let user = app.kit.verified_user("bearer-logout").await;
    let tokens = app.kit.sign_in(&user).await;
    let bearer = format!("Bearer {}", tokens.access);
    let response = app.post(&logout, &Jar::default(), &[("Authorization", &bearer)], json!({})).await;
    assert_eq!(response.status(), Status::UnprocessableEntity);
}

async fn a_cross_site_cookie_sign_in_is_refused(backend: Backend) {
    let app = App::start(backend, |_| {}).await;
    let user = app.kit.verified_user("login-csrf").await;
    let body = json!({ "email": user.email, "password": user.password, "session": "cookie" });
    let login = format!("{HOST_BASE}/login");
    for headers in [[("Sec-Fetch-Site", "cross-site")], [("Origin", "https://evil.example")]] {
        let response = app.post(&login, &Jar::default(), &headers, body.clone()).await;
        assert_eq!(response.status(), Status::Forbidden, "{headers:?}");
        assert!(response.cookies().iter().next().is_none(), "no cookie is set");
        assert_eq!(error_code(response).await, "csrf_failed");
    }
    // The same request as a token sign-in (no cookies) is not a browser's concern.
    let tokens_mode = json!({ "email": user.email, "password": user.password });
    let response = app.post(&login, &Jar::default(), &[("Sec-Fetch-Site", "cross-site")], tokens_mode).await;
    assert_eq!(response.status(), Status::Ok);
}

async fn cookies_need_https_or_a_loopback_public_url(backend: Backend) {
    let app = App::start(backend, |c| c.public_url = "http://auth.example.com".into()).await;
    let user = app.kit.verified_user("plain-http").await;
    let body = json!({ "email": user.email, "password": user.password, "session": "cookie" });
    let response = app.post(&format!("{HOST_BASE}/login"), &Jar::default(), &[], body.clone()).await;
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let answer: Value = response.into_json().await.unwrap();
    assert!(answer["error"]["fields"]["session"].is_array(), "{answer}");

    let app = App::start(backend, |c| c.public_url = "https://auth.example.com".into()).await;
    let user = app.kit.verified_user("https").await;
    let body = json!({ "email": user.email, "password": user.password, "session": "cookie" });
    let headers = [("Origin", "https://auth.example.com")];
    let response = app.post(&format!("{HOST_BASE}/login"), &Jar::default(), &headers, body).await;
    assert_eq!(response.status(), Status::Ok);
    assert!(response.cookies().get(ACCESS_COOKIE).is_some());
}

async fn a_tenant_scoped_cookie_session_passes_requires_role_and_tenant(backend: Backend) {
    let app = App::start(backend, |_| {}).await;
    let owner = app.kit.verified_user("owner").await;
    let tokens = app.kit.sign_in(&owner).await;
    let created = app.kit.post("/tenants", Some(&tokens.access), &json!({ "name": "Cookie Co" })).await;
    created.expect(201);
    let tenant = created.str("/id").to_owned();
    let body = json!({ "email": owner.email, "password": owner.password, "tenant_id": tenant, "session": "cookie" });
    let response = app.post(&format!("{HOST_BASE}/login"), &Jar::default(), &[], body).await;
    assert_eq!(response.status(), Status::Ok);
    let jar = Jar::from(&response);

    let route = format!("/tenant/{tenant}/settings");
    let refused = app.post(&route, &jar, &[], json!({ "x": 1 })).await;
    assert_eq!(refused.status(), Status::Forbidden);
    assert_eq!(error_code(refused).await, "csrf_failed", "the CSRF check comes first");
    let other = format!("/tenant/{}/settings", uuid::Uuid::new_v4());
    let headers = [(CSRF_HEADER, jar.csrf())];
    assert_eq!(app.post(&other, &jar, &headers, json!({})).await.status(), Status::Forbidden, "another tenant");
    assert_eq!(app.ran(), 0);
    let allowed = app.post(&route, &jar, &headers, json!({ "x": 1 })).await;
    assert_eq!(allowed.status(), Status::Ok);
    assert!(allowed.into_string().await.unwrap_or_default().starts_with(&format!("{tenant} owner")));
    assert_eq!(app.ran(), 1);
}

backend_tests!(
    a_tenant_scoped_cookie_session_passes_requires_role_and_tenant,
    a_cookie_sign_in_keeps_the_tokens_out_of_scripts_reach,
    an_unsafe_cookie_request_needs_the_csrf_token_before_its_body,
    a_bearer_header_wins_over_cookies,
    refresh_and_sign_out_work_from_the_cookies,
    a_cross_site_cookie_sign_in_is_refused,
    cookies_need_https_or_a_loopback_public_url,
);
