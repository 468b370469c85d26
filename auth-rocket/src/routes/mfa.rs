//! Second factors: TOTP enrolment and removal, recovery codes, and the second
//! step of a login.

use auth_core::{
    Auth, FieldErrors, SecondFactor,
    contract::{
        DisableTotpRequest, ErrorBody, MfaLoginRequest, PasswordRequest, RecoveryCodes, SignedIn, TotpCodeRequest,
        TotpEnrollment,
    },
};
use auth_macros::{public, requires};
use rocket::{State, delete, http::Status, post};

use super::{ApiResult, NoStore};
use crate::{
    browser::Browser,
    guards::{AuthUser, RemoteClient},
    json::JsonBody,
};

#[utoipa::path(tag = "mfa", security(("bearer" = [])), request_body = PasswordRequest, responses((status = 200, description = "A new secret, not a factor until confirmed; shown once", body = TotpEnrollment), (status = 400, description = "Wrong password (invalid_credentials)", body = ErrorBody), (status = 404, description = "This deployment has no mfa.encryption_key: TOTP is off", body = ErrorBody), (status = 409, description = "An authenticator app is already set up (mfa_already_enabled)", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota, or the login back-off of this address", body = ErrorBody)))]
#[requires(authenticated)]
#[post("/mfa/totp/enroll", data = "<body>")]
pub async fn enroll_totp(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<PasswordRequest>,
) -> ApiResult<NoStore<TotpEnrollment>> {
    Ok(NoStore::ok(auth.mfa().enroll_totp(user.claims(), body.0.password.expose(), &client.0).await?))
}

#[utoipa::path(tag = "mfa", security(("bearer" = [])), request_body = TotpCodeRequest, responses((status = 200, description = "TOTP is on: ten recovery codes, shown once; the other sessions are signed out and this one counts as signed in with a second factor from its next token", body = RecoveryCodes), (status = 400, description = "Wrong code (invalid_code)", body = ErrorBody), (status = 404, description = "No enrolment in progress", body = ErrorBody), (status = 409, description = "Already confirmed (mfa_already_enabled)", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
#[requires(authenticated)]
#[post("/mfa/totp/confirm", data = "<body>")]
pub async fn confirm_totp(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<TotpCodeRequest>,
) -> ApiResult<NoStore<RecoveryCodes>> {
    let recovery_codes = auth.mfa().confirm_totp(user.claims(), body.0.code.expose(), &client.0).await?;
    Ok(NoStore::ok(RecoveryCodes { recovery_codes }))
}

#[utoipa::path(tag = "mfa", security(("bearer" = [])), request_body = DisableTotpRequest, responses((status = 204, description = "TOTP is off; the other sessions are signed out"), (status = 400, description = "Wrong password (invalid_credentials) or code (invalid_code)", body = ErrorBody), (status = 403, description = "The session has no second factor (mfa_required, with WWW-Authenticate: Bearer error=\"insufficient_user_authentication\")", body = ErrorBody), (status = 404, description = "No authenticator app is set up", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota, or the login back-off of this address", body = ErrorBody)))]
#[requires(mfa)]
#[delete("/mfa/totp", data = "<body>")]
pub async fn disable_totp(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<DisableTotpRequest>,
) -> ApiResult<Status> {
    let body = body.into_inner();
    auth.mfa().disable_totp(user.claims(), body.password.expose(), body.code.expose(), &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "mfa", security(("bearer" = [])), request_body = PasswordRequest, responses((status = 200, description = "Ten fresh recovery codes, shown once; the old ones no longer work", body = RecoveryCodes), (status = 400, description = "Wrong password (invalid_credentials)", body = ErrorBody), (status = 403, description = "The session has no second factor (mfa_required, with WWW-Authenticate: Bearer error=\"insufficient_user_authentication\")", body = ErrorBody), (status = 404, description = "The account has no second factor", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota, or the login back-off of this address", body = ErrorBody)))]
#[requires(mfa)]
#[post("/mfa/recovery-codes", data = "<body>")]
pub async fn regenerate_recovery_codes(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<PasswordRequest>,
) -> ApiResult<NoStore<RecoveryCodes>> {
    let recovery_codes =
        auth.mfa().regenerate_recovery_codes(user.claims(), body.0.password.expose(), &client.0).await?;
    Ok(NoStore::ok(RecoveryCodes { recovery_codes }))
}

#[utoipa::path(tag = "session", request_body = MfaLoginRequest, responses((status = 200, description = "Signed in with a second factor (amr pwd otp mfa; pwd hwk|swk mfa with a passkey); with session cookie, in cookies", body = SignedIn), (status = 400, description = "Wrong or replayed code or refused assertion (invalid_code; five end the mfa_token), or an unknown, expired, used or ended mfa_token or passkey challenge (invalid_token)", body = ErrorBody), (status = 403, description = "The account was disabled, or left the tenant, meanwhile; a cookie-mode sign-in sent cross-site (csrf_failed)", body = ErrorBody), (status = 429, description = "Rate limited: the login quota, or the login back-off of this address", body = ErrorBody)))]
#[public]
#[post("/login/mfa", data = "<body>")]
pub async fn login_mfa(
    auth: &State<Auth>,
    client: RemoteClient,
    browser: Browser<'_>,
    body: JsonBody<MfaLoginRequest>,
) -> ApiResult<NoStore<SignedIn>> {
    let body = body.into_inner();
    browser.check_sign_in(body.session)?;
    let factor = match (&body.code, &body.recovery_code, &body.credential) {
        (Some(code), None, None) => SecondFactor::Totp(code.expose()),
        (None, Some(code), None) => SecondFactor::RecoveryCode(code.expose()),
        (None, None, Some(credential)) => SecondFactor::Passkey(credential),
        _ => {
            return Err(FieldErrors::single("code", "give exactly one of code, recovery_code and credential").into());
        }
    };
    let pair = auth.sessions().finish_login(body.mfa_token.expose(), factor, &client.0).await?;
    Ok(NoStore::ok(browser.signed_in(body.session, pair)))
}
