//! The app `bench/run` loads: the demo (`auth_demo::rocket`) plus two routes
//! that exist only here, as the baselines of the report:
//!
//! - `GET /bench/public`: a bare route, no guard;
//! - `GET /bench/raw-verify`: nothing but jsonwebtoken's `decode` of the
//!   bearer token with the same key and claims as the platform's guard;
//! - `GET /bench/protected`: the guard of the demo's `/api/protected`
//!   (`#[requires(authenticated)]`) with the bare route's body, so that
//!   protected / bare measures the platform's check and not the demo's JSON.
//!
//! Settings come from `Rocket.toml` and the environment as for the demo; on
//! top of that it turns the rate limits off (a load test is one client), runs
//! as `environment = "development"` (a release build would otherwise enforce
//! the deployment checklist) with a signing key generated per run and the
//! memory mailer (a release build never generates keys nor uses the outbox), and,
//! at liftoff, creates a verified user who owns a tenant and another for the
//! login load, and writes `{"email", "load_email", "password", "tenant_id"}`
//! to `BENCH_SETUP_FILE`.
//!
//! `BENCH_HASHING_THREADS=N` overrides the hashing pool size (both modes);
//! `BENCH_VERIFIED_CACHE=N` the verified-token cache's size (0: off);
//! `BENCH_ALGORITHM` the signing key's algorithm (`RS256` unless set; `EdDSA`
//! shows what the RSA signature costs a refresh);
//! `BENCH_DISTINCT_TOKENS=N` makes the setup also write N access tokens of one
//! session (a refresh chain), one per line, to `<BENCH_SETUP_FILE>.tokens`.
//!
//! `auth-bench bare` instead serves `GET /bench/public` from a Rocket app
//! without the platform: what an unprotected route costs with no fairing.
//!
//! `auth-bench argon2-rate SECONDS` instead prints the raw argon2 rate (the
//! verifications per second) of the configured parameters on as many threads
//! as the platform's pool: the ceiling login is compared with.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Params, PasswordHash, Version};
use auth_platform::core::{ClientInfo, tokens::AccessClaims};
use auth_platform::{Auth, requires};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{State, get, routes};

const PASSWORD: &str = "load-test correct horse battery staple";

#[get("/public")]
fn public() -> &'static str {
    "ok"
}

#[requires(authenticated)]
#[get("/protected")]
fn protected() -> &'static str {
    "ok"
}

/// The bearer token, or nothing.
struct Bearer<'r>(&'r str);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Bearer<'r> {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        match request.headers().get_one("Authorization").and_then(|value| value.strip_prefix("Bearer ")) {
            Some(token) => Outcome::Success(Bearer(token)),
            None => Outcome::Error((Status::Unauthorized, ())),
        }
    }
}

/// The platform's public signing key and a validation like its own.
struct RawVerifier {
    key: DecodingKey,
    validation: Validation,
}

#[get("/raw-verify")]
fn raw_verify(verifier: &State<RawVerifier>, token: Bearer<'_>) -> Result<&'static str, Status> {
    // The guard reads the header first as well (kid, typ); this is the least a verifier does.
    decode_header(token.0).map_err(|_| Status::Unauthorized)?;
    decode::<AccessClaims>(token.0, &verifier.key, &verifier.validation).map_err(|_| Status::Unauthorized)?;
    Ok("ok")
}

fn raw_verifier(auth: &Auth) -> RawVerifier {
    let jwks = auth.jwks();
    let jwk = jwks.find(auth.keys().signing_kid()).expect("the signing key is in the JWKS (not HS256)");
    let algorithm = Algorithm::try_from(jwk.common.key_algorithm.expect("alg")).expect("a JWS algorithm");
    let config = auth.config();
    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.leeway = config.tokens.leeway_secs;
    RawVerifier { key: DecodingKey::from_jwk(jwk).expect("a usable JWK"), validation }
}

async fn setup(auth: &Auth, path: &str) {
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let user = auth.operators().create_superuser(&email, PASSWORD, "Load Test").await.expect("bench user");
    let client = ClientInfo::default();
    let tenant = auth.tenants().create(user.id, "Load Test", &client).await.expect("bench tenant");
    if let Some(count) = env_number("BENCH_DISTINCT_TOKENS") {
        let mut pair = auth.sessions().login(&email, PASSWORD, None, &client).await.expect("bench login");
        let mut tokens = String::new();
        for _ in 0..count {
            pair = auth.sessions().refresh(pair.refresh.expose(), &client).await.expect("bench refresh");
            tokens.push_str(pair.access.expose());
            tokens.push('\n');
        }
        std::fs::write(format!("{path}.tokens"), tokens).expect("write the tokens file");
    }
    // The login load signs in as another user: every login beyond
    // tokens.max_sessions_per_user ends the oldest session of its user, which
    // would end the sessions whose tokens the other measurements use.
    let load_email = format!("load-{}@example.com", uuid::Uuid::new_v4().simple());
    auth.operators().create_superuser(&load_email, PASSWORD, "Login Load").await.expect("load user");
    let setup = serde_json::json!({
        "email": email, "load_email": load_email, "password": PASSWORD, "tenant_id": tenant.id,
    });
    std::fs::write(path, setup.to_string()).expect("write BENCH_SETUP_FILE");
}

/// A number from the environment, if set.
fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|n| n.parse().ok())
}

