//! `GET /metrics` scraped and parsed: off unless enabled, only for the
//! configured scraper token, and the platform's series in the Prometheus text
//! format. One test: the recorder is the process's.

mod common;

use std::{collections::HashMap, sync::Arc};

use auth_core::{Secret, mail::MemoryMailer};
use auth_rocket::{AuthFairing, testing::Conformance};
use common::{Backend, HOST_BASE, MAIL_FROM, TestDatabase, figment, test_config};
use rocket::{
    http::{Header, Status},
    local::asynchronous::Client,
};
use serde_json::json;

const TOKEN: &str = "a-scraper-token-of-32-characters-at-least";

async fn host(db: &TestDatabase, enabled: bool, token: Option<&str>) -> Result<Conformance, rocket::Error> {
    let mut config = test_config(&db.url);
    config.metrics.enabled = enabled;
    config.metrics.token = token.map(Secret::new);
    let mail = MemoryMailer::new(MAIL_FROM).expect("a memory mailer");
    let platform_mail = mail.clone();
    let platform = AuthFairing::mounted_at(HOST_BASE).customize(move |b| b.mailer(Arc::new(platform_mail.clone())));
    let client = Client::tracked(rocket::custom(figment(&config)).attach(platform)).await?;
    Ok(Conformance::new(client, HOST_BASE, mail))
}

/// Whether ignition was refused (a `rocket::Error` must be looked at before it is dropped).
fn refused(result: Result<Conformance, rocket::Error>) -> bool {
    result.map_err(|error| matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_))).err().unwrap_or(false)
}

/// Every sample of a text exposition: `name{labels}` to its value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample line: {line}"));
            (series.to_owned(), value.parse().unwrap_or_else(|_| panic!("a number in {line}")))
        })
        .collect()
}

async fn scrape(kit: &Conformance, token: Option<&str>) -> (Status, String) {
    let mut request = kit.client().get("/metrics");
    if let Some(token) = token {
        request = request.header(Header::new("Authorization", format!("Bearer {token}")));
    }
    let response = request.dispatch().await;
    (response.status(), response.into_string().await.unwrap_or_default())
}

#[tokio::test]
async fn metrics_are_off_by_default_guarded_by_their_token_and_parse() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let off = host(&db, false, None).await.expect("ignites");
    assert_eq!(scrape(&off, Some(TOKEN)).await.0, Status::NotFound, "off by default");
    drop(off);
    assert!(refused(host(&TestDatabase::new(Backend::Sqlite).await, true, None).await), "on without a token");
    assert!(refused(host(&TestDatabase::new(Backend::Sqlite).await, true, Some("short")).await), "a guessable token");

    let db = TestDatabase::new(Backend::Sqlite).await;
    let kit = host(&db, true, Some(TOKEN)).await.expect("ignites");
    let (status, body) = scrape(&kit, None).await;
    assert_eq!(status, Status::Unauthorized);
    assert!(body.contains("missing_token"), "the contract's error body: {body}");
    assert_eq!(scrape(&kit, Some("a-wrong-token-of-32-characters-at-least")).await.0, Status::Unauthorized);

    let user = kit.verified_user("metrics").await;
    let tokens = kit.sign_in(&user).await;
    kit.post("/login", None, &json!({ "email": user.email, "password": "Wrong-Password-1" })).await.expect(401);
    kit.post("/refresh", None, &json!({ "refresh": tokens.refresh })).await.expect(200);
    kit.post("/refresh", None, &json!({ "refresh": tokens.refresh })).await.expect(401);
    // The reuse revoked the session: its access token is refused as revoked;
    // a token whose signature was changed, as a bad signature.
    kit.get("/me", Some(&tokens.access)).await.expect(401);
    let (head, signature) = tokens.access.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    kit.get("/me", Some(&format!("{head}.{flipped}{}", &signature[1..]))).await.expect(401);

    let (status, body) = scrape(&kit, Some(TOKEN)).await;
    assert_eq!(status, Status::Ok);
    let samples = samples(&body);
    for event in ["login_succeeded", "login_failed", "refreshed", "refresh_reuse_detected", "registered"] {
        let series = format!("auth_events_total{{event=\"{event}\"}}");
        assert!(samples.get(&series).is_some_and(|n| *n >= 1.0), "{series} in:\n{body}");
    }
    assert!(samples.get("auth_hashing_queue_depth").is_some_and(|n| *n >= 0.0), "{body}");
    assert!(samples.keys().any(|series| series.starts_with("auth_hashing_wait_seconds")), "{body}");
    assert!(samples.contains_key("auth_revocation_list_size"), "{body}");
    assert!(samples.contains_key("auth_verified_token_cache_size"), "{body}");
    assert!(samples.get("auth_revocation_last_poll_timestamp_seconds").is_some_and(|t| *t > 1.7e9), "{body}");
    assert!(samples.get("auth_mail_total{outcome=\"sent\"}").is_some_and(|n| *n >= 1.0), "{body}");
    for reason in ["revoked", "bad signature"] {
        let series = format!("auth_access_tokens_rejected_total{{reason=\"{reason}\"}}");
        assert!(samples.get(&series).is_some_and(|n| *n >= 1.0), "{series} in:\n{body}");
    }
    assert!(body.contains("# HELP auth_events_total Audit events, by event"), "described: {body}");
    assert!(!body.contains(&user.email) && !body.contains(&tokens.refresh), "no user, no secret in a label");
}
