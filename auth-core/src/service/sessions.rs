//! Login sessions: login, refresh rotation, listing, logout and revocation.

use serde_json::json;
use uuid::Uuid;

use super::{SecondFactor, Sessions, TokenPair, secs_to_ms};
use crate::{
    audit::{AuditEvent, ClientInfo},
    config::MAX_PASSWORD_BYTES,
    error::{AuthError, Result},
    identity::{AccountFlags, Email, User},
    mfa::{Factors, MfaMethod},
    password::Verification,
    ratelimit::{Action, UserAction},
    secret::Secret,
    store::{Family, LiveSession, PendingMfaLogin, Session, StoredToken, Transaction},
    tokens::{AccessClaims, AuthMethod, OpaqueToken, amr, random_bytes},
};

/// How long a login's second step may take (the contract: five minutes).
const MFA_LOGIN_TTL_MS: i64 = 5 * 60 * 1000;
/// Wrong second factors that end a login's `mfa_token` (the contract: five).
const MAX_SECOND_FACTOR_FAILURES: i64 = 5;

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum RotateOutcome {
    /// The token was consumed and `successor` replaces it. For a tenant-scoped
    /// chain `tenant` holds the tenant and the membership's current role;
    /// `account` is read in the same query as the session, for the new access token.
    Rotated { family: Family, account: AccountFlags, successor: OpaqueToken, tenant: Option<(Uuid, String)> },
    /// Unknown token, or a session that is revoked, expired or whose user is inactive.
    Invalid,
    /// An already-consumed token was presented: the whole family is now revoked.
    Reused { family_id: Uuid, user_id: Uuid },
    /// The chain's tenant membership is gone: that chain has ended, and the
    /// family too (`family_revoked`) when it had no other live chain.
    MembershipEnded { family_id: Uuid, user_id: Uuid, family_revoked: bool },
}

