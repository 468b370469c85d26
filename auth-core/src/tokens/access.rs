//! Access tokens: JWTs in the RFC 9068 profile (`typ: at+jwt`), minted for one
//! login session and verified against the [`KeySet`] alone, never against
//! anything the token itself names.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{KeySet, jwt_algorithm};
use super::verified::VerifiedTokens;
use crate::clock::Clock;
use crate::config::TokenSettings;
use crate::error::AuthError;
use crate::identity::AccountFlags;

/// The `typ` header of access tokens (RFC 9068 §2.1).
const TOKEN_TYPE: &str = "at+jwt";
/// The same media type in full, which RFC 9068 §4 also accepts.
const TOKEN_MEDIA_TYPE: &str = "application/at+jwt";
/// Our tokens are well under 1 KiB; anything far larger is refused unparsed.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of an access token. No PII: the user is named by id only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id; serialised as a string.
    pub sub: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Unique per token, so a single token can be told apart in logs and audits.
    pub jti: Uuid,
    /// The login session (refresh-token family) that minted this token; what
    /// revocation is keyed on.
    pub sid: Uuid,
    /// The tenant the token is scoped to; always together with `role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
    /// The user's role in `tenant_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Platform staff. This flag and the two below are non-PII facts about the
    /// account that let guards decide without a database query; each is
    /// written only when true, so an absent flag means false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub staff: bool,
    /// Platform superuser.
    #[serde(default, skip_serializing_if = "is_false")]
    pub superuser: bool,
    /// The account's email address has been verified.
    #[serde(default, skip_serializing_if = "is_false")]
    pub email_verified: bool,
    /// How the user signed in to the session (RFC 8176 values: `pwd`, `fed`,
    /// and after a second factor also `otp`, `hwk` or `swk`, and `mfa`); the
    /// session's, so every refresh and tenant token repeats it. Empty (and
    /// not written) for a session from before sessions stored it, and in
    /// tokens minted before the claim existed: such a token proves no factor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Unix seconds of the sign-in that started the session, or of its
    /// latest second factor; refreshes never move it. Tokens minted before
    /// the claim existed have none and read as 0: the sign-in time is
    /// unknown, so no freshness condition (`recent_auth`) holds for them
    /// (fail closed; they live at most `tokens.access_ttl_secs` after the upgrade).
    #[serde(default)]
    pub auth_time: i64,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// What an access token is minted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    pub user_id: Uuid,
    /// The login session (refresh-token family).
    pub session_id: Uuid,
    /// The tenant id and the user's role in it, when the token is scoped.
    pub tenant: Option<(Uuid, String)>,
    pub account: AccountFlags,
    /// The session's `amr` values.
    pub amr: Vec<String>,
    /// The session's sign-in, in Unix seconds.
    pub auth_time: i64,
}

/// Mints and verifies access tokens, with every time read from one [`Clock`].
#[derive(Debug)]
pub struct AccessTokens {
    /// Swapped whole when a verification key is retired; readers never wait.
    keys: ArcSwap<KeySet>,
    /// Tokens that passed `check` recently, by digest.
    verified: VerifiedTokens,
    clock: Clock,
    issuer: String,
    audience: String,
    ttl_secs: u64,
    leeway_secs: u64,
    /// One validation per algorithm of the key set, each pinned to that single
    /// algorithm: the key chosen by `kid` decides which one applies.
    validations: HashMap<Algorithm, Validation>,
    /// The base64url JSON header of every token minted: it never changes.
    encoded_header: String,
}

impl AccessTokens {
    /// Tokens are issued at, and checked against, `clock`'s now.
    pub fn new(keys: KeySet, issuer: &str, audience: &str, settings: &TokenSettings, clock: Clock) -> Self {
        let validations = keys
            .verification_algorithms()
            .map(jwt_algorithm)
            .map(|algorithm| (algorithm, validation(algorithm, issuer, audience)))
            .collect();
        let mut header = Header::new(jwt_algorithm(keys.algorithm()));
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(keys.signing_kid().to_owned());
        // Serialising a `Header` cannot fail: it holds only strings and enums.
        let encoded_header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
        Self {
            keys: ArcSwap::from_pointee(keys),
            verified: VerifiedTokens::new(settings.verified_cache_entries),
            clock,
            encoded_header,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs: settings.access_ttl_secs,
            leeway_secs: settings.leeway_secs,
            validations,
        }
    }

