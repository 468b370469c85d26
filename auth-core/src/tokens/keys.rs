//! The keys that sign and verify access tokens: parsed once from
//! [`TokenSettings`], looked up by `kid`, and published as a JWKS that holds
//! public keys only.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::zeroize::Zeroizing;

use crate::config::{
    ConfigError, ConfigProblem, KeySpec, MIN_HMAC_SECRET_BYTES, Secret, SigningAlgorithm, TokenSettings,
};

/// 2048 bits: the RS256 verifiers reject smaller moduli, so a smaller signing
/// key would mint tokens nobody accepts.
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// The jsonwebtoken algorithm of a configured algorithm.
pub(crate) fn jwt_algorithm(algorithm: SigningAlgorithm) -> Algorithm {
    match algorithm {
        SigningAlgorithm::Rs256 => Algorithm::RS256,
        SigningAlgorithm::EdDsa => Algorithm::EdDSA,
        SigningAlgorithm::Es256 => Algorithm::ES256,
        SigningAlgorithm::Hs256 => Algorithm::HS256,
    }
}

#[derive(Clone)]
struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    /// The key parsed once for aws-lc-rs: jsonwebtoken's `encode` parses the
    /// DER on every call, which for RSA costs about as much as the signature.
    signer: Signer,
    /// jsonwebtoken's form of the key, which the tests sign crafted tokens
    /// with; a running platform keeps no second copy of its private key.
    #[cfg(test)]
    key: EncodingKey,
}

/// A private key parsed once, signing JWS messages directly with aws-lc-rs.
/// The signatures are byte-for-byte the JWS forms jsonwebtoken writes and
/// verifies: PKCS#1 v1.5 SHA-256, fixed-size P-256 `r||s`, raw Ed25519, and
/// HMAC-SHA-256 over the secret's bytes.
#[derive(Clone)]
pub(crate) enum Signer {
    Rsa(Arc<sig::RsaKeyPair>),
    Ecdsa(Arc<sig::EcdsaKeyPair>),
    Ed25519(Arc<sig::Ed25519KeyPair>),
    Hmac(Arc<aws_lc_rs::hmac::Key>),
}

impl Signer {
    fn new(algorithm: SigningAlgorithm, key: &EncodingKey) -> Result<Self, &'static str> {
        let der = key.as_bytes();
        Ok(match algorithm {
            SigningAlgorithm::Rs256 => {
                Self::Rsa(Arc::new(sig::RsaKeyPair::from_der(der).map_err(|_| "is not a valid RSA private key")?))
            }
            SigningAlgorithm::Es256 => Self::Ecdsa(Arc::new(
                sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| "ES256 needs a valid P-256 private key")?,
            )),
            SigningAlgorithm::EdDsa => Self::Ed25519(Arc::new(
                sig::Ed25519KeyPair::from_pkcs8(der).map_err(|_| "is not a valid Ed25519 private key")?,
            )),
            SigningAlgorithm::Hs256 => {
                Self::Hmac(Arc::new(aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, der)))
            }
        })
    }

    /// The raw JWS signature of `message` (the `header.claims` signing input).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        match self {
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&sig::RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature)?;
                Ok(signature)
            }
            Self::Ecdsa(pair) => Ok(pair.sign(&SystemRandom::new(), message)?.as_ref().to_vec()),
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Self::Hmac(key) => Ok(aws_lc_rs::hmac::sign(key, message).as_ref().to_vec()),
        }
    }
}

/// One key tokens may be verified with. A `kid` maps to exactly one algorithm,
/// which is what makes algorithm confusion impossible.
#[derive(Clone)]
pub(crate) struct VerificationKey {
    algorithm: SigningAlgorithm,
    key: DecodingKey,
    /// The published form; `None` for HS256, whose secret must never be published.
    jwk: Option<Jwk>,
}

