//! Signed webhooks in the Standard Webhooks format: operators subscribe
//! https endpoints to audit event types (session revocations among them, so a
//! service that verifies tokens itself can drop a session early).
//!
//! - **Outbox.** A delivery is written in the transaction of the audit event
//!   it carries (`webhook_deliveries`), so an event and its messages commit
//!   together; nothing is sent from the request.
//! - **Workers.** Every instance polls for due deliveries and claims each
//!   with one conditional `UPDATE` (a lease), so two instances never send one
//!   at the same time; a delivery is marked `delivered` on a 2xx answer.
//!   Failures are retried with back-off (`retry_base_secs`, × 4 each time, at
//!   most 6 hours) until `max_attempts`, then `failed`. Receivers deduplicate
//!   by `webhook-id`, as the standard says (a crash after sending and before
//!   marking sends again).
//! - **Signature.** `webhook-id`, `webhook-timestamp` (Unix seconds) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`;
//!   the secret is shown once, as `whsec_<base64>`, and kept sealed under a
//!   key derived from `mfa.encryption_key` (no key, no webhooks).
//! - **Egress.** https only in production; no redirects followed; a timeout;
//!   names resolving to loopback, private, link-local or other non-public
//!   addresses are refused unless `allow_private_addresses` (the check is the
//!   resolver's, so the address checked is the address connected to).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, RwLock},
    time::Duration,
};

use aws_lc_rs::hmac;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use uuid::Uuid;

use crate::{
    config::WebhookSettings,
    sealed::SealingKey,
    store::{Attempt, Store, StoredDelivery, StoredEndpoint},
};

/// Names this use of `mfa.encryption_key`.
const SEALING_SALT: &[u8] = b"auth-platform/webhook-secret/v1";
/// The secret's prefix, as Standard Webhooks writes it.
const SECRET_PREFIX: &str = "whsec_";
/// How long a claimed delivery is this worker's before another may retry it.
const LEASE_MS: i64 = 60_000;
/// The longest wait between two attempts.
const MAX_RETRY_MS: i64 = 6 * 3600 * 1000;
/// A subscription is seen by every instance within this time.
pub(crate) const RELOAD_MS: i64 = 5_000;

/// A subscribed endpoint, its secret opened.
struct Endpoint {
    id: Uuid,
    url: String,
    events: Vec<String>,
    key: hmac::Key,
}

/// The endpoints (reloaded from the store) and what sends to them.
pub(crate) struct WebhookSender {
    endpoints: RwLock<Vec<Endpoint>>,
    sealer: SealingKey,
    http: reqwest::Client,
    settings: WebhookSettings,
}

