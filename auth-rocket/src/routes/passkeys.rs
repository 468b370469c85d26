//! Passkeys (WebAuthn): registration and removal by a signed-in user,
//! discoverable sign-in, and the challenge of a login's second step. Every
//! route answers 404 when the deployment has no relying party.

use auth_core::{
    Auth,
    contract::{
        ErrorBody, MfaTokenRequest, PasskeyChallenge, PasskeyCreationOptions, PasskeyRegistrationRequest,
        PasskeyRemovalRequest, PasskeySignInRequest, PasskeySignInStartRequest, PasskeyView, SignedIn,
    },
};
use auth_macros::{public, requires};
use rocket::{State, delete, get, http::Status, post, serde::json::Json};

use super::{ApiResult, NoStore, id_in_path};
use crate::{
    browser::Browser,
    guards::{AuthUser, RemoteClient},
    json::JsonBody,
};

#[utoipa::path(tag = "passkeys", security(("bearer" = [])), responses((status = 200, description = "Creation options for navigator.credentials.create; five minutes to finish", body = PasskeyCreationOptions), (status = 403, description = "No sign-in or second factor in the last 10 minutes (reauthentication_required)", body = ErrorBody), (status = 404, description = "Passkeys are off", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
// A new way to sign in asks for a recent sign-in: a stolen access token
// alone must not leave a passkey behind (docs/threat-model.md).
#[requires(recent_auth = "10m")]
#[post("/webauthn/register/start")]
pub async fn passkey_register_start(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
) -> ApiResult<NoStore<PasskeyCreationOptions>> {
    let public_key = auth.passkeys().register_start(user.claims(), &client.0).await?;
    Ok(NoStore::ok(PasskeyCreationOptions { public_key }))
}

#[utoipa::path(tag = "passkeys", security(("bearer" = [])), request_body = PasskeyRegistrationRequest, responses((status = 201, description = "The passkey is registered; the other sessions are signed out", body = PasskeyView), (status = 400, description = "Refused attestation (invalid_code), or no registration in progress (invalid_token)", body = ErrorBody), (status = 403, description = "No sign-in or second factor in the last 10 minutes (reauthentication_required)", body = ErrorBody), (status = 404, description = "Passkeys are off", body = ErrorBody), (status = 409, description = "Registered already (passkey_exists), or ten passkeys (passkey_limit)", body = ErrorBody), (status = 422, description = "A name of 1 to 64 characters is needed", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota", body = ErrorBody)))]
// A new way to sign in asks for a recent sign-in: a stolen access token
// alone must not leave a passkey behind (docs/threat-model.md).
#[requires(recent_auth = "10m")]
#[post("/webauthn/register/finish", data = "<body>")]
pub async fn passkey_register_finish(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<PasskeyRegistrationRequest>,
) -> ApiResult<NoStore<PasskeyView>> {
    let body = body.into_inner();
    let view = auth.passkeys().register_finish(user.claims(), &body.credential, &body.name, &client.0).await?;
    Ok(NoStore(Status::Created, view))
}

#[utoipa::path(tag = "passkeys", security(("bearer" = [])), responses((status = 200, description = "The caller's passkeys", body = [PasskeyView]), (status = 404, description = "Passkeys are off", body = ErrorBody)))]
#[requires(authenticated)]
#[get("/webauthn/credentials")]
pub async fn passkeys(auth: &State<Auth>, user: AuthUser) -> ApiResult<Json<Vec<PasskeyView>>> {
    Ok(Json(auth.passkeys().list(user.claims()).await?))
}

#[utoipa::path(tag = "passkeys", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Passkey id")), request_body = PasskeyRemovalRequest, responses((status = 204, description = "Removed; the other sessions are signed out"), (status = 400, description = "Wrong password (invalid_credentials)", body = ErrorBody), (status = 403, description = "No password given and no second factor in the last 10 minutes (reauthentication_required)", body = ErrorBody), (status = 404, description = "Not one of the caller's passkeys, or passkeys are off", body = ErrorBody), (status = 429, description = "Rate limited: the per-user quota, or the login back-off of this address", body = ErrorBody)))]
#[requires(authenticated)]
#[delete("/webauthn/credentials/<id>", data = "<body>")]
pub async fn delete_passkey(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    id: &str,
    body: JsonBody<PasskeyRemovalRequest>,
) -> ApiResult<Status> {
    let id = id_in_path(id)?;
    let password = body.0.password.as_ref().map(|password| password.expose());
    auth.passkeys().delete(user.claims(), id, password, &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "passkeys", request_body = PasskeySignInStartRequest, responses((status = 200, description = "Request options for navigator.credentials.get and the challenge to finish with (five minutes, one use)", body = PasskeyChallenge), (status = 404, description = "Passkeys are off", body = ErrorBody), (status = 422, description = "A malformed email", body = ErrorBody), (status = 429, description = "Rate limited: the login quota", body = ErrorBody)))]
#[public]
#[post("/webauthn/login/start", data = "<body>")]
pub async fn passkey_login_start(
    auth: &State<Auth>,
    client: RemoteClient,
    body: JsonBody<PasskeySignInStartRequest>,
) -> ApiResult<NoStore<PasskeyChallenge>> {
    Ok(NoStore::ok(auth.passkeys().sign_in_start(body.0.email.as_deref(), &client.0).await?))
}

#[utoipa::path(tag = "passkeys", request_body = PasskeySignInRequest, responses((status = 200, description = "Signed in (amr hwk or swk, and mfa); with session cookie, in cookies", body = SignedIn), (status = 400, description = "Refused assertion (invalid_code), or an unknown, used or expired challenge (invalid_token)", body = ErrorBody), (status = 403, description = "The account is disabled; a cookie-mode sign-in sent cross-site (csrf_failed)", body = ErrorBody), (status = 404, description = "Passkeys are off", body = ErrorBody), (status = 429, description = "Rate limited: the login quota", body = ErrorBody)))]
#[public]
#[post("/webauthn/login/finish", data = "<body>")]
pub async fn passkey_login_finish(
    auth: &State<Auth>,
    client: RemoteClient,
    browser: Browser<'_>,
    body: JsonBody<PasskeySignInRequest>,
) -> ApiResult<NoStore<SignedIn>> {
    let body = body.into_inner();
    browser.check_sign_in(body.session)?;
    let pair = auth.passkeys().sign_in_finish(body.challenge_id, &body.credential, &client.0).await?;
    Ok(NoStore::ok(browser.signed_in(body.session, pair)))
}

#[utoipa::path(tag = "session", request_body = MfaTokenRequest, responses((status = 200, description = "Request options for the user's passkeys (the challenge lives five minutes); finish with POST /login/mfa {mfa_token, credential}", body = PasskeyChallenge), (status = 400, description = "An unknown, expired, used or ended mfa_token (invalid_token)", body = ErrorBody), (status = 404, description = "The user has no passkey, or passkeys are off", body = ErrorBody), (status = 429, description = "Rate limited: the login quota", body = ErrorBody)))]
#[public]
#[post("/login/mfa/webauthn/start", data = "<body>")]
pub async fn login_mfa_webauthn_start(
    auth: &State<Auth>,
    client: RemoteClient,
    body: JsonBody<MfaTokenRequest>,
) -> ApiResult<NoStore<PasskeyChallenge>> {
    Ok(NoStore::ok(auth.sessions().second_factor_challenge(body.0.mfa_token.expose(), &client.0).await?))
}
