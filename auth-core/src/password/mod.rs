//! Argon2id password hashing on a bounded pool of dedicated threads, and the
//! password policy.
//!
//! Argon2 is deliberately slow and memory-hungry, so it must never run on a
//! Tokio worker (it would stall every request on that worker) nor on
//! `spawn_blocking` (unbounded: a login flood would start hundreds of threads
//! and exhaust memory). Instead a fixed set of OS threads takes jobs from a
//! channel, and a semaphore with one permit per thread bounds the work in
//! flight; a caller that cannot get a permit in time gets
//! [`AuthError::Overloaded`] rather than queueing without limit.

use std::{
    fmt,
    num::NonZero,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{Semaphore, oneshot};

use crate::{
    config::{ConfigError, MAX_PASSWORD_BYTES, PasswordSettings},
    error::{AuthError, FieldErrors},
    secret::Secret,
};

mod phc;
mod policy;
mod workers;

use workers::{Job, Memory, Work, Worker};

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches. When `needs_rehash` is set, the stored hash uses
    /// other parameters than the configured ones: hash the password again and
    /// store the new hash.
    Valid {
        needs_rehash: bool,
    },
    Invalid,
}

/// Hashes and verifies passwords with argon2id on dedicated threads.
///
/// The threads end when this value is dropped.
pub struct PasswordHasher {
    jobs: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    threads: usize,
    params: Params,
    settings: PasswordSettings,
    completed: Arc<AtomicU64>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("threads", &self.threads)
            .field("memory_kib", &self.params.m_cost())
            .field("iterations", &self.params.t_cost())
            .field("parallelism", &self.params.p_cost())
            .field("queue_timeout", &self.queue_timeout)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Starts the hashing threads. Cheap: no hash is computed here, so it may
    /// be called from async code.
    pub fn new(settings: &PasswordSettings) -> Result<Self, ConfigError> {
        let params =
            Params::new(settings.argon2_memory_kib, settings.argon2_iterations, settings.argon2_parallelism, None)
                .map_err(|e| {
                    ConfigError::single(
                        "password.argon2_memory_kib",
                        format!("argon2 parameters are out of range: {e}"),
                    )
                })?;
        let threads = match settings.hashing_threads {
            // One core is left to the request path: with every core hashing, a
            // login storm pushed a cheap protected route's p99 from ~4 ms to ~7 ms
            // on 2 cores, while logins got through at a lower share of the
            // pool's ceiling (BENCHMARKS.md).
            0 => default_hashing_threads(),
            n => n,
        };
        let (jobs, receiver) = mpsc::channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let completed = Arc::new(AtomicU64::new(0));
        for index in 0..threads {
            let worker = Worker {
                argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()),
                memory: Memory::new(&params),
                completed: Arc::clone(&completed),
            };
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new().name(format!("argon2-{index}")).spawn(move || worker.run(&receiver)).map_err(
                |e| ConfigError::single("password.hashing_threads", format!("cannot start a hashing thread: {e}")),
            )?;
        }

        Ok(Self {
            jobs,
            permits: Arc::new(Semaphore::new(threads)),
            queue_timeout: Duration::from_millis(settings.hashing_queue_timeout_ms),
            threads,
            params,
            settings: settings.clone(),
            completed,
        })
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    ///
    /// A password over [`MAX_PASSWORD_BYTES`] bytes is a validation error and is
    /// not hashed; callers should have run [`Self::check_policy`] first.
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(FieldErrors::single("password", too_many_bytes()));
        }
        let password = Secret::new(password);
        self.run(|reply| Work::Hash { password, reply }).await?
    }

    /// Checks `password` against `stored`.
    ///
    /// `None` (an unknown user, or an account without a password) costs the
    /// same as a real check, so response times do not reveal which accounts
    /// exist, and is always [`Verification::Invalid`].
    ///
    /// A password over [`MAX_PASSWORD_BYTES`] bytes is `Invalid` at once, with
    /// no hashing: this shortcut depends only on the submitted password, never
    /// on the account, so it reveals nothing about accounts.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<Verification, AuthError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(Verification::Invalid);
        }
        let password = Secret::new(password);
        let stored = stored.map(str::to_owned);
        self.run(|reply| Work::Verify { password, stored, reply }).await
    }

    /// How many hashing jobs the threads have finished (for metrics and tests).
    pub fn completed_jobs(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Waits (bounded) for a free thread, hands it the job and awaits the answer.
    async fn run<T>(&self, work: impl FnOnce(oneshot::Sender<T>) -> Work) -> Result<T, AuthError> {
        let queued = std::time::Instant::now();
        let depth = metrics::gauge!(crate::metrics::HASHING_QUEUE_DEPTH);
        depth.increment(1.0);
        let permit = tokio::time::timeout(self.queue_timeout, Arc::clone(&self.permits).acquire_owned()).await;
        depth.decrement(1.0);
        metrics::histogram!(crate::metrics::HASHING_WAIT).record(queued.elapsed().as_secs_f64());
        let permit = permit
            .map_err(|_| {
                tracing::warn!(threads = self.threads, "password hashing pool saturated");
                AuthError::Overloaded
            })?
            // The semaphore is never closed.
            .map_err(AuthError::internal)?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { work: work(reply), permit })
            .map_err(|_| AuthError::internal("password hashing threads are gone"))?;
        answer.await.map_err(|_| AuthError::internal("password hashing job failed"))
    }
}

