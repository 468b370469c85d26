//! The client's address behind reverse proxies, from `X-Forwarded-For` and
//! RFC 7239 `Forwarded`.
//!
//! Every proxy adds the address of its own peer on the right of the list
//! (appending to the line or adding a line: RFC 9110 joins the lines into one
//! list), so everything left of the nearest untrusted hop was written by that
//! hop and proves nothing. [`client_ip`] walks the hops right to left from
//! the socket's peer, past trusted proxies only; the first untrusted hop is
//! the client. A hop that is not an address (garbage, `unknown`, an
//! obfuscated `_id`) is untrusted too: the walk stops there and the client is
//! unknown, never whatever an attacker wrote further left.

use std::net::IpAddr;

use ipnet::IpNet;

/// One hop of a forwarding header: its address, or `None` when it names none.
type Hop = Option<IpAddr>;

/// The client's address, as far as it can be trusted; `None` when unknown.
///
/// `peer` is the socket's peer, `x_forwarded_for` and `forwarded` the lines
/// of those headers in the order received. Headers count only when `peer` is
/// in `trusted`. When both headers are there, a proxy may have written one
/// and the client the other, and nothing says which: they must name the same
/// client, or it is unknown. IPv4-mapped IPv6 addresses are read as IPv4, so
/// IPv4 ranges in `trusted` match them.
pub fn client_ip<'a>(
    peer: Option<IpAddr>,
    x_forwarded_for: impl IntoIterator<Item = &'a str>,
    forwarded: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    // Only a trusted proxy's headers are parsed at all.
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let walk = |hops: Vec<Hop>| {
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            match hop {
                Some(ip) if is_trusted(&ip) => client = ip,
                untrusted => return untrusted,
            }
        }
        // Every hop a trusted proxy: the left-most is the client.
        Some(client)
    };
    let x_forwarded_for = x_forwarded_for_hops(x_forwarded_for);
    let forwarded = forwarded_hops(forwarded);
    match (x_forwarded_for.is_empty(), forwarded.is_empty()) {
        (true, true) => Some(peer),
        (false, true) => walk(x_forwarded_for),
        (true, false) => walk(forwarded),
        (false, false) => {
            let (one, other) = (walk(x_forwarded_for), walk(forwarded));
            one.filter(|_| one == other)
        }
    }
}

/// `X-Forwarded-For: 203.0.113.7, [2001:db8::1]:443`: a node per element.
fn x_forwarded_for_hops<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<Hop> {
    let elements = lines.into_iter().flat_map(|line| line.split(','));
    // RFC 9110 list syntax: empty elements are no elements.
    elements.map(trim_ows).filter(|element| !element.is_empty()).map(node).collect()
}

/// `Forwarded: for=203.0.113.7;proto=https, for="[2001:db8::1]:443"`: the
/// `for` node of each element. Lines are split one by one: a quote a client
/// leaves open cannot swallow what a proxy adds on the next line.
fn forwarded_hops<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<Hop> {
    let elements = lines.into_iter().flat_map(|line| split_unquoted(line, b','));
    elements.map(trim_ows).filter(|element| !element.is_empty()).map(forwarded_for).collect()
}

/// The `for` node of one `Forwarded` element. The element names no address
/// when it has no `for`, two of them, or any malformed pair: an open quote
/// there may hide the rest of the line, which a proxy may have appended.
fn forwarded_for(element: &str) -> Hop {
    let mut node_name = None;
    for pair in split_unquoted(element, b';').map(trim_ows).filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=')?;
        let value = unquote(value)?;
        if name.eq_ignore_ascii_case("for") && node_name.replace(value).is_some() {
            return None;
        }
    }
    node(&node_name?)
}

