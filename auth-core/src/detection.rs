//! Suspicious sign-ins: a sign-in from a device the account has not used in
//! the last [`NEW_DEVICE_WINDOW_MS`] is `new_device_sign_in`, and its user is
//! mailed; failed sign-ins spread over many accounts from one address are
//! `credential_stuffing_suspected` (that address's login quota drops to
//! `rate_limits.login_suspected`), and over many addresses against one
//! account `account_under_attack` (see `Auth::watch_failures`).
//!
//! A "device" is the user agent's family (browser and system, such as
//! "Chrome on Linux") and the client's network (the IPv4 /24 or IPv6 /48), so
//! a browser update or a new address from the same provider's pool is no new
//! device. The store keeps only an HMAC-SHA256 of the pair, under a key derived
//! from `mfa.encryption_key` (which stays outside the database): a leaked
//! table tells neither where users sign in from nor with what. Without that
//! key there is no detection.

use std::net::IpAddr;

use aws_lc_rs::{hkdf, hmac};

use crate::ClientInfo;

/// How long a device stays known after its last sign-in: 90 days.
pub const NEW_DEVICE_WINDOW_MS: i64 = 90 * 24 * 3600 * 1000;

/// Names this use of `mfa.encryption_key`, so the key derived from it serves nothing else.
const FINGERPRINT_SALT: &[u8] = b"auth-platform/device-fingerprint/v1";

/// The key of the devices' fingerprints.
pub(crate) struct DeviceKey(hmac::Key);

/// A client as the detection sees it: its keyed fingerprint, and the words a
/// notice may use for it (the family; never the address or the full user agent).
pub(crate) struct Device {
    pub fingerprint: Vec<u8>,
    pub description: String,
}

impl DeviceKey {
    pub(crate) fn derive(input_key: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, FINGERPRINT_SALT).extract(input_key);
        let okm = prk.expand(&[b""], hmac::HMAC_SHA256).expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(hmac::Key::from(okm))
    }

    /// The device of `client`; `None` without an address (nothing to compare).
    pub(crate) fn device(&self, client: &ClientInfo) -> Option<Device> {
        let network = network(client.ip?);
        let description = family(client.user_agent.as_deref().unwrap_or_default());
        let tag = hmac::sign(&self.0, format!("{description}\n{network}").as_bytes());
        Some(Device { fingerprint: tag.as_ref().to_vec(), description })
    }
}

/// The network an address belongs to: its /24 (IPv4) or /48 (IPv6).
fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
    }
}

/// "Browser on System" from a user agent, by the tokens every major browser
/// sends. Approximate on purpose: a notice needs the family, not the version
/// (a user-agent database would be a large dependency for one line of a mail).
fn family(user_agent: &str) -> String {
    let has = |token: &str| user_agent.contains(token);
    let browser = if has("Edg/") {
        "Edge"
    } else if has("OPR/") {
        "Opera"
    } else if has("Firefox/") {
        "Firefox"
    } else if has("Chrome/") || has("CriOS/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else {
        "an unknown browser"
    };
    let system = if has("Android") {
        "Android"
    } else if has("iPhone") || has("iPad") {
        "iOS"
    } else if has("Windows") {
        "Windows"
    } else if has("Mac OS X") || has("Macintosh") {
        "macOS"
    } else if has("Linux") || has("X11") {
        "Linux"
    } else {
        "an unknown system"
    };
    format!("{browser} on {system}")
}

/// Client addresses suspected of credential stuffing, until when (Unix ms).
/// Each instance keeps the addresses it has seen cross the threshold; with a
/// shared rate limiter (Redis) the counts are shared, so every instance that
/// sees one more failure from such an address learns it too.
pub(crate) struct Suspects(std::sync::Mutex<std::collections::HashMap<String, i64>>);

/// A flood of addresses cannot grow [`Suspects`] past this.
const MAX_SUSPECTS: usize = 10_000;

impl Suspects {
    pub(crate) fn new() -> Self {
        Self(std::sync::Mutex::new(std::collections::HashMap::new()))
    }

    pub(crate) fn flag(&self, address: &str, until: i64, now: i64) {
        let mut suspects = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if suspects.len() >= MAX_SUSPECTS {
            suspects.retain(|_, ends| *ends > now);
        }
        if suspects.len() < MAX_SUSPECTS || suspects.contains_key(address) {
            suspects.insert(address.to_owned(), until);
        }
    }

    pub(crate) fn is_suspect(&self, address: &str, now: i64) -> bool {
        let suspects = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        suspects.get(address).is_some_and(|ends| *ends > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_LINUX: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
    const CHROME_LINUX_NEXT: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/157.0.0.0 Safari/537.36";
    const FIREFOX_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1";

    fn client(ip: &str, user_agent: &str) -> ClientInfo {
        ClientInfo::new(Some(ip.parse().unwrap()), Some(user_agent))
    }

    #[test]
    fn a_device_is_a_browser_family_on_a_network() {
        let key = DeviceKey::derive(&[7; 32]);
        let fingerprint = |ip, ua| key.device(&client(ip, ua)).unwrap().fingerprint;
        let home = fingerprint("203.0.113.7", CHROME_LINUX);
        assert_eq!(home, fingerprint("203.0.113.99", CHROME_LINUX_NEXT), "same /24, a newer version");
        assert_ne!(home, fingerprint("198.51.100.7", CHROME_LINUX), "another network");
        assert_ne!(home, fingerprint("203.0.113.7", FIREFOX_WINDOWS), "another browser");
        let v6 = fingerprint("2001:db8:1:2::1", CHROME_LINUX);
        assert_eq!(v6, fingerprint("2001:db8:1:ffff::9", CHROME_LINUX), "same /48");
        assert_eq!(home, fingerprint("::ffff:203.0.113.8", CHROME_LINUX), "a mapped IPv4 address is that address");
        assert_ne!(home, DeviceKey::derive(&[8; 32]).device(&client("203.0.113.7", CHROME_LINUX)).unwrap().fingerprint);
        assert!(key.device(&ClientInfo::new(None, Some(CHROME_LINUX))).is_none(), "no address, no device");
    }

    #[test]
    fn a_notice_names_the_family_only() {
        assert_eq!(family(CHROME_LINUX), "Chrome on Linux");
        assert_eq!(family(FIREFOX_WINDOWS), "Firefox on Windows");
        assert_eq!(family(SAFARI_IPHONE), "Safari on iOS");
        assert_eq!(family("curl/8.5.0"), "an unknown browser on an unknown system");
        let device = DeviceKey::derive(&[7; 32]).device(&client("203.0.113.7", CHROME_LINUX)).unwrap();
        assert!(!device.description.contains("203.0.113") && !device.description.contains("156"));
    }

    #[test]
    fn suspects_expire_and_a_flood_of_addresses_cannot_grow_them() {
        let suspects = Suspects::new();
        suspects.flag("198.51.100.7", 2_000, 1_000);
        assert!(suspects.is_suspect("198.51.100.7", 1_999) && !suspects.is_suspect("198.51.100.7", 2_000));
        for i in 0..MAX_SUSPECTS + 500 {
            suspects.flag(&format!("flood-{i}"), 10_000, 1_000);
        }
        assert!(suspects.0.lock().unwrap().len() <= MAX_SUSPECTS);
        suspects.flag("203.0.113.9", 90_000, 20_000);
        assert!(suspects.is_suspect("203.0.113.9", 20_001), "expired entries make room");
    }
}