impl WebhookSender {
    pub(crate) fn new(encryption_key: &[u8], settings: &WebhookSettings) -> Result<Self, reqwest::Error> {
        let resolver = Arc::new(PublicOnly { allow_private: settings.allow_private_addresses });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(settings.timeout_secs))
            .dns_resolver(resolver)
            .user_agent(concat!("auth-platform-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            endpoints: RwLock::new(Vec::new()),
            sealer: SealingKey::derive(SEALING_SALT, b"", encryption_key),
            http,
            settings: settings.clone(),
        })
    }

    /// The endpoints subscribed to `event`.
    pub(crate) fn subscribed(&self, event: &str) -> Vec<Uuid> {
        let endpoints = self.endpoints.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        endpoints.iter().filter(|e| e.events.iter().any(|t| t == event || t == "*")).map(|e| e.id).collect()
    }

    /// The URL and signing key of endpoint `id`, if this instance knows it.
    fn endpoint(&self, id: Uuid) -> Option<(String, hmac::Key)> {
        let endpoints = self.endpoints.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        endpoints.iter().find(|e| e.id == id).map(|e| (e.url.clone(), e.key.clone()))
    }

    /// Reads the endpoints again (each instance, every [`RELOAD_MS`], and after a change).
    pub(crate) async fn reload(&self, store: &Store) -> crate::Result<()> {
        let mut loaded = Vec::new();
        for stored in store.endpoints().await? {
            let Some(secret) = self.sealer.open(stored.id.as_bytes(), &stored.secret) else {
                tracing::error!(endpoint = %stored.id, "a webhook secret does not open with mfa.encryption_key");
                continue;
            };
            let events = stored.events.split(',').map(str::to_owned).collect();
            loaded.push(Endpoint {
                id: stored.id,
                url: stored.url,
                events,
                key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            });
        }
        *self.endpoints.write().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        Ok(())
    }

    /// A new endpoint's row and its secret (`whsec_…`, shown once).
    pub(crate) fn new_endpoint(&self, url: &str, events: &[String], now: i64) -> (StoredEndpoint, String) {
        let secret = crate::tokens::random_bytes();
        let id = Uuid::now_v7();
        let sealed = self.sealer.seal(id.as_bytes(), &secret);
        let endpoint =
            StoredEndpoint { id, url: url.to_owned(), events: events.join(","), secret: sealed, created_at: now };
        (endpoint, format!("{SECRET_PREFIX}{}", STANDARD.encode(secret.as_slice())))
    }

    /// Whether `url` may be an endpoint: absolute http(s) with a host, https
    /// unless `allow_http`, and no literal non-public address unless allowed.
    pub(crate) fn refuses(&self, url: &str) -> Option<&'static str> {
        let Ok(parsed) = reqwest::Url::parse(url) else { return Some("must be an absolute URL") };
        match parsed.scheme() {
            "https" => {}
            "http" if self.settings.allow_http => {}
            _ => return Some("must be an https URL"),
        }
        let Some(host) = parsed.host_str() else { return Some("must name a host") };
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        match literal {
            Some(ip) if !self.settings.allow_private_addresses && !is_public(ip) => Some("must be a public address"),
            _ => None,
        }
    }

    /// Sends one claimed delivery and says how it ended.
    pub(crate) async fn attempt(&self, delivery: &StoredDelivery, now: i64) -> (Option<u16>, Option<String>, Attempt) {
        let Some((url, key)) = self.endpoint(delivery.endpoint_id) else {
            return (None, Some("the endpoint is gone".into()), Attempt::Failed);
        };
        let (status, error) = match self.refuses(&url) {
            Some(reason) => (None, Some(format!("refused URL: {reason}"))),
            None => self.post(&url, &key, delivery, now).await,
        };
        let outcome = match status {
            Some(status) if (200..300).contains(&status) => Attempt::Delivered,
            _ if delivery.attempts >= i64::from(self.settings.max_attempts) => Attempt::Failed,
            _ => Attempt::Retry { at: now + self.retry_delay_ms(delivery.attempts) },
        };
        (status, error, outcome)
    }

    async fn post(
        &self,
        url: &str,
        key: &hmac::Key,
        delivery: &StoredDelivery,
        now: i64,
    ) -> (Option<u16>, Option<String>) {
        let id = delivery.id.to_string();
        let timestamp = (now / 1000).to_string();
        let signature = sign(key, &id, &timestamp, &delivery.payload);
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", &timestamp)
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) => (Some(response.status().as_u16()), None),
            // The error's text, without the URL's query (it could hold a token of the receiver's).
            Err(error) => (None, Some(error.without_url().to_string())),
        }
    }

    /// The wait after the `attempts`-th failure: base × 4^(attempts − 1), at most 6 hours.
    fn retry_delay_ms(&self, attempts: i64) -> i64 {
        let base = i64::try_from(self.settings.retry_base_secs * 1000).unwrap_or(MAX_RETRY_MS);
        let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        base.saturating_mul(4_i64.saturating_pow(exponent)).min(MAX_RETRY_MS)
    }

    /// One pass of this instance's worker: claims the due deliveries and sends them.
    pub(crate) async fn work(&self, store: &Store, now: impl Fn() -> i64) -> crate::Result<usize> {
        let claimed = store.claim_deliveries(now(), LEASE_MS, 20).await?;
        if claimed.iter().any(|delivery| self.endpoint(delivery.endpoint_id).is_none()) {
            // Subscribed on another instance since this one last read them.
            self.reload(store).await?;
        }
        for delivery in &claimed {
            let (status, error, outcome) = self.attempt(delivery, now()).await;
            let result = if outcome == Attempt::Delivered { "delivered" } else { "failed" };
            metrics::counter!(crate::metrics::WEBHOOKS, "outcome" => result).increment(1);
            store.finish_attempt(delivery.id, now(), status, error.as_deref(), outcome).await?;
        }
        Ok(claimed.len())
    }
}

/// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
pub fn sign(key: &hmac::Key, id: &str, timestamp: &str, body: &str) -> String {
    let tag = hmac::sign(key, format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(tag.as_ref()))
}

/// A receiver's check: whether `signatures` (the `webhook-signature` header,
/// space-separated `v1,…` entries) holds a signature of `body` under `secret`
/// for this `id` and `timestamp`, compared in constant time, and the
/// timestamp is within `tolerance_secs` of `now_secs` (a replay is refused).
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> bool {
    let Some(key) = secret_key(secret) else { return false };
    let fresh = timestamp.parse::<i64>().is_ok_and(|sent| (now_secs - sent).abs() <= tolerance_secs);
    let message = format!("{id}.{timestamp}.{body}");
    fresh
        && signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .any(|tag| STANDARD.decode(tag).is_ok_and(|tag| hmac::verify(&key, message.as_bytes(), &tag).is_ok()))
}

