//! The password policy: length in bytes and characters, the account's own
//! email address, and zxcvbn's strength estimate.

use super::{PasswordHasher, too_many_bytes};
use crate::{config::MAX_PASSWORD_BYTES, error::FieldErrors};

impl PasswordHasher {
    /// Checks a candidate password against the policy; the messages are keyed by
    /// `field` ("password", "new_password", …). `user_inputs` are the account's
    /// own words (email, its local part, full name), which make a password weak.
    pub fn check_policy(&self, field: &str, password: &str, user_inputs: &[&str]) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let settings = &self.settings;
        // Bytes first: counting characters or running zxcvbn on a huge body is work
        // an attacker should not be able to buy.
        if password.len() > MAX_PASSWORD_BYTES {
            errors.add(field, too_many_bytes());
            return errors;
        }
        let chars = password.chars().count();
        if chars < settings.min_length {
            errors.add(field, format!("use at least {} characters", settings.min_length));
        }
        if chars > settings.max_length {
            errors.add(field, format!("use at most {} characters", settings.max_length));
        }
        if !errors.is_empty() {
            return errors;
        }

        let lowered = password.to_lowercase();
        for email in user_inputs.iter().filter(|input| input.contains('@')) {
            let email = email.to_lowercase();
            let local = email.rsplit_once('@').map_or("", |(local, _)| local);
            if lowered == email || (local.chars().count() >= 3 && lowered.contains(local)) {
                errors.add(field, "do not use your email address in your password");
                return errors;
            }
        }

        // zxcvbn is the costly check, so it runs last (and it only reads the first
        // 100 characters).
        let entropy = zxcvbn::zxcvbn(password, user_inputs);
        if u8::from(entropy.score()) < settings.min_strength {
            // zxcvbn's warnings are generic ("This is a very common password."), never
            // the password itself.
            let hint = entropy
                .feedback()
                .and_then(|feedback| feedback.warning())
                .map(|warning| format!(". {warning}"))
                .unwrap_or_default();
            errors.add(field, format!("too easy to guess; try a few unrelated words{hint}"));
        }
        errors
    }
}
