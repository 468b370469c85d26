//! Micro-benchmarks of the engine's hot paths: access-token verify and mint
//! (with the refresh token of a pair), the role policy check, password
//! hashing (through the pool and raw argon2), refresh rotation on SQLite, and
//! the revocation list with 100 000 and 1 000 000 revoked sessions.
//!
//! `cargo bench -p auth-core --bench core` (add `-- tokens` etc. to filter).
//! Set `BENCH_DATABASE_URL=postgres://…` to run the rotation benches on
//! PostgreSQL as well (a fresh database: migrations run on connect).

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use argon2::password_hash::PasswordHasher as _;
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Block, Params, Version};
use auth_core::RotateOutcome;
use auth_core::config::{MailTransport, PasswordSettings, TokenSettings};
use auth_core::identity::AccountFlags;
use auth_core::password::PasswordHasher;
use auth_core::tenancy::{DefaultRoles, MANAGE_MEMBERS, RoleSet};
use auth_core::tokens::{AccessGrant, AccessTokens, KeySet, OpaqueToken, RevocationList};
use auth_core::{Auth, AuthConfig, ClientInfo, Clock, SigningAlgorithm};
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
    AccessTokens::new(keys, "https://auth.example.com", "bench-api", &settings, Clock::system())
}

fn grant(tenant: bool) -> AccessGrant {
    AccessGrant {
        user_id: Uuid::now_v7(),
        session_id: Uuid::now_v7(),
        tenant: tenant.then(|| (Uuid::now_v7(), "member".to_owned())),
        account: AccountFlags { staff: false, superuser: false, email_verified: true },
        amr: vec!["pwd".to_owned()],
        auth_time: Clock::system().now().timestamp(),
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

/// Settings of the engine benches: cheap argon2, no rate limits, a fresh key.
fn bench_config(database_url: String) -> AuthConfig {
    let mut config = AuthConfig { database_url, ..AuthConfig::default() };
    config.password.argon2_memory_kib = 1024;
    config.password.argon2_iterations = 1;
    config.mail.transport = MailTransport::Memory;
    config.rate_limits.enabled = false;
    config.tokens.signing_key = Some(KeySet::generate(SigningAlgorithm::Rs256, "bench").unwrap());
    config
}

/// An engine on `database_url` with one verified superuser, and a refresh token of theirs.
async fn engine(database_url: String) -> (Auth, String) {
    let auth = Auth::builder(bench_config(database_url)).build().await.expect("engine");
    let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
    auth.operators().create_superuser(&email, "correct horse battery staple 42", "Bench").await.expect("superuser");
    let pair =
        auth.sessions().login(&email, "correct horse battery staple 42", None, &ClientInfo::default()).await.unwrap();
    (auth, pair.refresh.expose().to_owned())
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
                let pair = rt.block_on(auth.sessions().refresh(&current, &client)).unwrap();
                current = pair.refresh.expose().to_owned();
            })
        });
        // The rotation transaction alone.
        let mut token = OpaqueToken::parse(&current).unwrap();
        let (idle, grace) = (86_400_000, 0);
        group.bench_function(format!("store_rotate/{name}"), |b| {
            b.iter_batched(
                || chrono::Utc::now().timestamp_millis(),
                |now| match rt.block_on(auth_core::testing::rotate_refresh(&auth, &token, now, idle, grace)).unwrap() {
                    RotateOutcome::Rotated { successor, .. } => token = successor,
                    other => panic!("rotation failed: {other:?}"),
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The list sizes the revocation benches run at: verification and a poll's
/// merge must cost the same at both.
const REVOKED: [(usize, &str); 2] = [(100_000, "100k"), (1_000_000, "1m")];

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<usize>().ok()).unwrap_or(0) * 4096
}

fn revocation_list(c: &mut Criterion) {
    let mut group = c.benchmark_group("revocation");
    for (n, name) in REVOKED {
        // n sessions revoked one per millisecond: the window is n ms long.
        let before = resident_bytes();
        let list = RevocationList::new(2 * n, 30_000);
        let revoked: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
        for (at, id) in revoked.iter().enumerate() {
            list.revoke([*id], at as i64);
        }
        let grown = resident_bytes().saturating_sub(before);
        eprintln!("revocation list of {n} entries: {grown} bytes resident, {} per entry", grown / n);

        let (live, present) = (Uuid::new_v4(), revoked[n / 2]);
        group.bench_function(format!("is_revoked/live/{name}"), |b| {
            b.iter(|| list.is_revoked(black_box(live), black_box(i64::MAX / 1000)))
        });
        group.bench_function(format!("is_revoked/revoked/{name}"), |b| {
            b.iter(|| list.is_revoked(black_box(present), black_box(i64::MAX / 1000)))
        });

        // One poll: 100 sessions revoked since the last, re-read with the 900
        // before them (the overlap), while the 100 oldest expire.
        let mut next = n as i64;
        let mut recent: VecDeque<(Uuid, i64)> =
            revoked[n - 900..].iter().zip(n as i64 - 900..).map(|(id, at)| (*id, at)).collect();
        group.bench_function(format!("poll_merge/{name}"), |b| {
            b.iter_batched(
                || {
                    for _ in 0..100 {
                        recent.pop_front();
                        recent.push_back((Uuid::new_v4(), next));
                        next += 1;
                    }
                    (recent.iter().copied().collect::<Vec<_>>(), next)
                },
                |(rows, polled_at)| list.merge_poll(&rows, polled_at, polled_at - n as i64),
                BatchSize::SmallInput,
            )
        });
        assert_eq!(list.len(), n, "the list stays at n entries");
    }
    group.finish();
}

/// The whole `Auth::verify_access` and the poll's store query, on SQLite with
/// 100 000 and then 1 000 000 families revoked within the window.
fn revocation_engine(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = bench_config(format!("sqlite://{}/revoked.db?mode=rwc", dir.path().display()));
    config.tokens.revocation_max_entries = 2_000_000;
    let rt = runtime();
    let (user, access) = rt.block_on(async {
        let auth = Auth::builder(config.clone()).build().await.expect("engine");
        let password = "correct horse battery staple 42";
        let user = auth.operators().create_superuser("revoked@example.com", password, "Bench").await.unwrap();
        let pair = auth.sessions().login("revoked@example.com", password, None, &ClientInfo::default()).await.unwrap();
        (user.id, pair.access)
    });
    let keys = KeySet::from_settings(&config.tokens).unwrap();
    let minter = AccessTokens::new(keys, &config.issuer, &config.audience, &config.tokens, Clock::system());
    let pool = rt.block_on(sqlx::SqlitePool::connect(&config.database_url)).unwrap();
    let mut group = c.benchmark_group("revocation");
    group.sample_size(10);
    let mut inserted = 0;
    for (n, name) in REVOKED {
        let now = chrono::Utc::now().timestamp_millis();
        // The bulk revoked 60 to 200 s ago (in the window until the last stage
        // has loaded), 100 in the last 0.1 s, and one whose token the engine must refuse.
        let revoked_session = Uuid::now_v7();
        rt.block_on(async {
            for (count, age) in [(n - inserted - 101, "60000 + i % 140000"), (100, "i")] {
                let sql = format!(
                    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1) \
                     INSERT INTO refresh_families (id, user_id, created_at, last_used_at, absolute_expires_at, \
                     revoked_at, revoke_reason) \
                     SELECT randomblob(16), $2, $3, $3, $3 + 86400000, $3 - ({age}), 'bench' FROM n"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(count as i64)
                    .bind(user)
                    .bind(now)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            sqlx::query(
                "INSERT INTO refresh_families (id, user_id, created_at, last_used_at, absolute_expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $3, $3, $3)",
            )
            .bind(revoked_session)
            .bind(user)
            .bind(now - 500)
            .execute(&pool)
            .await
            .unwrap();
        });
        inserted = n;
        // A new instance loads the whole window once, at start.
        let auth = rt.block_on(Auth::builder(config.clone()).build()).expect("engine");
        let grant = AccessGrant {
            user_id: user,
            session_id: revoked_session,
            tenant: None,
            account: AccountFlags { staff: true, superuser: true, email_verified: true },
            ..grant(false)
        };
        let (refused, _) = minter.mint(&grant).unwrap();
        assert!(auth.verify_access(&refused).is_err(), "the engine holds the revoked sessions");
        group.bench_function(format!("verify_access/rs256/{name}"), |b| {
            b.iter(|| auth.verify_access(black_box(access.expose())).unwrap())
        });
        // A poll that finds the 101 latest rows, and what every poll read
        // before: the whole window.
        let store = auth_core::testing::store(&auth);
        let since = now - 1_000;
        assert_eq!(rt.block_on(store.revoked_since(since)).unwrap().len(), 101);
        group.bench_function(format!("poll_query/sqlite/{name}"), |b| {
            b.iter(|| rt.block_on(store.revoked_since(black_box(since))).unwrap())
        });
        group.bench_function(format!("full_window_query/sqlite/{name}"), |b| {
            b.iter(|| rt.block_on(store.revoked_since(black_box(now - 330_000))).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, tokens, policy, password, rotation, revocation_list, revocation_engine);
criterion_main!(benches);