    /// Signs a new access token for `grant`, valid from now for the configured
    /// lifetime. Returns the compact JWS and its claims.
    pub fn mint(&self, grant: &AccessGrant) -> Result<(String, AccessClaims), AuthError> {
        let now = self.now();
        let (tenant_id, role) = match &grant.tenant {
            Some((tenant_id, role)) => (Some(*tenant_id), Some(role.clone())),
            None => (None, None),
        };
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: grant.user_id,
            iat: now,
            nbf: now,
            exp: now.saturating_add(seconds(self.ttl_secs)),
            jti: Uuid::new_v4(),
            sid: grant.session_id,
            tenant_id,
            role,
            staff: grant.account.staff,
            superuser: grant.account.superuser,
            email_verified: grant.account.email_verified,
            amr: grant.amr.clone(),
            auth_time: grant.auth_time,
        };
        // What jsonwebtoken's `encode` does, with the header encoded once in
        // `new` and the key parsed once in the key set (`encode` re-parses it
        // on every call, which for RSA costs about as much as signing).
        let claims_json = serde_json::to_vec(&claims).map_err(AuthError::internal)?;
        let mut token = String::with_capacity(self.encoded_header.len() + claims_json.len() * 4 / 3 + 512);
        token.push_str(&self.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims_json, &mut token);
        let signature = self.keys.load().signer().sign(token.as_bytes()).map_err(AuthError::internal)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok((token, claims))
    }

    /// Checks an access token's signature, type, issuer, audience and times.
    /// Every failure is [`AuthError::InvalidToken`]; the reason is logged at
    /// debug level, without the token. The claims are shared with the
    /// verified-token cache: a hit, and every guard of a request after it,
    /// copies a pointer, not the claims' strings.
    pub fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, AuthError> {
        self.check(token).map_err(rejected)
    }

    /// Seconds since the epoch, by the platform's clock.
    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// The lifetime of new tokens.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// The key set tokens are verified with now.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Stops accepting tokens signed with the verification key `kid`, at once:
    /// the key leaves the key set (and so the JWKS) and the cache forgets the
    /// tokens it verified. For a key that leaked, or the end of a rotation's
    /// overlap without a restart; it lasts until the process restarts with
    /// the key still configured.
    pub fn retire_key(&self, kid: &str) -> Result<(), &'static str> {
        let mut outcome = Ok(());
        // `rcu` retries if another retirement swaps the set meanwhile.
        self.keys.rcu(|keys| match keys.without(kid) {
            Ok(retired) => {
                outcome = Ok(());
                Arc::new(retired)
            }
            Err(reason) => {
                outcome = Err(reason);
                Arc::clone(keys)
            }
        });
        outcome?;
        self.verified.forget_kid(kid);
        Ok(())
    }

    /// Tokens in the verified-token cache (approximately: it is sharded).
    pub fn cached_tokens(&self) -> usize {
        self.verified.len()
    }

    #[cfg(test)]
    fn is_cached(&self, token: &str) -> bool {
        self.verified.key(token).is_some_and(|key| self.verified.get(&key).is_some())
    }

    fn check(&self, token: &str) -> Result<Arc<AccessClaims>, &'static str> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err("too long");
        }
        let keys = self.keys.load();
        let digest = self.verified.key(token);
        // A hit skips the signature and the parsing, and holds only while its
        // key is still in the set; the times are checked either way.
        if let Some(digest) = &digest
            && let Some(hit) = self.verified.get(digest).filter(|hit| keys.verification_key(&hit.kid).is_some())
        {
            let fresh = self.check_times(&hit.claims);
            if fresh.is_err() {
                self.verified.remove(digest);
            }
            return fresh.map(|()| Arc::clone(&hit.claims));
        }
        let (kid, claims) = self.check_signature(&keys, token)?;
        self.check_times(&claims)?;
        let claims = Arc::new(claims);
        if let Some(digest) = digest {
            self.verified.insert(digest, &kid, Arc::clone(&claims));
        }
        Ok(claims)
    }

    /// The header, the signature and the claims' shape; returns the `kid` and the claims.
    fn check_signature(&self, keys: &KeySet, token: &str) -> Result<(String, AccessClaims), &'static str> {
        // `alg: none` and unknown algorithms fail here: jsonwebtoken has no such variant.
        let mut header = decode_header(token).map_err(|_| "malformed header or unsupported alg")?;
        let typ_ok = header
            .typ
            .as_deref()
            .is_some_and(|typ| typ.eq_ignore_ascii_case(TOKEN_TYPE) || typ.eq_ignore_ascii_case(TOKEN_MEDIA_TYPE));
        if !typ_ok {
            return Err("typ is not at+jwt");
        }
        // We understand no extension, so a critical one must fail (RFC 7515 §4.1.11).
        if header.crit.is_some() {
            return Err("crit header");
        }
        // Keys and key URLs in the header are chosen by whoever made the token:
        // never fetched or trusted, and refused outright since we never emit them.
        if header.jku.is_some() || header.x5u.is_some() || header.jwk.is_some() || header.x5c.is_some() {
            return Err("key or key URL in the header");
        }
        let kid = header.kid.take().ok_or("missing kid")?;
        let key = keys.verification_key(&kid).ok_or("unknown kid")?;
        // The kid's own algorithm, never the header's, picks the verifier.
        let algorithm = jwt_algorithm(key.algorithm());
        if header.alg != algorithm {
            return Err("alg does not match the key");
        }
        // Present for every algorithm of the key set, which `new` built them from.
        let validation = self.validations.get(&algorithm).ok_or("no validation for the algorithm")?;
        let claims = decode::<AccessClaims>(token, key.decoding_key(), validation)
            .map_err(|error| describe(error.kind()))?
            .claims;
        if claims.tenant_id.is_some() != claims.role.is_some() {
            return Err("tenant_id and role must come together");
        }
        Ok((kid, claims))
    }

    /// The times, against our clock (jsonwebtoken's own checks read the system time).
    fn check_times(&self, claims: &AccessClaims) -> Result<(), &'static str> {
        let now = self.now();
        let leeway = seconds(self.leeway_secs);
        if claims.exp < now.saturating_sub(leeway) {
            return Err("expired");
        }
        if claims.nbf > now.saturating_add(leeway) {
            return Err("not yet valid (nbf)");
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err("issued in the future");
        }
        Ok(())
    }
}

