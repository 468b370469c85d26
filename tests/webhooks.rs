//! Signed webhooks end to end: a receiver started by the test (a Rocket app
//! on a loopback socket) verifies every signature, answers `500` at first and
//! sees the retry, and on PostgreSQL two app instances deliver each event
//! exactly once between them.

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use auth_core::{Auth, AuthConfig, mail::MemoryMailer, webhooks};
use auth_rocket::{AuthFairing, testing::Conformance};
use common::{Backend, HOST_BASE, MAIL_FROM, PASSWORD, TestDatabase, figment, test_config};
use rocket::{
    State,
    http::Status,
    local::asynchronous::Client,
    post,
    request::{self, FromRequest, Request},
};
use serde_json::{Value, json};

backend_tests!(deliveries_are_signed_retried_and_visible, a_token_that_outlived_its_superuser_flag_changes_no_webhook);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Answer `500` to this many requests first.
    fail_first: Mutex<usize>,
}

struct Headers(String, String, String);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Headers {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let header = |name| request.headers().get_one(name).unwrap_or_default().to_owned();
        request::Outcome::Success(Headers(
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        ))
    }
}

#[post("/hook", data = "<body>")]
fn hook(inbox: &State<Arc<Inbox>>, headers: Headers, body: String) -> Status {
    let Headers(id, timestamp, signature) = headers;
    inbox.received.lock().unwrap().push(Received { id, timestamp, signature, body });
    let mut fail = inbox.fail_first.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        Status::InternalServerError
    } else {
        Status::NoContent
    }
}

/// The receiver on a free loopback port: its URL and what it got.
async fn receiver(fail_first: usize) -> (String, Arc<Inbox>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port();
    let inbox = Arc::new(Inbox { fail_first: Mutex::new(fail_first), ..Inbox::default() });
    let figment = rocket::Config::figment().merge(("port", port)).merge(("log_level", "critical"));
    let rocket = rocket::custom(figment).manage(inbox.clone()).mount("/", rocket::routes![hook]);
    tokio::spawn(rocket.launch());
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (format!("http://127.0.0.1:{port}/hook"), inbox)
}

fn webhook_config(database_url: &str) -> AuthConfig {
    let mut config = test_config(database_url);
    config.webhooks.allow_http = true;
    config.webhooks.allow_private_addresses = true;
    config.webhooks.poll_ms = 50;
    config.webhooks.retry_base_secs = 1;
    config
}

async fn instance(config: &AuthConfig) -> Conformance {
    let mail = MemoryMailer::new(MAIL_FROM).expect("a memory mailer");
    let platform_mail = mail.clone();
    let platform = AuthFairing::mounted_at(HOST_BASE).customize(move |b| b.mailer(Arc::new(platform_mail.clone())));
    let client = Client::tracked(rocket::custom(figment(config)).attach(platform)).await.expect("ignites");
    Conformance::new(client, HOST_BASE, mail)
}

/// A superuser's access token on `kit`'s app.
async fn superuser(kit: &Conformance) -> String {
    let auth = kit.client().rocket().state::<Auth>().expect("managed");
    let email = kit.unique_email("root");
    auth.operators().create_superuser(&email, PASSWORD, "Root").await.expect("a superuser");
    let answer = kit.post("/login", None, &json!({ "email": email, "password": PASSWORD })).await;
    answer.expect(200);
    answer.str("/access").to_owned()
}

