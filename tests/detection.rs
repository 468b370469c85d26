//! Suspicious sign-ins over HTTP: clients at controlled addresses behind a
//! trusted proxy (`X-Forwarded-For`), one manual clock for the app and the
//! test, mail read from the memory mailer.

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use auth_core::{Clock, mail::MemoryMailer};
use auth_rocket::{AuthFairing, testing::Conformance};
use common::{Backend, HOST_BASE, MAIL_FROM, TestDatabase, TestUser, figment, test_config};
use rocket::{
    http::{ContentType, Header, Status},
    local::asynchronous::Client,
};
use serde_json::{Value, json};

backend_tests!(a_sign_in_from_a_device_unused_for_90_days_is_reported_and_mailed);

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
        let db = TestDatabase::new(backend).await;
        let mut config = test_config(&db.url);
        config.http.trusted_proxies = vec!["10.0.0.0/8".parse().expect("a network")];
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
        let body = json!({ "email": user.email, "password": user.password });
        let response = self
            .kit
            .client()
            .post(format!("{HOST_BASE}/login"))
            .remote(PROXY.parse::<SocketAddr>().expect("an address"))
            .header(ContentType::JSON)
            .header(Header::new("X-Forwarded-For", ip.to_owned()))
            .header(Header::new("User-Agent", user_agent.to_owned()))
            .body(body.to_string())
            .dispatch()
            .await;
        assert_eq!(response.status(), Status::Ok);
        let pair: Value = response.into_json().await.expect("a pair");
        pair["access"].as_str().expect("an access token").to_owned()
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