/// Counts and logs a refused token; `reason` is one of a fixed set of phrases.
pub(crate) fn rejected(reason: &'static str) -> AuthError {
    tracing::debug!(reason, "access token rejected");
    metrics::counter!(crate::metrics::REJECTED_TOKENS, "reason" => reason).increment(1);
    AuthError::InvalidToken
}

fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    // jsonwebtoken enforces the presence and number format of all but `iat`,
    // whose presence serde enforces.
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    // `check` compares exp, nbf and iat with the platform's clock instead.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = true;
    validation
}

/// A log-safe reason for a jsonwebtoken error: some of its messages quote
/// claim values.
fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::MissingRequiredClaim(_) => "missing a required claim",
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => "malformed claims",
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => "malformed token",
        ErrorKind::InvalidAlgorithm => "algorithm not allowed",
        _ => "rejected by the JWT library",
    }
}

/// Saturates instead of wrapping; only a misconfiguration could reach `i64::MAX`.
fn seconds(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
    use jsonwebtoken::{DecodingKey, EncodingKey, encode};
    use serde_json::{Value, json};

    use super::super::keys::testing::{key, public_pem, rsa, settings};
    use super::*;
    use crate::config::{KeySpec, Secret, SigningAlgorithm};

    const ISS: &str = "https://auth.example.com";
    const AUD: &str = "example-api";

    fn tokens(signing: KeySpec, verification: Vec<KeySpec>) -> AccessTokens {
        tokens_with_clock(signing, verification, Clock::system())
    }

    fn tokens_with_clock(signing: KeySpec, verification: Vec<KeySpec>, clock: Clock) -> AccessTokens {
        let settings = settings(signing, verification);
        AccessTokens::new(KeySet::from_settings(&settings).unwrap(), ISS, AUD, &settings, clock)
    }

    fn now() -> i64 {
        Clock::system().now().timestamp()
    }

    fn ed_tokens() -> AccessTokens {
        tokens(key(SigningAlgorithm::EdDsa, "k1"), vec![])
    }

    fn grant() -> AccessGrant {
        AccessGrant {
            user_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            tenant: None,
            account: AccountFlags { staff: false, superuser: false, email_verified: true },
            amr: vec!["pwd".into()],
            auth_time: now() - 60,
        }
    }

    /// The header our own tokens carry.
    fn our_header(tokens: &AccessTokens) -> Header {
        let mut header = Header::new(jwt_algorithm(tokens.keys().algorithm()));
        header.typ = Some("at+jwt".into());
        header.kid = Some(tokens.keys().signing_kid().into());
        header
    }

    fn valid_claims() -> Value {
        let now = now();
        json!({
            "iss": ISS, "aud": AUD, "sub": Uuid::new_v4(), "iat": now, "nbf": now, "exp": now + 300,
            "jti": Uuid::new_v4(), "sid": Uuid::new_v4(),
        })
    }

    /// Signs any header and claims with the set's own signing key, to build
    /// tokens that differ from good ones in exactly one respect.
    fn sign(tokens: &AccessTokens, header: &Header, claims: &Value) -> String {
        encode(header, claims, tokens.keys().signing_key()).unwrap()
    }

    fn rejected(tokens: &AccessTokens, token: &str) -> bool {
        matches!(tokens.verify(token), Err(AuthError::InvalidToken))
    }

    fn b64_json(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    fn payload(token: &str) -> Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// What a third party does: fetch the JWKS as JSON, pick the key by kid,
    /// verify with a stock library.
    fn verify_with_jwks(jwks: &JwkSet, token: &str) -> AccessClaims {
        let jwks: JwkSet = serde_json::from_str(&serde_json::to_string(jwks).unwrap()).unwrap();
        let kid = decode_header(token).unwrap().kid.unwrap();
        let jwk = jwks.find(&kid).unwrap();
        assert_eq!(jwk.common.public_key_use, Some(PublicKeyUse::Signature));
        let algorithm = Algorithm::try_from(jwk.common.key_algorithm.unwrap()).unwrap();
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        decode::<AccessClaims>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims
    }

    fn round_trip(algorithm: SigningAlgorithm) {
        let spec = key(algorithm, "k1");
        let tokens = tokens(spec.clone(), vec![]);
        let grant = AccessGrant {
            tenant: Some((Uuid::new_v4(), "admin".into())),
            account: AccountFlags { staff: true, ..grant().account },
            ..grant()
        };
        let (token, minted) = tokens.mint(&grant).unwrap();

        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, jwt_algorithm(algorithm));
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!((minted.sub, minted.sid), (grant.user_id, grant.session_id));
        assert_eq!((minted.iss.as_str(), minted.aud.as_str()), (ISS, AUD));
        assert_eq!(minted.tenant_id, grant.tenant.as_ref().map(|t| t.0));
        assert_eq!(minted.role.as_deref(), Some("admin"));
        assert!(minted.staff && !minted.superuser && minted.email_verified);
        assert_eq!(minted.nbf, minted.iat);
        assert_eq!(minted.exp - minted.iat, 300);

        assert_eq!(*tokens.verify(&token).unwrap(), minted);

        let independent = if algorithm.is_symmetric() {
            assert!(tokens.keys().jwks().keys.is_empty());
            let secret = spec.secret.unwrap();
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_issuer(&[ISS]);
            validation.set_audience(&[AUD]);
            let key = DecodingKey::from_secret(secret.expose().as_bytes());
            decode::<AccessClaims>(&token, &key, &validation).unwrap().claims
        } else {
            verify_with_jwks(&tokens.keys().jwks(), &token)
        };
        assert_eq!(independent, minted);
    }

    #[test]
    fn rs256_tokens_verify_here_and_with_the_jwks() {
        round_trip(SigningAlgorithm::Rs256);
    }

    #[test]
    fn eddsa_tokens_verify_here_and_with_the_jwks() {
        round_trip(SigningAlgorithm::EdDsa);
    }

    #[test]
    fn es256_tokens_verify_here_and_with_the_jwks() {
        round_trip(SigningAlgorithm::Es256);
    }

    #[test]
    fn hs256_tokens_verify_here_and_with_the_secret_and_the_jwks_is_empty() {
        round_trip(SigningAlgorithm::Hs256);
    }

    /// `mint` signs through the key set's cached aws-lc-rs key instead of
    /// jsonwebtoken's `encode`: for each algorithm, each side verifies what the
    /// other signs, and for the deterministic ones (RS256 PKCS#1 v1.5, Ed25519,
    /// HMAC) the two tokens are byte for byte the same.
    #[test]
    fn the_cached_signer_and_jsonwebtoken_encode_agree_for_every_algorithm() {
        for algorithm in
            [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa, SigningAlgorithm::Es256, SigningAlgorithm::Hs256]
        {
            let tokens = tokens(key(algorithm, "k1"), vec![]);
            let grant = AccessGrant { tenant: Some((Uuid::new_v4(), "member".into())), ..grant() };
            let (cached, claims) = tokens.mint(&grant).unwrap();
            let library = encode(&our_header(&tokens), &claims, tokens.keys().signing_key()).unwrap();

            // jsonwebtoken verifies the cached signer's token, and we verify the library's.
            let keys = tokens.keys();
            let key = keys.verification_key("k1").unwrap().decoding_key();
            let validation = validation(jwt_algorithm(algorithm), ISS, AUD);
            assert_eq!(decode::<AccessClaims>(&cached, key, &validation).unwrap().claims, claims, "{algorithm:?}");
            assert_eq!(*tokens.verify(&library).unwrap(), claims, "{algorithm:?}");

            let (cached_parts, library_parts): (Vec<_>, Vec<_>) =
                (cached.split('.').collect(), library.split('.').collect());
            assert_eq!(cached_parts[..2], library_parts[..2], "{algorithm:?}: same header and claims encoding");
            if algorithm != SigningAlgorithm::Es256 {
                assert_eq!(cached, library, "{algorithm:?}: deterministic signatures match");
            }
        }
    }

    #[test]
    fn claims_carry_no_false_flags_and_no_empty_tenant() {
        let tokens = ed_tokens();
        let (token, claims) = tokens
            .mint(&AccessGrant { account: AccountFlags { email_verified: false, ..grant().account }, ..grant() })
            .unwrap();
        let payload = payload(&token);
        let mut names: Vec<_> = payload.as_object().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["amr", "aud", "auth_time", "exp", "iat", "iss", "jti", "nbf", "sid", "sub"]);
        assert_eq!(payload["sub"], claims.sub.to_string());
        assert_eq!(payload["amr"], json!(["pwd"]));
        assert_eq!(payload["auth_time"], claims.auth_time);
    }

    /// Tokens minted before `amr` and `auth_time` existed verify for their
    /// lifetime: no method, and no known sign-in time (never fresh).
    #[test]
    fn tokens_without_amr_and_auth_time_verify_as_no_factor_and_never_fresh() {
        let tokens = ed_tokens();
        let claims = valid_claims();
        let verified = tokens.verify(&sign(&tokens, &our_header(&tokens), &claims)).unwrap();
        assert!(verified.amr.is_empty());
        assert_eq!(verified.auth_time, 0);
        assert_eq!(json!(verified.iat), claims["iat"]);
    }

    #[test]
    fn claims_carry_true_flags_and_the_tenant() {
        let tokens = ed_tokens();
        let tenant = Uuid::new_v4();
        let grant = AccessGrant {
            tenant: Some((tenant, "member".into())),
            account: AccountFlags { staff: true, superuser: true, ..grant().account },
            ..grant()
        };
        let (token, _) = tokens.mint(&grant).unwrap();
        let payload = payload(&token);
        assert_eq!(payload["tenant_id"], tenant.to_string());
        assert_eq!(payload["role"], "member");
        for flag in ["staff", "superuser", "email_verified"] {
            assert_eq!(payload[flag], true, "{flag}");
        }
    }

    #[test]
    fn each_token_has_its_own_jti() {
        let tokens = ed_tokens();
        let grant = grant();
        let (_, a) = tokens.mint(&grant).unwrap();
        let (_, b) = tokens.mint(&grant).unwrap();
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn a_correctly_built_test_token_is_accepted() {
        // The baseline the negative tests below depart from in one respect each.
        let tokens = ed_tokens();
        let token = sign(&tokens, &our_header(&tokens), &valid_claims());
        tokens.verify(&token).unwrap();
    }

    #[test]
    fn alg_none_is_rejected() {
        let tokens = ed_tokens();
        let (good, _) = tokens.mint(&grant()).unwrap();
        let claims = good.split('.').nth(1).unwrap();
        for alg in ["none", "None", "NONE"] {
            let header = b64_json(&json!({"alg": alg, "typ": "at+jwt", "kid": "k1"}));
            assert!(rejected(&tokens, &format!("{header}.{claims}.")), "{alg}");
            let signature = good.split('.').nth(2).unwrap();
            assert!(rejected(&tokens, &format!("{header}.{claims}.{signature}")), "{alg}");
        }
    }

    #[test]
    fn hs256_signed_with_the_rsa_public_key_is_rejected() {
        let spec = rsa("k1");
        let tokens = tokens(spec.clone(), vec![]);
        let public = public_pem(&spec);
        let jwk_json = serde_json::to_string(&tokens.keys().jwks().keys[0]).unwrap();
        let mut header = our_header(&tokens);
        header.alg = Algorithm::HS256;
        for secret in [public.as_bytes(), public.trim_end().as_bytes(), jwk_json.as_bytes()] {
            let token = encode(&header, &valid_claims(), &EncodingKey::from_secret(secret)).unwrap();
            assert!(rejected(&tokens, &token));
        }
    }

    #[test]
    fn a_kid_is_bound_to_its_algorithm_across_a_mixed_set() {
        // RS256 key being retired, EdDSA signing: each kid accepts only its own alg.
        let old = rsa("old-rsa");
        let tokens = tokens(key(SigningAlgorithm::EdDsa, "new"), vec![old.clone()]);
        let old_tokens = self::tokens(old.clone(), vec![]);
        let (token, _) = old_tokens.mint(&grant()).unwrap();
        tokens.verify(&token).unwrap();

        let mut header = our_header(&old_tokens);
        header.alg = Algorithm::HS256;
        let forged = encode(&header, &valid_claims(), &EncodingKey::from_secret(public_pem(&old).as_bytes())).unwrap();
        assert!(rejected(&tokens, &forged));
        // The EdDSA key's token relabelled with the RSA kid.
        let mut relabelled = our_header(&tokens);
        relabelled.kid = Some("old-rsa".into());
        assert!(rejected(&tokens, &sign(&tokens, &relabelled, &valid_claims())));
    }

    #[test]
    fn unknown_kid_is_rejected() {
        let tokens = ed_tokens();
        let mut header = our_header(&tokens);
        header.kid = Some("k2".into());
        assert!(rejected(&tokens, &sign(&tokens, &header, &valid_claims())));
    }

    #[test]
    fn missing_kid_is_rejected() {
        let tokens = ed_tokens();
        let mut header = our_header(&tokens);
        header.kid = None;
        assert!(rejected(&tokens, &sign(&tokens, &header, &valid_claims())));
    }

    #[test]
    fn typ_must_be_at_jwt() {
        let tokens = ed_tokens();
        for (typ, accepted) in [
            (None, false),
            (Some("JWT"), false),
            (Some("jwt"), false),
            (Some("at+jwt"), true),
            (Some("AT+JWT"), true),
            (Some("application/at+jwt"), true),
        ] {
            let mut header = our_header(&tokens);
            header.typ = typ.map(Into::into);
            let token = sign(&tokens, &header, &valid_claims());
            assert_eq!(tokens.verify(&token).is_ok(), accepted, "{typ:?}");
        }
    }

    #[test]
    fn wrong_issuer_is_rejected() {
        let tokens = ed_tokens();
        let mut claims = valid_claims();
        claims["iss"] = json!("https://evil.example.com");
        assert!(rejected(&tokens, &sign(&tokens, &our_header(&tokens), &claims)));
    }

    #[test]
    fn wrong_audience_is_rejected() {
        let tokens = ed_tokens();
        let mut claims = valid_claims();
        claims["aud"] = json!("another-api");
        assert!(rejected(&tokens, &sign(&tokens, &our_header(&tokens), &claims)));
        claims["aud"] = json!(["another-api"]);
        assert!(rejected(&tokens, &sign(&tokens, &our_header(&tokens), &claims)));
    }

    #[test]
    fn expired_beyond_leeway_is_rejected_and_within_is_accepted() {
        let tokens = ed_tokens();
        let now = now();
        let mut claims = valid_claims();
        claims["iat"] = json!(now - 400);
        claims["nbf"] = json!(now - 400);
        claims["exp"] = json!(now - 10); // within the 30 s leeway
        tokens.verify(&sign(&tokens, &our_header(&tokens), &claims)).unwrap();
        claims["exp"] = json!(now - 45);
        assert!(rejected(&tokens, &sign(&tokens, &our_header(&tokens), &claims)));
    }

    /// Issuing and every time check read the token service's clock, not the
    /// system time: moving a manual clock expires a token and dates new ones.
    #[test]
    fn times_come_from_the_clock() {
        let clock = Clock::manual();
        let spec = key(SigningAlgorithm::EdDsa, "k1");
        let tokens = tokens_with_clock(spec.clone(), vec![], clock.clone());
        let (token, minted) = tokens.mint(&grant()).unwrap();
        let (ttl, leeway) = (300, 30);

        clock.advance(Duration::from_secs(ttl + leeway - 5));
        assert_eq!(*tokens.verify(&token).unwrap(), minted, "still within the leeway");
        clock.advance(Duration::from_secs(6));
        assert!(rejected(&tokens, &token), "past exp + leeway by the clock");

        let (fresh, claims) = tokens.mint(&grant()).unwrap();
        assert!(claims.iat >= minted.iat + seconds(ttl + leeway + 1), "iat follows the clock");
        assert_eq!(claims.exp, claims.iat + seconds(ttl));
        assert_eq!(*tokens.verify(&fresh).unwrap(), claims);
        // By the system time, the new token is not valid yet.
        assert!(rejected(&self::tokens(spec, vec![]), &fresh));
    }

    #[test]
    fn nbf_in_the_future_is_rejected() {
        let tokens = ed_tokens();
        let mut claims = valid_claims();
        claims["nbf"] = json!(now() + 120);
        assert!(rejected(&tokens, &sign(&tokens, &our_header(&tokens), &claims)));
    }

    #[test]
    fn iat_in_the_future_is_rejected() {
        let tokens = ed_tokens();
        let mut claims = valid_claims();
        claims["iat"] = json!(now() + 120);
        assert!(rejected(&tokens, &sign(&tokens, &our_header(&tokens), &claims)));
    }

    #[test]
    fn missing_or_malformed_claims_are_rejected() {
        let tokens = ed_tokens();
        for name in ["iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid"] {
            let mut claims = valid_claims();
            claims.as_object_mut().unwrap().remove(name);
            assert!(rejected(&tokens, &sign(&tokens, &our_header(&tokens), &claims)), "without {name}");
        }
        for (name, value) in [("exp", json!("soon")), ("exp", json!(-1)), ("sub", json!("alice@example.com"))] {
            let mut claims = valid_claims();
            claims[name] = value;
            assert!(rejected(&tokens, &sign(&tokens, &our_header(&tokens), &claims)), "{name}");
        }
        let mut claims = valid_claims();
        claims["tenant_id"] = json!(Uuid::new_v4());
        assert!(rejected(&tokens, &sign(&tokens, &our_header(&tokens), &claims)), "tenant without role");
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let tokens = ed_tokens();
        let (token, claims) = tokens.mint(&grant()).unwrap();
        let parts: Vec<_> = token.split('.').collect();
        let mut payload = payload(&token);
        payload["superuser"] = json!(true);
        let tampered = format!("{}.{}.{}", parts[0], b64_json(&payload), parts[2]);
        assert!(rejected(&tokens, &tampered));
        // A flipped signature byte fails as well.
        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[0] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(signature));
        assert!(rejected(&tokens, &flipped));
        assert_eq!(*tokens.verify(&token).unwrap(), claims);
    }

    #[test]
    fn crit_header_is_rejected() {
        let tokens = ed_tokens();
        let mut header = our_header(&tokens);
        header.crit = Some(vec!["exp".into()]);
        assert!(rejected(&tokens, &sign(&tokens, &header, &valid_claims())));
    }

    #[test]
    fn attacker_key_in_jwk_or_jku_header_is_not_trusted() {
        let tokens = ed_tokens();
        let attacker_spec = key(SigningAlgorithm::EdDsa, "k1");
        let attacker = self::tokens(attacker_spec.clone(), vec![]);
        let attacker_jwk = attacker.keys().jwks().keys[0].clone();
        let attacker_key = EncodingKey::from_ed_pem(attacker_spec.pem.unwrap().expose().as_bytes()).unwrap();

        let with_jwk = Header { jwk: Some(attacker_jwk), ..our_header(&tokens) };
        let with_jku = Header { jku: Some("https://attacker.example/jwks.json".into()), ..our_header(&tokens) };
        let with_x5u = Header { x5u: Some("https://attacker.example/cert.pem".into()), ..our_header(&tokens) };
        for header in [&with_jwk, &with_jku, &with_x5u, &our_header(&tokens)] {
            let token = encode(header, &valid_claims(), &attacker_key).unwrap();
            assert!(rejected(&tokens, &token));
        }
        // Such headers are refused even on a token signed with our own key.
        assert!(rejected(&tokens, &sign(&tokens, &with_jku, &valid_claims())));
    }

    #[test]
    fn key_rotation_keeps_old_tokens_valid_until_the_old_key_is_removed() {
        let old = key(SigningAlgorithm::Es256, "2025-01");
        let new = key(SigningAlgorithm::Es256, "2025-02");
        let (token, claims) = tokens(old.clone(), vec![]).mint(&grant()).unwrap();

        let rotated = tokens(new.clone(), vec![old.clone()]);
        assert_eq!(*rotated.verify(&token).unwrap(), claims);
        assert_eq!(verify_with_jwks(&rotated.keys().jwks(), &token), claims);
        let (fresh, _) = rotated.mint(&grant()).unwrap();
        assert_eq!(decode_header(&fresh).unwrap().kid.as_deref(), Some("2025-02"));

        // The old key kept as a public key only works the same.
        let old_public = KeySpec { pem: Some(Secret::new(public_pem(&old))), ..old };
        assert_eq!(*tokens(new.clone(), vec![old_public]).verify(&token).unwrap(), claims);

        let retired = tokens(new, vec![]);
        assert!(rejected(&retired, &token));
        assert!(retired.keys().jwks().find("2025-01").is_none());
    }

    fn tokens_caching(entries: usize, signing: KeySpec, verification: Vec<KeySpec>, clock: Clock) -> AccessTokens {
        let settings = TokenSettings { verified_cache_entries: entries, ..settings(signing, verification) };
        AccessTokens::new(KeySet::from_settings(&settings).unwrap(), ISS, AUD, &settings, clock)
    }

    #[test]
    fn a_cached_token_still_expires_by_the_clock_and_is_forgotten() {
        let clock = Clock::manual();
        let tokens = tokens_caching(100, key(SigningAlgorithm::EdDsa, "k1"), vec![], clock.clone());
        let (token, minted) = tokens.mint(&grant()).unwrap();
        assert_eq!(*tokens.verify(&token).unwrap(), minted);
        assert!(tokens.is_cached(&token));
        assert_eq!(*tokens.verify(&token).unwrap(), minted, "a hit returns the same claims");
        assert_eq!(tokens.cached_tokens(), 1);

        clock.advance(Duration::from_secs(300 + 30 + 1));
        assert!(rejected(&tokens, &token), "a hit past exp + leeway is refused");
        assert!(!tokens.is_cached(&token));
    }

    #[test]
    fn retiring_a_key_rejects_its_cached_tokens_at_once() {
        let old = key(SigningAlgorithm::EdDsa, "2025-01");
        let new = key(SigningAlgorithm::EdDsa, "2025-02");
        let (token, claims) = tokens(old.clone(), vec![]).mint(&grant()).unwrap();
        let rotated = tokens_caching(100, new, vec![old], Clock::system());
        let (fresh, fresh_claims) = rotated.mint(&grant()).unwrap();
        for _ in 0..2 {
            assert_eq!(*rotated.verify(&token).unwrap(), claims);
            assert_eq!(*rotated.verify(&fresh).unwrap(), fresh_claims);
        }
        assert!(rotated.is_cached(&token));

        rotated.retire_key("2025-01").unwrap();
        assert!(rejected(&rotated, &token), "its cached token is refused at the next request");
        assert!(!rotated.is_cached(&token));
        assert!(rotated.keys().jwks().find("2025-01").is_none(), "and the JWKS no longer lists it");
        assert_eq!(*rotated.verify(&fresh).unwrap(), fresh_claims, "the other key's tokens stay valid");
        assert!(rotated.is_cached(&fresh));

        assert!(rotated.retire_key("2025-02").is_err(), "the signing key cannot be retired");
        assert!(rotated.retire_key("2025-01").is_err(), "nor a key that is not there");
        assert_eq!(*rotated.verify(&fresh).unwrap(), fresh_claims);
    }

    /// Only tokens that pass every check enter the cache, so distinct forged
    /// tokens, however many, cannot grow it or push the genuine ones out.
    #[test]
    fn a_flood_of_forged_tokens_neither_grows_the_cache_nor_evicts_good_entries() {
        let tokens = tokens_caching(1000, key(SigningAlgorithm::Hs256, "k1"), vec![], Clock::system());
        let good: Vec<String> = (0..100).map(|_| tokens.mint(&grant()).unwrap().0).collect();
        good.iter().for_each(|token| drop(tokens.verify(token).unwrap()));
        assert_eq!(tokens.cached_tokens(), 100);

        let attacker_secret = key(SigningAlgorithm::Hs256, "k1").secret.unwrap();
        let attacker_key = EncodingKey::from_secret(attacker_secret.expose().as_bytes());
        let signature = good[0].rsplit('.').next().unwrap();
        let header_part = good[0].split('.').next().unwrap();
        for i in 0..20_000 {
            let mut claims = valid_claims();
            claims["jti"] = json!(Uuid::new_v4());
            let forged = if i % 2 == 0 {
                // Our header, fresh claims, a good token's signature.
                format!("{header_part}.{}.{signature}", b64_json(&claims))
            } else {
                // Our kid, signed with another secret.
                encode(&our_header(&tokens), &claims, &attacker_key).unwrap()
            };
            assert!(rejected(&tokens, &forged));
        }
        assert_eq!(tokens.cached_tokens(), 100, "nothing forged was cached");
        assert!(good.iter().all(|token| tokens.is_cached(token)), "every good token is still cached");
    }

    /// A hit hands out the cached claims themselves: the guard path copies a
    /// pointer per request, not the claims' strings (BENCHMARKS.md, #17).
    #[test]
    fn a_hit_shares_the_claims_the_miss_verified() {
        let tokens = tokens_caching(100, key(SigningAlgorithm::EdDsa, "k1"), vec![], Clock::system());
        let (token, _) = tokens.mint(&grant()).unwrap();
        let verified = tokens.verify(&token).unwrap();
        assert!(Arc::ptr_eq(&verified, &tokens.verify(&token).unwrap()));
        let uncached = tokens_caching(0, key(SigningAlgorithm::EdDsa, "k1"), vec![], Clock::system());
        let (token, _) = uncached.mint(&grant()).unwrap();
        assert!(!Arc::ptr_eq(&uncached.verify(&token).unwrap(), &uncached.verify(&token).unwrap()));
    }

    #[test]
    fn the_cache_is_bounded_by_its_setting_and_can_be_turned_off() {
        let tokens = tokens_caching(64, key(SigningAlgorithm::Hs256, "k1"), vec![], Clock::system());
        for _ in 0..1000 {
            tokens.verify(&tokens.mint(&grant()).unwrap().0).unwrap();
        }
        assert!(tokens.cached_tokens() <= 64, "{} entries", tokens.cached_tokens());

        let off = tokens_caching(0, key(SigningAlgorithm::Hs256, "k1"), vec![], Clock::system());
        let (token, claims) = off.mint(&grant()).unwrap();
        assert_eq!(*off.verify(&token).unwrap(), claims);
        assert_eq!(off.cached_tokens(), 0);
    }

    /// The documented memory: under 0.5 KiB per cached token (397 B measured).
    #[test]
    fn a_cached_token_costs_under_half_a_kibibyte() {
        let tokens = tokens_caching(10_000, key(SigningAlgorithm::Hs256, "k1"), vec![], Clock::system());
        let tenant = Some((Uuid::new_v4(), "admin".to_owned()));
        let mut claims = None;
        for _ in 0..10_000 {
            let (token, minted) = tokens.mint(&AccessGrant { tenant: tenant.clone(), ..grant() }).unwrap();
            tokens.verify(&token).unwrap();
            claims = Some(minted);
        }
        let per_entry = tokens.verified.memory_per_entry(&claims.unwrap(), "k1");
        assert!((200..=512).contains(&per_entry), "{per_entry} bytes per entry");
    }

    #[test]
    fn garbage_is_rejected() {
        let tokens = ed_tokens();
        let (token, _) = tokens.mint(&grant()).unwrap();
        let oversized = format!("{token}{}", "A".repeat(MAX_TOKEN_BYTES));
        for garbage in ["", ".", "..", "a.b", "a.b.c", "Bearer x.y.z", &oversized] {
            assert!(rejected(&tokens, garbage), "{garbage:.20}");
        }
    }

    #[test]
    fn ttl_and_keys_are_exposed() {
        let tokens = ed_tokens();
        assert_eq!(tokens.ttl_secs(), 300);
        assert_eq!(tokens.keys().signing_kid(), "k1");
    }
}
