//! The client address through HTTP, as the per-IP quotas and the sessions
//! list see it: every `X-Forwarded-For` and `Forwarded` line of a trusted
//! proxy walked right to left, IPv4-mapped peers read as IPv4, and requests
//! whose address is unknown limited together, never exempt.

mod common;

use std::net::SocketAddr;

use auth_core::{
    AuthConfig,
    config::{Quota, RateLimitSettings},
};
use common::{Answer, Backend, DEMO_BASE, PASSWORD, TestApp};
use rocket::http::{ContentType, Header, Method};
use serde_json::json;

backend_tests!(
    an_appending_proxy_keeps_the_login_quota_of_the_real_client,
    an_appending_proxy_keeps_the_register_quota_of_the_real_client,
    an_ipv4_mapped_peer_is_a_trusted_ipv4_proxy,
    requests_without_an_address_share_one_quota,
    garbage_hops_are_limited_in_the_unknown_bucket,
    the_conformance_kit_runs_under_the_default_quotas,
);

/// The trusted proxy, its network, and two clients behind it.
const PROXY: &str = "10.0.0.5:443";
const PROXIES: &str = "10.0.0.0/8";
const ALICE: &str = "198.51.100.7";
const BOB: &str = "198.51.100.8";

/// 3 logins and 2 registrations a minute per client; `PROXIES` trusted.
fn behind_a_proxy(config: &mut AuthConfig) {
    config.rate_limits.login = Quota::new(3, 60);
    config.rate_limits.register = Quota::new(2, 60);
    config.http.trusted_proxies = vec![PROXIES.parse().expect("a network")];
}

