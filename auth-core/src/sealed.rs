//! Small secrets sealed with AES-256-GCM: `nonce ‖ ciphertext ‖ tag`, with a
//! random 96-bit nonce per seal and the caller's associated data binding a
//! sealed value to where it belongs (an OAuth provider, a user's row). One
//! implementation for the OAuth state cookie and the TOTP secrets at rest.

use aws_lc_rs::{
    aead::{self, Aad, LessSafeKey, NONCE_LEN, Nonce},
    hkdf, rand,
};
use secrecy::zeroize::Zeroizing;

/// An AES-256-GCM key derived with HKDF-SHA256.
pub(crate) struct SealingKey(LessSafeKey);

impl SealingKey {
    /// The key HKDF-SHA256 derives from `input_key` with `salt` (names the
    /// use, so one input never yields the same key for two uses) and `info`.
    pub(crate) fn derive(salt: &[u8], info: &[u8], input_key: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(input_key);
        let info = [info];
        let okm = prk.expand(&info, &aead::AES_256_GCM).expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(LessSafeKey::new(aead::UnboundKey::from(okm)))
    }

    pub(crate) fn seal(&self, associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).expect("the operating system's random number generator failed");
        let mut sealed = nonce.to_vec();
        let mut body = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(associated_data), &mut body)
            .expect("AES-GCM seals any message of this size");
        sealed.extend_from_slice(&body);
        sealed
    }

    /// The plaintext, if `sealed` was sealed by this key with `associated_data`;
    /// wiped from memory when dropped.
    pub(crate) fn open(&self, associated_data: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = Zeroizing::new(body.to_vec());
        let plain_len = self.0.open_in_place(nonce, Aad::from(associated_data), &mut body).ok()?.len();
        body.truncate(plain_len);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_associated_data() {
        let key = SealingKey::derive(b"test/v1", b"info", b"input key material");
        let sealed = key.seal(b"user-1", b"the secret");
        assert_eq!(key.open(b"user-1", &sealed).as_deref().map(Vec::as_slice), Some(&b"the secret"[..]));
        assert_ne!(key.seal(b"user-1", b"the secret"), sealed, "a fresh nonce each time");
        assert!(key.open(b"user-2", &sealed).is_none(), "bound to its associated data");
        let other = SealingKey::derive(b"test/v2", b"info", b"input key material");
        assert!(other.open(b"user-1", &sealed).is_none(), "the salt names the use");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open(b"user-1", &tampered).is_none());
        assert!(key.open(b"user-1", &sealed[..5]).is_none());
    }
}