impl VerificationKey {
    pub(crate) fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// The signing key and every key tokens are verified with, keyed by `kid`.
/// The signing key's public half is always among the verification keys.
#[derive(Clone)]
pub struct KeySet {
    signing: SigningKey,
    /// Sorted by kid so the JWKS is stable across restarts.
    verification: BTreeMap<String, VerificationKey>,
}

// Hand-written so that no key material can reach a log through `{:?}`.
impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verification: BTreeMap<_, _> =
            self.verification.iter().map(|(kid, key)| (kid.as_str(), key.algorithm)).collect();
        f.debug_struct("KeySet")
            .field("signing_kid", &self.signing.kid)
            .field("algorithm", &self.signing.algorithm)
            .field("verification", &verification)
            .finish()
    }
}

impl KeySet {
    /// Parses every configured key once. Every problem found is reported, each
    /// naming its field (`tokens.verification_keys[1].pem`); no message ever
    /// contains key material.
    pub fn from_settings(settings: &TokenSettings) -> Result<KeySet, ConfigError> {
        let signing_spec = settings.signing_key.as_ref().ok_or_else(|| {
            ConfigError::single("tokens.signing_key", "configure a signing key (development mode generates one)")
        })?;
        let specs = std::iter::once(("tokens.signing_key".to_owned(), signing_spec)).chain(
            settings
                .verification_keys
                .iter()
                .enumerate()
                .map(|(i, spec)| (format!("tokens.verification_keys[{i}]"), spec)),
        );

        let mut problems = Vec::new();
        let mut seen_kids = HashSet::new();
        let mut signing = None;
        let mut verification = BTreeMap::new();
        for (index, (field, spec)) in specs.enumerate() {
            if !seen_kids.insert(spec.kid.as_str()) {
                problems.push(problem(&field, "kid", format!("duplicate kid {:?}", spec.kid)));
                continue;
            }
            let algorithm = spec.algorithm.unwrap_or(settings.algorithm);
            let loaded = match load(spec, algorithm, &field) {
                Ok(loaded) => loaded,
                Err(error) => {
                    problems.push(error);
                    continue;
                }
            };
            if index == 0 {
                let Some(key) = loaded.private else {
                    problems.push(problem(&field, pem_leaf(spec), "the signing key must be a private key".into()));
                    continue;
                };
                let signer = match Signer::new(algorithm, &key) {
                    Ok(signer) => signer,
                    Err(message) => {
                        problems.push(problem(&field, pem_leaf(spec), message.into()));
                        continue;
                    }
                };
                signing = Some(SigningKey {
                    kid: spec.kid.clone(),
                    algorithm,
                    signer,
                    #[cfg(test)]
                    key,
                });
            }
            verification.insert(spec.kid.clone(), loaded.public);
        }

        match signing {
            // A missing signing key always comes with a problem, so this is exhaustive.
            Some(signing) if problems.is_empty() => Ok(KeySet { signing, verification }),
            _ => Err(ConfigError(problems)),
        }
    }

    /// A fresh key for `algorithm`: an unencrypted PKCS#8 PEM in `pem` (RSA
    /// 2048, Ed25519, P-256), or for HS256 32 random bytes as base64url in
    /// `secret` (43 characters; HMAC uses the string's bytes).
    pub fn generate(algorithm: SigningAlgorithm, kid: impl Into<String>) -> Result<KeySpec, ConfigError> {
        let failed = |_| ConfigError::single("tokens.signing_key", "could not generate a key");
        let mut spec = KeySpec { kid: kid.into(), algorithm: Some(algorithm), ..KeySpec::default() };
        let rng = SystemRandom::new();
        let pkcs8 = match algorithm {
            SigningAlgorithm::Hs256 => {
                let mut bytes = [0u8; 32];
                aws_lc_rs::rand::fill(&mut bytes).map_err(failed)?;
                spec.secret = Some(Secret::new(URL_SAFE_NO_PAD.encode(bytes)));
                return Ok(spec);
            }
            SigningAlgorithm::Rs256 => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .and_then(|pair| pair.as_der())
                .map(|der| der.as_ref().to_vec()),
            // v1, as `openssl genpkey` writes it, so every PKCS#8 reader accepts it.
            SigningAlgorithm::EdDsa => sig::Ed25519KeyPair::generate_pkcs8v1(&rng).map(|doc| doc.as_ref().to_vec()),
            SigningAlgorithm::Es256 => sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map(|doc| doc.as_ref().to_vec()),
        }
        .map_err(failed)?;
        let block = pem::Pem::new("PRIVATE KEY", pkcs8);
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        spec.pem = Some(Secret::new(pem::encode_config(&block, config)));
        Ok(spec)
    }

