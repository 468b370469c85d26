//! A real software authenticator for the passkey suites: 1Password's
//! passkey-rs (an authenticator and a WebAuthn client) answers the options
//! the platform hands out with genuine attestation objects and signatures
//! over the client data of `origin`. Nothing of the verification is mocked.

use passkey_authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey_client::{Client, DefaultClientData};
use passkey_crypto::AvailableBackend;
use passkey_types::{
    Passkey,
    ctap2::{Aaguid, Ctap2Error},
    webauthn,
};
use serde_json::Value;
use webauthn_rs::prelude::Url;

/// The user's gesture: present, and verified (PIN, biometrics) whenever the
/// client asks for it. A test that wants no verification asks for none
/// (`userVerification: "discouraged"`), as a tampered client would.
pub struct User;

#[async_trait::async_trait]
impl UserValidationMethod for User {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck { presence, verification })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

/// One authenticator holding one passkey, seen from the page at `origin`.
pub struct SoftwareAuthenticator {
    client: Client<Option<Passkey>, User, AvailableBackend, public_suffix::PublicSuffixList, ()>,
    origin: Url,
}

impl SoftwareAuthenticator {
    /// A device-bound authenticator with a signature counter (a security key).
    pub fn new(origin: &str) -> Self {
        Self::with_store(origin, None)
    }

    fn with_store(origin: &str, store: Option<Passkey>) -> Self {
        let mut authenticator = Authenticator::new(Aaguid::new_empty(), store, User, AvailableBackend);
        authenticator.set_make_credentials_with_signature_counter(true);
        let client = Client::new(authenticator).allows_insecure_localhost(true);
        Self { client, origin: Url::parse(origin).expect("an origin") }
    }

    /// A copy of this authenticator's key as it is now, counter included:
    /// what an attacker who cloned the device would hold.
    pub fn clone_device(&self) -> Self {
        Self::with_store(self.origin.as_str(), self.client.authenticator().store().clone())
    }

    /// The same key, seen from the page at another origin.
    pub fn at_origin(&self, origin: &str) -> Self {
        Self::with_store(origin, self.client.authenticator().store().clone())
    }

    /// `navigator.credentials.create({publicKey})`: the credential JSON to send back.
    pub async fn create(&mut self, public_key: &Value) -> Value {
        let options: webauthn::CredentialCreationOptions =
            serde_json::from_value(serde_json::json!({ "publicKey": public_key })).expect("creation options");
        let created = self.client.register(&self.origin, options, DefaultClientData).await.expect("registered");
        browser_json(serde_json::to_value(created).expect("a credential"))
    }

    /// `navigator.credentials.get({publicKey})`: the assertion JSON to send back.
    pub async fn get(&mut self, public_key: &Value) -> Value {
        let options: webauthn::CredentialRequestOptions =
            serde_json::from_value(serde_json::json!({ "publicKey": public_key })).expect("request options");
        let asserted = self.client.authenticate(&self.origin, options, DefaultClientData).await.expect("asserted");
        browser_json(serde_json::to_value(asserted).expect("an assertion"))
    }
}

/// What a page sends (`PublicKeyCredential.toJSON()`): binary fields as
/// base64url strings, where passkey-types writes arrays of bytes.
fn browser_json(value: Value) -> Value {
    use base64::Engine as _;
    match value {
        Value::Array(items) if !items.is_empty() && items.iter().all(|i| i.as_u64().is_some_and(|b| b <= 255)) => {
            let bytes: Vec<u8> = items.iter().filter_map(|i| i.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            Value::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
        }
        Value::Array(items) => Value::Array(items.into_iter().map(browser_json).collect()),
        Value::Object(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, browser_json(v))).collect()),
        other => other,
    }
}