/// An address with an optional port: `203.0.113.7`, `203.0.113.7:8080`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`; an obfuscated port
/// (`:_p1`) is allowed. Anything else, `unknown` and `_hidden` among it, is `None`.
fn node(text: &str) -> Hop {
    let ip = if let Some(bracketed) = text.strip_prefix('[') {
        let (v6, rest) = bracketed.split_once(']')?;
        if !rest.is_empty() && !rest.strip_prefix(':').is_some_and(is_port) {
            return None;
        }
        IpAddr::V6(v6.parse().ok()?)
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else {
        let (v4, port) = text.split_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(v4.parse().ok()?)
    };
    Some(ip.to_canonical())
}

/// RFC 7239 `node-port`: up to five digits, or `_` and an obfuscated id.
fn is_port(port: &str) -> bool {
    let digits = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
    let obfuscated = port.strip_prefix('_').is_some_and(|id| {
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    digits || obfuscated
}

/// A `Forwarded` value: a token as is, a quoted-string without its quotes
/// and escapes. `None` for an unterminated or misplaced quote.
fn unquote(value: &str) -> Option<String> {
    let Some(quoted) = value.strip_prefix('"') else {
        let token = !value.is_empty() && !value.bytes().any(|b| b == b'"' || b == b'\\' || b.is_ascii_whitespace());
        return token.then(|| value.to_owned());
    };
    let mut unquoted = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => unquoted.push(chars.next()?),
            // The closing quote ends the value.
            '"' => return chars.as_str().is_empty().then_some(unquoted),
            c => unquoted.push(c),
        }
    }
    None
}

/// `text` split at each `separator` outside a quoted-string.
fn split_unquoted(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, b) in text.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            // `separator` is ASCII, so `i` and `i + 1` are character boundaries.
            _ if b == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter()
}

