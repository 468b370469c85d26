//! Second factors: TOTP authenticator apps ([`totp`]) and recovery codes
//! ([`recovery_codes`]), and the names the contract gives the methods a
//! user has.

pub mod recovery_codes;
pub mod totp;

use serde::{Deserialize, Serialize};

/// A kind of second factor, as `methods` of a `403 mfa_required` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    /// A code from an authenticator app.
    Totp,
    /// One of the ten single-use recovery codes.
    RecoveryCode,
    /// A passkey or security key.
    Webauthn,
}

impl MfaMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::RecoveryCode => "recovery_code",
            Self::Webauthn => "webauthn",
        }
    }
}

/// What second factors a user has: what a login must ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Factors {
    pub totp: bool,
    pub recovery_codes_left: u32,
    pub passkeys: u32,
}

impl Factors {
    /// Whether a password alone no longer signs the user in. Recovery codes
    /// are no factor of their own: they stand in for a lost one.
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }

    /// The methods a login may finish with, in the contract's order.
    pub fn methods(&self) -> Vec<MfaMethod> {
        let mut methods = Vec::new();
        if self.totp {
            methods.push(MfaMethod::Totp);
        }
        if self.any() && self.recovery_codes_left > 0 {
            methods.push(MfaMethod::RecoveryCode);
        }
        if self.passkeys > 0 {
            methods.push(MfaMethod::Webauthn);
        }
        methods
    }
}
