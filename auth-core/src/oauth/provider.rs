//! One configured provider at run time: its discovery document and JWKS
//! (fetched on first use, cached, the JWKS refetched when an id_token names a
//! key it does not hold), the authorization request, the code exchange and
//! the validation of the id_token, all through openidconnect.

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, JsonWebKeySet, LoginHint, Nonce,
    OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, SubjectIdentifier, TokenResponse as _,
    core::{
        CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreIdToken, CoreJwsSigningAlgorithm,
        CoreProviderMetadata, CoreUserInfoClaims,
    },
};

use super::{
    Identity,
    http::ProviderHttp,
    settings::OAuthProvider,
    state::{LinkTarget, PendingLogin, STATE_TTL_SECS, StateKey},
};
use crate::{
    config::{ConfigError, ConfigProblem},
    error::AuthError,
    secret::Secret,
};

/// The discovery document (with its JWKS) is fetched again after this long.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// An id_token issued longer ago than this (plus the leeway) is refused: it
/// comes straight from the token endpoint, so it was issued seconds ago.
const MAX_ID_TOKEN_AGE_SECS: i64 = 10 * 60;
/// `login_hint` is forwarded to the provider up to this length.
const MAX_LOGIN_HINT_LEN: usize = 256;
/// Longer authorization codes are refused before any request.
const MAX_CODE_LEN: usize = 2048;

/// Signature algorithms accepted on id_tokens: asymmetric ones only. HS256
/// (keyed by the client secret) and `none` are refused whatever the provider
/// advertises, and a key is only used for the algorithm family of its type.
const ALLOWED_ALGORITHMS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// The client openidconnect builds from discovered metadata.
type DiscoveredClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// Why a sign-in failed: a stable reason for the audit trail, an optional
/// detail (never a secret: no code, token or verifier), and whether the
/// provider was unreachable (503) rather than the sign-in invalid (400).
#[derive(Debug)]
pub(crate) struct Failure {
    pub reason: &'static str,
    pub detail: Option<String>,
    pub unavailable: bool,
}

impl Failure {
    pub(crate) fn invalid(reason: &'static str) -> Self {
        Self { reason, detail: None, unavailable: false }
    }

    pub(crate) fn detailed(reason: &'static str, detail: impl ToString) -> Self {
        let mut detail = detail.to_string();
        if detail.len() > 300 {
            let mut end = 300;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
        }
        Self { reason, detail: Some(detail), unavailable: false }
    }

    fn unreachable(reason: &'static str, detail: impl ToString) -> Self {
        Self { unavailable: true, ..Self::detailed(reason, detail) }
    }

    pub(crate) fn error(&self) -> AuthError {
        if self.unavailable { AuthError::Unavailable } else { AuthError::OAuthFailed }
    }
}

struct Discovered {
    metadata: CoreProviderMetadata,
    fetched_at: Instant,
}

/// A configured provider, ready to start and finish sign-ins.
pub(crate) struct Provider {
    name: String,
    settings: OAuthProvider,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    state_key: StateKey,
    http: ProviderHttp,
    discovered: RwLock<Option<Arc<Discovered>>>,
    /// One discovery or JWKS fetch at a time; the others wait and reuse it.
    fetching: tokio::sync::Mutex<()>,
}

