//! Opaque secrets handed to clients (refresh tokens, email links): 256 random
//! bits, base64url. The server keeps only their SHA-256, which is enough for a
//! secret of this entropy (no salt or slow hash needed: nothing to brute-force).

use std::fmt;

use aws_lc_rs::{digest, hmac, rand};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::secret::Secret;

const SECRET_BYTES: usize = 32;
/// base64url length of [`SECRET_BYTES`] without padding.
const ENCODED_LEN: usize = 43;

/// A client-held secret. Its `Debug` never shows the value; it is compared
/// in constant time and wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken(Secret);

impl OpaqueToken {
    pub fn generate() -> Self {
        Self(Secret::new(URL_SAFE_NO_PAD.encode(random_bytes())))
    }

    /// Accepts only strings of the exact shape this type generates, so junk
    /// (or an access token) is refused before any lookup.
    pub fn parse(value: &str) -> Option<Self> {
        let well_formed =
            value.len() == ENCODED_LEN && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(Secret::new(value)))
    }

    pub fn as_str(&self) -> &str {
        self.0.expose()
    }

    /// What the store keeps and looks up.
    pub fn hash(&self) -> Vec<u8> {
        digest::digest(&digest::SHA256, self.as_str().as_bytes()).as_ref().to_vec()
    }

    /// The token that replaces this one at rotation: HMAC-SHA256 keyed by a
    /// random salt stored with the consumed row. Neither the salt (in the
    /// database) nor this token (with the client) alone yields the successor,
    /// and the server can re-derive it to answer a retried refresh.
    pub fn successor(&self, salt: &[u8]) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
        Self(Secret::new(URL_SAFE_NO_PAD.encode(hmac::sign(&key, self.as_str().as_bytes()))))
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpaqueToken(***)")
    }
}

/// 32 random bytes from the system CSPRNG.
pub fn random_bytes() -> [u8; SECRET_BYTES] {
    let mut bytes = [0u8; SECRET_BYTES];
    // The system RNG only fails if the OS cannot supply randomness at all, and
    // then no secret may be issued: stopping is the safe answer.
    rand::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = OpaqueToken::generate();
        let b = OpaqueToken::generate();
        assert_ne!(a, b);
        assert_eq!(OpaqueToken::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.hash().len(), 32);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in ["", "short", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", &"a".repeat(44), &"!".repeat(43)] {
            assert!(OpaqueToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn successor_depends_on_token_and_salt() {
        let token = OpaqueToken::generate();
        let salt = random_bytes();
        let next = token.successor(&salt);
        assert_eq!(next, token.successor(&salt));
        assert_ne!(next, token.successor(&random_bytes()));
        assert_ne!(next, OpaqueToken::generate().successor(&salt));
        assert!(OpaqueToken::parse(next.as_str()).is_some());
    }

    #[test]
    fn debug_hides_the_secret() {
        let token = OpaqueToken::generate();
        assert!(!format!("{token:?}").contains(token.as_str()));
    }
}
