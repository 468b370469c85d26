//! Access tokens (signed JWTs, verified without I/O, recently verified ones
//! cached) and the keys that sign them, the opaque secrets used for refresh tokens and email links, the
//! in-memory revocation list, and how a user signed in (`amr`).

mod access;
pub(crate) mod amr;
mod keys;
mod opaque;
mod revocation;
mod verified;

pub use access::AccessClaims;
pub(crate) use access::rejected;
pub use amr::{AuthMethod, is_multi_factor};
pub use keys::KeySet;

/// 256 fresh random bits, base64url, as an opaque token has: for values an
/// adapter hands out itself, such as a browser session's CSRF cookie.
pub fn random_secret() -> crate::Secret {
    crate::Secret::new(OpaqueToken::generate().as_str())
}

// The engine's own parts: the suites and benchmarks reach them with the
// feature `testing`; an app never needs them.
#[cfg(feature = "testing")]
pub use self::{
    access::{AccessGrant, AccessTokens},
    opaque::{OpaqueToken, random_bytes},
    revocation::RevocationList,
};
#[cfg(not(feature = "testing"))]
pub(crate) use self::{
    access::{AccessGrant, AccessTokens},
    opaque::{OpaqueToken, random_bytes},
    revocation::RevocationList,
};
