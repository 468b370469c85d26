//! Second factors of a signed-in user: TOTP enrolment, confirmation and
//! removal, recovery codes; and the proof of a second factor that the second
//! step of a login, TOTP's removal and an account's deletion share.
//!
//! Turning a factor on or off ends the user's other sessions and mails a
//! notice; every change is audited. A factor is proved once: a TOTP step is
//! accepted by one conditional `UPDATE` (never again, nor an older one), a
//! recovery code is marked used by another.

use serde_json::json;
use uuid::Uuid;

use super::Mfa;
use crate::{
    audit::{AuditEvent, ClientInfo},
    contract::TotpEnrollment,
    error::{AuthError, Result},
    identity::User,
    mfa::{Factors, MfaMethod, recovery_codes, totp::TotpSecret},
    ratelimit::UserAction,
    recovery,
    secret::Secret,
    store::Transaction,
    tokens::{AccessClaims, AuthMethod},
};

/// A second factor as a client presents it.
#[derive(Clone, Copy)]
pub enum SecondFactor<'a> {
    /// A six-digit code of the user's authenticator app.
    Totp(&'a str),
    /// One of the user's recovery codes.
    RecoveryCode(&'a str),
    /// A passkey's assertion (`PublicKeyCredential` JSON) for the challenge of
    /// `POST /login/mfa/webauthn/start`. Only the second step of a login takes it.
    Passkey(&'a serde_json::Value),
}

impl SecondFactor<'_> {
    /// A `code` field that takes either: six digits are a TOTP code, anything
    /// else is tried as a recovery code.
    pub fn from_code(code: &str) -> SecondFactor<'_> {
        let digits = code.trim();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            SecondFactor::Totp(code)
        } else {
            SecondFactor::RecoveryCode(code)
        }
    }

    fn method(self) -> MfaMethod {
        match self {
            Self::Totp(_) => MfaMethod::Totp,
            Self::RecoveryCode(_) => MfaMethod::RecoveryCode,
            Self::Passkey(_) => MfaMethod::Webauthn,
        }
    }
}