impl Provider {
    pub(crate) fn new(name: &str, settings: &OAuthProvider, http: ProviderHttp) -> Result<Self, ConfigError> {
        let problem = |field: &str, message: &str| {
            ConfigError(vec![ConfigProblem { field: format!("oauth.{name}.{field}"), message: message.into() }])
        };
        let issuer = IssuerUrl::new(settings.issuer().to_owned()).map_err(|_| problem("issuer_url", "not a URL"))?;
        let redirect = RedirectUrl::new(settings.redirect_url.trim().to_owned())
            .map_err(|_| problem("redirect_url", "not a URL"))?;
        let state_key = StateKey::derive(name, settings.issuer(), &settings.client_id, settings.client_secret.expose());
        Ok(Self {
            name: name.to_owned(),
            settings: settings.clone(),
            issuer,
            redirect,
            state_key,
            http,
            discovered: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn settings(&self) -> &OAuthProvider {
        &self.settings
    }

    pub(crate) fn redirect_url(&self) -> &str {
        self.redirect.as_str()
    }

    pub(crate) fn issuer(&self) -> &str {
        self.settings.issuer()
    }

    fn cached(&self) -> Option<Arc<Discovered>> {
        self.discovered.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn store(&self, discovered: Discovered) -> Arc<Discovered> {
        let discovered = Arc::new(discovered);
        *self.discovered.write().unwrap_or_else(PoisonError::into_inner) = Some(discovered.clone());
        discovered
    }

    /// The discovery document and JWKS: cached, refetched after [`METADATA_TTL`].
    /// If a refetch fails, the stale copy is used (and the failure logged).
    async fn metadata(&self) -> Result<Arc<Discovered>, Failure> {
        let fresh = |d: &Arc<Discovered>| d.fetched_at.elapsed() < METADATA_TTL;
        if let Some(cached) = self.cached().filter(fresh) {
            return Ok(cached);
        }
        let _guard = self.fetching.lock().await;
        let stale = self.cached();
        if let Some(cached) = stale.clone().filter(fresh) {
            return Ok(cached);
        }
        match CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http).await {
            Ok(metadata) => {
                tracing::info!(provider = self.name, issuer = self.issuer(), "OpenID Connect discovery done");
                Ok(self.store(Discovered { metadata, fetched_at: Instant::now() }))
            }
            Err(error) => {
                tracing::warn!(provider = self.name, issuer = self.issuer(), %error, "OpenID Connect discovery failed");
                stale.ok_or_else(|| Failure::unreachable("discovery_failed", error))
            }
        }
    }

    /// Refetches the JWKS after an id_token named a key `seen` did not hold
    /// (a key rotation at the provider). A concurrent refetch is reused.
    async fn refresh_jwks(&self, seen: &Arc<Discovered>) -> Result<Arc<Discovered>, Failure> {
        let _guard = self.fetching.lock().await;
        if let Some(current) = self.cached().filter(|current| !Arc::ptr_eq(current, seen)) {
            return Ok(current);
        }
        let jwks = JsonWebKeySet::fetch_async(seen.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|error| Failure::unreachable("jwks_unreachable", error))?;
        tracing::info!(provider = self.name, "refetched the provider's JWKS for an unknown key id");
        let metadata = seen.metadata.clone().set_jwks(jwks);
        Ok(self.store(Discovered { metadata, fetched_at: seen.fetched_at }))
    }

    fn client(&self, metadata: &CoreProviderMetadata) -> DiscoveredClient {
        // client_secret_basic unless the provider only takes client_secret_post.
        let methods = metadata.token_endpoint_auth_methods_supported();
        let post_only = methods.is_some_and(|methods| {
            !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && methods.contains(&CoreClientAuthMethod::ClientSecretPost)
        });
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.expose().to_owned())),
        )
        .set_redirect_uri(self.redirect.clone())
        .set_auth_type(if post_only { AuthType::RequestBody } else { AuthType::BasicAuth })
    }

