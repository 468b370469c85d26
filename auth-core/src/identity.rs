//! Users (identity only) and their profiles (everything else about a person),
//! and the one place where email addresses are normalised.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{error::FieldErrors, secret::Secret};

/// RFC 5321's limit on a forward path.
const MAX_EMAIL_LEN: usize = 254;
const MAX_FULL_NAME_CHARS: usize = 255;
const MAX_PHONE_CHARS: usize = 32;

/// A syntactically valid email address, normalised once: trimmed and lower-cased.
///
/// Lower-casing the local part is a deliberate simplification (RFC 5321 lets it
/// be case-sensitive; no mainstream provider treats it so) that makes
/// uniqueness case-insensitive on every backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses and normalises `input`; the error is keyed by `field`.
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldErrors> {
        let candidate = input.trim().to_lowercase();
        let options = email_address::Options::default().without_display_text();
        let valid = candidate.len() <= MAX_EMAIL_LEN
            && email_address::EmailAddress::parse_with_options(&candidate, options).is_ok()
            // Routable addresses only: a domain with a dot and no IP literal.
            && candidate.rsplit_once('@').is_some_and(|(_, domain)| domain.contains('.') && !domain.starts_with('['));
        if valid {
            Ok(Self(candidate))
        } else {
            let mut errors = FieldErrors::new();
            errors.add(field, "enter a valid email address");
            Err(errors)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`, for password-similarity checks.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or(&self.0, |(local, _)| local)
    }

    /// Wraps a value read back from the store, where it was normalised on the way in.
    pub(crate) fn from_store(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account: who someone is and what the platform lets them do. Never holds
/// the password hash, so it can be logged and serialised safely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: Uuid,
    pub email: Email,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

impl User {
    pub fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }

    pub fn flags(&self) -> AccountFlags {
        AccountFlags { staff: self.is_staff, superuser: self.is_superuser, email_verified: self.email_verified() }
    }
}

/// The facts about an account that its access tokens carry, so guards need
/// no database (see `AccessClaims`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountFlags {
    pub staff: bool,
    pub superuser: bool,
    pub email_verified: bool,
}

/// Personal data kept apart from identity, one row per user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Profile {
    pub full_name: String,
    pub phone: Option<String>,
}

impl Profile {
    /// Validates and trims both fields; errors are keyed `full_name` and `phone`.
    pub fn new(full_name: &str, phone: Option<&str>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let full_name = validate_full_name(full_name, &mut errors);
        let phone = validate_phone(phone, &mut errors);
        match (full_name, phone, errors.is_empty()) {
            (Some(full_name), Ok(phone), true) => Ok(Self { full_name, phone }),
            _ => Err(errors),
        }
    }

    /// Applies a partial update, validating only the fields present.
    pub fn apply(&self, update: &ProfileUpdate) -> Result<Self, FieldErrors> {
        let full_name = update.full_name.as_deref().unwrap_or(&self.full_name);
        let phone = match &update.phone {
            Some(phone) => phone.as_deref(),
            None => self.phone.as_deref(),
        };
        Self::new(full_name, phone)
    }
}

/// A partial profile change: `None` leaves a field as it is; `phone: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    pub full_name: Option<String>,
    pub phone: Option<Option<String>>,
}

fn validate_full_name(full_name: &str, errors: &mut FieldErrors) -> Option<String> {
    let full_name = full_name.trim();
    if full_name.is_empty() {
        errors.add("full_name", "this field is required");
        None
    } else if full_name.chars().count() > MAX_FULL_NAME_CHARS || full_name.chars().any(char::is_control) {
        errors.add("full_name", "use at most 255 printable characters");
        None
    } else {
        Some(full_name.to_owned())
    }
}

fn validate_phone(phone: Option<&str>, errors: &mut FieldErrors) -> Result<Option<String>, ()> {
    let Some(phone) = phone.map(str::trim).filter(|p| !p.is_empty()) else { return Ok(None) };
    let allowed = |c: char| c.is_ascii_digit() || " +-().".contains(c);
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    if phone.chars().count() <= MAX_PHONE_CHARS && phone.chars().all(allowed) && digits >= 3 {
        Ok(Some(phone.to_owned()))
    } else {
        errors.add("phone", "enter a phone number: digits, spaces and + - ( ) .");
        Err(())
    }
}

/// What registration needs. The password is checked against the policy and
/// hashed by [`crate::Accounts::register`].
#[derive(Debug, Clone)]
pub struct Registration {
    pub email: String,
    pub password: Secret,
    pub full_name: String,
    pub phone: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let email = Email::parse("email", "  Alice.Smith@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice.smith@example.com");
        assert_eq!(email.local_part(), "alice.smith");
    }

    #[test]
    fn invalid_emails_are_field_errors() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "Alice <a@example.com>",
            "a@localhost",
            "a@[127.0.0.1]",
        ] {
            let errors = Email::parse("email", bad).unwrap_err();
            assert!(errors.get("email").is_some(), "{bad:?} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse("email", &long).is_err());
    }

    #[test]
    fn profile_validation_names_each_field() {
        assert_eq!(
            Profile::new("  Ada Lovelace ", Some(" +44 20 7946 0958 ")).unwrap(),
            Profile { full_name: "Ada Lovelace".into(), phone: Some("+44 20 7946 0958".into()) }
        );
        let errors = Profile::new(" ", Some("call me")).unwrap_err();
        assert!(errors.get("full_name").is_some());
        assert!(errors.get("phone").is_some());
        assert_eq!(Profile::new("Ada", Some("")).unwrap().phone, None);
    }

    #[test]
    fn profile_updates_change_only_given_fields() {
        let profile = Profile::new("Ada", Some("12345")).unwrap();
        let renamed = profile.apply(&ProfileUpdate { full_name: Some("Ada L.".into()), phone: None }).unwrap();
        assert_eq!(renamed, Profile { full_name: "Ada L.".into(), phone: Some("12345".into()) });
        let cleared = profile.apply(&ProfileUpdate { full_name: None, phone: Some(None) }).unwrap();
        assert_eq!(cleared.phone, None);
    }
}
