//! Micro-benchmarks of the engine's hot paths: access-token verify and mint
//! (with the refresh token of a pair), the role policy check, password
//! hashing (through the pool and raw argon2), and refresh rotation on SQLite.
//!
//! `cargo bench -p auth-core --bench core` (add `-- tokens` etc. to filter).
//! Set `BENCH_DATABASE_URL=postgres://…` to run the rotation benches on
//! PostgreSQL as well (a fresh database: migrations run on connect).

use std::hint::black_box;
use std::time::Duration;

use argon2::password_hash::PasswordHasher as _;
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Block, Params, Version};
use auth_core::config::{MailTransport, PasswordSettings, TokenSettings};
use auth_core::identity::AccountFlags;
use auth_core::password::PasswordHasher;
use auth_core::store::RotateOutcome;
use auth_core::tenancy::{DefaultRoles, MANAGE_MEMBERS, RoleSet};
use auth_core::tokens::{AccessGrant, AccessTokens, KeySet, OpaqueToken};
use auth_core::{Auth, AuthConfig, ClientInfo, SigningAlgorithm};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{EncodingKey, Header, encode};
use uuid::Uuid;

const ALGORITHMS: [(SigningAlgorithm, &str); 4] = [
    (SigningAlgorithm::Rs256, "rs256"),
    (SigningAlgorithm::EdDsa, "eddsa"),
    (SigningAlgorithm::Es256, "es256"),
    (SigningAlgorithm::Hs256, "hs256"),
];

fn access_tokens(algorithm: SigningAlgorithm) -> AccessTokens {
    let spec = KeySet::generate(algorithm, "bench").expect("key generation");
    let settings = TokenSettings { algorithm, signing_key: Some(spec), ..TokenSettings::default() };
    let keys = KeySet::from_settings(&settings).expect("keys");
    AccessTokens::new(keys, "https://auth.example.com", "bench-api", &settings)
}

fn grant(tenant: bool) -> AccessGrant {
    AccessGrant {
        user_id: Uuid::now_v7(),
        session_id: Uuid::now_v7(),
        tenant: tenant.then(|| (Uuid::now_v7(), "member".to_owned())),
        account: AccountFlags { staff: false, superuser: false, email_verified: true },
    }
}

fn tokens(c: &mut Criterion) {
    let mut group = c.benchmark_group("tokens");
    for (algorithm, name) in ALGORITHMS {
        let tokens = access_tokens(algorithm);
        let grant = grant(true);
        group.bench_function(format!("mint/{name}"), |b| b.iter(|| tokens.mint(black_box(&grant)).unwrap()));
        // What login and refresh hand out: an access token and an opaque refresh token.
        group.bench_function(format!("mint_pair/{name}"), |b| {
            b.iter(|| {
                let access = tokens.mint(black_box(&grant)).unwrap();
                let refresh = OpaqueToken::generate();
                (access, refresh.hash())
            })
        });
        let (token, _) = tokens.mint(&grant).unwrap();
        group.bench_function(format!("verify/{name}"), |b| b.iter(|| tokens.verify(black_box(&token)).unwrap()));
    }

    // The baseline the cached signer replaced: jsonwebtoken's `encode`, which
    // parses the RSA private key on every call.
    let spec = KeySet::generate(SigningAlgorithm::Rs256, "bench").expect("key generation");
    let key = EncodingKey::from_rsa_pem(spec.pem.as_ref().unwrap().expose().as_bytes()).unwrap();
    let tokens = access_tokens(SigningAlgorithm::Rs256);
    let (_, claims) = tokens.mint(&grant(true)).unwrap();
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some("bench".into());
    group.bench_function("jsonwebtoken_encode_uncached/rs256", |b| {
        b.iter(|| encode(black_box(&header), black_box(&claims), &key).unwrap())
    });
    group.finish();
}

fn policy(c: &mut Criterion) {
    let roles = RoleSet::of::<DefaultRoles>();
    let mut group = c.benchmark_group("policy");
    group.bench_function("at_least", |b| b.iter(|| roles.at_least(black_box("member"), black_box("admin"))));
    group.bench_function("has_permission", |b| {
        b.iter(|| roles.has_permission(black_box("admin"), black_box(MANAGE_MEMBERS)))
    });
    group.finish();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
}

