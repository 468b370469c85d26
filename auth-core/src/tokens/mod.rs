//! Access tokens (signed JWTs, verified without I/O) and the keys that sign
//! them, the opaque secrets used for refresh tokens and email links, and the
//! in-memory revocation list.

mod access;
mod keys;
mod opaque;
mod revocation;

pub use access::{AccessClaims, AccessGrant, AccessTokens};
pub use keys::KeySet;
pub use opaque::{OpaqueToken, random_bytes};
pub use revocation::RevocationList;
