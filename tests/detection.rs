//! Suspicious sign-ins over HTTP: clients at controlled addresses behind a
//! trusted proxy (`X-Forwarded-For`), one manual clock for the app and the
//! test, mail read from the memory mailer.

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use auth_core::{AuditRecord, Auth, AuthConfig, Clock, config::Quota, mail::MemoryMailer};
use auth_rocket::{AuthFairing, testing::Conformance};
use common::{Backend, HOST_BASE, MAIL_FROM, TestDatabase, TestUser, figment, test_config};
use rocket::{
    http::{ContentType, Header, Status},
    local::asynchronous::{Client, LocalResponse},
};
use serde_json::{Value, json};

backend_tests!(
    a_sign_in_from_a_device_unused_for_90_days_is_reported_and_mailed,
    failures_spread_over_accounts_or_over_addresses_are_reported,
);

const PROXY: &str = "10.0.0.5:443";
const CHROME_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
const CHROME_LINUX_NEXT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/157.0.0.0 Safari/537.36";
const FIREFOX_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0";

struct App {
    kit: Conformance,
    mail: MemoryMailer,
    clock: Clock,
    _db: TestDatabase,
}

impl App {
    async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    async fn start_with(backend: Backend, tweak: impl FnOnce(&mut AuthConfig)) -> Self {
        let db = TestDatabase::new(backend).await;
        let mut config = test_config(&db.url);
        config.http.trusted_proxies = vec!["10.0.0.0/8".parse().expect("a network")];
        tweak(&mut config);
        let mail = MemoryMailer::new(MAIL_FROM).expect("a memory mailer");
        let clock = Clock::manual();
        let (platform_mail, platform_clock) = (mail.clone(), clock.clone());
        let platform = AuthFairing::mounted_at(HOST_BASE)
            .customize(move |b| b.mailer(Arc::new(platform_mail.clone())).clock(platform_clock.clone()));
        let client = Client::tracked(rocket::custom(figment(&config)).attach(platform)).await.expect("ignites");
        Self { kit: Conformance::new(client, HOST_BASE, mail.clone()), mail, clock, _db: db }
    }

    /// `POST /login` from `ip` (through the proxy) with `user_agent`: the access token.
    async fn sign_in_from(&self, user: &TestUser, ip: &str, user_agent: &str) -> String {
        let response = self.attempt_from(&user.email, &user.password, ip, user_agent).await;
        assert_eq!(response.status(), Status::Ok);
        let pair: Value = response.into_json().await.expect("a pair");
        pair["access"].as_str().expect("an access token").to_owned()
    }

    async fn attempt_from(&self, email: &str, password: &str, ip: &str, user_agent: &str) -> LocalResponse<'_> {
        let body = json!({ "email": email, "password": password });
        self.kit
            .client()
            .post(format!("{HOST_BASE}/login"))
            .remote(PROXY.parse::<SocketAddr>().expect("an address"))
            .header(ContentType::JSON)
            .header(Header::new("X-Forwarded-For", ip.to_owned()))
            .header(Header::new("User-Agent", user_agent.to_owned()))
            .body(body.to_string())
            .dispatch()
            .await
    }

    /// The audit events named `event`, newest first.
    async fn events(&self, event: &str) -> Vec<AuditRecord> {
        let auth = self.kit.client().rocket().state::<Auth>().expect("managed");
        let trail = auth.operators().audit_trail(None, 10_000).await.expect("the audit trail");
        trail.into_iter().filter(|record| record.event == event).collect()
    }

    /// The new-device notices `user` was sent, once the detached sends are done.
    async fn notices(&self, user: &TestUser) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = self.mail.sent().into_iter().filter(|m| m.to == user.email && m.subject.contains("New sign-in"));
        sent.map(|m| m.text).collect()
    }

    async fn activity(&self, access: &str) -> Vec<String> {
        let answer = self.kit.get("/me/activity", Some(access)).await;
        answer.expect(200);
        let events = answer.get("").as_array().cloned().unwrap_or_default();
        events.iter().filter_map(|e| e["event"].as_str().map(str::to_owned)).collect()
    }
}

