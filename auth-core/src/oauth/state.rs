//! The pending sign-in, kept by the browser that started it: `state`, `nonce`
//! and PKCE verifier sealed with AES-256-GCM into one short-lived cookie; for
//! a deliberate link, also the signed-in user and session it links to, so
//! the cookie cannot be altered to link into another account.
//!
//! The key is derived (HKDF-SHA256) from the provider's client secret, its
//! issuer, client id and name, so every instance of a deployment shares it
//! without another secret to configure, and each provider has its own. The
//! provider name is also the additional authenticated data: a cookie sealed
//! for one provider does not open for another. Nothing is stored server-side,
//! so starting sign-ins costs no database write; the cookie is removed at the
//! callback, and the provider refuses a second use of a code.

use aws_lc_rs::constant_time;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use secrecy::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    sealed::SealingKey,
    secret::{Secret, exposed},
};

/// The cookie is refused after this long: a sign-in at the provider takes a
/// minute or two.
pub(crate) const STATE_TTL_SECS: i64 = 5 * 60;
/// Far more than a sealed [`PendingLogin`] ever takes; longer values are not opened.
const MAX_SEALED_LEN: usize = 1024;
const HKDF_SALT: &[u8] = b"auth-platform/oauth-state/v1";

/// What the callback needs to finish the sign-in this browser started. Its
/// secrets are serialised only to be sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    #[serde(rename = "s", serialize_with = "exposed::serialize")]
    pub state: Secret,
    #[serde(rename = "n", serialize_with = "exposed::serialize")]
    pub nonce: Secret,
    #[serde(rename = "v", serialize_with = "exposed::serialize")]
    pub pkce_verifier: Secret,
    /// Unix milliseconds after which the cookie is refused.
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// Set when a signed-in user started this flow to link the provider to
    /// their account: the callback then links, and signs nobody in.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkTarget>,
    /// The app's own value, echoed in `success_redirect` (login CSRF check).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub app_state: Option<String>,
}

/// The account a deliberate link goes to, and the session that asked for it
/// (the link is refused once that session has ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LinkTarget {
    #[serde(rename = "u")]
    pub user_id: Uuid,
    #[serde(rename = "s")]
    pub session_id: Uuid,
}

impl PendingLogin {
    /// Whether `state` (from the callback's query) is this sign-in's, in constant time.
    pub(crate) fn state_matches(&self, state: &str) -> bool {
        constant_time::verify_slices_are_equal(self.state.expose().as_bytes(), state.as_bytes()).is_ok()
    }
}

/// The AEAD key of one provider's state cookies.
pub(crate) struct StateKey {
    key: SealingKey,
    provider: String,
}

impl StateKey {
    pub(crate) fn derive(provider: &str, issuer: &str, client_id: &str, client_secret: &str) -> Self {
        let info = [provider.as_bytes(), b"\0", issuer.as_bytes(), b"\0", client_id.as_bytes()].concat();
        Self { key: SealingKey::derive(HKDF_SALT, &info, client_secret.as_bytes()), provider: provider.to_owned() }
    }

    /// `base64url(nonce ‖ ciphertext ‖ tag)`.
    pub(crate) fn seal(&self, pending: &PendingLogin) -> String {
        // Serialised only to be sealed: the plaintext holds the secrets, wiped on return.
        let plain = Zeroizing::new(serde_json::to_vec(pending).expect("a PendingLogin serialises"));
        URL_SAFE_NO_PAD.encode(self.key.seal(self.provider.as_bytes(), &plain))
    }

    /// The pending sign-in, if `value` was sealed by this key for this provider.
    pub(crate) fn open(&self, value: &str) -> Option<PendingLogin> {
        if value.len() > MAX_SEALED_LEN {
            return None;
        }
        let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
        let plain = self.key.open(self.provider.as_bytes(), &sealed)?;
        serde_json::from_slice(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingLogin {
        PendingLogin {
            state: "state".into(),
            nonce: "nonce".into(),
            pkce_verifier: "verifier".into(),
            expires_at: 42,
            link: None,
            app_state: None,
        }
    }

    #[test]
    fn oauth_state_cookie_round_trips_and_hides_its_content() {
        let key = StateKey::derive("idp", "https://idp.example.com", "client", "secret");
        let sealed = key.seal(&pending());
        assert_eq!(key.open(&sealed), Some(pending()));
        assert!(
            !sealed.contains("verifier")
                && !String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(&sealed).unwrap()).contains("verifier")
        );
        assert_ne!(key.seal(&pending()), sealed, "a fresh nonce each time");
        assert!(pending().state_matches("state") && !pending().state_matches("other"));
    }

    #[test]
    fn oauth_state_cookie_refuses_tampering_and_other_keys() {
        let key = StateKey::derive("idp", "https://idp.example.com", "client", "secret");
        let sealed = key.seal(&pending());
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(key.open(&URL_SAFE_NO_PAD.encode(&bytes)), None);
        for other in [
            StateKey::derive("other", "https://idp.example.com", "client", "secret"),
            StateKey::derive("idp", "https://idp.example.com", "client", "another secret"),
            StateKey::derive("idp", "https://idp.example.com", "client2", "secret"),
        ] {
            assert_eq!(other.open(&sealed), None);
        }
        for junk in ["", "!!!", "AAAA", &"A".repeat(2000)] {
            assert_eq!(key.open(junk), None);
        }
    }

    #[test]
    fn debug_hides_state_nonce_and_verifier() {
        let pending = PendingLogin {
            state: "state-value".into(),
            nonce: "nonce-value".into(),
            pkce_verifier: "verifier-value".into(),
            ..pending()
        };
        for rendered in [format!("{pending:?}"), format!("{pending:#?}")] {
            for secret in ["state-value", "nonce-value", "verifier-value"] {
                assert!(!rendered.contains(secret), "{secret} shows in {rendered}");
            }
        }
    }

    #[test]
    fn oauth_link_cookie_carries_its_user_sealed() {
        let key = StateKey::derive("idp", "https://idp.example.com", "client", "secret");
        let link = LinkTarget { user_id: Uuid::now_v7(), session_id: Uuid::now_v7() };
        let linking = PendingLogin { link: Some(link), app_state: Some("x".repeat(128)), ..pending() };
        let sealed = key.seal(&linking);
        assert_eq!(key.open(&sealed), Some(linking));
        let plain = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        assert!(!String::from_utf8_lossy(&plain).contains(&link.user_id.to_string()), "the user id is encrypted");
    }
}
