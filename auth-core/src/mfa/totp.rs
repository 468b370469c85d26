//! TOTP (RFC 6238) as the contract fixes it: HMAC-SHA-1, 6 digits, 30-second
//! steps, one step of skew either way. The HOTP arithmetic and the
//! `otpauth://` URI are totp-rs's; what is the platform's is here: secrets of
//! 160 random bits (RFC 4226 §4), sealed at rest, and each step accepted once.

use secrecy::zeroize::Zeroizing;
use totp_rs::{Algorithm, Builder, Totp};
use uuid::Uuid;

use crate::{
    error::{AuthError, Result},
    sealed::SealingKey,
    secret::Secret,
    tokens::random_bytes,
};

/// RFC 4226 §4 recommends 160 bits.
const SECRET_BYTES: usize = 20;
const STEP_SECS: u64 = 30;
const DIGITS: u8 = 6;
const SKEW_STEPS: u16 = 1;
/// Names this use of `mfa.encryption_key`, so the key derived from it seals nothing else.
const SEALING_SALT: &[u8] = b"auth-platform/totp-secret/v1";

/// A TOTP secret in memory (wiped on drop).
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    pub fn generate() -> Self {
        let bytes = Zeroizing::new(random_bytes());
        Self(Zeroizing::new(bytes[..SECRET_BYTES].to_vec()))
    }

    /// A secret as [`TotpSecret::base32`] writes it (an authenticator app
    /// reads it so); `None` for anything else.
    pub fn from_base32(secret: &str) -> Option<Self> {
        let bytes = totp_rs::Secret::try_from_base32(secret.trim()).ok()?;
        Some(Self(Zeroizing::new(bytes.as_ref().to_vec())))
    }

    /// The secret as authenticator apps take it when typed: base32 without padding.
    pub fn base32(&self) -> Secret {
        Secret::new(self.totp(None).secret().to_base32())
    }

    /// The `otpauth://totp/…` URI an app reads from a QR code.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Result<Secret> {
        let uri = self.totp(Some((issuer, account))).to_url().map_err(|e| AuthError::internal(e.to_string()))?;
        Ok(Secret::new(uri))
    }

    /// The step of `code` if it is the code of a step within one step of
    /// `now_secs` and later than `after_step` (the last step accepted): a code
    /// is accepted once, and never one older than an accepted one.
    pub fn matching_step(&self, code: &str, now_secs: i64, after_step: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = u64::try_from(now_secs).ok()?;
        let step = i64::try_from(self.totp(None).check(code, now)?).ok()?;
        (step > after_step).then_some(step)
    }

    /// The code of the step that holds `unix_secs` (authenticator apps, tests).
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.totp(None).generate(unix_secs).to_string()
    }

    fn totp(&self, label: Option<(&str, &str)>) -> Totp {
        let builder = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0.as_slice());
        let builder = match label {
            Some((issuer, account)) => builder.with_issuer(Some(issuer)).with_account_name(account),
            None => builder,
        };
        // `build` checks the RFC's parameters; these constants meet them.
        builder.build_noncompliant()
    }
}

/// Seals and opens TOTP secrets at rest; the user id is the associated data,
/// so a sealed secret copied to another user's row does not open.
pub(crate) struct SecretSealer(SealingKey);

impl SecretSealer {
    pub(crate) fn new(key: &[u8]) -> Self {
        Self(SealingKey::derive(SEALING_SALT, b"", key))
    }

    pub(crate) fn seal(&self, user_id: Uuid, secret: &TotpSecret) -> Vec<u8> {
        self.0.seal(user_id.as_bytes(), &secret.0)
    }

    /// A sealed secret that does not open (another key, an altered row) is an
    /// internal error: the deployment's key is not the one it was sealed with.
    pub(crate) fn open(&self, user_id: Uuid, sealed: &[u8]) -> Result<TotpSecret> {
        self.0
            .open(user_id.as_bytes(), sealed)
            .map(TotpSecret)
            .ok_or_else(|| AuthError::internal("a TOTP secret does not open with mfa.encryption_key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 seed, and its 8-digit values' last six digits.
    fn rfc_secret() -> TotpSecret {
        TotpSecret(Zeroizing::new(b"12345678901234567890".to_vec()))
    }

    #[test]
    fn codes_are_those_of_rfc_6238_appendix_b() {
        let secret = rfc_secret();
        for (time, code) in [(59, "287082"), (1111111109, "081804"), (1111111111, "050471"), (1234567890, "005924")] {
            assert_eq!(secret.code_at(time), code, "at {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_once() {
        let secret = rfc_secret();
        let step = 1111111109 / 30;
        assert_eq!(secret.matching_step("081804", 1111111109, -1), Some(step));
        assert_eq!(secret.matching_step("081804", 1111111109 + 30, -1), Some(step), "one step late");
        assert_eq!(secret.matching_step("081804", 1111111109 - 30, -1), Some(step), "one step early");
        assert_eq!(secret.matching_step("081804", 1111111109 + 60, -1), None, "two steps late");
        assert_eq!(secret.matching_step("081804", 1111111109, step), None, "already accepted");
        assert_eq!(secret.matching_step("081804", 1111111109, step + 1), None, "older than an accepted one");
        for junk in ["", "08180", "0818044", "08l804", "-81804"] {
            assert_eq!(secret.matching_step(junk, 1111111109, -1), None, "{junk:?}");
        }
    }

    #[test]
    fn the_uri_names_issuer_account_and_secret() {
        let secret = rfc_secret();
        let uri = secret.otpauth_uri("Example Co", "ada@example.com").unwrap();
        let uri = uri.expose();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{uri}");
        assert!(uri.contains("issuer=Example%20Co"), "{uri}");
        assert_eq!(secret.base32().expose(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(TotpSecret::from_base32(secret.base32().expose()).unwrap().code_at(59), "287082");
        assert_eq!(TotpSecret::generate().0.len(), 20);
    }

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_key() {
        let sealer = SecretSealer::new(&[7; 32]);
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = sealer.seal(ada, &rfc_secret());
        assert_eq!(sealer.open(ada, &sealed).unwrap().code_at(59), "287082");
        assert!(sealer.open(bob, &sealed).is_err());
        assert!(SecretSealer::new(&[8; 32]).open(ada, &sealed).is_err());
    }
}
