//! Passkeys (WebAuthn): registration by a signed-in user, discoverable
//! sign-in without a password, and the assertion that the second step of a
//! password login accepts ([`Passkeys::start_for_user`], [`Passkeys::verify`]).
//!
//! Ceremonies keep their state server-side (`webauthn_challenges`), so any
//! instance finishes what another started; a challenge is deleted by the
//! statement that reads it (one use) and lives five minutes on the engine's
//! clock. User verification is required, so a passkey sign-in is itself two
//! factors. `amr` rule: a backup-eligible credential (synced between devices)
//! is `swk`, a device-bound one `hwk`; both with `mfa`.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, WebauthnError,
};

use super::{Passkeys, TokenPair};
use crate::{
    audit::{AuditEvent, ClientInfo},
    contract::{PasskeyChallenge, PasskeyView},
    error::{AuthError, FieldErrors, Result},
    identity::User,
    mfa::Factors,
    ratelimit::{Action, UserAction},
    recovery,
    store::{Inserted, StoredPasskey, time},
    tokens::{AccessClaims, AuthMethod},
};

/// How long a ceremony may take (the contract: five minutes).
const CHALLENGE_TTL_MS: i64 = 5 * 60 * 1000;
/// Passkeys one user may register.
pub const MAX_PASSKEYS_PER_USER: i64 = 10;
const MAX_NAME_CHARS: usize = 64;
/// How recent a session's second factor must be to stand in for the password.
pub const FRESH_SECOND_FACTOR_SECS: u64 = 600;

const REGISTER: &str = "register";
const SIGN_IN: &str = "sign_in";
const SECOND_FACTOR: &str = "second_factor";

/// The state of a sign-in ceremony as stored.
#[derive(Serialize, Deserialize)]
enum SignInState {
    /// Any registered credential (discoverable sign-in), or only those of
    /// the user given (by email; a user that does not exist for an unknown
    /// address, kept here rather than in the `user_id` column).
    Discoverable(DiscoverableAuthentication, Option<Uuid>),
    /// One of the credentials of the challenge's user.
    ForUser(PasskeyAuthentication),
}

/// A verified assertion: whose passkey, and how `amr` names it.
pub struct Verified {
    pub user: User,
    pub method: AuthMethod,
}