impl Mfa<'_> {
    /// The second factors of `user_id`.
    pub async fn factors(&self, user_id: Uuid) -> Result<Factors> {
        self.inner.store.factors(user_id).await
    }

    /// Starts a TOTP enrolment, confirmed with the password: a fresh secret,
    /// sealed and stored unconfirmed (a second start replaces it), as the
    /// base32 secret and `otpauth://` URI an app takes. Not a factor until
    /// [`Mfa::confirm_totp`]. [`AuthError::MfaAlreadyEnabled`] while a
    /// confirmed factor exists; [`AuthError::NotFound`] when the deployment
    /// has no `mfa.encryption_key`.
    #[tracing::instrument(name = "auth.mfa.enroll_totp", skip_all, fields(user_id = %caller.sub))]
    pub async fn enroll_totp(
        &self,
        caller: &AccessClaims,
        password: &str,
        client: &ClientInfo,
    ) -> Result<TotpEnrollment> {
        self.user_quota(UserAction::MfaChange, caller.sub, client).await?;
        let user = self.accounts().reauthenticate(caller.sub, password, client, "totp_enrollment").await?;
        let sealer = self.inner.totp_sealer.as_ref().ok_or(AuthError::NotFound)?;
        let secret = TotpSecret::generate();
        let now = self.inner.clock.now_ms();
        if !self.inner.store.put_pending_totp(user.id, sealer.seal(user.id, &secret), now).await? {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        self.audit(AuditEvent::TotpEnrollmentStarted, Some(user.id), client, json!({})).await;
        let otpauth_uri = secret.otpauth_uri(&self.inner.config.mfa.totp_issuer, user.email.as_str())?;
        Ok(TotpEnrollment { secret: secret.base32(), otpauth_uri })
    }

    /// Confirms the pending enrolment with a current code: TOTP becomes a
    /// factor, ten recovery codes replace any earlier ones (answered once,
    /// stored hashed), the caller's session counts as signed in with it, the
    /// user's other sessions end and a notice is mailed.
    /// [`AuthError::InvalidCode`] for a wrong code, [`AuthError::NotFound`]
    /// without a pending enrolment.
    #[tracing::instrument(name = "auth.mfa.confirm_totp", skip_all, fields(user_id = %caller.sub))]
    pub async fn confirm_totp(&self, caller: &AccessClaims, code: &str, client: &ClientInfo) -> Result<Vec<Secret>> {
        self.user_quota(UserAction::MfaChange, caller.sub, client).await?;
        let factor = self.inner.store.totp_factor(caller.sub).await?.ok_or(AuthError::NotFound)?;
        if factor.confirmed {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        let secret = self.sealer()?.open(caller.sub, &factor.sealed_secret)?;
        let now = self.inner.clock.now_ms();
        let step = secret.matching_step(code, now.div_euclid(1000), factor.last_step);
        let codes = recovery_codes::generate();
        let hashes: Vec<Vec<u8>> = codes.iter().filter_map(|code| recovery_codes::hash(code.expose())).collect();
        let mut tx = self.inner.store.begin().await?;
        let confirmed = match step {
            Some(step) => tx.accept_totp_step(caller.sub, step, true, now).await?,
            None => false,
        };
        if !confirmed {
            drop(tx);
            self.audit(AuditEvent::SecondFactorFailed, Some(caller.sub), client, json!({ "during": "totp_confirm" }))
                .await;
            return Err(AuthError::InvalidCode);
        }
        tx.replace_recovery_codes(caller.sub, &hashes, now).await?;
        let ended = tx.revoke_user_families(caller.sub, Some(caller.sid), "mfa_enabled", now).await?;
        tx.commit().await?;
        self.revoked(ended);
        self.sessions().record_second_factor(caller, AuthMethod::OneTimeCode).await?;
        self.factor_changed(
            caller.sub,
            AuditEvent::MfaEnabled,
            "An authenticator app was set up as a second factor",
            client,
        )
        .await?;
        Ok(codes)
    }

    /// Turns TOTP off, confirmed with the password and a current code (or a
    /// recovery code). The recovery codes go too unless another factor
    /// remains. The user's other sessions end and a notice is mailed.
    #[tracing::instrument(name = "auth.mfa.disable_totp", skip_all, fields(user_id = %caller.sub))]
    pub async fn disable_totp(
        &self,
        caller: &AccessClaims,
        password: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        self.user_quota(UserAction::MfaChange, caller.sub, client).await?;
        let user = self.accounts().reauthenticate(caller.sub, password, client, "totp_disable").await?;
        if !self.factors(user.id).await?.totp {
            return Err(AuthError::NotFound);
        }
        let now = self.inner.clock.now_ms();
        let tx = self.inner.store.begin().await?;
        let (mut tx, _) = self.spend(tx, &user, SecondFactor::from_code(code), now, client).await?;
        tx.delete_totp(user.id).await?;
        let remaining = Factors { totp: false, ..self.factors(user.id).await? };
        if !remaining.any() {
            tx.delete_recovery_codes(user.id).await?;
        }
        let ended = tx.revoke_user_families(user.id, Some(caller.sid), "mfa_disabled", now).await?;
        tx.commit().await?;
        self.revoked(ended);
        self.factor_changed(
            user.id,
            AuditEvent::MfaDisabled,
            "The authenticator app was removed as a second factor",
            client,
        )
        .await
    }

    /// Ten fresh recovery codes, confirmed with the password; the old ones
    /// stop working. Only for a user with a second factor
    /// ([`AuthError::NotFound`] otherwise).
    #[tracing::instrument(name = "auth.mfa.regenerate_recovery_codes", skip_all, fields(user_id = %caller.sub))]
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &AccessClaims,
        password: &str,
        client: &ClientInfo,
    ) -> Result<Vec<Secret>> {
        self.user_quota(UserAction::MfaChange, caller.sub, client).await?;
        let user = self.accounts().reauthenticate(caller.sub, password, client, "recovery_codes").await?;
        if !self.factors(user.id).await?.any() {
            return Err(AuthError::NotFound);
        }
        let codes = recovery_codes::generate();
        let hashes: Vec<Vec<u8>> = codes.iter().filter_map(|code| recovery_codes::hash(code.expose())).collect();
        let mut tx = self.inner.store.begin().await?;
        tx.replace_recovery_codes(user.id, &hashes, self.inner.clock.now_ms()).await?;
        tx.commit().await?;
        self.audit(AuditEvent::RecoveryCodesRegenerated, Some(user.id), client, json!({})).await;
        self.send(&recovery::security_notice(
            &user.email,
            "New recovery codes were generated; the old ones no longer work",
        ))
        .await;
        Ok(codes)
    }

    /// Checks `factor` for `user` and spends it in `tx` (the TOTP step, the
    /// recovery code), so it is spent only if `tx` commits, and hands `tx`
    /// back. [`AuthError::InvalidCode`] when it is wrong or already spent:
    /// then `tx` is dropped (on SQLite it holds the write lock) and the
    /// refusal audited. A spent recovery code is followed by
    /// [`Mfa::recovery_code_used`] once `tx` commits.
    pub(super) async fn spend(
        &self,
        mut tx: Transaction,
        user: &User,
        factor: SecondFactor<'_>,
        now: i64,
        client: &ClientInfo,
    ) -> Result<(Transaction, MfaMethod)> {
        let spent = match factor {
            SecondFactor::Totp(code) => match self.inner.store.totp_factor(user.id).await? {
                Some(stored) if stored.confirmed => {
                    let secret = self.sealer()?.open(user.id, &stored.sealed_secret)?;
                    match secret.matching_step(code, now.div_euclid(1000), stored.last_step) {
                        Some(step) => tx.accept_totp_step(user.id, step, false, now).await?,
                        None => false,
                    }
                }
                _ => false,
            },
            SecondFactor::RecoveryCode(code) => match recovery_codes::hash(code) {
                Some(hash) => tx.use_recovery_code(user.id, &hash, now).await?,
                None => false,
            },
            // Verified before any transaction (it writes the challenge and the
            // counter): see `Sessions::finish_login`. Here it proves nothing.
            SecondFactor::Passkey(_) => false,
        };
        if !spent {
            drop(tx);
            let detail = json!({ "method": factor.method().as_str() });
            self.audit(AuditEvent::SecondFactorFailed, Some(user.id), client, detail).await;
            return Err(AuthError::InvalidCode);
        }
        Ok((tx, factor.method()))
    }

    /// What a committed use of a recovery code is followed by: an audit event
    /// and a notice, since it may be a thief's.
    pub(super) async fn recovery_code_used(&self, user: &User, client: &ClientInfo) -> Result<()> {
        let left = self.factors(user.id).await?.recovery_codes_left;
        self.audit(AuditEvent::RecoveryCodeUsed, Some(user.id), client, json!({ "left": left })).await;
        let notice =
            format!("A recovery code was used to sign in ({left} left). If this was not you, reset your password");
        self.send(&recovery::security_notice(&user.email, &notice)).await;
        Ok(())
    }

    fn sealer(&self) -> Result<&crate::mfa::totp::SecretSealer> {
        self.inner
            .totp_sealer
            .as_ref()
            .ok_or_else(|| AuthError::internal("a TOTP factor exists without mfa.encryption_key"))
    }

    async fn factor_changed(&self, user_id: Uuid, event: AuditEvent, what: &str, client: &ClientInfo) -> Result<()> {
        self.audit(event, Some(user_id), client, json!({ "method": "totp" })).await;
        if let Some(user) = self.inner.store.user(user_id).await? {
            let notice = format!("{what}; your other sessions were signed out");
            self.send(&recovery::security_notice(&user.email, &notice)).await;
        }
        Ok(())
    }
}
