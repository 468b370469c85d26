//! [`Secret`]: how the platform holds every secret in memory (keys, client
//! secrets, passwords, tokens): never in `Debug` output, not `Serialize`, and
//! wiped from memory when dropped (`secrecy`, on `zeroize`).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serializer};

/// A string that never appears in `Debug` output or logs, cannot be
/// serialised by accident, and is zeroed when dropped. Read it with
/// [`Secret::expose`], at the one place that needs the value.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// In constant time, so a comparison does not leak where two secrets differ.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.expose().as_bytes(), other.expose().as_bytes()).is_ok()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `serialize_with` functions for the few places that write a secret on
/// purpose: a configuration handed to figment, a sealed cookie, a token
/// answer. Naming one of them is the decision to expose.
pub(crate) mod exposed {
    use serde::Serialize as _;

    use super::*;

    pub(crate) fn serialize<S: Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(secret.expose())
    }

    pub(crate) fn serialize_option<S: Serializer>(secret: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
        secret.as_ref().map(Secret::expose).serialize(serializer)
    }

    pub(crate) fn serialize_all<S: Serializer>(secrets: &[Secret], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(secrets.iter().map(Secret::expose))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value_and_expose_shows_it() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{secret:#?}"), "Secret(***)");
        assert_eq!(secret.expose(), "hunter2-hunter2");
    }

    #[test]
    fn it_deserializes_from_a_plain_string() {
        let secret: Secret = serde_json::from_str(r#""s3cret""#).unwrap();
        assert_eq!(secret.expose(), "s3cret");
    }
}