    /// The algorithm new tokens are signed with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.signing.algorithm
    }

    /// The `kid` of new tokens.
    pub fn signing_kid(&self) -> &str {
        &self.signing.kid
    }

    /// The public verification keys, each with `kid`, `alg` and `use: "sig"`.
    /// HS256 keys are never included: their secret is the signing key.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.verification.values().filter_map(|key| key.jwk.clone()).collect() }
    }

    /// The signing key in jsonwebtoken's form (tests sign crafted tokens with it).
    #[cfg(test)]
    pub(crate) fn signing_key(&self) -> &EncodingKey {
        &self.signing.key
    }

    /// The signing key, parsed once for aws-lc-rs.
    pub(crate) fn signer(&self) -> &Signer {
        &self.signing.signer
    }

    /// The same set without the verification key `kid`: what a running
    /// instance verifies with once a key is retired. The signing key cannot be
    /// retired this way (configure a new one and restart).
    pub(crate) fn without(&self, kid: &str) -> Result<KeySet, &'static str> {
        if kid == self.signing.kid {
            return Err("the signing key cannot be retired; rotate to a new signing key first");
        }
        let mut verification = self.verification.clone();
        verification.remove(kid).ok_or("no verification key has this kid")?;
        Ok(KeySet { signing: self.signing.clone(), verification })
    }

    pub(crate) fn verification_key(&self, kid: &str) -> Option<&VerificationKey> {
        self.verification.get(kid)
    }

    /// Every algorithm some verification key uses (the signing one included).
    pub(crate) fn verification_algorithms(&self) -> impl Iterator<Item = SigningAlgorithm> + '_ {
        self.verification.values().map(|key| key.algorithm)
    }
}

/// One parsed [`KeySpec`].
struct LoadedKey {
    /// `None` when the spec holds only a public key.
    private: Option<EncodingKey>,
    public: VerificationKey,
}

fn problem(field: &str, leaf: &str, message: String) -> ConfigProblem {
    ConfigProblem { field: format!("{field}.{leaf}"), message }
}

/// The field a PEM came from, for error messages.
fn pem_leaf(spec: &KeySpec) -> &'static str {
    if spec.pem.is_none() && spec.pem_file.is_some() { "pem_file" } else { "pem" }
}

fn load(spec: &KeySpec, algorithm: SigningAlgorithm, field: &str) -> Result<LoadedKey, ConfigProblem> {
    if spec.kid.trim().is_empty() {
        return Err(problem(field, "kid", "must not be empty".into()));
    }
    if algorithm.is_symmetric() {
        return load_secret(spec, field);
    }
    if spec.secret.is_some() {
        return Err(problem(field, "secret", "only HS256 keys take a secret; set pem or pem_file".into()));
    }
    let leaf = pem_leaf(spec);
    let text = match (&spec.pem, &spec.pem_file) {
        (Some(pem), None) => Zeroizing::new(pem.expose().as_bytes().to_vec()),
        (None, Some(path)) => std::fs::read(path)
            .map(Zeroizing::new)
            .map_err(|error| problem(field, leaf, format!("cannot read {}: {error}", path.display())))?,
        _ => {
            return Err(problem(field, "pem", "set exactly one of pem and pem_file".into()));
        }
    };
    // The tag says which half we were given; parse errors are replaced by a
    // fixed message because some quote their input.
    let block = pem::parse(&text).map_err(|_| problem(field, leaf, "is not a PEM block".into()))?;
    let parsed = match block.tag() {
        "PRIVATE KEY" | "RSA PRIVATE KEY" => {
            private_key(algorithm, &text).map(|(private, public)| (Some(private), public))
        }
        "PUBLIC KEY" | "RSA PUBLIC KEY" => public_key(algorithm, &text).map(|public| (None, public)),
        "ENCRYPTED PRIVATE KEY" => Err("encrypted private keys are not supported"),
        "EC PRIVATE KEY" => Err("SEC1 EC keys are not supported; convert with `openssl pkcs8 -topk8 -nocrypt`"),
        _ => Err("expected a PKCS#8 private key or an SPKI public key"),
    };
    let (private, public) = parsed.map_err(|message| problem(field, leaf, message.into()))?;

    // What we verify with is rebuilt from the published JWK, so a token we
    // accept is exactly a token a third party accepts with our JWKS.
    let unusable = || problem(field, leaf, format!("is not a usable {} key", algorithm_name(algorithm)));
    let mut jwk = Jwk::from_decoding_key(&public, Some(jwt_algorithm(algorithm))).map_err(|_| unusable())?;
    jwk.common.key_id = Some(spec.kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| unusable())?;
    Ok(LoadedKey { private, public: VerificationKey { algorithm, key, jwk: Some(jwk) } })
}