impl Sessions<'_> {
    /// Checks email and password and starts a session, scoped to `tenant_id`
    /// when given. An unknown email costs the same argon2 work as a wrong
    /// password and gets the same error.
    ///
    /// After `rate_limits.login_failures_per_account` wrong passwords for one
    /// email address (registered or not) from one client address, that
    /// address is soft-locked out of it: every attempt answers
    /// [`AuthError::RateLimited`], before any hashing, until a back-off that
    /// doubles with each further failure has passed. After
    /// `login_failures_account_wide` from all addresses together, the same
    /// holds for every address that has not signed in to the account
    /// recently. A successful login clears its address's count and makes the
    /// address known (see [`crate::ratelimit`]).
    #[tracing::instrument(name = "auth.sessions.login", skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        tenant_id: Option<Uuid>,
        client: &ClientInfo,
    ) -> Result<TokenPair> {
        self.rate_limit(Action::Login, client).await?;
        let email = Email::parse("email", email).map_err(AuthError::Validation)?;
        self.check_login_lock(&email, client).await?;
        if password.len() > MAX_PASSWORD_BYTES {
            // Refused before hashing whatever the account: reveals nothing.
            self.login_failed(&email, client).await?;
            return Err(AuthError::InvalidCredentials);
        }
        let found = self.inner.store.user_by_email(&email).await?;
        let stored_hash = found.as_ref().and_then(|(_, hash)| hash.as_deref());
        let verification = self.inner.passwords.verify(password, stored_hash).await?;
        let (user, needs_rehash) = match (found, verification) {
            (Some((user, _)), Verification::Valid { needs_rehash }) => (user, needs_rehash),
            (found, _) => {
                let user_id = found.map(|(user, _)| user.id);
                self.audit(AuditEvent::LoginFailed, user_id, client, json!({ "email": email })).await;
                self.login_failed(&email, client).await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        if !user.is_active {
            self.audit(AuditEvent::LoginFailed, Some(user.id), client, json!({ "reason": "inactive" })).await;
            return Err(AuthError::AccountDisabled);
        }
        if self.inner.config.require_verified_email && !user.email_verified() {
            self.audit(AuditEvent::LoginFailed, Some(user.id), client, json!({ "reason": "unverified" })).await;
            return Err(AuthError::EmailNotVerified);
        }
        let tenant = match tenant_id {
            None => None,
            Some(tenant_id) => match self.inner.store.role_in(user.id, tenant_id).await? {
                Some(role) => Some((tenant_id, role)),
                None => {
                    self.audit(AuditEvent::AccessDenied, Some(user.id), client, json!({ "tenant_id": tenant_id }))
                        .await;
                    return Err(AuthError::NotAMember);
                }
            },
        };
        let rehashed = if needs_rehash { Some(self.inner.passwords.hash(password).await?) } else { None };
        let now = self.inner.clock.now_ms();
        self.inner.store.record_login(user.id, now, rehashed.as_deref()).await?;
        let factors = self.inner.store.factors(user.id).await?;
        if factors.any() {
            // The back-off is not cleared yet: the second step's failures count
            // against this address as wrong passwords do.
            return Err(self.await_second_factor(&user, tenant_id, AuthMethod::Password, &factors, client).await?);
        }
        if let Some((tenant_id, _)) = &tenant {
            self.check_tenant_factor(&user, *tenant_id, &[AuthMethod::Password], client).await?;
        }
        let pair = self.start_session(&user, tenant, &[AuthMethod::Password], client).await?;
        self.login_succeeded(&email, client).await;
        self.audit(AuditEvent::LoginSucceeded, Some(user.id), client, json!({ "tenant_id": tenant_id })).await;
        Ok(pair)
    }

    /// The challenge for the passkeys of the user of a pending login
    /// (`POST /login/mfa/webauthn/start`), finished by [`Sessions::finish_login`]
    /// with [`SecondFactor::Passkey`].
    #[tracing::instrument(name = "auth.sessions.second_factor_challenge", skip_all)]
    pub async fn second_factor_challenge(
        &self,
        mfa_token: &str,
        client: &ClientInfo,
    ) -> Result<crate::contract::PasskeyChallenge> {
        self.rate_limit(Action::Login, client).await?;
        let token = OpaqueToken::parse(mfa_token).ok_or(AuthError::InvalidOneTimeToken)?;
        let now = self.inner.clock.now_ms();
        let pending =
            self.inner.store.pending_mfa_login(&token.hash(), now).await?.ok_or(AuthError::InvalidOneTimeToken)?;
        self.passkeys().start_for_user(pending.user_id).await
    }

    /// The second step of a login whose first factor was right
    /// ([`AuthError::SecondFactorRequired`] handed out `mfa_token`): a TOTP
    /// code or a recovery code starts the session, with `amr` `pwd otp mfa`
    /// (`fed otp mfa` after an identity provider).
    /// The token works once and for five minutes ([`AuthError::InvalidOneTimeToken`]
    /// after); a wrong code is [`AuthError::InvalidCode`] and a failed login of
    /// the account (the same back-off as a wrong password), and the fifth ends
    /// the token. Counted against the per-IP `login` quota.
    #[tracing::instrument(name = "auth.sessions.finish_login", skip_all)]
    pub async fn finish_login(
        &self,
        mfa_token: &str,
        factor: SecondFactor<'_>,
        client: &ClientInfo,
    ) -> Result<TokenPair> {
        self.rate_limit(Action::Login, client).await?;
        let token = OpaqueToken::parse(mfa_token).ok_or(AuthError::InvalidOneTimeToken)?;
        let hash = token.hash();
        let now = self.inner.clock.now_ms();
        let pending = self.inner.store.pending_mfa_login(&hash, now).await?.ok_or(AuthError::InvalidOneTimeToken)?;
        let user = self.inner.store.user(pending.user_id).await?.ok_or(AuthError::InvalidOneTimeToken)?;
        self.check_login_lock(&user.email, client).await?;
        if !user.is_active {
            return Err(AuthError::AccountDisabled);
        }
        // A passkey is verified before the transaction: its check writes (the
        // challenge, the counter), which on SQLite must not wait on `tx`'s lock.
        let passkey = match factor {
            SecondFactor::Passkey(credential) => {
                match self.passkeys().verify_for_user(user.id, credential, client).await {
                    Ok(verified) => Some(verified.method),
                    Err(AuthError::InvalidCode) => {
                        let detail = json!({ "method": MfaMethod::Webauthn.as_str() });
                        self.audit(AuditEvent::SecondFactorFailed, Some(user.id), client, detail).await;
                        self.inner.store.mfa_login_failed(&hash, MAX_SECOND_FACTOR_FAILURES, now).await?;
                        self.login_failed(&user.email, client).await?;
                        return Err(AuthError::InvalidCode);
                    }
                    Err(error) => return Err(error),
                }
            }
            _ => None,
        };
        let mut tx = self.inner.store.begin().await?;
        // First: the conditional UPDATE that lets one request finish this login.
        if tx.finish_mfa_login(&hash, now).await?.is_none() {
            return Err(AuthError::InvalidOneTimeToken);
        }
        let spent = match passkey {
            Some(_) => Ok((tx, MfaMethod::Webauthn)),
            None => self.mfa().spend(tx, &user, factor, now, client).await,
        };
        let (tx, method) = match spent {
            Ok(spent) => spent,
            Err(AuthError::InvalidCode) => {
                self.inner.store.mfa_login_failed(&hash, MAX_SECOND_FACTOR_FAILURES, now).await?;
                self.login_failed(&user.email, client).await?;
                return Err(AuthError::InvalidCode);
            }
            Err(error) => return Err(error),
        };
        tx.commit().await?;
        if method == MfaMethod::RecoveryCode {
            self.mfa().recovery_code_used(&user, client).await?;
        }
        let tenant = match pending.tenant_id {
            None => None,
            Some(tenant_id) => {
                Some((tenant_id, self.inner.store.role_in(user.id, tenant_id).await?.ok_or(AuthError::NotAMember)?))
            }
        };
        let first = AuthMethod::parse(&pending.first_factor).unwrap_or(AuthMethod::Password);
        let second = passkey.unwrap_or(AuthMethod::OneTimeCode);
        let pair = self.start_session(&user, tenant, &[first, second, AuthMethod::MultiFactor], client).await?;
        self.login_succeeded(&user.email, client).await;
        let detail = json!({ "tenant_id": pending.tenant_id, "second_factor": method.as_str() });
        self.audit(AuditEvent::LoginSucceeded, Some(user.id), client, detail).await;
        Ok(pair)
    }

    /// Records a login that passed its `first` factor (a password, an
    /// identity provider) and now awaits one of the user's `factors`; the
    /// error that hands the client its `mfa_token`.
    pub(super) async fn await_second_factor(
        &self,
        user: &User,
        tenant_id: Option<Uuid>,
        first: AuthMethod,
        factors: &Factors,
        client: &ClientInfo,
    ) -> Result<AuthError> {
        let token = OpaqueToken::generate();
        let now = self.inner.clock.now_ms();
        let pending = PendingMfaLogin { user_id: user.id, tenant_id, first_factor: first.as_str().to_owned() };
        self.inner.store.insert_mfa_login(token.hash(), &pending, now, now + MFA_LOGIN_TTL_MS).await?;
        self.audit(AuditEvent::SecondFactorRequested, Some(user.id), client, json!({ "tenant_id": tenant_id })).await;
        Ok(AuthError::SecondFactorRequired { mfa_token: Secret::new(token.as_str()), methods: factors.methods() })
    }

    /// [`AuthError::MfaRequired`] (audited) when `tenant_id` requires a second
    /// factor and a session signed in with `methods` has none.
    pub(super) async fn check_tenant_factor(
        &self,
        user: &User,
        tenant_id: Uuid,
        methods: &[AuthMethod],
        client: &ClientInfo,
    ) -> Result<()> {
        let multi_factor = methods.iter().any(|m| *m == AuthMethod::MultiFactor || m.is_second_factor());
        if !multi_factor && self.inner.store.tenant_requires_mfa(tenant_id).await? {
            let detail = json!({ "tenant_id": tenant_id, "reason": "tenant_requires_mfa" });
            self.audit(AuditEvent::AccessDenied, Some(user.id), client, detail).await;
            return Err(AuthError::MfaRequired);
        }
        Ok(())
    }

    /// Rotates a refresh token (one transaction, see `rotate_refresh`). Presenting a
    /// consumed token revokes its whole session and is [`AuthError::TokenReused`].
    #[tracing::instrument(name = "auth.sessions.refresh", skip_all)]
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<TokenPair> {
        self.rate_limit(Action::Refresh, client).await?;
        let presented = OpaqueToken::parse(refresh_token).ok_or(AuthError::InvalidToken)?;
        let t = &self.inner.config.tokens;
        let now = self.inner.clock.now_ms();
        let outcome = self
            .rotate_refresh(
                &presented,
                now,
                secs_to_ms(t.refresh_idle_ttl_secs),
                secs_to_ms(t.refresh_reuse_grace_secs),
                client,
            )
            .await?;
        match outcome {
            RotateOutcome::Rotated { family, account, successor, tenant } => {
                let access = self.mint(account, &family, tenant)?;
                Ok(self.pair(access, &successor, &family))
            }
            RotateOutcome::Invalid => Err(AuthError::InvalidToken),
            RotateOutcome::Reused { family_id, user_id } => {
                self.revoked(vec![family_id]);
                self.audit(AuditEvent::RefreshReuseDetected, Some(user_id), client, json!({ "session": family_id }))
                    .await;
                Err(AuthError::TokenReused)
            }
            RotateOutcome::MembershipEnded { family_id, user_id, family_revoked } => {
                // The tenant's access tokens share the login's `sid`: only a
                // revoked login goes on the revocation list; the ended chain's
                // last access token expires within its lifetime.
                if family_revoked {
                    self.revoked(vec![family_id]);
                }
                let detail =
                    json!({ "session": family_id, "reason": "membership_ended", "session_ended": family_revoked });
                self.audit(AuditEvent::SessionRevoked, Some(user_id), client, detail).await;
                Err(AuthError::InvalidToken)
            }
        }
    }

    /// Consumes `presented` and issues its successor, in one transaction
    /// with the audit event of a rotation (no tokens minted: [`Sessions::refresh`]
    /// does that, and audits the other outcomes).
    ///
    /// The consuming `UPDATE … WHERE consumed_at IS NULL` is the first
    /// statement, so of several concurrent rotations of one token exactly one
    /// updates the row (PostgreSQL's row lock; SQLite's `BEGIN IMMEDIATE`). The
    /// others find it consumed, which is reuse: within `grace_ms` of the
    /// rotation, and while the successor is unused, they get the same
    /// successor back (one chain, never two); otherwise the family is revoked.
    ///
    /// A rotation's audit event is written in the same transaction: one
    /// commit per refresh instead of two (on SQLite, one fsync and one turn
    /// of the write gate fewer).
    pub(crate) async fn rotate_refresh(
        &self,
        presented: &OpaqueToken,
        now: i64,
        idle_ms: i64,
        grace_ms: i64,
        client: &ClientInfo,
    ) -> Result<RotateOutcome> {
        let mut tx = self.inner.store.begin().await?;
        let outcome = rotate(&mut tx, presented, now, idle_ms, grace_ms).await?;
        if let RotateOutcome::Rotated { family, .. } = &outcome {
            let detail = json!({ "session": family.id });
            self.inner
                .audit
                .record_in(&mut tx, AuditEvent::Refreshed, Some(family.user_id), client, detail, self.now())
                .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Ends the session of `refresh_token`, which must belong to the caller.
    #[tracing::instrument(name = "auth.sessions.logout", skip_all, fields(user_id = %caller.sub))]
    pub async fn logout(&self, caller: &AccessClaims, refresh_token: &str, client: &ClientInfo) -> Result<()> {
        self.user_quota(UserAction::SessionRevoke, caller.sub, client).await?;
        let token = OpaqueToken::parse(refresh_token).ok_or(AuthError::InvalidToken)?;
        let family = self.inner.store.family_of_token(&token).await?.ok_or(AuthError::InvalidToken)?;
        if family.user_id != caller.sub {
            self.record_denied(Some(caller.sub), client, "foreign_session", json!({}));
            return Err(AuthError::Forbidden);
        }
        let now = self.inner.clock.now_ms();
        self.inner.store.revoke_family(family.id, caller.sub, "logout", now).await?;
        self.revoked(vec![family.id]);
        self.audit(AuditEvent::LoggedOut, Some(caller.sub), client, json!({ "session": family.id })).await;
        Ok(())
    }

    /// Ends every session of the caller, including the current one.
    #[tracing::instrument(name = "auth.sessions.logout_all", skip_all, fields(user_id = %caller.sub))]
    pub async fn logout_all(&self, caller: &AccessClaims, client: &ClientInfo) -> Result<()> {
        self.user_quota(UserAction::SessionRevoke, caller.sub, client).await?;
        let now = self.inner.clock.now_ms();
        let revoked = self.inner.store.revoke_user_families(caller.sub, None, "logout_all", now).await?;
        let count = revoked.len();
        self.revoked(revoked);
        self.audit(AuditEvent::LoggedOutEverywhere, Some(caller.sub), client, json!({ "sessions": count })).await;
        Ok(())
    }

    /// The caller's live sessions, the one of this token marked `current`.
    pub async fn list(&self, caller: &AccessClaims) -> Result<Vec<Session>> {
        let idle = secs_to_ms(self.inner.config.tokens.refresh_idle_ttl_secs);
        let mut sessions = self.inner.store.live_sessions(caller.sub, self.inner.clock.now_ms(), idle).await?;
        for session in &mut sessions {
            session.current = session.id == caller.sid;
        }
        Ok(sessions)
    }

    /// Revokes one of the caller's sessions; another user's id is [`AuthError::NotFound`].
    #[tracing::instrument(name = "auth.sessions.revoke", skip_all, fields(user_id = %caller.sub))]
    pub async fn revoke(&self, caller: &AccessClaims, session_id: Uuid, client: &ClientInfo) -> Result<()> {
        self.user_quota(UserAction::SessionRevoke, caller.sub, client).await?;
        let now = self.inner.clock.now_ms();
        if !self.inner.store.revoke_family(session_id, caller.sub, "revoked_by_user", now).await? {
            return Err(AuthError::NotFound);
        }
        self.revoked(vec![session_id]);
        self.audit(AuditEvent::SessionRevoked, Some(caller.sub), client, json!({ "session": session_id })).await;
        Ok(())
    }

    /// Records that the caller has just proved `factor`, a second factor, in
    /// the caller's session: its `amr` gains `factor` and `mfa`, and its
    /// `auth_time` becomes now. The session's next tokens (a refresh, a tenant
    /// token) say so; those already issued do not. Only for the code that has
    /// verified the factor itself (TOTP, passkeys); a session that
    /// is not live is [`AuthError::InvalidToken`].
    pub(crate) async fn record_second_factor(&self, caller: &AccessClaims, factor: AuthMethod) -> Result<Family> {
        if !factor.is_second_factor() {
            return Err(AuthError::internal(format!("`{}` is no second factor", factor.as_str())));
        }
        let now = self.inner.clock.now_ms();
        let idle = secs_to_ms(self.inner.config.tokens.refresh_idle_ttl_secs);
        let mut tx = self.inner.store.begin().await?;
        // First: the conditional UPDATE that checks liveness and takes the row lock.
        let family = tx.touch_family_of(caller.sid, caller.sub, now, idle).await?.ok_or(AuthError::InvalidToken)?;
        let upgraded = Family { amr: amr::with_second_factor(&family.amr, factor), auth_time: now, ..family };
        tx.set_sign_in(upgraded.id, &upgraded.amr, now).await?;
        tx.commit().await?;
        Ok(upgraded)
    }
}

/// The statements of [`Sessions::rotate_refresh`], in its transaction `tx`.
async fn rotate(
    tx: &mut Transaction,
    presented: &OpaqueToken,
    now: i64,
    idle_ms: i64,
    grace_ms: i64,
) -> Result<RotateOutcome> {
    let presented_hash = presented.hash();
    let salt = random_bytes();
    let (family_id, tenant_id, successor, first_use) =
        match tx.consume_refresh_token(&presented_hash, &salt, now).await? {
            Some((family_id, tenant_id)) => (family_id, tenant_id, presented.successor(&salt), true),
            None => {
                // No salt: a chain that ended (its membership did), not a rotated token.
                let Some(StoredToken {
                    family_id,
                    tenant_id,
                    consumed_at: Some(consumed_at),
                    successor_salt: Some(old_salt),
                }) = tx.refresh_token(&presented_hash).await?
                else {
                    return Ok(RotateOutcome::Invalid);
                };
                let successor = presented.successor(&old_salt);
                // Without a grace window every second presentation is reuse, even one
                // that read the clock before the winner committed (now <= consumed_at).
                let within_grace = grace_ms > 0 && now - consumed_at <= grace_ms;
                // Within it, only while the successor is unused: once the successor
                // was presented, the old token is a stolen copy.
                let successor_unused = within_grace && tx.refresh_token_unused(successor.hash()).await?;
                if !successor_unused {
                    // Already revoked (by an earlier reuse, say): still reuse.
                    let user_id = match tx.revoke_family_once(family_id, "reuse", now).await? {
                        Some(user_id) => user_id,
                        None => tx.family_owner(family_id).await?,
                    };
                    return Ok(RotateOutcome::Reused { family_id, user_id });
                }
                (family_id, tenant_id, successor, false)
            }
        };

    // Liveness is checked by the UPDATE that takes the family's row lock:
    // a revocation committed meanwhile (logout, reuse elsewhere) is seen
    // here, never overwritten by a read made before it.
    if !tx.touch_family(family_id, now, idle_ms).await? {
        return Ok(RotateOutcome::Invalid);
    }
    let Some(LiveSession { family, account, role, tenant_requires_mfa }) =
        tx.live_session(family_id, tenant_id).await?
    else {
        return Ok(RotateOutcome::Invalid);
    };
    // A tenant that requires a second factor mints no token for a session
    // without one: that chain ends as if the membership had.
    let role = role.filter(|_| !tenant_requires_mfa || amr::is_multi_factor(&amr::claimed(&family.amr)));
    let tenant = match (tenant_id, role) {
        (None, _) => None,
        (Some(tenant_id), Some(role)) => Some((tenant_id, role)),
        (Some(_), None) => {
            // End this chain (consumed, no successor) and the family with it
            // when it has no other live chain.
            tx.end_token_chain(&presented_hash).await?;
            let family_revoked = tx.revoke_family_without_chains(family.id, now).await?;
            return Ok(RotateOutcome::MembershipEnded {
                family_id: family.id,
                user_id: family.user_id,
                family_revoked,
            });
        }
    };
    if first_use {
        tx.insert_refresh_token(successor.hash(), family.id, tenant_id, now).await?;
    }
    Ok(RotateOutcome::Rotated { family, account, successor, tenant })
}