    /// The provider's authorization URL (code flow, `state`, `nonce`, PKCE
    /// S256) and the sealed cookie that binds them (and `link`, `app_state`)
    /// to this browser.
    pub(crate) async fn start(
        &self,
        login_hint: Option<&str>,
        link: Option<LinkTarget>,
        app_state: Option<String>,
        now_ms: i64,
    ) -> Result<(String, Secret), Failure> {
        let discovered = self.metadata().await?;
        let client = self.client(&discovered.metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for scope in self.settings.requested_scopes() {
            request = request.add_scope(Scope::new(scope));
        }
        if let Some(hint) = login_hint.map(str::trim).filter(|h| !h.is_empty() && h.len() <= MAX_LOGIN_HINT_LEN) {
            request = request.set_login_hint(LoginHint::new(hint.to_owned()));
        }
        let (url, state, nonce) = request.url();
        let pending = PendingLogin {
            state: Secret::new(state.into_secret()),
            nonce: Secret::new(nonce.secret().as_str()),
            pkce_verifier: Secret::new(verifier.into_secret()),
            expires_at: now_ms + STATE_TTL_SECS * 1000,
            link,
            app_state,
        };
        Ok((url.to_string(), Secret::new(self.state_key.seal(&pending))))
    }

    /// Opens the state cookie of this provider; `None` if it was not sealed by it.
    pub(crate) fn open_state(&self, cookie: &str) -> Option<PendingLogin> {
        self.state_key.open(cookie)
    }

    /// Exchanges `code` with the PKCE verifier and validates the id_token:
    /// signature (JWKS, refetched once for an unknown `kid`), `iss`, `aud`,
    /// `azp`, `exp` and `iat` (with `leeway`), `nonce`, and `at_hash` when present.
    pub(crate) async fn finish(
        &self,
        code: &str,
        pending: &PendingLogin,
        now: DateTime<Utc>,
        leeway: chrono::Duration,
    ) -> Result<Identity, Failure> {
        if code.is_empty() || code.len() > MAX_CODE_LEN {
            return Err(Failure::invalid("missing_code"));
        }
        let discovered = self.metadata().await?;
        let client = self.client(&discovered.metadata);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|error| Failure::unreachable("no_token_endpoint", error))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.expose().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|error| match error {
                RequestTokenError::ServerResponse(response) => {
                    Failure::detailed("code_rejected", response.error().as_ref())
                }
                RequestTokenError::Request(error) => Failure::unreachable("token_endpoint_unreachable", error),
                other => Failure::detailed("token_response_invalid", other),
            })?;
        let id_token = response.id_token().ok_or_else(|| Failure::invalid("no_id_token"))?;
        let nonce = Nonce::new(pending.nonce.expose().to_owned());
        let access_token = response.access_token();
        let verified = match self.verify(&client, id_token, access_token, &nonce, now, leeway) {
            Err(Rejected::UnknownKey) => {
                let refreshed = self.refresh_jwks(&discovered).await?;
                self.verify(&self.client(&refreshed.metadata), id_token, access_token, &nonce, now, leeway)
            }
            other => other,
        };
        let mut identity = verified.map_err(|rejected| match rejected {
            Rejected::UnknownKey => Failure::invalid("unknown_signing_key"),
            Rejected::Failed(failure) => failure,
        })?;
        if identity.email.is_none() && client.user_info_url().is_some() {
            self.fill_from_userinfo(&client, access_token, &mut identity).await?;
        }
        Ok(identity)
    }

    fn verify(
        &self,
        client: &DiscoveredClient,
        id_token: &CoreIdToken,
        access_token: &AccessToken,
        nonce: &Nonce,
        now: DateTime<Utc>,
        leeway: chrono::Duration,
    ) -> Result<Identity, Rejected> {
        let max_age = chrono::Duration::seconds(MAX_ID_TOKEN_AGE_SECS) + leeway;
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(ALLOWED_ALGORITHMS)
            // `exp` must be after now, less the leeway for clock skew.
            .set_time_fn(move || now - leeway)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > now + leeway {
                    Err(format!("issued in the future ({iat})"))
                } else if iat < now - max_age {
                    Err(format!("issued too long ago ({iat})"))
                } else {
                    Ok(())
                }
            });
        let claims = id_token.claims(&verifier, nonce).map_err(Rejected::from)?;
        // OpenID Connect Core 3.1.3.7, steps 4 and 5.
        match claims.authorized_party() {
            Some(azp) if azp.as_str() != self.settings.client_id => {
                return Err(Rejected::Failed(Failure::detailed("azp_mismatch", format!("azp is `{}`", azp.as_str()))));
            }
            None if claims.audiences().len() > 1 => return Err(Rejected::Failed(Failure::invalid("azp_missing"))),
            _ => {}
        }
        if let Some(expected) = claims.access_token_hash() {
            let actual = id_token
                .signing_alg()
                .ok()
                .zip(id_token.signing_key(&verifier).ok())
                .and_then(|(alg, key)| AccessTokenHash::from_token(access_token, alg, key).ok());
            if actual.as_ref() != Some(expected) {
                return Err(Rejected::Failed(Failure::invalid("at_hash_mismatch")));
            }
        }
        Ok(Identity {
            issuer: self.issuer().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|email| email.as_str().to_owned()),
            email_verified: claims.email_verified() == Some(true),
            name: claims.name().and_then(|name| name.get(None)).map(|name| name.as_str().to_owned()),
        })
    }

    /// Providers that keep the email claims out of the id_token serve them at
    /// the userinfo endpoint, over TLS, for the access token just issued; the
    /// answer must name the id_token's subject.
    async fn fill_from_userinfo(
        &self,
        client: &DiscoveredClient,
        access_token: &AccessToken,
        identity: &mut Identity,
    ) -> Result<(), Failure> {
        let subject = SubjectIdentifier::new(identity.subject.clone());
        let request = client
            .user_info(access_token.clone(), Some(subject))
            .map_err(|error| Failure::unreachable("no_userinfo_endpoint", error))?;
        let claims: CoreUserInfoClaims = request.request_async(&self.http).await.map_err(|error| match error {
            openidconnect::UserInfoError::Request(error) => Failure::unreachable("userinfo_unreachable", error),
            other => Failure::detailed("userinfo_invalid", other),
        })?;
        identity.email = claims.email().map(|email| email.as_str().to_owned());
        identity.email_verified = claims.email_verified() == Some(true);
        if identity.name.is_none() {
            identity.name = claims.name().and_then(|name| name.get(None)).map(|name| name.as_str().to_owned());
        }
        Ok(())
    }
}

/// Why an id_token was not accepted.
enum Rejected {
    /// No key of the cached JWKS matches its `kid` and algorithm: refetch once.
    UnknownKey,
    Failed(Failure),
}

impl From<ClaimsVerificationError> for Rejected {
    fn from(error: ClaimsVerificationError) -> Self {
        let reason = match &error {
            ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey) => {
                return Self::UnknownKey;
            }
            ClaimsVerificationError::SignatureVerification(_) => "bad_signature",
            ClaimsVerificationError::InvalidAudience(_) => "audience_mismatch",
            ClaimsVerificationError::InvalidIssuer(_) => "issuer_mismatch",
            ClaimsVerificationError::InvalidNonce(_) => "nonce_mismatch",
            ClaimsVerificationError::Expired(_) => "expired_or_not_yet_valid",
            _ => "id_token_invalid",
        };
        Self::Failed(Failure::detailed(reason, error))
    }
}