fn load_secret(spec: &KeySpec, field: &str) -> Result<LoadedKey, ConfigProblem> {
    if spec.pem.is_some() || spec.pem_file.is_some() {
        return Err(problem(field, pem_leaf(spec), "HS256 keys take a secret, not a PEM".into()));
    }
    let secret = spec.secret.as_ref().map(Secret::expose).unwrap_or_default().as_bytes();
    if secret.len() < MIN_HMAC_SECRET_BYTES {
        let message = format!("HS256 needs a secret of at least {MIN_HMAC_SECRET_BYTES} bytes");
        return Err(problem(field, "secret", message));
    }
    Ok(LoadedKey {
        private: Some(EncodingKey::from_secret(secret)),
        public: VerificationKey {
            algorithm: SigningAlgorithm::Hs256,
            key: DecodingKey::from_secret(secret),
            jwk: None,
        },
    })
}

fn algorithm_name(algorithm: SigningAlgorithm) -> &'static str {
    match algorithm {
        SigningAlgorithm::Rs256 => "RS256 (RSA)",
        SigningAlgorithm::EdDsa => "EdDSA (Ed25519)",
        SigningAlgorithm::Es256 => "ES256 (P-256)",
        SigningAlgorithm::Hs256 => "HS256",
    }
}

/// Parses a private key and derives its public half. The key is parsed here
/// with the same aws-lc-rs call jsonwebtoken signs with, so a key accepted
/// here cannot fail at signing time (wrong curve, too small, corrupt).
fn private_key(algorithm: SigningAlgorithm, pem: &[u8]) -> Result<(EncodingKey, DecodingKey), &'static str> {
    match algorithm {
        SigningAlgorithm::Rs256 => {
            let private = EncodingKey::from_rsa_pem(pem).map_err(|_| "is not an RSA private key")?;
            let pair = sig::RsaKeyPair::from_der(private.as_bytes()).map_err(|_| "is not a valid RSA private key")?;
            if pair.public_modulus_len() < MIN_RSA_MODULUS_BYTES {
                return Err("RSA keys must have at least 2048 bits");
            }
            Ok((private, DecodingKey::from_rsa_der(pair.public_key().as_ref())))
        }
        SigningAlgorithm::Es256 => {
            let private = EncodingKey::from_ec_pem(pem).map_err(|_| "is not an EC private key")?;
            let pair = sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, private.as_bytes())
                .map_err(|_| "ES256 needs a valid P-256 private key")?;
            Ok((private, DecodingKey::from_ec_der(pair.public_key().as_ref())))
        }
        SigningAlgorithm::EdDsa => {
            let private = EncodingKey::from_ed_pem(pem).map_err(|_| "is not an Ed25519 private key")?;
            let pair = sig::Ed25519KeyPair::from_pkcs8(private.as_bytes())
                .map_err(|_| "is not a valid Ed25519 private key")?;
            Ok((private, DecodingKey::from_ed_der(pair.public_key().as_ref())))
        }
        SigningAlgorithm::Hs256 => Err("HS256 keys take a secret, not a PEM"),
    }
}