/// `POST <base><path>` from the socket address `remote` (none: the local
/// client's default), each header a line of its own, in order.
async fn post_from(
    app: &TestApp,
    remote: Option<&str>,
    path: &str,
    body: &str,
    lines: &[(&'static str, &str)],
) -> Answer {
    let uri = format!("{DEMO_BASE}{path}");
    let mut request = app.client().post(uri.clone()).header(ContentType::JSON).body(body);
    if let Some(remote) = remote {
        request = request.remote(remote.parse::<SocketAddr>().expect("a socket address"));
    }
    for (name, value) in lines {
        request = request.header(Header::new(*name, value.to_string()));
    }
    Answer::read(Method::Post, uri, request.dispatch().await).await
}

async fn login_from(app: &TestApp, remote: Option<&str>, email: &str, lines: &[(&'static str, &str)]) -> Answer {
    let body = json!({ "email": email, "password": PASSWORD }).to_string();
    post_from(app, remote, "/login", &body, lines).await
}

#[track_caller]
fn assert_limited(answer: &Answer) {
    answer.expect_error(429, "rate_limited");
    assert!(answer.retry_after.is_some(), "429 without Retry-After: {answer}");
}

/// HAProxy's `option forwardfor` adds a line of its own after whatever the
/// client sent: a client rotating the first line stays the client the proxy saw.
async fn an_appending_proxy_keeps_the_login_quota_of_the_real_client(backend: Backend) {
    let app = TestApp::demo_with(backend, behind_a_proxy).await;
    let user = app.kit.verified_user("rotating").await;
    for i in 0..8 {
        let fake = format!("203.0.113.{i}");
        let lines = [("X-Forwarded-For", fake.as_str()), ("X-Forwarded-For", ALICE)];
        let answer = login_from(&app, Some(PROXY), &user.email, &lines).await;
        if i < 3 {
            answer.expect(200);
        } else {
            assert_limited(&answer);
            // The same with RFC 7239 `Forwarded`, the proxy's line last.
            let forged = format!("for={fake}");
            let lines = [("Forwarded", forged.as_str()), ("Forwarded", "for=\"198.51.100.7:50123\"")];
            assert_limited(&login_from(&app, Some(PROXY), &user.email, &lines).await);
        }
    }
    // Bob, behind the same proxy, has a quota of his own.
    let bob = [("X-Forwarded-For", "203.0.113.0"), ("X-Forwarded-For", BOB)];
    login_from(&app, Some(PROXY), &user.email, &bob).await.expect(200);
}

async fn an_appending_proxy_keeps_the_register_quota_of_the_real_client(backend: Backend) {
    let app = TestApp::demo_with(backend, behind_a_proxy).await;
    for i in 0..5 {
        let body = json!({ "email": app.kit.unique_email("burst"), "password": PASSWORD, "full_name": "Burst" });
        let fake = format!("203.0.113.{i}");
        let lines = [("X-Forwarded-For", fake.as_str()), ("X-Forwarded-For", ALICE)];
        let answer = post_from(&app, Some(PROXY), "/register", &body.to_string(), &lines).await;
        if i < 2 {
            answer.expect(201);
        } else {
            assert_limited(&answer);
        }
    }
}

/// A dual-stack listener sees an IPv4 proxy as `::ffff:10.0.0.5`: it is the
/// trusted proxy of `10.0.0.0/8`, and the client it names is recorded as IPv4.
async fn an_ipv4_mapped_peer_is_a_trusted_ipv4_proxy(backend: Backend) {
    let app = TestApp::demo_with(backend, behind_a_proxy).await;
    let user = app.kit.verified_user("mapped").await;
    let mapped_proxy = "[::ffff:10.0.0.5]:443";
    let alice = [("X-Forwarded-For", "::ffff:198.51.100.7")];
    let mut access = String::new();
    for _ in 0..3 {
        let answer = login_from(&app, Some(mapped_proxy), &user.email, &alice).await;
        answer.expect(200);
        access = answer.str("/access").to_owned();
    }
    // Alice's quota, under either spelling of her address.
    assert_limited(&login_from(&app, Some(mapped_proxy), &user.email, &alice).await);
    assert_limited(&login_from(&app, Some(PROXY), &user.email, &[("X-Forwarded-For", ALICE)]).await);
    // Not the proxy's: Bob behind it has his own.
    login_from(&app, Some(mapped_proxy), &user.email, &[("X-Forwarded-For", BOB)]).await.expect(200);
    // Her sessions carry her address, not the proxy's.
    let sessions = app.get(&format!("{DEMO_BASE}/sessions"), Some(&access)).await;
    sessions.expect(200);
    let ips: Vec<_> = sessions.json.as_array().expect("a list").iter().map(|s| s["ip"].clone()).collect();
    assert!(ips.iter().filter(|ip| **ip == json!(ALICE)).count() >= 3, "{sessions}");
    assert!(ips.iter().all(|ip| *ip == json!(ALICE) || *ip == json!(BOB)), "{sessions}");
}

/// A request with no peer address (a Unix socket; Rocket's local client) is
/// counted, in one bucket for all of them.
async fn requests_without_an_address_share_one_quota(backend: Backend) {
    let app = TestApp::demo_with(backend, behind_a_proxy).await;
    let user = app.kit.verified_user("nowhere").await;
    for _ in 0..3 {
        login_from(&app, None, &user.email, &[]).await.expect(200);
    }
    assert_limited(&login_from(&app, None, &user.email, &[]).await);
    assert_limited(&login_from(&app, None, &user.email, &[("X-Forwarded-For", BOB)]).await);
}

/// A hop that names no address ends the walk: the client is unknown, whatever
/// it wrote further left, and shares the one unknown bucket.
async fn garbage_hops_are_limited_in_the_unknown_bucket(backend: Backend) {
    let app = TestApp::demo_with(backend, behind_a_proxy).await;
    let user = app.kit.verified_user("garbage").await;
    let garbage: [&[(&'static str, &str)]; 5] = [
        &[("X-Forwarded-For", "203.0.113.1, unknown")],
        &[("X-Forwarded-For", "203.0.113.2"), ("X-Forwarded-For", "garbage")],
        &[("Forwarded", "for=203.0.113.3, for=_hidden")],
        &[("Forwarded", "for=203.0.113.4;proto=\"https")],
        // A proxy writing one header and the client the other: no way to tell which.
        &[("X-Forwarded-For", ALICE), ("Forwarded", "for=203.0.113.5")],
    ];
    for (i, lines) in garbage.iter().enumerate() {
        let answer = login_from(&app, Some(PROXY), &user.email, lines).await;
        if i < 3 {
            answer.expect(200);
        } else {
            assert_limited(&answer);
        }
    }
    // The bucket of every unknown address, not that of the proxy or of anyone named.
    assert_limited(&login_from(&app, None, &user.email, &[]).await);
    login_from(&app, Some(PROXY), &user.email, &[]).await.expect(200);
    login_from(&app, Some(PROXY), &user.email, &[("X-Forwarded-For", "203.0.113.1")]).await.expect(200);
    login_from(&app, Some(PROXY), &user.email, &[("X-Forwarded-For", ALICE)]).await.expect(200);
}

/// The kit's requests are not one client of unknown address: a host app's
/// suite passes with the quotas it runs with in production.
async fn the_conformance_kit_runs_under_the_default_quotas(backend: Backend) {
    let app = TestApp::demo_with(backend, |config| config.rate_limits = RateLimitSettings::default()).await;
    app.kit.run_all().await;
}
