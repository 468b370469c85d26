//! [`Tokens`]: a pair the platform answered, and reading a JWT's parts
//! without verifying them (the checks verify with the published keys).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::Value;

/// A token pair from login, refresh or `/token/tenant`.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    /// The access token's claims, read without verification.
    pub fn claims(&self) -> Value {
        jwt_part(&self.access, 1)
    }

    /// The access token's header, read without verification.
    pub fn header(&self) -> Value {
        jwt_part(&self.access, 0)
    }
}

/// A segment of a compact JWS decoded as JSON, without verification.
pub(super) fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap_or_else(|| panic!("not a compact JWS: {token}"));
    let bytes =
        URL_SAFE_NO_PAD.decode(part).unwrap_or_else(|e| panic!("segment {index} is not base64url ({e}): {token}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("segment {index} is not JSON ({e}): {token}"))
}

pub(super) fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// `later` (a refresh, a tenant token) says the sign-in of `earlier`'s
/// session as it was: `amr` and `auth_time` unchanged.
pub(super) fn assert_same_sign_in(earlier: &Tokens, later: &Tokens, what: &str) {
    let (before, after) = (earlier.claims(), later.claims());
    for claim in ["amr", "auth_time"] {
        assert!(!before[claim].is_null(), "claim {claim} missing: {before}");
        assert_eq!(after[claim], before[claim], "{what} carries the session's {claim} unchanged: {after}");
    }
}