/// Parses a public key and checks it is a valid point or modulus for the
/// algorithm (jsonwebtoken's PEM reader only classifies the key type).
fn public_key(algorithm: SigningAlgorithm, pem: &[u8]) -> Result<DecodingKey, &'static str> {
    let (key, verification): (_, &'static dyn sig::VerificationAlgorithm) = match algorithm {
        SigningAlgorithm::Rs256 => {
            (DecodingKey::from_rsa_pem(pem).map_err(|_| "is not an RSA public key")?, &sig::RSA_PKCS1_2048_8192_SHA256)
        }
        SigningAlgorithm::Es256 => {
            (DecodingKey::from_ec_pem(pem).map_err(|_| "is not an EC public key")?, &sig::ECDSA_P256_SHA256_FIXED)
        }
        SigningAlgorithm::EdDsa => {
            (DecodingKey::from_ed_pem(pem).map_err(|_| "is not an Ed25519 public key")?, &sig::ED25519)
        }
        SigningAlgorithm::Hs256 => return Err("HS256 keys take a secret, not a PEM"),
    };
    let raw = key.try_get_as_bytes().map_err(|_| "is not a usable public key")?;
    if algorithm == SigningAlgorithm::Rs256 {
        let rsa = sig::RsaSubjectPublicKey::from_der(raw).map_err(|_| "is not a valid RSA public key")?;
        if rsa.modulus_len() < MIN_RSA_MODULUS_BYTES {
            return Err("RSA keys must have at least 2048 bits");
        }
    }
    sig::ParsedPublicKey::new(verification, raw).map_err(|_| match algorithm {
        SigningAlgorithm::Es256 => "ES256 needs a valid P-256 public key",
        _ => "is not a valid public key for the algorithm",
    })?;
    Ok(key)
}