/// Waits until `inbox` holds `count` requests.
async fn wait_for(inbox: &Inbox, count: usize) -> Vec<Received> {
    for _ in 0..300 {
        let received = inbox.received.lock().unwrap().clone();
        if received.len() >= count {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the receiver got {:?}, not {count} requests", inbox.received.lock().unwrap());
}

fn verify(secret: &str, received: &Received) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
    let now = i64::try_from(now).expect("in range");
    let (id, timestamp, signature, body) = (&received.id, &received.timestamp, &received.signature, &received.body);
    assert!(webhooks::verify(secret, id, timestamp, signature, body, now, 300), "the signature verifies: {received:?}");
    assert!(
        !webhooks::verify(secret, id, timestamp, signature, &format!("{body} "), now, 300),
        "and only for its body"
    );
    serde_json::from_str(body).expect("a JSON body")
}

async fn deliveries_are_signed_retried_and_visible(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let kit = instance(&webhook_config(&db.url)).await;
    let (url, inbox) = receiver(1).await;
    let root = superuser(&kit).await;

    let unknown = json!({ "url": url, "events": ["no_such_event"] });
    kit.post("/admin/webhooks", Some(&root), &unknown).await.expect_invalid("events");
    let user = kit.verified_user("hooked").await;
    let tokens = kit.sign_in(&user).await;
    let not_root = json!({ "url": url, "events": ["logged_out"] });
    kit.post("/admin/webhooks", Some(&tokens.access), &not_root).await.expect(403);

    let created = kit.post("/admin/webhooks", Some(&root), &json!({ "url": url, "events": ["logged_out"] })).await;
    created.expect(201);
    let secret = created.str("/secret").to_owned();
    let endpoint = created.str("/id").to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let listed = kit.get("/admin/webhooks", Some(&root)).await;
    assert!(!listed.text.contains(&secret), "the secret is shown once: {listed}");

    kit.sign_in(&user).await; // login_succeeded: not subscribed
    kit.post("/logout", Some(&tokens.access), &json!({ "refresh": tokens.refresh })).await.expect(204);

    // Answered 500 once, then delivered again with the same id and a valid signature.
    let received = wait_for(&inbox, 2).await;
    assert_eq!(received[0].id, received[1].id, "a retry is the same message");
    for request in &received {
        let payload = verify(&secret, request);
        assert_eq!(payload["type"], "logged_out");
        assert!(payload["data"]["user_id"].is_string(), "{payload}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inbox.received.lock().unwrap().len(), 2, "nothing more: the login was not subscribed");

    let deliveries = kit.get(&format!("/admin/webhooks/{endpoint}/deliveries"), Some(&root)).await;
    deliveries.expect(200);
    let delivery = deliveries.get("/0");
    assert_eq!(
        (delivery["state"].as_str(), delivery["attempts"].as_i64()),
        (Some("delivered"), Some(2)),
        "{deliveries}"
    );
    assert_eq!(delivery["last_status"], 204);
    assert_eq!(delivery["id"].as_str(), Some(received[0].id.as_str()));

    kit.send(rocket::http::Method::Delete, &format!("{HOST_BASE}/admin/webhooks/{endpoint}"), Some(&root), None, &[])
        .await
        .expect(204);
    kit.get(&format!("/admin/webhooks/{endpoint}/deliveries"), Some(&root)).await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set TEST_DATABASE_URL and pass --ignored"]
async fn two_instances_deliver_each_event_exactly_once() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let config = webhook_config(&db.url);
    let first = instance(&config).await;
    let (url, inbox) = receiver(0).await;
    let root = superuser(&first).await;
    let events = json!({ "url": url, "events": ["login_succeeded"] });
    first.post("/admin/webhooks", Some(&root), &events).await.expect(201);
    let second = instance(&config).await; // reads the subscription at its start

    let before = inbox.received.lock().unwrap().len();
    for i in 0..12 {
        let kit = if i % 2 == 0 { &first } else { &second };
        let user = kit.verified_user(&format!("twice-{i}")).await;
        kit.sign_in(&user).await;
    }
    wait_for(&inbox, before + 12).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received: Vec<_> = inbox.received.lock().unwrap().clone().into_iter().skip(before).collect();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for request in &received {
        *per_id.entry(request.id.clone()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 12, "one message per sign-in: {received:?}");
    assert!(per_id.values().all(|n| *n == 1), "each delivered exactly once: {per_id:?}");
}

/// A subscription outlives every token, so the superuser flag is read from
/// the database: a token that still says `superuser` after the account lost
/// the flag (or one forged with a leaked key for a real account) subscribes
/// and removes nothing.
async fn a_token_that_outlived_its_superuser_flag_changes_no_webhook(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let kit = instance(&webhook_config(&db.url)).await;
    let (url, _) = receiver(0).await;
    let auth = kit.client().rocket().state::<Auth>().expect("managed");
    let email = kit.unique_email("fallen-root");
    auth.operators().create_superuser(&email, PASSWORD, "Root").await.expect("a superuser");
    let answer = kit.post("/login", None, &json!({ "email": email, "password": PASSWORD })).await;
    answer.expect(200);
    let root = answer.str("/access").to_owned();
    let subscription = json!({ "url": url, "events": ["logged_out"] });
    let endpoint = kit.post("/admin/webhooks", Some(&root), &subscription).await;
    endpoint.expect(201);
    let endpoint = endpoint.str("/id").to_owned();

    let demote = "UPDATE users SET is_superuser = FALSE WHERE email = $1";
    let changed = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(demote).bind(&email).execute(&pool).await.unwrap().rows_affected()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(demote).bind(&email).execute(&pool).await.unwrap().rows_affected()
        }
    };
    assert_eq!(changed, 1, "the flag taken");
    kit.get("/admin/webhooks", Some(&root)).await.expect(200); // the claim still passes the route's check
    kit.post("/admin/webhooks", Some(&root), &subscription).await.expect_error(403, "forbidden");
    kit.delete(&format!("/admin/webhooks/{endpoint}"), Some(&root)).await.expect_error(403, "forbidden");
    let endpoints = auth.webhooks().endpoints().await.expect("the endpoints");
    assert_eq!(endpoints.len(), 1, "one endpoint, the first: {endpoints:?}");
}
