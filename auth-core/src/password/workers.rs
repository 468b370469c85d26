//! The hashing threads: each owns its argon2 instance and working memory and
//! takes jobs from the channel of its [`super::PasswordHasher`].

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use argon2::{Argon2, Block, Params, password_hash::phc::Output};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::{
    Verification,
    phc::{StoredHash, phc_string},
};
use crate::{error::AuthError, secret::Secret};

/// Salt length in bytes (the PHC string format's recommendation).
pub(super) const SALT_LEN: usize = 16;

/// One unit of work for a hashing thread. The permit travels with the job and
/// is released by the worker, so a caller that gives up (its future dropped)
/// still counts against the bound until its job has really finished.
pub(super) struct Job {
    pub(super) work: Work,
    pub(super) permit: OwnedSemaphorePermit,
}

/// The password travels to the thread as a [`Secret`]: wiped once hashed.
pub(super) enum Work {
    Hash { password: Secret, reply: oneshot::Sender<Result<String, AuthError>> },
    Verify { password: Secret, stored: Option<String>, reply: oneshot::Sender<Verification> },
}

/// argon2's working memory (19 MiB with the default parameters), kept by each
/// hashing thread for its whole life instead of being allocated per hash. With
/// an allocator that returns large blocks to the OS (musl, or glibc with a
/// fixed mmap threshold) every hash would fault in fresh pages, ~75 % slower
/// here; with glibc's defaults the gain is ~1 % (BENCHMARKS.md). It is cleared
/// after every job, so no password's argon2 state outlives its job.
pub(super) struct Memory {
    blocks: Vec<Block>,
    /// The configured cost in blocks, allocated on the thread's first job.
    configured: usize,
}

impl Memory {
    pub(super) fn new(configured: &Params) -> Self {
        Self { blocks: Vec::new(), configured: configured.block_count() }
    }

    /// Runs `argon2` into `output`. A stored hash asking for more memory than
    /// configured (an older, costlier setting) grows the memory for that job
    /// only, so it cannot make the thread hold more for good.
    fn hash_into(&mut self, argon2: &Argon2, password: &[u8], salt: &[u8], output: &mut [u8]) -> argon2::Result<()> {
        let needed = argon2.params().block_count();
        self.blocks.resize(needed.max(self.configured), Block::default());
        let blocks = &mut self.blocks[..needed];
        let result = argon2.hash_password_into_with_memory(password, salt, output, &mut *blocks);
        blocks.fill(Block::default());
        if self.blocks.len() > self.configured {
            self.blocks.truncate(self.configured);
            self.blocks.shrink_to_fit();
        }
        result
    }
}

/// The state of one hashing thread: one long-lived loop that owns its state.
pub(super) struct Worker {
    pub(super) argon2: Argon2<'static>,
    pub(super) memory: Memory,
    pub(super) completed: Arc<AtomicU64>,
}

impl Worker {
    pub(super) fn run(mut self, jobs: &Mutex<mpsc::Receiver<Job>>) {
        loop {
            // The lock is held only while waiting for a job, so busy workers do not
            // hold up idle ones. Poisoning is harmless: the receiver has no invariant.
            let next = {
                let receiver = jobs.lock().unwrap_or_else(PoisonError::into_inner);
                receiver.recv()
            };
            // The channel closes when the hasher is dropped.
            let Ok(job) = next else { return };
            // A panic must not kill the thread (that would shrink the pool for
            // good). Unwinding drops the reply sender, so the caller gets an error.
            if catch_unwind(AssertUnwindSafe(|| self.handle(job))).is_err() {
                tracing::error!("password hashing job panicked");
            }
        }
    }

    fn handle(&mut self, Job { work, permit }: Job) {
        match work {
            Work::Hash { password, reply } => {
                let result = self.hash(password.expose().as_bytes());
                self.finish(permit);
                let _ = reply.send(result);
            }
            Work::Verify { password, stored, reply } => {
                let result = match stored {
                    Some(stored) => self.verify(password.expose().as_bytes(), &stored),
                    None => {
                        self.dummy_verify(password.expose().as_bytes());
                        Verification::Invalid
                    }
                };
                self.finish(permit);
                let _ = reply.send(result);
            }
        }
    }

    /// Counts the job and frees its slot before answering, so a caller that
    /// sees the answer also sees the count.
    fn finish(&self, permit: OwnedSemaphorePermit) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        drop(permit);
    }

    fn hash(&mut self, password: &[u8]) -> Result<String, AuthError> {
        let mut salt = [0u8; SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(AuthError::internal)?;
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.memory.hash_into(&self.argon2, password, &salt, &mut output).map_err(AuthError::internal)?;
        phc_string(self.argon2.params(), &salt, &output).map_err(AuthError::internal)
    }

    fn verify(&mut self, password: &[u8], stored: &str) -> Verification {
        let stored = match StoredHash::parse(stored, self.argon2.params()) {
            Ok(stored) => stored,
            Err(reason) => {
                tracing::warn!(reason, "stored password hash is not usable");
                // Same cost as a real check: a broken row must not stand out by timing.
                self.dummy_verify(password);
                return Verification::Invalid;
            }
        };
        let mut buffer = [0u8; Output::MAX_LENGTH];
        let output = &mut buffer[..stored.output.len()];
        if let Err(error) = self.memory.hash_into(&stored.argon2, password, &stored.salt, output) {
            // Only inputs argon2 checks before any hashing fail here.
            tracing::warn!(%error, "stored password hash cannot be verified");
            self.dummy_verify(password);
            return Verification::Invalid;
        }
        // `Output`'s equality is constant-time.
        if Output::new(output).is_ok_and(|computed| computed == stored.output) {
            Verification::Valid { needs_rehash: stored.needs_rehash }
        } else {
            Verification::Invalid
        }
    }

    /// The work of a real check with the configured parameters, for a caller
    /// that has no usable hash (unknown user, broken row); nothing can match.
    fn dummy_verify(&mut self, password: &[u8]) {
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        // The outcome is irrelevant: only the work matters.
        let _ = self.memory.hash_into(&self.argon2, password, &[0; SALT_LEN], &mut output);
    }
}