/// The hashing pool size when none is configured: every CPU but one, at least one.
pub fn default_hashing_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| NonZero::get(n).saturating_sub(1).max(1))
}

fn too_many_bytes() -> String {
    format!("use at most {MAX_PASSWORD_BYTES} bytes")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use argon2::{PasswordHash, PasswordVerifier as _, password_hash::PasswordHasher as _};

    use super::workers::SALT_LEN;
    use super::*;

    fn settings(memory_kib: u32, iterations: u32, threads: usize) -> PasswordSettings {
        PasswordSettings {
            argon2_memory_kib: memory_kib,
            argon2_iterations: iterations,
            argon2_parallelism: 1,
            hashing_threads: threads,
            ..PasswordSettings::default()
        }
    }

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(&settings(1024, 1, 2)).unwrap()
    }

    const EMAIL_INPUTS: [&str; 3] = ["jane.doe@example.com", "jane.doe", "Jane Doe"];

    fn policy_errors(password: &str) -> Option<Vec<String>> {
        let hasher = cheap();
        let errors = hasher.check_policy("new_password", password, &EMAIL_INPUTS);
        assert!(errors.get("password").is_none(), "errors must use the given field name");
        errors.get("new_password").map(<[String]>::to_vec)
    }

    #[tokio::test]
    async fn default_params_hash_then_verify() {
        let hasher = PasswordHasher::new(&PasswordSettings::default()).unwrap();
        let hash = hasher.hash("correct horse battery staple").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        let result = hasher.verify("correct horse battery staple", Some(&hash)).await.unwrap();
        assert_eq!(result, Verification::Valid { needs_rehash: false });
    }

    #[tokio::test]
    async fn hash_then_verify_is_valid_and_salted() {
        let hasher = cheap();
        let first = hasher.hash("s3cret pass").await.unwrap();
        let second = hasher.hash("s3cret pass").await.unwrap();
        assert_ne!(first, second, "each hash has its own salt");
        assert_eq!(
            hasher.verify("s3cret pass", Some(&first)).await.unwrap(),
            Verification::Valid { needs_rehash: false }
        );
    }

    #[tokio::test]
    async fn wrong_password_is_invalid() {
        let hasher = cheap();
        let hash = hasher.hash("s3cret pass").await.unwrap();
        assert_eq!(hasher.verify("s3cret pasS", Some(&hash)).await.unwrap(), Verification::Invalid);
    }

    #[tokio::test]
    async fn unknown_user_is_invalid_and_still_hashes() {
        let hasher = cheap();
        assert_eq!(hasher.completed_jobs(), 0, "construction computes no hash");
        assert_eq!(hasher.verify("anything", None).await.unwrap(), Verification::Invalid);
        assert_eq!(hasher.completed_jobs(), 1);
    }

    #[tokio::test]
    async fn changed_params_need_rehash() {
        let old = cheap();
        let new = PasswordHasher::new(&settings(2048, 1, 1)).unwrap();
        let hash = old.hash("s3cret pass").await.unwrap();
        assert_eq!(new.verify("s3cret pass", Some(&hash)).await.unwrap(), Verification::Valid { needs_rehash: true });
        assert_eq!(new.verify("wrong", Some(&hash)).await.unwrap(), Verification::Invalid);
        let fresh = new.hash("s3cret pass").await.unwrap();
        assert_eq!(new.verify("s3cret pass", Some(&fresh)).await.unwrap(), Verification::Valid { needs_rehash: false });
    }

    #[tokio::test]
    async fn costlier_stored_hashes_verify_beyond_the_kept_memory() {
        let costly = PasswordHasher::new(&settings(4096, 1, 1)).unwrap();
        let hash = costly.hash("s3cret pass").await.unwrap();
        let hasher = cheap();
        assert_eq!(
            hasher.verify("s3cret pass", Some(&hash)).await.unwrap(),
            Verification::Valid { needs_rehash: true }
        );
        assert_eq!(hasher.verify("s3cret pasS", Some(&hash)).await.unwrap(), Verification::Invalid);
        // The kept memory still serves the configured cost afterwards.
        let own = hasher.hash("s3cret pass").await.unwrap();
        assert_eq!(
            hasher.verify("s3cret pass", Some(&own)).await.unwrap(),
            Verification::Valid { needs_rehash: false }
        );
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings() {
        let hasher = cheap();
        let hash = hasher.hash("s3cret pass").await.unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        let argon2 = Argon2::default();
        argon2.verify_password(b"s3cret pass", &parsed).expect("the argon2 crate verifies our hashes");
        assert!(argon2.verify_password(b"s3cret pasS", &parsed).is_err());
    }

    #[tokio::test]
    async fn other_argon2_variant_needs_rehash() {
        let hasher = cheap();
        let params = Params::new(1024, 1, 1, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password_with_salt(b"s3cret pass", &[7; SALT_LEN])
            .unwrap()
            .to_string();
        assert_eq!(
            hasher.verify("s3cret pass", Some(&argon2i)).await.unwrap(),
            Verification::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn malformed_hashes_are_invalid() {
        let hasher = cheap();
        for stored in [
            "",
            "not a hash",
            "$argon2id$v=19$m=abc,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=19$m=1024,t=1,p=1",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0",
            "$argon2id$v=99$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert_eq!(hasher.verify("pw", Some(stored)).await.unwrap(), Verification::Invalid, "{stored}");
        }
    }

    #[tokio::test]
    async fn over_long_password_is_refused_without_hashing() {
        let hasher = cheap();
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        let error = hasher.hash(&long).await.unwrap_err();
        assert!(matches!(error, AuthError::Validation(_)), "{error:?}");
        assert_eq!(hasher.verify(&long, None).await.unwrap(), Verification::Invalid);
        let hash = hasher.hash("short one").await.unwrap();
        assert_eq!(hasher.verify(&long, Some(&hash)).await.unwrap(), Verification::Invalid);
        assert_eq!(hasher.completed_jobs(), 1, "only the legitimate hash ran");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saturated_pool_answers_overloaded() {
        let hasher = Arc::new(
            PasswordHasher::new(&PasswordSettings { hashing_queue_timeout_ms: 5, ..settings(64 * 1024, 4, 1) })
                .unwrap(),
        );
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let hasher = Arc::clone(&hasher);
                tokio::spawn(async move { hasher.hash("s3cret pass").await })
            })
            .collect();
        let (mut ok, mut overloaded) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(AuthError::Overloaded) => overloaded += 1,
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert!(ok >= 1, "ok={ok} overloaded={overloaded}");
        assert!(overloaded >= 1, "ok={ok} overloaded={overloaded}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hashing_does_not_block_the_runtime() {
        let hasher = PasswordHasher::new(&settings(32 * 1024, 3, 1)).unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = tokio::spawn({
            let (ticks, stop) = (Arc::clone(&ticks), Arc::clone(&stop));
            async move {
                while !stop.load(Ordering::Relaxed) {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        hasher.hash("s3cret pass").await.unwrap();
        let during = ticks.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        ticker.await.unwrap();
        // Were the hash computed on this (only) runtime thread, the ticker could
        // not have run at all while it lasted.
        assert!(during >= 3, "the ticker ticked {during} times during a hash");
    }

    #[tokio::test]
    async fn dropping_the_hasher_ends_its_threads() {
        let hasher = PasswordHasher::new(&settings(1024, 1, 3)).unwrap();
        hasher.hash("s3cret pass").await.unwrap();
        // Every worker holds a clone of the counter until its loop ends.
        let completed = Arc::clone(&hasher.completed);
        assert_eq!(Arc::strong_count(&completed), 5);
        drop(hasher);
        for _ in 0..500 {
            if Arc::strong_count(&completed) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the hashing threads are still running");
    }

    #[test]
    fn short_password_is_rejected() {
        let errors = policy_errors("short").unwrap();
        assert!(errors[0].contains("at least 8"), "{errors:?}");
    }

    #[test]
    fn common_and_repetitive_passwords_are_rejected() {
        for password in ["password123", "aaaaaaaa", "qwertyuiop", "Password1!"] {
            let errors = policy_errors(password).unwrap_or_else(|| panic!("{password} was accepted"));
            assert!(errors.iter().all(|e| !e.contains(password)), "the message echoes the password");
        }
    }

    #[test]
    fn email_like_passwords_are_rejected() {
        for password in ["jane.doe@example.com", "JANE.DOE@EXAMPLE.COM", "Jane.Doe-2024-rocks!", "xx jane.doe xx"] {
            let errors = policy_errors(password).unwrap_or_else(|| panic!("{password} was accepted"));
            assert!(errors[0].contains("email"), "{password}: {errors:?}");
        }
    }

    #[test]
    fn strong_passphrases_are_accepted() {
        assert_eq!(policy_errors("correct horse battery staple 42"), None);
        let long = "velvet otter juggles quartz lanterns beside ninety foggy harbours";
        assert_eq!(long.chars().count(), 65);
        assert_eq!(policy_errors(long), None);
    }

    #[test]
    fn over_long_passwords_are_rejected() {
        let hasher = cheap();
        let too_many_chars = "velvet otter juggles quartz ".repeat(5); // 140 > 128
        let errors = hasher.check_policy("password", &too_many_chars, &[]);
        assert!(errors.get("password").unwrap()[0].contains("at most 128 characters"));
        let too_many_bytes = "é".repeat(MAX_PASSWORD_BYTES / 2 + 1);
        let errors = hasher.check_policy("password", &too_many_bytes, &[]);
        assert_eq!(errors.get("password").unwrap(), [format!("use at most {MAX_PASSWORD_BYTES} bytes")]);
    }
}
