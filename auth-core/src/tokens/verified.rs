//! The verified-token cache: the claims of access tokens whose signature was
//! checked a moment ago, so that the next request carrying the same token skips
//! the signature and the claim parsing (an RS256 verification is most of a
//! protected request's cost). Every other check still runs on a hit: the times
//! against the clock, the key still being in the key set, and, in the caller,
//! the revocation list and the route's policy.
//!
//! **Keyed by the exact token.** The key is the token's SHA-256, so a hit needs
//! the same bytes (a second preimage of SHA-256 would be needed to collide), and
//! the cache holds no bearer token an attacker could lift from a memory dump.
//!
//! **Only verified tokens enter.** A token is inserted after it passed every
//! check; a forged, tampered, expired or malformed one never is, so a flood of
//! distinct bad tokens can neither grow the cache nor evict good entries:
//! eviction is driven by genuine tokens alone, which only logins and refreshes
//! (rate limited, each a database write) can mint. quick_cache's S3-FIFO keeps
//! tokens seen more than once ahead of one-off ones.
//!
//! **Bounded.** At most `tokens.verified_cache_entries` entries (approximately:
//! the cache is sharded), each under 0.5 KiB: 397 B for a tenant-scoped
//! token, as `memory_per_entry` measures it.

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};

use super::access::AccessClaims;

/// The SHA-256 of a token's bytes.
type TokenDigest = [u8; 32];

/// What a hit returns: the verified claims and the `kid` that verified them.
#[derive(Debug)]
pub(super) struct Verified {
    pub kid: Box<str>,
    pub claims: Arc<AccessClaims>,
}

pub(super) struct VerifiedTokens {
    /// `None` when the setting is 0: every request verifies.
    cache: Option<quick_cache::sync::Cache<TokenDigest, Arc<Verified>>>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").field("entries", &self.len()).finish()
    }
}

impl VerifiedTokens {
    /// A cache of up to `entries` tokens; 0 turns it off.
    pub fn new(entries: usize) -> Self {
        Self { cache: (entries > 0).then(|| quick_cache::sync::Cache::new(entries)) }
    }

    /// The digest to look `token` up by, or `None` with the cache off.
    pub fn key(&self, token: &str) -> Option<TokenDigest> {
        self.cache.as_ref()?;
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        Some(key)
    }

    pub fn get(&self, key: &TokenDigest) -> Option<Arc<Verified>> {
        self.cache.as_ref()?.get(key)
    }

    /// Remembers a token that passed every check.
    pub fn insert(&self, key: TokenDigest, kid: &str, claims: Arc<AccessClaims>) {
        if let Some(cache) = &self.cache {
            cache.insert(key, Arc::new(Verified { kid: kid.into(), claims }));
        }
    }

    pub fn remove(&self, key: &TokenDigest) {
        if let Some(cache) = &self.cache {
            cache.remove(key);
        }
    }

    /// Drops every token verified with `kid`, once the key set no longer has it.
    pub fn forget_kid(&self, kid: &str) {
        if let Some(cache) = &self.cache {
            cache.retain(|_, verified| &*verified.kid != kid);
        }
    }

    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, |cache| cache.len())
    }

    /// Bytes per entry at `entries` entries like `claims`: the map's own memory
    /// plus each entry's heap (the `Arc`s, the kid, the claims and their strings).
    #[cfg(test)]
    pub fn memory_per_entry(&self, claims: &AccessClaims, kid: &str) -> usize {
        let Some(cache) = &self.cache else { return 0 };
        let used = cache.memory_used();
        let heap = std::mem::size_of::<Verified>()
            + 2 * std::mem::size_of::<usize>() // the entry's Arc's counters
            + std::mem::size_of::<AccessClaims>() + 2 * std::mem::size_of::<usize>() // the claims' Arc
            + kid.len()
            + claims.iss.capacity()
            + claims.aud.capacity()
            + claims.role.as_ref().map_or(0, String::capacity)
            + claims.amr.iter().map(|m| std::mem::size_of::<String>() + m.capacity()).sum::<usize>();
        (used.entries + used.map) / cache.len().max(1) + heap
    }
}
