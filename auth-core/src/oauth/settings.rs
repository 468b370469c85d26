//! `[default.auth.oauth.<name>]`: one OpenID Connect provider, and the checks
//! that name each wrong field (`oauth.<name>.issuer_url`, …).

use openidconnect::url::{Host, Url};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigProblem, HTTPS, LaunchCheck, Secret};
use crate::secret::exposed;

/// Scopes asked for when none are configured (`openid` is always added).
const DEFAULT_SCOPES: [&str; 2] = ["email", "profile"];
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const MAX_NAME_LEN: usize = 32;

/// A provider whose well-known settings fill the fields left empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthPreset {
    /// Google: issuer `https://accounts.google.com`, scopes `openid email profile`.
    Google,
}

/// One OpenID Connect provider. Everything about its endpoints and keys comes
/// from OpenID Connect discovery at `issuer_url`; nothing is provider-specific.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthProvider {
    /// Fills `issuer_url` (and the default scopes) of a well-known provider.
    pub preset: Option<OAuthPreset>,
    /// The issuer identifier; `<issuer_url>/.well-known/openid-configuration`
    /// is fetched and its `issuer` must equal this exactly. `https://` only,
    /// except `http://` on a loopback host (tests, local development), which
    /// the production checklist refuses.
    pub issuer_url: String,
    pub client_id: String,
    #[serde(serialize_with = "exposed::serialize")]
    pub client_secret: Secret,
    /// Scopes to request besides `openid`; default `email profile`.
    pub scopes: Vec<String>,
    /// The absolute URL of `<mount>/oauth/<name>/callback` as the browser sees
    /// it, registered at the provider.
    pub redirect_url: String,
    /// If not empty, only provider email addresses in these domains (exact,
    /// case-insensitive; no subdomains) may sign in or be linked.
    pub allowed_email_domains: Vec<String>,
    /// If set, a successful callback answers `303` to this URL with a
    /// one-time code in its fragment (`#code=…`), which the app exchanges by
    /// `POST <mount>/oauth/exchange` for the tokens, instead of `200` with the
    /// tokens as JSON.
    pub success_redirect: Option<String>,
    /// Whether this provider's `email_verified` is trusted enough to link a
    /// sign-in to the existing account with that address. Default: on for
    /// the Google preset only. Off, such a sign-in is refused
    /// (`account_exists`): the owner signs in and links the provider.
    pub trust_email: Option<bool>,
}

impl OAuthProvider {
    /// `issuer_url`, or the preset's issuer when it is empty.
    pub fn issuer(&self) -> &str {
        match (self.issuer_url.trim(), self.preset) {
            ("", Some(OAuthPreset::Google)) => GOOGLE_ISSUER,
            (issuer, _) => issuer,
        }
    }

    /// Whether a verified email from this provider may link an existing account.
    pub fn trusts_email(&self) -> bool {
        self.trust_email.unwrap_or(self.preset == Some(OAuthPreset::Google))
    }

    /// The scopes requested besides `openid`.
    pub fn requested_scopes(&self) -> Vec<String> {
        let scopes: Vec<String> = if self.scopes.is_empty() {
            DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect()
        } else {
            self.scopes.clone()
        };
        let mut unique = Vec::with_capacity(scopes.len());
        for scope in scopes {
            if scope != "openid" && !unique.contains(&scope) {
                unique.push(scope);
            }
        }
        unique
    }

    /// Whether `domain` (of a normalised email address) may sign in.
    pub fn allows_domain(&self, domain: &str) -> bool {
        self.allowed_email_domains.is_empty()
            || self.allowed_email_domains.iter().any(|allowed| allowed.trim().eq_ignore_ascii_case(domain))
    }

    /// Every problem of this provider's settings; fields are named `oauth.<name>.<field>`.
    pub(crate) fn problems(&self, name: &str) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, field: &str, message: &str| {
            if !ok {
                let field = if field.is_empty() { format!("oauth.{name}") } else { format!("oauth.{name}.{field}") };
                problems.push(ConfigProblem { field, message: message.into() });
            }
        };
        check(
            is_valid_name(name),
            "",
            "provider names are 1 to 32 lower-case letters, digits, '-' or '_' (they appear in URLs)",
        );
        match parse_url(self.issuer()) {
            None if self.issuer().is_empty() => check(false, "issuer_url", "is required (or set preset = \"google\")"),
            None => check(false, "issuer_url", "must be an absolute URL without query or fragment"),
            Some(url) => check(
                url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url)),
                "issuer_url",
                "must use https (http only on a loopback host such as 127.0.0.1, for tests)",
            ),
        }
        check(!self.client_id.trim().is_empty(), "client_id", "is required");
        check(!self.client_secret.expose().is_empty(), "client_secret", "is required");
        check(
            self.scopes.iter().all(|s| !s.is_empty() && !s.contains(char::is_whitespace)),
            "scopes",
            "list one scope per entry, without spaces",
        );
        check(
            parse_url(&self.redirect_url).is_some_and(|url| ["https", "http"].contains(&url.scheme())),
            "redirect_url",
            "must be the absolute http(s) URL of <mount>/oauth/<name>/callback",
        );
        check(
            self.allowed_email_domains.iter().all(|d| is_domain(d.trim())),
            "allowed_email_domains",
            "list domain names such as example.com",
        );
        if let Some(target) = &self.success_redirect {
            check(
                parse_url(target).is_some_and(|url| ["https", "http"].contains(&url.scheme())),
                "success_redirect",
                "must be an absolute http(s) URL without query or fragment",
            );
        }
        problems
    }

    /// The launch checks of this provider: each of its URLs on https.
    pub(crate) fn launch_checks(&self, name: &str) -> Vec<LaunchCheck> {
        let urls = [
            ("issuer_url", Some(self.issuer())),
            ("redirect_url", Some(self.redirect_url.as_str())),
            ("success_redirect", self.success_redirect.as_deref()),
        ];
        urls.into_iter()
            .filter_map(|(field, url)| {
                Some(LaunchCheck {
                    name: "https_oauth_urls",
                    setting: format!("oauth.{name}.{field}"),
                    requirement: HTTPS,
                    passed: url?.starts_with("https://"),
                })
            })
            .collect()
    }
}

fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// An absolute URL with a host and neither query nor fragment.
fn parse_url(value: &str) -> Option<Url> {
    let url = Url::parse(value.trim()).ok()?;
    (url.has_host() && url.query().is_none() && url.fragment().is_none()).then_some(url)
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn is_domain(domain: &str) -> bool {
    domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthConfig;

    fn provider() -> OAuthProvider {
        OAuthProvider {
            issuer_url: "https://idp.example.com".into(),
            client_id: "client".into(),
            client_secret: Secret::new("secret"),
            redirect_url: "https://app.example.com/api/auth/oauth/idp/callback".into(),
            ..OAuthProvider::default()
        }
    }

    fn failed(checks: &[LaunchCheck]) -> Vec<&str> {
        checks.iter().filter(|check| !check.passed).map(|check| check.setting.as_str()).collect()
    }

    fn fields(problems: &[ConfigProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn oauth_google_preset_fills_issuer_and_scopes() {
        let google = OAuthProvider { preset: Some(OAuthPreset::Google), issuer_url: String::new(), ..provider() };
        assert_eq!(google.issuer(), "https://accounts.google.com");
        assert_eq!(google.requested_scopes(), ["email", "profile"]);
        assert!(google.problems("google").is_empty());
        let custom = OAuthProvider { scopes: vec!["openid".into(), "email".into(), "email".into()], ..provider() };
        assert_eq!(custom.requested_scopes(), ["email"]);
    }

    #[test]
    fn oauth_only_the_google_preset_trusts_email_by_default() {
        let google = OAuthProvider { preset: Some(OAuthPreset::Google), ..provider() };
        assert!(google.trusts_email());
        assert!(!provider().trusts_email());
        assert!(!OAuthProvider { trust_email: Some(false), ..google }.trusts_email());
        assert!(OAuthProvider { trust_email: Some(true), ..provider() }.trusts_email());
    }

    #[test]
    fn oauth_settings_are_validated_by_name() {
        let bad = OAuthProvider {
            issuer_url: "http://idp.example.com".into(),
            client_id: " ".into(),
            client_secret: Secret::default(),
            scopes: vec!["email profile".into()],
            redirect_url: "/callback".into(),
            allowed_email_domains: vec!["@example.com".into()],
            success_redirect: Some("https://app.example.com/#done".into()),
            preset: None,
            trust_email: None,
        };
        assert_eq!(
            fields(&bad.problems("Bad Name")),
            [
                "oauth.Bad Name",
                "oauth.Bad Name.issuer_url",
                "oauth.Bad Name.client_id",
                "oauth.Bad Name.client_secret",
                "oauth.Bad Name.scopes",
                "oauth.Bad Name.redirect_url",
                "oauth.Bad Name.allowed_email_domains",
                "oauth.Bad Name.success_redirect",
            ]
        );
        let missing = OAuthProvider { issuer_url: String::new(), ..provider() };
        assert_eq!(fields(&missing.problems("idp")), ["oauth.idp.issuer_url"]);
    }

    #[test]
    fn oauth_http_issuers_only_on_loopback_and_never_in_production() {
        for issuer in ["http://127.0.0.1:4000", "http://localhost:4000", "http://[::1]:4000"] {
            let local = OAuthProvider { issuer_url: issuer.into(), ..provider() };
            assert!(local.problems("idp").is_empty(), "{issuer}");
            assert_eq!(failed(&local.launch_checks("idp")), ["oauth.idp.issuer_url"]);
        }
        let remote = OAuthProvider { issuer_url: "http://10.0.0.1".into(), ..provider() };
        assert_eq!(fields(&remote.problems("idp")), ["oauth.idp.issuer_url"]);
        assert!(failed(&provider().launch_checks("idp")).is_empty());
    }

    #[test]
    fn oauth_providers_load_from_config_with_secret_hidden() {
        let config: AuthConfig = serde_json::from_str(
            r#"{"oauth": {"google": {"preset": "google", "client_id": "id", "client_secret": "hunter2-hunter2",
                "redirect_url": "https://app.example.com/api/auth/oauth/google/callback",
                "allowed_email_domains": ["example.com"]}}}"#,
        )
        .unwrap();
        config.validate().unwrap();
        let google = &config.oauth["google"];
        assert!(google.allows_domain("EXAMPLE.com") && !google.allows_domain("evil.com"));
        assert!(!format!("{config:?}").contains("hunter2"));
        let error = serde_json::from_str::<AuthConfig>(r#"{"oauth": {"g": {"issuer": "x"}}}"#).unwrap_err();
        assert!(error.to_string().contains("issuer"), "{error}");
        let mut invalid = config.clone();
        invalid.oauth.get_mut("google").unwrap().client_id.clear();
        let error = invalid.validate().unwrap_err();
        assert_eq!(fields(&error.0), ["oauth.google.client_id"]);
    }
}