impl Passkeys<'_> {
    fn relying_party(&self) -> Result<&webauthn_rs::Webauthn> {
        self.inner.webauthn.as_deref().ok_or(AuthError::NotFound)
    }

    /// Whether passkeys are on (the relying party could be configured).
    pub fn enabled(&self) -> bool {
        self.inner.webauthn.is_some()
    }

    /// Creation options for a new passkey of the caller (`publicKey` for
    /// `navigator.credentials.create`). One registration at a time: starting
    /// again replaces the open one.
    #[tracing::instrument(name = "auth.passkeys.register_start", skip_all, fields(user_id = %caller.sub))]
    pub async fn register_start(&self, caller: &AccessClaims, client: &ClientInfo) -> Result<serde_json::Value> {
        let rp = self.relying_party()?;
        self.user_quota(UserAction::PasskeyChange, caller.sub, client).await?;
        let user = self.inner.store.user(caller.sub).await?.ok_or(AuthError::InvalidToken)?;
        let existing = self.credentials(user.id).await?;
        let exclude = existing.iter().map(|(_, passkey)| passkey.cred_id().clone()).collect();
        let (options, state) = rp
            .start_passkey_registration(user.id, user.email.as_str(), user.email.as_str(), Some(exclude))
            .map_err(AuthError::internal)?;
        self.inner.store.take_user_challenge(user.id, REGISTER, 0).await?;
        self.put_challenge(REGISTER, Some(user.id), &state).await?;
        let mut public_key = json!(options)["publicKey"].take();
        // A discoverable credential, so that it signs in without an email
        // (webauthn-rs asks for none; it does not check this when finishing).
        public_key["authenticatorSelection"]["residentKey"] = json!("required");
        public_key["authenticatorSelection"]["requireResidentKey"] = json!(true);
        Ok(public_key)
    }

    /// Verifies the attestation of the caller's open registration and stores
    /// the passkey: the caller's other sessions end and a notice is mailed.
    /// [`AuthError::InvalidOneTimeToken`] without an open registration,
    /// [`AuthError::InvalidCode`] for a refused attestation,
    /// [`AuthError::PasskeyLimit`] past ten, [`AuthError::PasskeyExists`] for
    /// a credential registered already.
    #[tracing::instrument(name = "auth.passkeys.register_finish", skip_all, fields(user_id = %caller.sub))]
    pub async fn register_finish(
        &self,
        caller: &AccessClaims,
        credential: &serde_json::Value,
        name: &str,
        client: &ClientInfo,
    ) -> Result<PasskeyView> {
        let rp = self.relying_party()?;
        self.user_quota(UserAction::PasskeyChange, caller.sub, client).await?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(FieldErrors::single("name", format!("must be 1 to {MAX_NAME_CHARS} characters")));
        }
        let now = self.inner.clock.now_ms();
        let challenge = self
            .inner
            .store
            .take_user_challenge(caller.sub, REGISTER, now)
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)?;
        let state: PasskeyRegistration = serde_json::from_str(&challenge.state).map_err(AuthError::internal)?;
        let refused = |what: &str| {
            tracing::info!(reason = what, "passkey registration refused");
            AuthError::InvalidCode
        };
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| refused("malformed credential"))?;
        let passkey = rp.finish_passkey_registration(&credential, &state).map_err(|e| refused(&e.to_string()))?;
        let stored = StoredPasskey {
            id: Uuid::now_v7(),
            user_id: caller.sub,
            credential: serde_json::to_string(&passkey).map_err(AuthError::internal)?,
            name: name.to_owned(),
            created_at: now,
            last_used_at: None,
        };
        let mut tx = self.inner.store.begin().await?;
        if tx.count_passkeys(caller.sub).await? >= MAX_PASSKEYS_PER_USER {
            return Err(AuthError::PasskeyLimit);
        }
        if tx.insert_passkey(&stored, passkey.cred_id().as_ref()).await? == Inserted::Duplicate {
            return Err(AuthError::PasskeyExists);
        }
        let ended = tx.revoke_user_families(caller.sub, Some(caller.sid), "passkey_added", now).await?;
        tx.commit().await?;
        self.revoked(ended);
        self.changed(caller.sub, AuditEvent::PasskeyAdded, stored.id, "A passkey was added", client).await?;
        Ok(view(&stored))
    }

    /// The caller's passkeys (no key material).
    pub async fn list(&self, caller: &AccessClaims) -> Result<Vec<PasskeyView>> {
        self.relying_party()?;
        self.list_stored(caller.sub).await
    }

    /// The passkeys of `user_id`, whether or not passkeys are on (the export).
    pub(super) async fn list_stored(&self, user_id: Uuid) -> Result<Vec<PasskeyView>> {
        Ok(self.inner.store.passkeys(user_id).await?.iter().map(view).collect())
    }

    /// Removes passkey `id` of the caller, confirmed with the password or,
    /// without one, by a session that proved a second factor within
    /// [`FRESH_SECOND_FACTOR_SECS`] (else [`AuthError::ReauthenticationRequired`]).
    /// The recovery codes go too when no factor remains; the caller's other
    /// sessions end and a notice is mailed.
    #[tracing::instrument(name = "auth.passkeys.delete", skip_all, fields(user_id = %caller.sub))]
    pub async fn delete(
        &self,
        caller: &AccessClaims,
        id: Uuid,
        password: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        self.relying_party()?;
        self.user_quota(UserAction::PasskeyChange, caller.sub, client).await?;
        let user = match password {
            Some(password) => self.accounts().reauthenticate(caller.sub, password, client, "passkey_delete").await?,
            None if self.fresh_second_factor(caller) => {
                self.inner.store.user(caller.sub).await?.ok_or(AuthError::InvalidToken)?
            }
            None => return Err(AuthError::ReauthenticationRequired { max_age_secs: FRESH_SECOND_FACTOR_SECS }),
        };
        // The factors once this passkey is gone (read before `tx`, which
        // deletes it; a concurrent change is caught by the next removal).
        let before = self.inner.store.factors(user.id).await?;
        let remaining = Factors { passkeys: before.passkeys.saturating_sub(1), ..before };
        let now = self.inner.clock.now_ms();
        let mut tx = self.inner.store.begin().await?;
        if !tx.delete_passkey(user.id, id).await? {
            return Err(AuthError::NotFound);
        }
        if !remaining.any() {
            tx.delete_recovery_codes(user.id).await?;
        }
        let ended = tx.revoke_user_families(user.id, Some(caller.sid), "passkey_removed", now).await?;
        tx.commit().await?;
        self.revoked(ended);
        self.changed(user.id, AuditEvent::PasskeyRemoved, id, "A passkey was removed", client).await
    }

    /// A discoverable sign-in: `publicKey` request options for
    /// `navigator.credentials.get` and the `challenge_id` to finish with.
    /// Given an `email`, only that account's passkey is accepted; the answer
    /// is the same whether or not the account exists.
    #[tracing::instrument(name = "auth.passkeys.sign_in_start", skip_all)]
    pub async fn sign_in_start(&self, email: Option<&str>, client: &ClientInfo) -> Result<PasskeyChallenge> {
        let rp = self.relying_party()?;
        self.rate_limit(Action::Login, client).await?;
        let expected = match email {
            None => None,
            Some(email) => {
                let email = crate::identity::Email::parse("email", email).map_err(AuthError::Validation)?;
                // An unknown address expects a user that does not exist: nothing matches.
                Some(self.inner.store.user_by_email(&email).await?.map_or_else(Uuid::new_v4, |(user, _)| user.id))
            }
        };
        let (options, state) = rp.start_discoverable_authentication().map_err(AuthError::internal)?;
        let challenge_id = self.put_challenge(SIGN_IN, None, &SignInState::Discoverable(state, expected)).await?;
        Ok(PasskeyChallenge { challenge_id, public_key: json!(options)["publicKey"].take() })
    }

    /// Finishes a discoverable sign-in: the session's `amr` is `hwk` or
    /// `swk`, and `mfa`. Counted against the per-IP `login` quota.
    #[tracing::instrument(name = "auth.passkeys.sign_in_finish", skip_all)]
    pub async fn sign_in_finish(
        &self,
        challenge_id: Uuid,
        credential: &serde_json::Value,
        client: &ClientInfo,
    ) -> Result<TokenPair> {
        self.relying_party()?;
        self.rate_limit(Action::Login, client).await?;
        let verified = match self.verify(SIGN_IN, challenge_id, None, credential, client).await {
            Ok(verified) => verified,
            Err(error) => {
                if matches!(error, AuthError::InvalidCode) {
                    self.audit(AuditEvent::LoginFailed, None, client, json!({ "method": "webauthn" })).await;
                }
                return Err(error);
            }
        };
        let user = verified.user;
        if !user.is_active {
            self.audit(AuditEvent::LoginFailed, Some(user.id), client, json!({ "reason": "inactive" })).await;
            return Err(AuthError::AccountDisabled);
        }
        let pair = self.start_session(&user, None, &[verified.method, AuthMethod::MultiFactor], client).await?;
        self.audit(AuditEvent::LoginSucceeded, Some(user.id), client, json!({ "method": "webauthn" })).await;
        Ok(pair)
    }

    /// A challenge for the passkeys of `user_id`, as the second step of a
    /// login asks for it (one open at a time per user).
    pub async fn start_for_user(&self, user_id: Uuid) -> Result<PasskeyChallenge> {
        let rp = self.relying_party()?;
        let credentials: Vec<Passkey> = self.credentials(user_id).await?.into_iter().map(|(_, p)| p).collect();
        if credentials.is_empty() {
            return Err(AuthError::NotFound);
        }
        let (options, state) = rp.start_passkey_authentication(&credentials).map_err(AuthError::internal)?;
        self.inner.store.take_user_challenge(user_id, SECOND_FACTOR, 0).await?;
        let challenge_id = self.put_challenge(SECOND_FACTOR, Some(user_id), &SignInState::ForUser(state)).await?;
        Ok(PasskeyChallenge { challenge_id, public_key: json!(options)["publicKey"].take() })
    }

    /// Verifies an assertion against the open second-factor challenge of `user_id`.
    pub(super) async fn verify_for_user(
        &self,
        user_id: Uuid,
        credential: &serde_json::Value,
        client: &ClientInfo,
    ) -> Result<Verified> {
        self.relying_party()?;
        self.verify(SECOND_FACTOR, Uuid::nil(), Some(user_id), credential, client).await
    }

    /// The core of every sign-in: consumes the challenge (by id, or the open
    /// one of `user_id`), checks the assertion against the stored credential
    /// (signature, origin, rp id, user verification, counter) and stores the
    /// credential's new counter. [`AuthError::InvalidOneTimeToken`] for an
    /// unknown, used or expired challenge; [`AuthError::InvalidCode`] for a
    /// refused assertion. A counter that went back (a cloned authenticator) is
    /// refused and audited as `passkey_clone_suspected`.
    async fn verify(
        &self,
        kind: &str,
        challenge_id: Uuid,
        user_id: Option<Uuid>,
        credential: &serde_json::Value,
        client: &ClientInfo,
    ) -> Result<Verified> {
        let rp = self.relying_party()?;
        let now = self.inner.clock.now_ms();
        let challenge = match user_id {
            Some(user_id) => self.inner.store.take_user_challenge(user_id, kind, now).await?,
            None => self.inner.store.take_challenge(challenge_id, kind, now).await?,
        }
        .ok_or(AuthError::InvalidOneTimeToken)?;
        let state: SignInState = serde_json::from_str(&challenge.state).map_err(AuthError::internal)?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| AuthError::InvalidCode)?;
        let stored = self
            .inner
            .store
            .passkey_by_credential_id(credential.raw_id.as_ref())
            .await?
            .ok_or(AuthError::InvalidCode)?;
        let expected = match &state {
            SignInState::Discoverable(_, expected) => *expected,
            SignInState::ForUser(_) => challenge.user_id,
        };
        let handle_matches = credential.get_user_unique_id().is_none_or(|handle| handle == stored.user_id.as_bytes());
        if expected.is_some_and(|expected| expected != stored.user_id) || !handle_matches {
            return Err(AuthError::InvalidCode);
        }
        let mut passkey: Passkey = serde_json::from_str(&stored.credential).map_err(AuthError::internal)?;
        let result = match state {
            SignInState::Discoverable(state, _) => {
                rp.finish_discoverable_authentication_v2(&credential, state, &passkey)
            }
            SignInState::ForUser(state) => rp.finish_passkey_authentication(&credential, &state),
        };
        let result = match result {
            Ok(result) if result.user_verified() => result,
            Ok(_) => return Err(AuthError::InvalidCode),
            Err(WebauthnError::CredentialPossibleCompromise) => {
                let detail = json!({ "passkey": stored.id });
                self.audit(AuditEvent::PasskeyCloneSuspected, Some(stored.user_id), client, detail).await;
                return Err(AuthError::InvalidCode);
            }
            Err(error) => {
                tracing::info!(reason = %error, "passkey assertion refused");
                return Err(AuthError::InvalidCode);
            }
        };
        passkey.update_credential(&result);
        let updated = serde_json::to_string(&passkey).map_err(AuthError::internal)?;
        self.inner.store.passkey_used(stored.id, &updated, now).await?;
        let user = self.inner.store.user(stored.user_id).await?.ok_or(AuthError::InvalidCode)?;
        let method = if result.backup_eligible() { AuthMethod::SoftwareKey } else { AuthMethod::HardwareKey };
        Ok(Verified { user, method })
    }

    /// Whether the caller's session proved a second factor (or a passkey)
    /// within [`FRESH_SECOND_FACTOR_SECS`].
    pub(super) fn fresh_second_factor(&self, caller: &AccessClaims) -> bool {
        let age = self.inner.clock.now_ms().div_euclid(1000) - caller.auth_time;
        crate::tokens::amr::is_multi_factor(&caller.amr)
            && caller.auth_time > 0
            && age <= i64::try_from(FRESH_SECOND_FACTOR_SECS).unwrap_or(i64::MAX)
    }

    async fn credentials(&self, user_id: Uuid) -> Result<Vec<(StoredPasskey, Passkey)>> {
        let stored = self.inner.store.passkeys(user_id).await?;
        stored
            .into_iter()
            .map(|row| {
                let passkey = serde_json::from_str(&row.credential).map_err(AuthError::internal)?;
                Ok((row, passkey))
            })
            .collect()
    }

    async fn put_challenge(&self, kind: &str, user_id: Option<Uuid>, state: &impl Serialize) -> Result<Uuid> {
        let id = Uuid::new_v4();
        let state = serde_json::to_string(state).map_err(AuthError::internal)?;
        let expires_at = self.inner.clock.now_ms() + CHALLENGE_TTL_MS;
        self.inner.store.insert_challenge(id, kind, user_id, &state, expires_at).await?;
        Ok(id)
    }

    async fn changed(&self, user_id: Uuid, event: AuditEvent, id: Uuid, what: &str, client: &ClientInfo) -> Result<()> {
        self.audit(event, Some(user_id), client, json!({ "passkey": id })).await;
        if let Some(user) = self.inner.store.user(user_id).await? {
            let notice = format!("{what}; your other sessions were signed out");
            self.send(&recovery::security_notice(&user.email, &notice)).await;
        }
        Ok(())
    }
}

fn view(stored: &StoredPasskey) -> PasskeyView {
    PasskeyView {
        id: stored.id,
        name: stored.name.clone(),
        created_at: time(stored.created_at),
        last_used_at: stored.last_used_at.map(time),
    }
}