/// The HMAC key of a `whsec_…` secret, for a receiver (and the tests).
pub fn secret_key(secret: &str) -> Option<hmac::Key> {
    let bytes = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    Some(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// Whether `ip` is a public unicast address: none of IANA's special-purpose
/// ranges (RFC 6890 and its updates) that reach this host, its networks or
/// nothing. An IPv6 address that carries an IPv4 one (mapped, the old
/// compatible form, NAT64's well-known prefix, 6to4) is as public as that
/// IPv4 address: a NAT64 gateway or 6to4 relay would deliver it there.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a == 100 && (b & 0xc0) == 64 // 100.64.0.0/10, shared address space
                || a == 192 && b == 0 && c == 0 // 192.0.0.0/24, protocol assignments
                || a == 192 && b == 88 && c == 99 // 192.88.99.0/24, 6to4 relays
                || a == 198 && (b & 0xfe) == 18 // 198.18.0.0/15, benchmarking
                || a >= 240) // 240.0.0.0/4, reserved, and the broadcast address
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let ipv4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
            let compatible = s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified(); // ::a.b.c.d (deprecated)
            let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]; // 64:ff9b::/96
            let embedded = if let Some(mapped) = v6.to_ipv4_mapped() {
                Some(mapped)
            } else if compatible || nat64 {
                Some(ipv4(s[6], s[7]))
            } else if s[0] == 0x2002 {
                Some(ipv4(s[1], s[2])) // 2002::/16, 6to4
            } else {
                None
            };
            match embedded {
                Some(v4) => is_public(IpAddr::V4(v4)),
                None => {
                    !(v6.is_loopback()
                        || v6.is_unspecified()
                        || v6.is_multicast()
                        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7, unique local
                        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10, link local
                        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10, site local (deprecated)
                        || s[0] == 0x64 && s[1] == 0xff9b // 64:ff9b:1::/48, local NAT64
                        || s[..4] == [0x100, 0, 0, 0] // 100::/64, discard
                        || s[0] == 0x2001 && s[1] < 0x200 // 2001::/23, IETF protocol assignments (Teredo, ORCHID, benchmarking)
                        || s[0] == 0x2001 && s[1] == 0xdb8 // 2001:db8::/32, documentation
                        || (s[0] & 0xfff0) == 0x3ff0) // 3fff::/20, documentation
                }
            }
        }
    }
}

/// The webhook client's resolver: the system's, without non-public addresses
/// unless they are allowed.
struct PublicOnly {
    allow_private: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|a| allow_private || is_public(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{} resolves to no public address", name.as_str()).into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The Standard Webhooks specification's example.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a secret");
        let body = r#"{"test": 2432232314}"#;
        let signature = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let check = |sig: &str, body: &str, now: i64| {
            verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, body, now, 300)
        };
        assert!(check(&format!("v1,bm90IGl0 {signature}"), body, 1614265330 + 299), "one of several entries");
        assert!(!check(&signature, r#"{"test": 1}"#, 1614265330), "another body");
        assert!(!check(&signature, body, 1614265330 + 301), "too old: a replay");
        assert!(!check("v1,bm90IGl0", body, 1614265330));
    }

    #[test]
    fn only_public_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            // Missed before the threat model of #15: benchmarking, reserved,
            // protocol assignments, and private IPv4 inside IPv6.
            "198.18.0.1",
            "198.19.255.254",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
            "192.88.99.1",
            "64:ff9b::a00:1",      // NAT64 of 10.0.0.1
            "64:ff9b::7f00:1",     // NAT64 of 127.0.0.1
            "64:ff9b:1::1",        // local-use NAT64
            "2002:a9fe:a9fe::1",   // 6to4 of 169.254.169.254
            "::a00:1",             // IPv4-compatible 10.0.0.1
            "2001:0:4136:e378::1", // Teredo
            "2001:2::1",           // benchmarking
            "fec0::1",             // site local
            "100::1",              // discard
            "3fff::1",             // documentation
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        // Public addresses, also when IPv6 carries a public IPv4 one.
        for ip in ["93.184.215.14", "2606:4700::1111", "64:ff9b::5db8:d70e", "2002:5db8:d70e::1", "198.20.0.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_https_and_public_unless_allowed() {
        let strict = WebhookSender::new(&[7; 32], &WebhookSettings::default()).unwrap();
        assert_eq!(strict.refuses("https://hooks.example.com/in"), None);
        assert!(strict.refuses("http://hooks.example.com/in").is_some());
        assert!(strict.refuses("https://127.0.0.1/in").is_some());
        assert!(strict.refuses("https://[::1]/in").is_some());
        assert!(strict.refuses("ftp://hooks.example.com").is_some());
        assert!(strict.refuses("not a url").is_some());
        let lax = WebhookSettings { allow_http: true, allow_private_addresses: true, ..WebhookSettings::default() };
        assert_eq!(WebhookSender::new(&[7; 32], &lax).unwrap().refuses("http://127.0.0.1:9/in"), None);
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_non_public_addresses() {
        use reqwest::dns::Resolve as _;
        let name = |host: &str| host.parse::<reqwest::dns::Name>().expect("a name");
        assert!(PublicOnly { allow_private: false }.resolve(name("localhost")).await.is_err());
        let allowed = PublicOnly { allow_private: true }.resolve(name("localhost")).await.expect("allowed");
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn retries_back_off_four_times_longer_up_to_six_hours() {
        let webhooks = WebhookSender::new(&[7; 32], &WebhookSettings::default()).unwrap();
        assert_eq!(webhooks.retry_delay_ms(1), 10_000);
        assert_eq!(webhooks.retry_delay_ms(2), 40_000);
        assert_eq!(webhooks.retry_delay_ms(3), 160_000);
        assert_eq!(webhooks.retry_delay_ms(20), MAX_RETRY_MS);
    }
}