/// Keys shared by the tests of the `tokens` module. RSA generation is slow in
/// debug builds, so one RSA key serves every test.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::LazyLock;

    use super::*;

    static RSA: LazyLock<KeySpec> =
        LazyLock::new(|| KeySet::generate(SigningAlgorithm::Rs256, "rsa-shared").expect("RSA key generation"));

    /// The shared RSA key, under its own kid.
    pub(crate) fn rsa(kid: &str) -> KeySpec {
        KeySpec { kid: kid.into(), ..RSA.clone() }
    }

    /// A fresh key (the shared one for RS256).
    pub(crate) fn key(algorithm: SigningAlgorithm, kid: &str) -> KeySpec {
        match algorithm {
            SigningAlgorithm::Rs256 => rsa(kid),
            _ => KeySet::generate(algorithm, kid).expect("key generation"),
        }
    }

    /// The SPKI `PUBLIC KEY` PEM of a generated private key, derived with
    /// aws-lc-rs alone (independently of the code under test).
    pub(crate) fn public_pem(spec: &KeySpec) -> String {
        let der = pem::parse(spec.pem.as_ref().expect("a PEM key").expose()).expect("PEM").into_contents();
        let spki = match spec.algorithm.expect("an algorithm") {
            SigningAlgorithm::Rs256 => sig::RsaKeyPair::from_pkcs8(&der).unwrap().public_key().as_der().unwrap(),
            SigningAlgorithm::Es256 => sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .unwrap()
                .public_key()
                .as_der()
                .unwrap(),
            SigningAlgorithm::EdDsa => sig::Ed25519KeyPair::from_pkcs8(&der).unwrap().public_key().as_der().unwrap(),
            SigningAlgorithm::Hs256 => panic!("HS256 has no public key"),
        };
        pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec()))
    }

    pub(crate) fn settings(signing: KeySpec, verification: Vec<KeySpec>) -> TokenSettings {
        TokenSettings {
            algorithm: signing.algorithm.expect("an algorithm"),
            signing_key: Some(signing),
            verification_keys: verification,
            ..TokenSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{key, public_pem, rsa, settings};
    use super::*;

    const ALL: [SigningAlgorithm; 4] =
        [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa, SigningAlgorithm::Es256, SigningAlgorithm::Hs256];

    fn fields(error: &ConfigError) -> Vec<&str> {
        error.0.iter().map(|p| p.field.as_str()).collect()
    }

    /// A run of base64 from the middle of a PEM body, to look for in messages.
    fn pem_fragment(spec: &KeySpec) -> String {
        let pem = spec.pem.as_ref().unwrap().expose();
        pem.lines().nth(2).unwrap()[..24].to_owned()
    }

    #[test]
    fn generated_keys_load_for_every_algorithm() {
        for algorithm in ALL {
            let keys = KeySet::from_settings(&settings(key(algorithm, "k1"), vec![])).unwrap();
            assert_eq!(keys.algorithm(), algorithm);
            assert_eq!(keys.signing_kid(), "k1");
            assert_eq!(keys.verification_key("k1").unwrap().algorithm(), algorithm);
        }
    }

    #[test]
    fn generated_secrets_are_long_random_base64url() {
        let a = KeySet::generate(SigningAlgorithm::Hs256, "a").unwrap().secret.unwrap();
        let b = KeySet::generate(SigningAlgorithm::Hs256, "b").unwrap().secret.unwrap();
        assert_eq!(a.expose().len(), 43);
        assert!(a.expose().len() >= MIN_HMAC_SECRET_BYTES);
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn generated_private_keys_are_unencrypted_pkcs8() {
        for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let spec = key(algorithm, "k");
            assert!(spec.pem.unwrap().expose().starts_with("-----BEGIN PRIVATE KEY-----\n"));
            assert!(spec.secret.is_none());
        }
    }

    #[test]
    fn jwks_holds_public_keys_with_kid_alg_and_use() {
        for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let keys = KeySet::from_settings(&settings(key(algorithm, "k1"), vec![])).unwrap();
            let json = serde_json::to_value(keys.jwks()).unwrap();
            let jwk = json["keys"].as_array().unwrap().first().unwrap().as_object().unwrap();
            assert_eq!(jwk["kid"], "k1");
            assert_eq!(jwk["alg"], serde_json::to_value(jwt_algorithm(algorithm)).unwrap());
            assert_eq!(jwk["use"], "sig");
            // No private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `k`) ever appears.
            for member in jwk.keys() {
                assert!(["kty", "kid", "alg", "use", "n", "e", "crv", "x", "y"].contains(&member.as_str()), "{member}");
            }
        }
    }

    #[test]
    fn hmac_secret_never_appears_in_the_jwks() {
        let spec = key(SigningAlgorithm::Hs256, "h1");
        let secret = spec.secret.clone().unwrap();
        let keys = KeySet::from_settings(&settings(spec, vec![])).unwrap();
        assert!(keys.jwks().keys.is_empty());
        let json = serde_json::to_string(&keys.jwks()).unwrap();
        assert!(!json.contains(secret.expose()));
        assert!(!json.contains(&URL_SAFE_NO_PAD.encode(secret.expose())));
    }

    #[test]
    fn jwks_lists_signing_and_verification_keys_but_no_hmac_key() {
        let settings = settings(
            key(SigningAlgorithm::EdDsa, "new"),
            vec![key(SigningAlgorithm::Rs256, "old-rsa"), key(SigningAlgorithm::Hs256, "old-hmac")],
        );
        let keys = KeySet::from_settings(&settings).unwrap();
        let kids: Vec<_> = keys.jwks().keys.iter().map(|k| k.common.key_id.clone().unwrap()).collect();
        assert_eq!(kids, ["new", "old-rsa"]);
    }

    #[test]
    fn public_verification_key_matches_the_private_one() {
        for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let private = key(algorithm, "k1");
            let public = KeySpec {
                kid: "k1-public".into(),
                algorithm: Some(algorithm),
                pem: Some(Secret::new(public_pem(&private))),
                ..KeySpec::default()
            };
            let keys = KeySet::from_settings(&settings(private, vec![public])).unwrap();
            let jwks = keys.jwks();
            let (a, b) = (jwks.find("k1").unwrap(), jwks.find("k1-public").unwrap());
            assert_eq!(a.algorithm, b.algorithm, "{algorithm:?}");
        }
    }

    #[test]
    fn pkcs1_rsa_keys_are_accepted() {
        // `openssl genrsa` (OpenSSL 1.x) writes `RSA PRIVATE KEY` blocks.
        let pkcs8 = rsa("k1");
        let pkcs1 = EncodingKey::from_rsa_pem(pkcs8.pem.as_ref().unwrap().expose().as_bytes()).unwrap();
        let public = sig::RsaKeyPair::from_der(pkcs1.as_bytes()).unwrap().public_key().as_ref().to_vec();
        let private_pem = pem::encode(&pem::Pem::new("RSA PRIVATE KEY", pkcs1.as_bytes().to_vec()));
        let public_pem = pem::encode(&pem::Pem::new("RSA PUBLIC KEY", public));
        let signing = KeySpec { kid: "k1".into(), pem: Some(Secret::new(private_pem)), ..pkcs8.clone() };
        let verification = KeySpec { kid: "k2".into(), pem: Some(Secret::new(public_pem)), ..pkcs8.clone() };
        let keys = KeySet::from_settings(&settings(signing, vec![verification])).unwrap();
        let reference = KeySet::from_settings(&settings(pkcs8, vec![])).unwrap();
        let jwks = keys.jwks();
        let expected = reference.jwks().find("k1").unwrap().algorithm.clone();
        assert_eq!(jwks.find("k1").unwrap().algorithm, expected);
        assert_eq!(jwks.find("k2").unwrap().algorithm, expected);
    }

    #[test]
    fn pem_file_is_read() {
        let spec = key(SigningAlgorithm::Es256, "k1");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), spec.pem.as_ref().unwrap().expose()).unwrap();
        let from_file = KeySpec { pem: None, pem_file: Some(file.path().into()), ..spec.clone() };
        let keys = KeySet::from_settings(&settings(from_file, vec![])).unwrap();
        let direct = KeySet::from_settings(&settings(spec, vec![])).unwrap();
        assert_eq!(keys.jwks(), direct.jwks());
    }

    #[test]
    fn unreadable_pem_file_names_the_field() {
        let spec =
            KeySpec { kid: "k1".into(), pem_file: Some("/nonexistent/signing.pem".into()), ..KeySpec::default() };
        let error =
            KeySet::from_settings(&settings(KeySpec { algorithm: Some(SigningAlgorithm::EdDsa), ..spec }, vec![]))
                .unwrap_err();
        assert_eq!(fields(&error), ["tokens.signing_key.pem_file"]);
        assert!(error.to_string().contains("/nonexistent/signing.pem"));
    }

    #[test]
    fn missing_signing_key_is_an_error() {
        let error = KeySet::from_settings(&TokenSettings::default()).unwrap_err();
        assert_eq!(fields(&error), ["tokens.signing_key"]);
    }

    #[test]
    fn errors_name_the_field_and_do_not_leak_the_pem() {
        let good = key(SigningAlgorithm::EdDsa, "k1");
        let other = key(SigningAlgorithm::EdDsa, "k2");
        // A PEM whose body is cut short: valid framing, corrupt DER.
        let pem = other.pem.as_ref().unwrap().expose();
        let lines: Vec<_> = pem.lines().collect();
        let corrupt = format!("{}\n{}\n{}\n", lines[0], &lines[1][..40], lines[lines.len() - 1]);
        let broken = KeySpec { pem: Some(Secret::new(corrupt)), ..other.clone() };
        let fine = key(SigningAlgorithm::EdDsa, "k0");
        let error = KeySet::from_settings(&settings(good, vec![fine, broken])).unwrap_err();
        assert_eq!(fields(&error), ["tokens.verification_keys[1].pem"]);
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(&lines[1][..20]), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }

    #[test]
    fn wrong_key_type_names_the_field_and_does_not_leak_the_pem() {
        // An EC key configured as RS256.
        let ec = key(SigningAlgorithm::Es256, "k1");
        let fragment = pem_fragment(&ec);
        let spec = KeySpec { algorithm: Some(SigningAlgorithm::Rs256), ..ec };
        let error = KeySet::from_settings(&settings(spec, vec![])).unwrap_err();
        assert_eq!(fields(&error), ["tokens.signing_key.pem"]);
        assert!(!format!("{error} {error:?}").contains(&fragment));
    }

    #[test]
    fn p384_key_is_rejected_for_es256() {
        let rng = SystemRandom::new();
        let der = sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        let spec = KeySpec {
            kid: "p384".into(),
            algorithm: Some(SigningAlgorithm::Es256),
            pem: Some(Secret::new(pem)),
            ..KeySpec::default()
        };
        let error = KeySet::from_settings(&settings(spec, vec![])).unwrap_err();
        assert_eq!(fields(&error), ["tokens.signing_key.pem"]);
    }

    #[test]
    fn a_public_key_cannot_sign() {
        let private = key(SigningAlgorithm::EdDsa, "k1");
        let public = KeySpec { pem: Some(Secret::new(public_pem(&private))), ..private };
        let error = KeySet::from_settings(&settings(public, vec![])).unwrap_err();
        assert_eq!(fields(&error), ["tokens.signing_key.pem"]);
    }

    #[test]
    fn duplicate_kids_are_an_error() {
        let settings =
            settings(key(SigningAlgorithm::EdDsa, "k1"), vec![rsa("k2"), key(SigningAlgorithm::EdDsa, "k1")]);
        let error = KeySet::from_settings(&settings).unwrap_err();
        assert_eq!(fields(&error), ["tokens.verification_keys[1].kid"]);
    }

    #[test]
    fn short_or_missing_hmac_secret_is_an_error() {
        let short = KeySpec {
            kid: "h".into(),
            algorithm: Some(SigningAlgorithm::Hs256),
            secret: Some(Secret::new("x".repeat(MIN_HMAC_SECRET_BYTES - 1))),
            ..KeySpec::default()
        };
        let missing = KeySpec { kid: "h2".into(), secret: None, ..short.clone() };
        let error = KeySet::from_settings(&settings(short, vec![missing])).unwrap_err();
        assert_eq!(fields(&error), ["tokens.signing_key.secret", "tokens.verification_keys[0].secret"]);
        assert!(!error.to_string().contains("xxxx"));
    }

    #[test]
    fn mixed_up_key_fields_are_errors() {
        let ed = key(SigningAlgorithm::EdDsa, "ed");
        let with_secret = KeySpec { kid: "ws".into(), secret: Some(Secret::new("s".repeat(40))), ..ed.clone() };
        let hmac_with_pem = KeySpec { kid: "h".into(), algorithm: Some(SigningAlgorithm::Hs256), ..ed.clone() };
        let both = KeySpec { kid: "both".into(), pem_file: Some("/tmp/x.pem".into()), ..ed.clone() };
        let neither = KeySpec { kid: "neither".into(), pem: None, ..ed.clone() };
        let empty_kid = KeySpec { kid: " ".into(), ..ed.clone() };
        let settings = settings(ed, vec![with_secret, hmac_with_pem, both, neither, empty_kid]);
        let error = KeySet::from_settings(&settings).unwrap_err();
        assert_eq!(
            fields(&error),
            [
                "tokens.verification_keys[0].secret",
                "tokens.verification_keys[1].pem",
                "tokens.verification_keys[2].pem",
                "tokens.verification_keys[3].pem",
                "tokens.verification_keys[4].kid",
            ]
        );
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let spec = key(SigningAlgorithm::Hs256, "h1");
        let secret = spec.secret.clone().unwrap();
        let keys = KeySet::from_settings(&settings(spec, vec![])).unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains("h1"));
        assert!(!shown.contains(secret.expose()));
    }
}