async fn a_sign_in_from_a_device_unused_for_90_days_is_reported_and_mailed(backend: Backend) {
    let app = App::start(backend).await;
    let user = app.kit.verified_user("device").await;

    app.sign_in_from(&user, "198.51.100.7", CHROME_LINUX).await;
    assert!(app.notices(&user).await.is_empty(), "the first sign-in after registration is no news");
    app.sign_in_from(&user, "198.51.100.7", CHROME_LINUX).await;
    app.sign_in_from(&user, "198.51.100.200", CHROME_LINUX_NEXT).await;
    assert!(app.notices(&user).await.is_empty(), "the same network and browser, a newer version");

    let access = app.sign_in_from(&user, "203.0.113.9", FIREFOX_WINDOWS).await;
    let notices = app.notices(&user).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    let notice = &notices[0];
    assert!(notice.contains("Firefox on Windows") && notice.contains("UTC"), "{notice}");
    assert!(!notice.contains("203.0.113") && !notice.contains("Win64"), "no address, no full user agent: {notice}");
    let events = app.activity(&access).await;
    assert_eq!(events.iter().filter(|e| *e == "new_device_sign_in").count(), 1, "{events:?}");

    // Ninety days later the first device is forgotten.
    app.clock.advance(Duration::from_secs(91 * 24 * 3600));
    let access = app.sign_in_from(&user, "198.51.100.7", CHROME_LINUX).await;
    let notices = app.notices(&user).await;
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[1].contains("Chrome on Linux"), "{}", notices[1]);

    // Its link sets a new password, which ends every session, that one included.
    let token = notices[1].split("token=").nth(1).and_then(|t| t.split_whitespace().next()).expect("a link");
    let reset = json!({ "token": token, "new_password": "A-Brand-New-Passphrase-5" });
    app.kit.post("/password/reset/confirm", None, &reset).await.expect(204);
    app.kit.get("/me", Some(&access)).await.expect(401);
}

async fn failures_spread_over_accounts_or_over_addresses_are_reported(backend: Backend) {
    let app = App::start_with(backend, |config| {
        let limits = &mut config.rate_limits;
        limits.stuffing_accounts_per_address = 3;
        limits.attack_addresses_per_account = 3;
        limits.login_suspected = Quota::new(3, 900);
    })
    .await;
    let user = app.kit.verified_user("stuffed").await;
    let wrong = "Not-The-Password-1";

    // One address tries three accounts: credential stuffing, reported once.
    let stuffer = "198.51.100.7";
    for i in 0..2 {
        let email = format!("list-{i}@example.com");
        assert_eq!(app.attempt_from(&email, wrong, stuffer, CHROME_LINUX).await.status(), Status::Unauthorized);
    }
    assert!(app.events("credential_stuffing_suspected").await.is_empty(), "two accounts are not yet a pattern");
    assert_eq!(app.attempt_from(&user.email, wrong, stuffer, CHROME_LINUX).await.status(), Status::Unauthorized);
    let reported = app.events("credential_stuffing_suspected").await;
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0].ip.as_deref(), Some(stuffer));
    // Its logins now count against the lower quota (3 here), right or wrong.
    for i in 3..6 {
        let email = format!("list-{i}@example.com");
        assert_eq!(app.attempt_from(&email, wrong, stuffer, CHROME_LINUX).await.status(), Status::Unauthorized);
    }
    let limited = app.attempt_from(&user.email, &user.password, stuffer, CHROME_LINUX).await;
    assert_eq!(limited.status(), Status::TooManyRequests, "the lowered quota");
    assert_eq!(app.events("credential_stuffing_suspected").await.len(), 1, "once per window");
    let access = app.sign_in_from(&user, "203.0.113.5", CHROME_LINUX).await;
    let me = app.kit.get("/me", Some(&access)).await;
    let user_id = me.str("/id").to_owned();

    // One account tried from three addresses: under attack, reported once.
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"] {
        assert_eq!(app.attempt_from(&user.email, wrong, ip, CHROME_LINUX).await.status(), Status::Unauthorized);
    }
    let attacked = app.events("account_under_attack").await;
    assert_eq!(attacked.len(), 1, "{attacked:?}");
    assert_eq!(attacked[0].user_id.map(|id| id.to_string()), Some(user_id), "it names the account");

    // Nine days later (any window later) the counts start again.
    app.clock.advance(Duration::from_secs(9 * 24 * 3600));
    assert_eq!(
        app.attempt_from("list-9@example.com", wrong, stuffer, CHROME_LINUX).await.status(),
        Status::Unauthorized
    );
}