/// `BENCH_ALGORITHM` (`RS256`, the default, `EdDSA`, `ES256`): the signing key's.
fn signing_algorithm() -> auth_platform::core::SigningAlgorithm {
    let name = std::env::var("BENCH_ALGORITHM").unwrap_or_else(|_| "RS256".into());
    serde_json::from_value(serde_json::Value::String(name)).expect("BENCH_ALGORITHM: RS256, EdDSA or ES256")
}

/// `BENCH_HASHING_THREADS`: the hashing pool size to try instead of the default.
fn hashing_threads() -> Option<usize> {
    env_number("BENCH_HASHING_THREADS")
}

/// Verifications per second of raw argon2 on `threads` threads for `seconds`.
fn argon2_rate(seconds: u64) {
    let settings = auth_platform::AuthConfig::default().password;
    let threads = match hashing_threads().unwrap_or(settings.hashing_threads) {
        0 => auth_platform::core::password::default_hashing_threads(),
        n => n,
    };
    let params =
        Params::new(settings.argon2_memory_kib, settings.argon2_iterations, settings.argon2_parallelism, None).unwrap();
    let argon2 = Argon2::new(ArgonAlgorithm::Argon2id, Version::V0x13, params);
    let stored = argon2.hash_password(PASSWORD.as_bytes()).unwrap().to_string();
    let (done, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (argon2, stored, done, stop) = (argon2.clone(), stored.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                let hash = PasswordHash::new(&stored).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    argon2.verify_password(PASSWORD.as_bytes(), &hash).unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    workers.into_iter().for_each(|worker| worker.join().unwrap());
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    println!("threads={threads} rate={rate:.1}");
}

#[rocket::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("argon2-rate") {
        argon2_rate(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10));
        return;
    }
    if args.first().map(String::as_str) == Some("bare") {
        if let Err(error) = rocket::build().mount("/bench", routes![public]).launch().await {
            eprintln!("{error}");
            std::process::exit(1);
        }
        return;
    }
    let key = auth_platform::core::tokens::KeySet::generate(signing_algorithm(), "bench").expect("a signing key");
    let mut figment = rocket::Config::figment()
        .merge(("auth.rate_limits.enabled", false))
        // bench/run signs in once per refresh connection (up to 34 sessions).
        .merge(("auth.tokens.max_sessions_per_user", 1000))
        .merge(("auth.environment", "development"))
        .merge(("auth.tokens.signing_key", key))
        .merge(("auth.mail.transport", serde_json::json!({ "kind": "memory" })));
    if let Some(threads) = hashing_threads() {
        figment = figment.merge(("auth.password.hashing_threads", threads));
    }
    if let Some(entries) = env_number("BENCH_VERIFIED_CACHE") {
        figment = figment.merge(("auth.tokens.verified_cache_entries", entries));
    }
    let setup_file = std::env::var("BENCH_SETUP_FILE").unwrap_or_else(|_| "bench-setup.json".into());
    let rocket = auth_demo::rocket(figment)
        .mount("/bench", routes![public, raw_verify, protected])
        .attach(AdHoc::try_on_ignite("raw verifier", |rocket| async move {
            match rocket.state::<Auth>().map(raw_verifier) {
                Some(verifier) => Ok(rocket.manage(verifier)),
                None => Err(rocket),
            }
        }))
        .attach(AdHoc::on_liftoff("bench setup", move |rocket| {
            Box::pin(async move {
                let auth = rocket.state::<Auth>().expect("the auth fairing ran");
                setup(auth, &setup_file).await;
            })
        }));
    if let Err(error) = rocket.launch().await {
        eprintln!("{error}");
        std::process::exit(1);
    }
}
