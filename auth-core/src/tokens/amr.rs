//! How a user signed in: the authentication methods (RFC 8176) that access
//! tokens name in `amr`, how a session stores them, and what counts as more
//! than one factor.

/// An authentication method reference of RFC 8176 §2, as `amr` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `pwd`: a password.
    Password,
    /// `otp`: a one-time code (TOTP, a recovery code).
    OneTimeCode,
    /// `hwk`: proof of possession of a hardware-secured key (a passkey on a security key).
    HardwareKey,
    /// `swk`: proof of possession of a software-secured key (a synced passkey).
    SoftwareKey,
    /// `fed`: a sign-in at an identity provider (OpenID Connect).
    Federated,
    /// `mfa`: more than one factor was used.
    MultiFactor,
}

impl AuthMethod {
    const ALL: [Self; 6] =
        [Self::Password, Self::OneTimeCode, Self::HardwareKey, Self::SoftwareKey, Self::Federated, Self::MultiFactor];

    /// The RFC 8176 value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::OneTimeCode => "otp",
            Self::HardwareKey => "hwk",
            Self::SoftwareKey => "swk",
            Self::Federated => "fed",
            Self::MultiFactor => "mfa",
        }
    }

    /// A factor that only a second factor (or a user-verified passkey, itself
    /// two factors) writes: `otp`, `hwk`, `swk`.
    pub const fn is_second_factor(self) -> bool {
        matches!(self, Self::OneTimeCode | Self::HardwareKey | Self::SoftwareKey)
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|method| method.as_str() == value)
    }
}

/// Whether `amr` says that more than one factor was used: it holds `mfa` or
/// a second-factor value. Values this version does not know count for nothing.
pub fn is_multi_factor(amr: &[String]) -> bool {
    amr.iter()
        .filter_map(|value| AuthMethod::parse(value))
        .any(|method| method == AuthMethod::MultiFactor || method.is_second_factor())
}

/// `methods` as a session stores them: their values separated by spaces.
pub(crate) fn stored(methods: &[AuthMethod]) -> String {
    methods.iter().map(|method| method.as_str()).collect::<Vec<_>>().join(" ")
}

/// The stored methods of a session as the `amr` claim lists them.
pub(crate) fn claimed(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(str::to_owned).collect()
}

/// The stored methods after the second factor `factor`: those before, then
/// `factor` and `mfa`, each once.
pub(crate) fn with_second_factor(stored: &str, factor: AuthMethod) -> String {
    let mut values: Vec<&str> = stored.split_whitespace().collect();
    for value in [factor.as_str(), AuthMethod::MultiFactor.as_str()] {
        if !values.contains(&value) {
            values.push(value);
        }
    }
    values.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amr(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| (*value).to_owned()).collect()
    }

    #[test]
    fn values_are_rfc_8176s() {
        let values: Vec<&str> = AuthMethod::ALL.iter().map(|method| method.as_str()).collect();
        assert_eq!(values, ["pwd", "otp", "hwk", "swk", "fed", "mfa"]);
        for method in AuthMethod::ALL {
            assert_eq!(AuthMethod::parse(method.as_str()), Some(method));
        }
        assert_eq!(AuthMethod::parse("PWD"), None);
    }

    #[test]
    fn one_factor_is_not_multi_factor() {
        for single in [&[][..], &["pwd"], &["fed"], &["pwd", "fed"], &["pwd", "sms?"]] {
            assert!(!is_multi_factor(&amr(single)), "{single:?}");
        }
        for multi in [&["pwd", "otp", "mfa"][..], &["mfa"], &["hwk"], &["fed", "swk"], &["pwd", "otp"]] {
            assert!(is_multi_factor(&amr(multi)), "{multi:?}");
        }
    }

    #[test]
    fn a_second_factor_is_added_once_with_mfa() {
        assert_eq!(stored(&[AuthMethod::Password]), "pwd");
        assert_eq!(claimed("pwd otp mfa"), amr(&["pwd", "otp", "mfa"]));
        assert_eq!(claimed(""), Vec::<String>::new());
        let once = with_second_factor("pwd", AuthMethod::OneTimeCode);
        assert_eq!(once, "pwd otp mfa");
        assert_eq!(with_second_factor(&once, AuthMethod::OneTimeCode), "pwd otp mfa");
        assert_eq!(with_second_factor(&once, AuthMethod::HardwareKey), "pwd otp mfa hwk");
        assert_eq!(with_second_factor("", AuthMethod::SoftwareKey), "swk mfa", "a session from before amr was stored");
    }
}
