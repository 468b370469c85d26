//! The emails that carry one-time links: email verification, password reset,
//! email change and tenant invitations, and the security notices.
//!
//! Tokens are opaque tokens stored hashed, single-use and expiring (see
//! `store::one_time` and `store::invitations`); reset and email-change tokens
//! also die when the password changes by any other path. Links are built from
//! the configured `public_url`, never from anything in a request; nothing a
//! user typed goes into a subject line.

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
            link(config, config.verify_email_link(), token),
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
            link(config, config.reset_password_link(), token),
            token.as_str(),
        ),
    }
}

/// Sent after a sign-in from a device the account has not used in 90 days:
/// when (UTC), the device's family, and a reset link (a new password ends
/// every session). No address and no full user agent.
pub fn new_device_notice(
    config: &AuthConfig,
    to: &Email,
    when: chrono::DateTime<chrono::Utc>,
    device: &str,
    token: &OpaqueToken,
) -> mail::Email {
    let minutes = config.tokens.reset_ttl_secs / 60;
    mail::Email {
        to: to.as_str().to_owned(),
        subject: "New sign-in to your account".into(),
        text: format!(
            "Your account was signed in to on {} from {device}, on a device or network it has not used              in the last 90 days.\n\nIf this was you, there is nothing to do.\n\nIf it was not, choose a new              password with this link: it signs out every session, that one included.\n\n{}\n\n             The link works once and expires in {minutes} minutes.\n",
            when.format("%Y-%m-%d %H:%M UTC"),
            link(config, config.reset_password_link(), token),
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

/// The link to confirm `to` as the account's new address.
pub fn email_change_email(config: &AuthConfig, to: &Email, token: &OpaqueToken) -> mail::Email {
    let hours = config.tokens.verification_ttl_secs / 3600;
    mail::Email {
        to: to.as_str().to_owned(),
        subject: "Confirm your new email address".into(),
        text: format!(
            "Someone asked to use this address for their account.\n\n\
             Confirm it by opening this link:\n\n{}\n\nOr submit this code to the confirmation endpoint:\n\n{}\n\n\
             The link works once and expires in {hours} hours. Until then the account keeps its old address. \
             If this was not you, ignore this email.\n",
            link(config, &config.email_change_path, token),
            token.as_str(),
        ),
    }
}

/// Sent instead of [`email_change_email`] when `to` already has an account:
/// the requester is answered the same, and only this address learns why.
pub fn email_taken_notice(to: &Email) -> mail::Email {
    mail::Email {
        to: to.as_str().to_owned(),
        subject: "Your email address was entered for another account".into(),
        text: "Someone asked to move another account to this address. It already belongs to your account, \
               so nothing was changed.\n\nIf this was you, sign in to this account instead. Otherwise you can \
               ignore this email.\n"
            .into(),
    }
}

/// An invitation to join `tenant_name` with `role`, accepted with a session
/// whose verified email is `to`.
pub fn invitation_email(
    config: &AuthConfig,
    to: &Email,
    tenant_name: &str,
    role: &str,
    token: &OpaqueToken,
) -> mail::Email {
    let days = crate::tenancy::INVITATION_TTL_SECS / 86_400;
    mail::Email {
        to: to.as_str().to_owned(),
        subject: "You are invited to join a team".into(),
        text: format!(
            "You are invited to join \"{tenant_name}\" as {role}.\n\n\
             Accept the invitation here:\n\n{}\n\nOr submit this code to the invitation endpoint:\n\n{}\n\n\
             Accepting needs an account with this email address, verified; if you have none, sign up with this \
             address first. The invitation works once and expires in {days} days. If you did not expect it, \
             ignore this email.\n",
            link(config, config.invitation_link(), token),
            token.as_str(),
        ),
    }
}