fn password(c: &mut Criterion) {
    let settings = PasswordSettings { hashing_threads: 1, ..PasswordSettings::default() };
    let rt = runtime();
    let hasher = rt.block_on(async { PasswordHasher::new(&settings) }).expect("hasher");
    let stored = rt.block_on(hasher.hash("correct horse battery staple")).unwrap();
    let params =
        Params::new(settings.argon2_memory_kib, settings.argon2_iterations, settings.argon2_parallelism, None).unwrap();
    let argon2 = Argon2::new(ArgonAlgorithm::Argon2id, Version::V0x13, params);

    let mut group = c.benchmark_group("password");
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    group.bench_function("raw_argon2_hash", |b| {
        b.iter(|| argon2.hash_password(black_box(b"correct horse battery staple")).unwrap().to_string())
    });
    // The same computation in memory allocated once, as the pool's threads do,
    // with and without clearing it after each hash.
    let mut memory = vec![Block::default(); argon2.params().block_count()];
    let mut output = [0u8; 32];
    group.bench_function("raw_argon2_hash_kept_memory", |b| {
        b.iter(|| {
            argon2.hash_password_into_with_memory(
                black_box(b"correct horse"),
                b"saltsaltsalt",
                &mut output,
                &mut memory,
            )
        })
    });
    group.bench_function("raw_argon2_hash_kept_memory_cleared", |b| {
        b.iter(|| {
            let result = argon2.hash_password_into_with_memory(
                black_box(b"correct horse"),
                b"saltsaltsalt",
                &mut output,
                &mut memory,
            );
            memory.fill(Block::default());
            result
        })
    });
    group.bench_function("pool_hash", |b| {
        b.iter(|| rt.block_on(hasher.hash(black_box("correct horse battery staple"))).unwrap())
    });
    group.bench_function("pool_verify", |b| {
        b.iter(|| rt.block_on(hasher.verify(black_box("correct horse battery staple"), Some(&stored))).unwrap())
    });
    group.finish();
}

/// An engine on `database_url` with one verified superuser, and a refresh token of theirs.
async fn engine(database_url: String) -> (Auth, String) {
    let mut config = AuthConfig { database_url, ..AuthConfig::default() };
    config.password.argon2_memory_kib = 1024;
    config.password.argon2_iterations = 1;
    config.mail.transport = MailTransport::Memory;
    config.rate_limits.enabled = false;
    config.tokens.signing_key = Some(KeySet::generate(SigningAlgorithm::Rs256, "bench").unwrap());
    let auth = Auth::builder(config).build().await.expect("engine");
    let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
    auth.create_superuser(&email, "correct horse battery staple 42", "Bench").await.expect("superuser");
    let pair = auth.login(&email, "correct horse battery staple 42", None, &ClientInfo::default()).await.unwrap();
    (auth, pair.refresh)
}

fn rotation(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut databases = vec![("sqlite", format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()))];
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        databases.push(("postgres", url));
    }
    let rt = runtime();
    let mut group = c.benchmark_group("refresh");
    group.sample_size(30);
    for (name, url) in databases {
        let (auth, refresh) = rt.block_on(engine(url));
        let client = ClientInfo::default();
        // The whole refresh: rotation, user lookup, minting, audit record.
        let mut current = refresh;
        group.bench_function(format!("auth_refresh/{name}"), |b| {
            b.iter(|| {
                let pair = rt.block_on(auth.refresh(&current, &client)).unwrap();
                current = pair.refresh;
            })
        });
        // The rotation transaction alone.
        let mut token = OpaqueToken::parse(&current).unwrap();
        let (idle, grace) = (86_400_000, 0);
        group.bench_function(format!("store_rotate/{name}"), |b| {
            b.iter_batched(
                || chrono::Utc::now().timestamp_millis(),
                |now| match rt.block_on(auth.store().rotate_refresh(&token, now, idle, grace)).unwrap() {
                    RotateOutcome::Rotated { successor, .. } => token = successor,
                    other => panic!("rotation failed: {other:?}"),
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, tokens, policy, password, rotation);
criterion_main!(benches);