/// Without HTTP's optional whitespace (spaces and tabs).
fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusted() -> Vec<IpNet> {
        ["10.0.0.0/8", "2001:db8:ffff::/48"].iter().map(|net| net.parse().unwrap()).collect()
    }

    /// The client behind `peer` with the given `X-Forwarded-For` lines.
    fn via_xff(peer: &str, lines: &[&str]) -> Option<IpAddr> {
        client_ip(Some(ip(peer)), lines.iter().copied(), [], &trusted())
    }

    /// The client behind `peer` with the given `Forwarded` lines.
    fn via_forwarded(peer: &str, lines: &[&str]) -> Option<IpAddr> {
        client_ip(Some(ip(peer)), [], lines.iter().copied(), &trusted())
    }

    #[test]
    fn headers_are_ignored_unless_the_peer_is_a_trusted_proxy() {
        assert_eq!(via_xff("198.51.100.1", &["1.2.3.4"]), Some(ip("198.51.100.1")));
        assert_eq!(via_forwarded("198.51.100.1", &["for=1.2.3.4"]), Some(ip("198.51.100.1")));
        assert_eq!(client_ip(Some(ip("10.0.0.5")), ["1.2.3.4"], ["for=1.2.3.4"], &[]), Some(ip("10.0.0.5")));
        // No peer (a local client, a Unix socket): nothing to start the walk from.
        assert_eq!(client_ip(None, ["1.2.3.4"], [], &trusted()), None);
        assert_eq!(client_ip(None, [], [], &[]), None);
    }

    #[test]
    fn the_walk_goes_right_to_left_past_trusted_proxies_only() {
        assert_eq!(via_xff("10.0.0.5", &[]), Some(ip("10.0.0.5")));
        assert_eq!(via_xff("10.0.0.5", &["1.2.3.4"]), Some(ip("1.2.3.4")));
        // The client may prepend anything; only what the proxies added counts.
        assert_eq!(via_xff("10.0.0.5", &["6.6.6.6, 1.2.3.4"]), Some(ip("1.2.3.4")));
        assert_eq!(via_xff("10.0.0.5", &["6.6.6.6, 1.2.3.4, 10.0.0.9"]), Some(ip("1.2.3.4")));
        assert_eq!(via_xff("10.0.0.5", &["6.6.6.6,1.2.3.4,10.0.0.9,10.1.1.1"]), Some(ip("1.2.3.4")));
        // A client claiming to be a trusted proxy is still the client.
        assert_eq!(via_xff("10.0.0.5", &["10.9.9.9, 1.2.3.4"]), Some(ip("1.2.3.4")));
        // Every hop trusted: the left-most is the client.
        assert_eq!(via_xff("10.0.0.5", &["10.0.0.7, 10.0.0.9"]), Some(ip("10.0.0.7")));
        assert_eq!(via_xff("2001:db8:ffff::1", &["2001:db8::7"]), Some(ip("2001:db8::7")));
    }

    #[test]
    fn every_line_is_one_list() {
        // HAProxy's `option forwardfor` adds a line after the client's.
        assert_eq!(via_xff("10.0.0.5", &["6.6.6.6", "1.2.3.4"]), Some(ip("1.2.3.4")));
        assert_eq!(via_xff("10.0.0.5", &["6.6.6.6, 7.7.7.7", "1.2.3.4, 10.0.0.9"]), Some(ip("1.2.3.4")));
        assert_eq!(via_xff("10.0.0.5", &["6.6.6.6", "1.2.3.4", "10.0.0.9"]), Some(ip("1.2.3.4")));
        assert_eq!(via_forwarded("10.0.0.5", &["for=6.6.6.6", "for=1.2.3.4"]), Some(ip("1.2.3.4")));
        // Empty elements and lines are no hops.
        assert_eq!(via_xff("10.0.0.5", &["", "1.2.3.4,, ", " "]), Some(ip("1.2.3.4")));
        assert_eq!(via_xff("10.0.0.5", &[" ,\t, "]), Some(ip("10.0.0.5")));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        assert_eq!(via_xff("::ffff:10.0.0.5", &["1.2.3.4"]), Some(ip("1.2.3.4")));
        assert_eq!(via_xff("::ffff:198.51.100.1", &[]), Some(ip("198.51.100.1")));
        assert_eq!(via_xff("10.0.0.5", &["::ffff:1.2.3.4"]), Some(ip("1.2.3.4")));
        assert_eq!(via_xff("10.0.0.5", &["1.2.3.4, [::ffff:10.0.0.9]:80"]), Some(ip("1.2.3.4")));
        assert_eq!(via_forwarded("10.0.0.5", &[r#"for="[::ffff:1.2.3.4]:80""#]), Some(ip("1.2.3.4")));
        // IPv4-compatible (deprecated) addresses are not mapped ones.
        assert_eq!(via_xff("10.0.0.5", &["::1.2.3.4"]), Some(ip("::1.2.3.4")));
    }

    #[test]
    fn entries_may_carry_ports_and_brackets() {
        for entry in ["1.2.3.4:5678", "1.2.3.4:_port", " 1.2.3.4 "] {
            assert_eq!(via_xff("10.0.0.5", &[entry]), Some(ip("1.2.3.4")), "{entry}");
        }
        for entry in ["2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:443", "[2001:DB8::1]:_x"] {
            assert_eq!(via_xff("10.0.0.5", &[entry]), Some(ip("2001:db8::1")), "{entry}");
        }
        assert_eq!(via_xff("10.0.0.5", &["1.2.3.4, 10.0.0.9:443"]), Some(ip("1.2.3.4")));
        assert_eq!(via_xff("10.0.0.5", &["1.2.3.4, [2001:db8:ffff::9]:443"]), Some(ip("1.2.3.4")));
    }

    #[test]
    fn garbage_is_an_untrusted_hop_and_the_client_is_unknown() {
        let garbage = [
            "unknown",
            "_hidden",
            "garbage",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.4:",
            "1.2.3.4:123456",
            "1.2.3.4:http",
            "1.2.3.4:_",
            "[1.2.3.4]",
            "[2001:db8::1",
            "[2001:db8::1]443",
            "[2001:db8::1]:",
            "fe80::1%eth0",
            "\"1.2.3.4\"",
            "for=1.2.3.4",
            "1.2.3.4 5.6.7.8",
        ];
        for entry in garbage {
            assert_eq!(via_xff("10.0.0.5", &[entry]), None, "{entry}");
            // Not skipped: an attacker's address further left is never believed.
            assert_eq!(via_xff("10.0.0.5", &[&format!("6.6.6.6, {entry}")]), None, "{entry}");
            assert_eq!(via_xff("10.0.0.5", &["6.6.6.6", entry, "10.0.0.9"]), None, "{entry}");
        }
        // Garbage left of the client is the client's business.
        assert_eq!(via_xff("10.0.0.5", &["garbage, 1.2.3.4"]), Some(ip("1.2.3.4")));
    }

    #[test]
    fn forwarded_elements_name_their_for_node() {
        let cases = [
            ("for=1.2.3.4", "1.2.3.4"),
            ("For=1.2.3.4", "1.2.3.4"),
            (r#"for="1.2.3.4""#, "1.2.3.4"),
            (r#"for="1.2.3.4:8080""#, "1.2.3.4"),
            (r#"for="[2001:db8::1]""#, "2001:db8::1"),
            (r#"for="[2001:db8::1]:443""#, "2001:db8::1"),
            (r#"for="[2001:db8::1]:_p""#, "2001:db8::1"),
            (r#"for="\[2001:db8::1\]""#, "2001:db8::1"),
            ("for=1.2.3.4;proto=https;by=10.0.0.5", "1.2.3.4"),
            (r#"proto=https; for=1.2.3.4 ;host="a;b,c""#, "1.2.3.4"),
            ("for=6.6.6.6, for=1.2.3.4", "1.2.3.4"),
            (r#"for="6.6.6.6, 7.7.7.7", for=1.2.3.4"#, "1.2.3.4"),
            ("for=1.2.3.4, for=10.0.0.9;proto=https", "1.2.3.4"),
            ("for=1.2.3.4,,", "1.2.3.4"),
        ];
        for (line, client) in cases {
            assert_eq!(via_forwarded("10.0.0.5", &[line]), Some(ip(client)), "{line}");
        }
    }

    #[test]
    fn forwarded_garbage_is_an_untrusted_hop() {
        let garbage = [
            "for=unknown",
            r#"for="unknown""#,
            "for=_hidden",
            r#"for="_hidden:80""#,
            "for=",
            r#"for="""#,
            "proto=https",
            "by=10.0.0.5",
            "for=1.2.3.4;for=5.6.7.8",
            "for",
            "for 1.2.3.4",
            "for=1.2.3.4;junk",
            r#"for="1.2.3.4"#,
            r#"for="1.2.3.4\""#,
            r#"for="1.2.3.4"x"#,
            r#"for=1.2.3.4;proto="https"#,
            "for=1.2.3.4\\",
            "for=garbage",
        ];
        for element in garbage {
            assert_eq!(via_forwarded("10.0.0.5", &[element]), None, "{element}");
            assert_eq!(via_forwarded("10.0.0.5", &[&format!("for=6.6.6.6, {element}")]), None, "{element}");
        }
    }

    #[test]
    fn an_open_quote_cannot_hide_what_a_proxy_appends() {
        // On the same line: the proxy's element falls into the client's open
        // quote, which makes the last element malformed, not the client's.
        let forged = r#"for=6.6.6.6;x=", for=1.2.3.4"#;
        assert_eq!(via_forwarded("10.0.0.5", &[forged]), None);
        // On a line of its own, the proxy's element stands.
        assert_eq!(via_forwarded("10.0.0.5", &[r#"for=6.6.6.6;x=""#, "for=1.2.3.4"]), Some(ip("1.2.3.4")));
    }

    #[test]
    fn both_headers_must_name_the_same_client() {
        let trusted = trusted();
        let both = |xff: &str, forwarded: &str| client_ip(Some(ip("10.0.0.5")), [xff], [forwarded], &trusted);
        // A proxy writing both headers.
        assert_eq!(both("1.2.3.4", "for=1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(both("6.6.6.6, 1.2.3.4", "for=7.7.7.7, for=\"1.2.3.4:99\""), Some(ip("1.2.3.4")));
        // A proxy writing one, the client forging the other: nothing says which is which.
        assert_eq!(both("1.2.3.4", "for=6.6.6.6"), None);
        assert_eq!(both("6.6.6.6", "for=1.2.3.4"), None);
        assert_eq!(both("1.2.3.4", "for=10.0.0.7"), None);
        assert_eq!(both("1.2.3.4", "for=unknown"), None);
        assert_eq!(both("unknown", "for=1.2.3.4"), None);
        // An empty header is no claim.
        assert_eq!(both("", "for=1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(both("1.2.3.4", " "), Some(ip("1.2.3.4")));
    }
}
