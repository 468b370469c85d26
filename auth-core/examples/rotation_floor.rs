//! The floor `bench/run` measures refresh against: one refresh's statements
//! (the rotation's transaction, its audit event included) through the
//! platform's own store on the same schema, at a given concurrency, with no HTTP, no
//! token minting and no rate limiting. Each connection rotates its own
//! session, as each wrk connection of `bench/run` does.
//!
//! `cargo run --release -p auth-core --example rotation_floor -- DATABASE_URL CONNECTIONS SECONDS`
//! prints `RESULT <rotations/s> <p50 ms> <p99 ms> <rotations>`.

use std::time::{Duration, Instant};

use auth_core::config::MailTransport;
use auth_core::tokens::{KeySet, OpaqueToken};
use auth_core::{Auth, AuthConfig, ClientInfo, RotateOutcome, SigningAlgorithm};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple 42";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, connections, seconds] = args.as_slice() else {
        eprintln!("usage: rotation_floor DATABASE_URL CONNECTIONS SECONDS");
        std::process::exit(2);
    };
    let connections: usize = connections.parse().expect("CONNECTIONS");
    let duration = Duration::from_secs(seconds.parse().expect("SECONDS"));

    let mut config = AuthConfig { database_url: url.clone(), ..AuthConfig::default() };
    config.password.argon2_memory_kib = 1024;
    config.password.argon2_iterations = 1;
    config.mail.transport = MailTransport::Memory;
    config.rate_limits.enabled = false;
    config.tokens.max_sessions_per_user = 1000;
    config.tokens.signing_key = Some(KeySet::generate(SigningAlgorithm::Rs256, "floor").expect("a key"));
    let idle_ms = i64::try_from(config.tokens.refresh_idle_ttl_secs * 1000).unwrap();
    let auth = Auth::builder(config).build().await.expect("the engine");
    let email = format!("floor-{}@example.com", Uuid::new_v4().simple());
    auth.operators().create_superuser(&email, PASSWORD, "Floor").await.expect("a user");
    let client = ClientInfo::default();
    let mut tokens = Vec::new();
    for _ in 0..connections {
        let pair = auth.sessions().login(&email, PASSWORD, None, &client).await.expect("a login");
        tokens.push(OpaqueToken::parse(pair.refresh.expose()).expect("a refresh token"));
    }

    let deadline = Instant::now() + duration;
    let workers = tokens.into_iter().map(|mut token| {
        let auth = auth.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let start = Instant::now();
                let now = chrono::Utc::now().timestamp_millis();
                match auth_core::testing::rotate_refresh(&auth, &token, now, idle_ms, 0).await {
                    Ok(RotateOutcome::Rotated { successor, .. }) => token = successor,
                    other => panic!("rotation failed: {other:?}"),
                }
                latencies.push(start.elapsed());
            }
            latencies
        })
    });
    let started = Instant::now();
    let mut latencies = Vec::new();
    for worker in workers.collect::<Vec<_>>() {
        latencies.extend(worker.await.expect("a worker"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let quantile = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "RESULT {:.1} {:.2} {:.2} {}",
        latencies.len() as f64 / elapsed,
        quantile(0.50).as_secs_f64() * 1000.0,
        quantile(0.99).as_secs_f64() * 1000.0,
        latencies.len()
    );
}
