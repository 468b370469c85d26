//! The emails of account recovery: email verification and password reset.
//!
//! Tokens are opaque tokens stored hashed, single-use and expiring (see
//! `store::one_time`); a reset token also dies when the password changes by
//! any other path. Links are built from the configured `public_url`, never
//! from anything in a request.

use crate::{config::AuthConfig, identity::Email, mail, tokens::OpaqueToken};

/// `public_url` + `path` + `?token=…`.
pub fn link(config: &AuthConfig, path: &str, token: &OpaqueToken) -> String {
    format!("{}{}?token={}", config.public_url.trim_end_matches('/'), path, token.as_str())
}

pub fn verification_email(config: &AuthConfig, to: &Email, token: &OpaqueToken) -> mail::Email {
    let hours = config.tokens.verification_ttl_secs / 3600;
    mail::Email {
        to: to.as_str().to_owned(),
        subject: "Verify your email address".into(),
        text: format!(
            "Welcome!\n\nConfirm your email address by opening this link:\n\n{}\n\n\
             Or submit this code to the verification endpoint:\n\n{}\n\n\
             The link expires in {hours} hours. If you did not sign up, ignore this email.\n",
            link(config, &config.verify_email_path, token),
            token.as_str(),
        ),
    }
}

pub fn reset_email(config: &AuthConfig, to: &Email, token: &OpaqueToken) -> mail::Email {
    let minutes = config.tokens.reset_ttl_secs / 60;
    mail::Email {
        to: to.as_str().to_owned(),
        subject: "Reset your password".into(),
        text: format!(
            "Someone asked to reset the password of this account.\n\n\
             Choose a new password here:\n\n{}\n\nOr submit this code with your new password:\n\n{}\n\n\
             The link works once and expires in {minutes} minutes. If this was not you, ignore this \
             email: your password stays as it is.\n",
            link(config, &config.reset_password_path, token),
            token.as_str(),
        ),
    }
}

/// Sent when an account's password was wiped or changed on the user's behalf.
pub fn security_notice(to: &Email, what_happened: &str) -> mail::Email {
    mail::Email {
        to: to.as_str().to_owned(),
        subject: "Security notice for your account".into(),
        text: format!("{what_happened}\n\nIf this was not you, reset your password and contact support.\n"),
    }
}
