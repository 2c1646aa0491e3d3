//! The client's IP address, trusting forwarding headers only from configured proxies.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;

/// Which proxies in front of the app may say who the client is.
///
/// Without trusted proxies the peer address is the client: `X-Forwarded-For` and
/// `Forwarded` are ignored, since any client can send them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TrustedProxies {
    /// Trust no forwarding header (the default).
    #[default]
    None,
    /// Exactly this many proxies stand in front of the app (a load balancer is 1): the
    /// client is the address that many hops from the right of the forwarded chain.
    Hops(usize),
    /// These proxy addresses are trusted: the chain is walked from the peer leftwards
    /// while the address is trusted; the first untrusted address is the client.
    Addresses(Vec<IpAddr>),
}

/// The client address for a request from `peer` with `headers`.
#[must_use]
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let chain = || forwarded_chain(headers);
    match trusted {
        TrustedProxies::None => peer,
        TrustedProxies::Hops(0) => peer,
        TrustedProxies::Hops(n) => {
            let chain = chain();
            // The last `n - 1` entries were added by our own proxies; the one before is
            // what the outermost proxy saw.
            chain
                .len()
                .checked_sub(*n)
                .and_then(|i| chain.get(i).copied())
                .or(peer)
        }
        TrustedProxies::Addresses(list) => {
            let mut current = peer?;
            if !list.contains(&current) {
                return Some(current);
            }
            for hop in chain().into_iter().rev() {
                current = hop;
                if !list.contains(&current) {
                    break;
                }
            }
            Some(current)
        }
    }
}

/// Addresses from `Forwarded: for=` (preferred, RFC 7239) or `X-Forwarded-For`, left
/// (client) to right (nearest proxy). Entries that are not IP addresses end the chain's
/// usable part: everything up to and including them is dropped.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .filter_map(|v| v.to_str().ok())
        .collect();
    let entries: Vec<String> = if forwarded.is_empty() {
        headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .collect()
    } else {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.eq_ignore_ascii_case("for").then(|| v.trim().to_owned())
                })
            })
            .collect()
    };
    for entry in entries.iter().take(64) {
        match parse_node(entry) {
            Some(ip) => out.push(ip),
            None => out.clear(),
        }
    }
    out
}

/// `1.2.3.4`, `1.2.3.4:80`, `"[::1]:80"`, `[::1]`, `::1`.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let s = raw.trim_matches('"');
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, _port) = s.rsplit_once(':')?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_are_ignored_without_trusted_proxies() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &h, &TrustedProxies::None),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn hops_pick_the_address_the_outermost_proxy_saw() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(
            client_ip(peer, &h, &TrustedProxies::Hops(1)),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_ip(peer, &h, &TrustedProxies::Hops(2)),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(client_ip(peer, &h, &TrustedProxies::Hops(9)), peer);
    }

    #[test]
    fn address_list_walks_past_trusted_proxies_only() {
        let trusted = TrustedProxies::Addresses(vec![ip("10.0.0.1"), ip("10.0.0.2")]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &h, &trusted),
            Some(ip("1.2.3.4"))
        );
        // A peer that is not a trusted proxy is the client, whatever it claims.
        assert_eq!(
            client_ip(Some(ip("5.5.5.5")), &h, &trusted),
            Some(ip("5.5.5.5"))
        );
    }

    #[test]
    fn forwarded_header_is_preferred_and_parsed() {
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https, for=192.0.2.60:80",
            ),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(
            client_ip(peer, &h, &TrustedProxies::Hops(1)),
            Some(ip("192.0.2.60"))
        );
        assert_eq!(
            client_ip(peer, &h, &TrustedProxies::Hops(2)),
            Some(ip("2001:db8::1"))
        );
    }

    #[test]
    fn garbage_entries_cut_the_chain() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1, unknown, 2.2.2.2")]);
        assert_eq!(client_ip(None, &h, &TrustedProxies::Hops(2)), None);
        assert_eq!(
            client_ip(None, &h, &TrustedProxies::Hops(1)),
            Some(ip("2.2.2.2"))
        );
    }
}
